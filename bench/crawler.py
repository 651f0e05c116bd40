"""Crawler benchmarks, in one run, on the demo site's lab articles (all on 127.0.0.1):

1. a raw Playwright loop (reused pages, same concurrency, same waits, no bus) vs Showroom with
   ``render=always`` over the same JavaScript-rendered pages (goal: Showroom >= 90% of raw);
2. ``render=auto`` vs ``render=always`` on the static section (goal: auto >= 20x faster);
3. the scraper's peak memory (PSS of its whole process tree: Python, Playwright's driver, Chromium)
   over a long crawl (goal < 800 MB at 5,000 pages: ``--memory-pages 5000``).

    uv run python bench/crawler.py [--pages 200] [--concurrency 4] [--memory-pages 1000]
                                   [--chromium-args '["--process-per-site"]']

``--chromium-args`` (the scraper's ``SHOWROOM_CHROMIUM_ARGS``) applies to the raw loop's browser too.

The stack uses the hashing embedder so the figures are the crawler's, not the embedder's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import nats
import psutil
from playwright.async_api import async_playwright

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack, StackConfig
from showroom.scraper.browser import chromium_switches


def pss_mb(pid: int) -> float:
    """PSS of a process and all its descendants (shared pages split fairly), in MB."""
    total = 0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 1e6


async def raw_playwright(urls: list[str], concurrency: int, settle_ms: int, extra_args: list[str]) -> float:
    """Pages/min of the simplest fast loop: one browser, `concurrency` reused pages, a shared queue."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for u in urls:
        queue.put_nowait(u)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_switches(extra_args))
        context = await browser.new_context()

        async def worker() -> None:
            page = await context.new_page()
            while not queue.empty():
                url = queue.get_nowait()
                await page.goto(url, wait_until="load")
                try:
                    await page.wait_for_load_state("networkidle", timeout=settle_ms)
                except Exception:
                    pass
                await page.content()
                await page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            await page.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        await browser.close()
    return len(urls) / elapsed * 60


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its descendants (Chromium included)."""
    total = 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            continue
    return total


async def crawl(stack: Stack, spec: dict, sample_pss: bool = False) -> tuple[float, dict, float, float]:
    """Run one crawl to completion; returns (seconds, final counts, peak scraper PSS in MB, scraper CPU s)."""
    config = stack.config
    peak = 0.0
    scraper_pid = stack.procs["scraper"].pid
    cpu0 = cpu_seconds(scraper_pid)
    async with FinishedCrawls(config.nats_url) as finished, GatewayClient(config.gateway_url, config.api_key) as client:
        t0 = time.perf_counter()
        crawl_id = await client.crawl(**spec)
        end = asyncio.create_task(finished.wait(crawl_id, timeout=3600))
        while not end.done():
            if sample_pss:
                peak = max(peak, pss_mb(scraper_pid))
            await asyncio.wait([end], timeout=0.5)
        event = end.result()
        elapsed = time.perf_counter() - t0
    return elapsed, event["counts"], peak, cpu_seconds(scraper_pid) - cpu0


async def forget_pages(config: StackConfig) -> None:
    """Drop what earlier crawls learnt (page validators, render hints) so each measured crawl starts cold."""
    nc = await nats.connect(config.nats_url)
    js = nc.jetstream()
    for bucket in ("pages", "render_hints"):
        await js.purge_stream(f"KV_{bucket}")
    await nc.close()


def lab_spec(site: str, section: str, render: str, n: int, concurrency: int) -> dict:
    return {
        "brand": "lab",
        "start_urls": [f"{site}/lab/{section}/"],
        "include": [f"^{site}/lab/{section}/"],
        "max_pages": n + 1,
        "max_depth": 3,  # the section's index links every article
        "render": render,
        "use_sitemaps": False,
        "host_concurrency": concurrency,
        "host_delay_ms": 0,
    }


async def main(pages: int, concurrency: int, memory_pages: int, chromium_args: list[str]) -> None:
    static_pages = max(pages, memory_pages)
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig.ephemeral(
            Path(tmp), api_key=secrets.token_urlsafe(24), embedder="hashing", scraper_concurrency=concurrency
        )
        for name in ("SHOWROOM_RECYCLE_AFTER", "SHOWROOM_CONTEXT_RECYCLE_AFTER"):  # else the scraper's defaults
            if name in os.environ:
                config.extra_env[name] = os.environ[name]
        config.extra_env["SHOWROOM_CHROMIUM_ARGS"] = json.dumps(chromium_args)
        config.demo_args = ["--static-pages", str(static_pages)]
        async with Stack(config) as stack:
            site = config.demo_url
            js_urls = [f"{site}/lab/js/"] + [f"{site}/lab/js/articles/{i}" for i in range(1, pages + 1)]
            raw = await raw_playwright(js_urls, concurrency, settle_ms=1500, extra_args=chromium_args)
            t_always, c_always, _, _ = await crawl(stack, lab_spec(site, "js", "always", pages, concurrency))
            showroom = c_always["scraped"] / t_always * 60
            await forget_pages(config)
            t_static_always, c1, _, cpu_always = await crawl(
                stack, lab_spec(site, "static", "always", pages, concurrency)
            )
            await forget_pages(config)
            t_static_auto, _, _, cpu_auto = await crawl(stack, lab_spec(site, "static", "auto", pages, concurrency))
            await forget_pages(config)
            t_mem, c_mem, peak, _ = await crawl(
                stack, lab_spec(site, "js", "always", memory_pages, concurrency) | {"brand": "memory"}, sample_pss=True
            )
    print(f"JS pages, concurrency {concurrency}, {len(js_urls)} pages")
    print(f"  raw Playwright loop        {raw:7.0f} pages/min")
    print(f"  Showroom render=always     {showroom:7.0f} pages/min  ({showroom / raw:.0%} of raw; goal >= 90%)")
    print(f"static section, {c1['scraped'] + c1['unchanged']} pages")
    print(f"  render=always              {t_static_always:7.1f} s")
    n_static = c1["scraped"] + c1["unchanged"]
    speedup = t_static_always / t_static_auto
    print(f"  render=auto                {t_static_auto:7.1f} s   ({speedup:.1f}x faster; goal >= 20x)")
    print(
        f"  scraper CPU per page       always {cpu_always / n_static * 1000:5.0f} ms, auto "
        f"{cpu_auto / n_static * 1000:5.0f} ms ({cpu_always / cpu_auto:.1f}x less)"
    )
    print(f"memory: {c_mem['scraped'] + c_mem['unchanged']} JS pages in {t_mem:.0f} s")
    print(f"  scraper peak PSS           {peak:7.0f} MB (goal < 800 MB)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--memory-pages", type=int, default=1000)
    ap.add_argument("--chromium-args", type=json.loads, default=[], help="extra Chromium switches, a JSON list")
    args = ap.parse_args()
    print(f"Chromium switches added: {args.chromium_args or 'none'}")
    asyncio.run(main(args.pages, args.concurrency, args.memory_pages, args.chromium_args))
