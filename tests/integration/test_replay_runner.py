"""ReplayRunner on a real nats-server and Qdrant Edge, without the rest of the stack.

A replay indexes one batch while it reads (and, with a worker process, chunks) the next.  These
tests put a page's long version and its short version in consecutive batches: the short one's
lookup must see the long one's write, or the long version's surplus chunks would survive.  The
outcome, counts included, must be the same with the events prepared here (``workers=0``: in
threads) or in worker processes, where batches prepared at once may finish in any order.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from nats.aio.client import Client

from showroom.common.events import PageScraped, ReplaySpec, ReplayTarget, new_id
from showroom.common.replays import ReplayState, ReplayStatus
from showroom.common.topology import Buckets, ensure_topology
from showroom.indexer.embedding import HashingEmbedder
from showroom.indexer.indexing import Indexer
from showroom.indexer.replay import ReplayRunner
from showroom.indexer.store import EdgeChunkStore

BATCH = 7


def version_of(brand: str, n: int, long: bool) -> PageScraped:
    body = "# Notes\n\n" + ("Woofer cone and waveguide details follow here. " * 60 if long else "Discontinued.")
    url = f"http://{brand}.test/p/{n}"
    h = f"{'long' if long else 'short'}-{n}"
    return PageScraped(crawl_id="c", brand=brand, url=url, final_url=url, depth=1, status_code=200,
                       fetch_mode="http", content_hash=h, title=f"Page {n}", markdown=body)  # fmt: skip


@pytest.mark.parametrize("workers", [0, 1, 2])
async def test_a_pipelined_replay_keeps_only_each_pages_latest_version(
    nc: Client, tmp_path: Path, workers: int
) -> None:
    js = nc.jetstream()
    await ensure_topology(js)
    brand = f"replay-runner-{secrets.token_hex(4)}"
    # Batch 2k holds pages 7k..7k+6 long, batch 2k+1 the same pages short (then one invalid event).
    events: list[bytes] = []
    for start in range(0, 21, BATCH):
        events += [version_of(brand, n, long=True).model_dump_json().encode() for n in range(start, start + BATCH)]
        events += [version_of(brand, n, long=False).model_dump_json().encode() for n in range(start, start + BATCH)]
    events.append(b'{"not": "a page event"}')
    for data in events:
        await js.publish(f"page.scraped.{brand}", data, stream="PAGES")

    embedder = HashingEmbedder(64)
    store = EdgeChunkStore("pages", tmp_path / "q")
    await store.ensure_collection(embedder.name, embedder.dim)
    live = Indexer(store, embedder, 60, embedder_factory=lambda _: embedder)
    kv = await js.key_value(Buckets.REPLAYS.name)
    spec = ReplaySpec(brand=brand, target=ReplayTarget(embedder="hashing", chunk_tokens=60))
    state = ReplayState(replay_id=new_id(), spec=spec)
    await kv.create(state.replay_id, state.model_dump_json().encode())
    runner = ReplayRunner(js, kv, live, lambda _: embedder, batch_size=BATCH, workers=workers)

    final = await runner.run(state.replay_id)

    assert final is not None and final.status == ReplayStatus.COMPLETED, final
    assert final.target_collection is not None and not final.swapped  # a brand replay is partial
    assert (final.progress.done, final.progress.indexed, final.progress.skipped) == (len(events), 42, 1)
    audit = await Indexer(store.pinned(final.target_collection), embedder, 60).audit(brand)
    assert len(audit) == 21
    for n in range(21):
        page = audit[f"http://{brand}.test/p/{n}"]
        assert page["hashes"] == [f"short-{n}"], page
        assert page["indexes"] == list(range(page["chunks"])) == [0], page
    await store.close()
