"""Crawl the demo brands on the embedded stack and print how long it took.

    uv run python bench/demo_crawl.py [--concurrency 4] [--embedder minilm]

Starts the same stack as `showroom up` on free ports (nothing leaves
127.0.0.1), crawls both demo brands at once, and prints wall time, pages per
minute and the time from request to the last page being searchable.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack, StackConfig


async def main(concurrency: int, embedder: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig.ephemeral(
            Path(tmp), api_key=secrets.token_urlsafe(24), embedder=embedder, scraper_concurrency=concurrency
        )
        t_start = time.perf_counter()
        async with Stack(config):
            startup = time.perf_counter() - t_start
            async with (
                FinishedCrawls(config.nats_url) as done,
                GatewayClient(config.gateway_url, config.api_key) as client,
            ):
                t0 = time.perf_counter()
                ids = [await client.crawl(b, **spec) for b, spec in config.demo_crawl_specs().items()]
                finished = [await done.wait(crawl_id, 600) for crawl_id in ids]
                elapsed = time.perf_counter() - t0
                t1 = time.perf_counter()
                await client.ask("What is the woofer size of the Northwind NW-8?", brand="northwind")
                ask_ms = (time.perf_counter() - t1) * 1000
    pages = sum(e["counts"]["scraped"] for e in finished)
    print(f"stack start-up:        {startup:6.1f} s")
    print(f"crawl (2 brands + portal): {elapsed:6.1f} s  for {pages} pages, all indexed")
    print(f"throughput:            {pages / elapsed * 60:6.0f} pages/min  (scraper concurrency {concurrency})")
    print(f"first question:        {ask_ms:6.0f} ms")
    for e in finished:
        print(f"  {e['brand']:10s} {e['status']:9s} {e['counts']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--embedder", default="minilm")
    args = ap.parse_args()
    asyncio.run(main(args.concurrency, args.embedder))
