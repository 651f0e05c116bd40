"""Benchmark the indexer's all-MiniLM-L6-v2 embedder (optionally against the real thing).

    uv run python bench/embedder.py
    uv run python bench/embedder.py --reference-python /tmp/stref/bin/python

Prints the model load time, chunks/s (best and median of ``--repeat`` runs: the machine is
shared, so single runs are noisy) for ~240-token product-page chunks (generated
deterministically: descriptions, reviews and spec rows) -- ours with 1 and 2 texts at a time
(``MiniLMEmbedder(threads=...)``), sentence-transformers at several batch sizes --, the latency
and CPU of embedding one short search query, and the peak RSS.  With
``--reference-python`` (a venv with sentence-transformers + torch, see
``bench/make_minilm_reference.py``) the same chunks are embedded by sentence-transformers in
that interpreter and the figures are printed side by side, with the worst cosine similarity
between the two implementations' vectors.

Each implementation runs in its own subprocess so that load times and peak RSS are its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BRANDS = (
    "Yamaha|Roland|Korg|Fender|Gibson|Focusrite|Shure|Sennheiser|Behringer|Neumann|Boss|"
    "Marshall|Moog|Nord|KRK|Genelec|Audio-Technica|PreSonus|Universal Audio|Elektron|Ibanez"
).split("|")
PRODUCTS = {  # product type -> spec row names
    "studio monitor": (
        "Woofer size|Tweeter size|Amplifier power|Frequency response|Crossover frequency|Max SPL|Inputs|Enclosure"
    ),
    "synthesizer": "Keys|Polyphony|Oscillators per voice|Filter|Sequencer steps|Presets|Outputs|MIDI",
    "electric guitar": "Body|Neck|Fingerboard|Frets|Scale length|Pickups|Bridge|Tuners",
    "audio interface": "Inputs|Outputs|Mic preamps|Sample rate|Bit depth|Dynamic range|Connection|Phantom power",
    "microphone": "Type|Polar pattern|Frequency response|Sensitivity|Max SPL|Impedance|Connector|Weight",
    "headphones": "Type|Driver size|Impedance|Sensitivity|Frequency response|Cable length|Weight|Connector",
    "drum machine": "Pads|Voices|Sequencer|Patterns|Sample memory|Outputs|Sync|Power supply",
    "guitar amplifier": "Power|Speakers|Channels|Tubes|Effects loop|Reverb|Dimensions|Weight",
}
VALUES = (
    "5 in|1 in dome|55 W|45 Hz - 22 kHz (-3 dB)|2.1 kHz|104 dB SPL|XLR / TRS balanced|"
    "bass-reflex, rear port|61 semi-weighted|16 voices|3|24 dB/oct resonant low-pass|64|"
    "512 user / 512 factory|2 x 1/4 in|5-pin DIN and USB|alder|maple, modern C|"
    "rosewood, 9.5 in radius|22 medium jumbo|25.5 in (648 mm)|2 single-coil + 1 humbucker|"
    "2-point tremolo|locking|2 combo XLR/TRS|4 line|24-bit / 192 kHz|114 dB (A-weighted)|"
    "USB-C|+48 V switchable|large-diaphragm condenser|cardioid|-37 dBV/Pa|150 ohm|80 ohm|"
    "closed-back, circumaural|40 mm|3 m coiled|280 g|16 velocity pads|12 analog + 4 sample|"
    "64 steps|128 per kit|9 V DC, 1.7 A|100 W|2 x 12 in Celestion|3 x 12AX7, 4 x EL34|"
    "series, footswitchable|spring|610 x 480 x 260 mm|22.5 kg|1/8 in (3.5 mm) with adapter"
).split("|")
ADJECTIVES = (
    "warm|punchy|transparent|detailed|rugged|compact|versatile|vintage-voiced|low-noise|"
    "road-ready|accurate|expressive|lightweight"
).split("|")
SENTENCES = [
    "The {brand} {model} is a {adj} {product} built for studio and stage.",
    "Designed with input from touring engineers, it delivers a {adj} sound at any level.",
    "Its {adj} character makes it a favourite for home recording, podcasts and live streams.",
    "Every unit is hand-tested before it leaves the factory in {country}.",
    "Compared with the previous generation, the {model} is {n}% lighter and draws less power.",
    "Customers praise its {adj} tone and {adj2} build quality in over {n} reviews.",
    "Pair it with the matching stand and a balanced cable for the best results.",
    "What's in the box: the {product}, a power cable and a quick-start guide.",
    "Q: Does the {model} work with {other}? A: Yes, it is fully compatible out of the box.",
    "Warranty: {n} months parts and labour; free shipping and 30-day returns.",
    "Price: EUR {price}.00, in stock, ships within 24 hours.",
]
COUNTRIES = ["Japan", "Germany", "the USA", "Finland", "Sweden", "the UK", "Indonesia"]


def make_chunks(count: int, target_tokens: int, tokenizer, seed: int = 240) -> list[str]:
    """Deterministic product-page chunks of about ``target_tokens`` MiniLM tokens each."""
    rng = random.Random(seed)
    chunks: list[str] = []
    while len(chunks) < count:
        product, spec_names = rng.choice(list(PRODUCTS.items()))
        fields = spec_names.split("|")
        ctx = {
            "brand": rng.choice(BRANDS),
            "model": f"{rng.choice('ABCDHJKMRSTX')}{rng.choice('SXMP')}-{rng.randint(1, 999)}",
            "product": product,
            "country": rng.choice(COUNTRIES),
            "other": rng.choice(["Ableton Live", "Logic Pro", "an iPad", "Windows 11", "Linux"]),
        }
        parts: list[str] = [f"{ctx['brand']} {ctx['model']} {product}."]
        tokens = 0
        while tokens < target_tokens - 8:
            if rng.random() < 0.45:
                part = f"{rng.choice(fields)}: {rng.choice(VALUES)};"
            else:
                part = rng.choice(SENTENCES).format(
                    **ctx,
                    adj=rng.choice(ADJECTIVES),
                    adj2=rng.choice(ADJECTIVES),
                    n=rng.randint(2, 3000),
                    price=rng.randint(49, 4999),
                )
            n = len(tokenizer.encode(" ".join([*parts, part])).ids)
            if n <= target_tokens + 8:  # otherwise try another (shorter) part
                parts.append(part)
                tokens = n
        chunks.append(" ".join(parts))
    return chunks


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


QUERIES = [f"What is the {spec.lower()} of the {brand} {kind}?" for brand in BRANDS for kind, specs in PRODUCTS.items()
           for spec in specs.split("|")[:2]]  # fmt: skip


def _worker(kind: str, chunks_file: Path, batch_sizes: list[int], repeat: int, vectors_out: Path) -> None:
    """Runs in a subprocess: load one implementation, time it, print one JSON line."""
    import numpy as np

    chunks = json.loads(chunks_file.read_text())
    t0 = time.perf_counter()
    if kind == "onnx":
        from showroom.indexer.embedding import MiniLMEmbedder

        t1 = time.perf_counter()
        models = {n: MiniLMEmbedder(threads=n) for n in (1, 2)}
        load_s = (time.perf_counter() - t1) / len(models)
        settings = {f"{n} at a time": models[n].embed for n in models}
        query = models[1].embed_query
        threads = "onnxruntime, one thread per text"
    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from make_minilm_reference import _default_model_dir

        t1 = time.perf_counter()
        model = SentenceTransformer(str(_default_model_dir()), device="cpu")
        load_s = time.perf_counter() - t1

        def encoder(batch_size: int):  # type: ignore[no-untyped-def]
            return lambda texts: model.encode(texts, batch_size=batch_size, convert_to_numpy=True)

        settings = {f"batch {b}": encoder(b) for b in batch_sizes}
        query = lambda text: model.encode([text], convert_to_numpy=True)[0]  # noqa: E731
        threads = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    import_s = t1 - t0

    rates: dict[str, list[float]] = {}
    for label, embed in settings.items():
        embed(chunks[:4])  # warm-up
        rates[label] = []
        for _ in range(repeat):
            start = time.perf_counter()
            vectors = embed(chunks)
            rates[label].append(len(chunks) / (time.perf_counter() - start))
    np.save(vectors_out, vectors)
    query(QUERIES[0])
    wall: list[float] = []
    cpu = time.process_time()
    for text in QUERIES:
        start = time.perf_counter()
        query(text)
        wall.append((time.perf_counter() - start) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / len(QUERIES)
    wall.sort()
    print(
        json.dumps(
            {
                "kind": kind,
                "import_s": import_s,
                "load_s": load_s,
                "rates": rates,
                "query_ms": [wall[len(wall) // 2], wall[int(len(wall) * 0.95)], cpu_ms],
                "peak_rss_mb": _peak_rss_mb(),
                "threads": threads,
            }
        )
    )


def _run_worker(
    python: str, kind: str, chunks_file: Path, batch_sizes: list[int], repeat: int, vectors_out: Path
) -> dict:
    cmd = [
        python,
        __file__,
        "--worker",
        kind,
        "--chunks-file",
        str(chunks_file),
        "--batch-sizes",
        ",".join(map(str, batch_sizes)),
        "--repeat",
        str(repeat),
        "--vectors-out",
        str(vectors_out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"{kind} worker failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=240, help="target tokens per chunk")
    parser.add_argument("--batch-sizes", default="1,8,16,32", help="sentence-transformers' batch sizes")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per batch size; the best and the median are shown"
    )
    parser.add_argument("--reference-python", help="interpreter with sentence-transformers")
    parser.add_argument("--worker", choices=["onnx", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--chunks-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--vectors-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    if args.worker:
        _worker(args.worker, args.chunks_file, batch_sizes, args.repeat, args.vectors_out)
        return

    import numpy as np
    from tokenizers import Tokenizer

    from showroom.indexer.embedding import minilm_model_dir

    tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    chunks = make_chunks(args.chunks, args.tokens, tokenizer)
    lengths = [len(tokenizer.encode(c).ids) for c in chunks]
    print(
        f"{len(chunks)} chunks, {min(lengths)}-{max(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}); {os.cpu_count()} CPUs"
    )

    with tempfile.TemporaryDirectory() as tmp:
        chunks_file = Path(tmp) / "chunks.json"
        chunks_file.write_text(json.dumps(chunks))
        runs = [("onnx", sys.executable)]
        if args.reference_python:
            runs.append(("reference", args.reference_python))
        results = {}
        vectors = {}
        for kind, python in runs:
            out = Path(tmp) / f"{kind}.npy"
            results[kind] = _run_worker(python, kind, chunks_file, batch_sizes, args.repeat, out)
            vectors[kind] = np.load(out)

    names = {"onnx": "MiniLMEmbedder (onnx)", "reference": "sentence-transformers"}
    print(f"{'':24}" + "".join(f"{names[k]:>24}" for k in results))
    print(f"{'import (s)':24}" + "".join(f"{r['import_s']:>24.2f}" for r in results.values()))
    print(f"{'model load (s)':24}" + "".join(f"{r['load_s']:>24.2f}" for r in results.values()))
    for label in dict.fromkeys(label for r in results.values() for label in r["rates"]):
        cells = []
        for r in results.values():
            runs = sorted(r["rates"].get(label, []))
            cells.append(f"{runs[-1]:.1f} (median {runs[len(runs) // 2]:.1f})" if runs else "-")
        print(f"{f'chunks/s, {label}':24}" + "".join(f"{c:>24}" for c in cells))
    cells = [f"{p50:.1f} / {p95:.1f} / {cpu:.1f}" for p50, p95, cpu in (r["query_ms"] for r in results.values())]
    print(f"{'query p50/p95/CPU (ms)':24}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'peak RSS (MB)':24}" + "".join(f"{r['peak_rss_mb']:>24.0f}" for r in results.values()))
    for kind, r in results.items():
        print(f"{names[kind]}: {r['threads']}")
    if "reference" in vectors:
        a, b = vectors["onnx"], vectors["reference"]
        cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        print(
            f"onnx vs sentence-transformers on these chunks: min cosine {cos.min():.7f}, "
            f"max |diff| {np.abs(a - b).max():.2e}"
        )


if __name__ == "__main__":
    main()
