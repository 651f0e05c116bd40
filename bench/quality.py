"""Retrieval and answer quality on the demo-site evaluation set (``bench/eval/dataset.py``).

    uv run python bench/quality.py                 # MiniLM + BM25 hybrid, extractive answers
    uv run python bench/quality.py --embedder hashing --verbose

Runs an in-process indexer (Qdrant Edge in a temp folder) fed with the page events the scraper
emits for the demo site's product and support pages, then asks every question through the same
pipeline rag-svc uses (hybrid search -> numbered sources -> answerer -> citation repair).

Prints recall@1 / recall@5 of gold pages (answerable questions; a question with several gold
pages counts the share found), MRR of the first gold page, answer accuracy per kind (the gold
value in the answer *and* a gold page cited), and the share of unanswerable questions refused.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eval.dataset import BASE_URL, pages, questions
from showroom.common.events import AskRequest, ProductSearchRequest, SearchRequest
from showroom.indexer.embedding import load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.store import open_store
from showroom.rag.answerers import REFUSAL, ExtractiveAnswerer
from showroom.rag.pipeline import answer_question


async def run(embedder_name: str, verbose: bool, top_k: int) -> dict[str, float]:
    embedder = load_embedder(embedder_name)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("eval", path=tmp)
        await store.ensure_collection(embedder.name, embedder.dim)
        indexer = Indexer(store, embedder, 180)
        t0 = time.perf_counter()
        indexed = await indexer.index_pages(pages())
        print(f"indexed {len(indexed)} pages, {sum(i.chunks for i in indexed)} chunks "
              f"in {time.perf_counter() - t0:.1f}s ({embedder.name})")  # fmt: skip

        async def search(request: SearchRequest):  # type: ignore[no-untyped-def]
            return (await indexer.search(request)).hits

        async def products(request: ProductSearchRequest):  # type: ignore[no-untyped-def]
            return (await indexer.products(request)).products

        answerer = ExtractiveAnswerer()
        r1: list[float] = []
        r5: list[float] = []
        rr: list[float] = []
        correct: dict[str, list[bool]] = defaultdict(list)
        for q in questions():
            request = AskRequest(question=q.question, brand=q.brand, top_k=top_k)
            answer = await answer_question(request, search, answerer, search_top_k=8, products=products)
            refused = answer.answer == REFUSAL
            if q.kind == "unanswerable":
                correct["refused"].append(refused)
                if verbose and not refused:
                    print(f"  NOT REFUSED {q.question!r}: {answer.answer}")
                continue
            gold = {BASE_URL + p for p in q.gold_paths}
            ranked = list(dict.fromkeys(h.url for h in await search(SearchRequest(query=q.question, brand=q.brand,
                                                                                    top_k=20))))  # fmt: skip
            r1.append(len(gold & set(ranked[:1])) / min(len(gold), 1))
            r5.append(len(gold & set(ranked[:5])) / min(len(gold), 5))
            first = next((i for i, u in enumerate(ranked) if u in gold), None)
            rr.append(0.0 if first is None else 1 / (first + 1))
            cited = {c.url for c in answer.citations}
            ok = any(a and a in answer.answer for a in q.answers) and bool(cited & gold)
            correct[q.kind].append(ok)
            if verbose and not ok:
                print(f"  WRONG [{q.kind}] {q.question!r} want {q.answers}: {answer.answer[:160]}")
        await store.close()

    def mean(xs: list[float] | list[bool]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    figures = {"recall@1": mean(r1), "recall@5": mean(r5), "mrr": mean(rr)}
    for kind, oks in sorted(correct.items()):
        figures[f"accuracy[{kind}]" if kind != "refused" else "refusal_rate"] = mean(oks)
    figures["accuracy[spec+price]"] = mean(correct["spec"] + correct["price"])
    return figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    n = len(questions())
    figures = asyncio.run(run(args.embedder, args.verbose, args.top_k))
    print(f"{n} questions")
    for name, value in figures.items():
        print(f"{name:24s} {value:.3f}")


if __name__ == "__main__":
    main()
