"""Replay throughput: page events read back from JetStream and indexed into a new collection.

    uv run python bench/replay.py [--events 100000] [--embedded-events 400]

A real nats-server (JetStream on disk) gets ``--events`` ``page.scraped`` events (demo-site
pages, repeated under distinct URLs) in its PAGES stream.  Then ``ReplayRunner`` -- the code
indexer-svc runs for ``POST /v1/replays`` -- replays them into a new Qdrant Edge version:

0. bus only: the replay's consumer reading and decoding every event, indexing nothing.
1. embedding disabled: a null embedder (a constant 8-d unit vector) stands in for the model, so
   the figure is the bus read, decoding, chunking, BM25 and the store's upserts.  Goal: >= 5,000
   events/s.
2. the default embedder (MiniLM), over the first ``--embedded-events`` events: the replay's
   events/s against the raw embedder's events/s on the very same chunk texts.  Goal: >= 90%.

Each replay also prints the CPU it cost an event, by process: the indexer's (this one), the worker
process it prepares batches in, and nats-server.  Their sum against the machine's cores is the
most events/s the replay can reach at that cost, whatever the overlap.

The runner runs on the event loop indexer-svc runs on (uvloop unless ``SHOWROOM_EVENT_LOOP`` says otherwise).
Figures go to stdout.  Loopback only; run it under ``flock /tmp/showroom-heavy.lock``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nats
import numpy as np
import psutil
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eval.dataset import pages
from showroom.cli.stack import Stack, StackConfig
from showroom.common.events import PageScraped, ReplaySpec, ReplayTarget, new_id
from showroom.common.replays import ReplayState
from showroom.common.settings import ServiceSettings
from showroom.common.topology import Buckets, ensure_topology
from showroom.indexer.chunking import chunk_page
from showroom.indexer.embedding import Embedder, load_embedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.replay import ReplayRunner, _Reader
from showroom.indexer.store import EdgeChunkStore


class NullEmbedder:
    """Embedding disabled: every text gets the same unit vector, at no cost."""

    name = "null-bench"
    dim = 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class CpuMeter:
    """CPU seconds of this process and its descendants (the replay's worker, nats-server) over a
    run, by role.  Children are sampled while they run: the worker is gone by the time the replay
    has returned, and only a child that has been waited for shows in this process's own times."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.me, self.every_s = psutil.Process(), every_s
        self.start: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def _role(self, p: psutil.Process) -> str:
        if p.pid == self.me.pid:
            return "indexer"
        return "nats-server" if p.name().startswith("nats-server") else "worker"

    def _sample(self) -> dict[int, tuple[str, float]]:
        out = {}
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                out[p.pid] = (self._role(p), t.user + t.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return out

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.last.update(await asyncio.to_thread(self._sample))

    def __enter__(self) -> CpuMeter:
        self.start = self._sample()
        self.last = dict(self.start)
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.last.update(self._sample())

    def by_role(self) -> dict[str, float]:
        """CPU seconds each role spent during the run (a process started meanwhile: all of it)."""
        out: dict[str, float] = {}
        for pid, (role, cpu) in self.last.items():
            out[role] = out.get(role, 0.0) + cpu - self.start.get(pid, (role, 0.0))[1]
        return out


def cpu_line(meter: CpuMeter, events: int) -> str:
    roles = meter.by_role()
    total = sum(roles.values()) / events * 1e6
    roles = {role: cpu for role, cpu in roles.items() if cpu / events * 1e6 >= 1}  # e.g. no worker: a small replay
    parts = " + ".join(f"{role} {cpu / events * 1e6:.0f}" for role, cpu in sorted(roles.items()))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return (f"  CPU an event: {parts} = {total:.0f} us; on {cores} cores that cost allows at most "
            f"{cores * 1e6 / total:,.0f} events/s")  # fmt: skip


def events(n: int) -> list[PageScraped]:
    base = pages()
    return [
        base[i % len(base)].model_copy(
            update={"url": f"{base[i % len(base)].url}?copy={i}", "content_hash": f"h{i:08d}", "event_id": new_id()}
        )
        for i in range(n)
    ]


async def publish_all(js, docs: list[PageScraped]) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    window = 512
    for start in range(0, len(docs), window):
        await asyncio.gather(
            *(
                js.publish(f"page.scraped.{d.brand}", d.model_dump_json().encode(), stream="PAGES")
                for d in docs[start : start + window]
            )
        )
    return len(docs) / (time.perf_counter() - t0)


async def replay(js, root: Path, embedder: Embedder, to_seq: int | None, tag: str) -> tuple[ReplayState, float, str]:  # type: ignore[no-untyped-def]
    store = EdgeChunkStore("bench_pages", root / f"qdrant-{tag}")
    version = await store.create_version(embedder.name, embedder.dim)
    await store.swap_alias(version)
    live = Indexer(store, embedder, 180, embedder_factory=lambda _: embedder)
    kv = await js.key_value(Buckets.REPLAYS.name)
    spec = ReplaySpec(to_seq=to_seq, target=ReplayTarget(embedder="bench", chunk_tokens=180), swap=True)
    state = ReplayState(replay_id=new_id(), spec=spec)
    await kv.create(state.replay_id, state.model_dump_json().encode())
    runner = ReplayRunner(js, kv, live, lambda _: embedder)  # the service's batch size
    with CpuMeter() as meter:
        t0 = time.perf_counter()
        final = await runner.run(state.replay_id)
        elapsed = time.perf_counter() - t0
    await store.close()
    assert final is not None and final.status.value == "completed", final
    return final, elapsed, cpu_line(meter, final.progress.done)


async def read_only(js) -> float:  # type: ignore[no-untyped-def]
    """Events/s through the replay's reader alone: what the bus and decoding cost."""
    runner = ReplayRunner(js, await js.key_value(Buckets.REPLAYS.name), None, lambda _: NullEmbedder())  # type: ignore[arg-type]
    reader = _Reader(await runner._subscribe(ReplaySpec(), 0), 256)
    n, t0 = 0, time.perf_counter()
    try:
        while msgs := await reader.next():
            for msg in msgs:
                PageScraped.model_validate_json(msg.data)
            n += len(msgs)
    finally:
        await reader.close()
    return n / (time.perf_counter() - t0 - 0.5)  # less the final empty fetch's wait


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--embedded-events", type=int, default=400)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stack = Stack(StackConfig.ephemeral(root, api_key=secrets.token_urlsafe(24), with_demo=False))
        stack.logs.mkdir(parents=True, exist_ok=True)
        await stack.start_nats()
        nc = await nats.connect(stack.config.nats_url)
        try:
            js = nc.jetstream()
            await ensure_topology(js)
            docs = events(args.events)
            rate = await publish_all(js, docs)
            # An indexer holds none of them: 100k live models would only slow its garbage collector.
            subset = docs[: args.embedded_events]
            del docs
            info = await js.stream_info("PAGES")
            print(f"PAGES: {info.state.messages} events, {info.state.bytes / 1e6:.0f} MB (published at {rate:,.0f}/s)")

            rate = await read_only(js)
            print(f"bus only (the replay's consumer, decoding every event, nothing indexed): {rate:,.0f} events/s")
            final, elapsed, cpu = await replay(js, root, NullEmbedder(), None, "null")
            p = final.progress
            print(f"replay, embedding disabled: {p.done:,} events in {elapsed:.1f} s = "
                  f"{p.done / elapsed:,.0f} events/s ({p.indexed:,} pages indexed)  [goal >= 5,000/s]")  # fmt: skip
            print(cpu)

            if not args.embedded_events:
                return
            minilm = load_embedder("minilm")
            texts = [c.text for d in subset for c in chunk_page(d, 180)]
            minilm.embed(texts[:16])  # warm-up
            t0 = time.perf_counter()
            minilm.embed(texts)
            raw_s = time.perf_counter() - t0
            raw_rate = len(subset) / raw_s
            print(f"raw MiniLM on the same texts: {len(texts)} chunks of {len(subset)} events in {raw_s:.1f} s = "
                  f"{raw_rate:.1f} events/s ({len(texts) / raw_s:.1f} chunks/s)")  # fmt: skip
            final, elapsed, cpu = await replay(js, root, minilm, len(subset), "minilm")
            r = final.progress.done / elapsed
            print(f"replay, MiniLM: {final.progress.done} events in {elapsed:.1f} s = {r:.1f} events/s = "
                  f"{100 * r / raw_rate:.0f}% of the raw embedder  [goal >= 90%]")  # fmt: skip
            print(cpu)
        finally:
            await nc.close()
            await stack.stop()


if __name__ == "__main__":
    # On the event loop indexer-svc runs (``ServiceSettings.event_loop``).
    if ServiceSettings().event_loop == "uvloop":
        uvloop.run(main())
    else:
        asyncio.run(main())
