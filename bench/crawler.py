"""Crawler benchmarks, in one run, on the demo site's lab articles (all on 127.0.0.1):

1. a raw Playwright loop (reused pages, same concurrency, same waits, no bus) vs Showroom with
   ``render=always`` over the same JavaScript-rendered pages (goal: Showroom >= 90% of raw);
2. ``render=auto`` vs ``render=always`` on the static section (goal: auto >= 20x faster);
3. the scraper's peak memory (PSS of its whole process tree: Python, Playwright's driver, Chromium)
   over a long crawl (goal < 800 MB at 5,000 pages: ``--memory-pages 5000``).

    uv run python bench/crawler.py [--pages 200] [--concurrency 4] [--memory-pages 1000] [--rounds 3]
                                   [--chromium-args '["--process-per-site"]']

1 and 2 run ``--rounds`` times, interleaved (raw loop, then Showroom, then the static section both ways), and
report each round and the median: on this 2-core machine one figure moves by several points between runs.

``--chromium-args`` (the scraper's ``SHOWROOM_CHROMIUM_ARGS``) applies to the raw loop's browser too.
1 and 2 crawl a demo site of their own with ``--pages`` articles a section, 3 the stack's, with
``--memory-pages`` (so its section indexes do not weigh on the speed figures).

The stack uses the hashing embedder so the figures are the crawler's, not the embedder's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import psutil
from playwright.async_api import async_playwright

from showroom.cli.client import FinishedCrawls, GatewayClient
from showroom.cli.stack import Stack, StackConfig, free_port
from showroom.scraper.browser import chromium_switches


def pss_by_kind(pid: int) -> dict[str, float]:
    """PSS (shared pages split fairly), in MB, of a process and all its descendants, by kind: ``python`` (the
    process itself), ``node`` (Playwright's driver), ``browser`` and Chromium's ``--type=`` (renderer, ...)."""
    out: dict[str, float] = {}
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            argv, pss = p.cmdline(), p.memory_full_info().pss / 1e6
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        kind = next((a.removeprefix("--type=") for a in argv if a.startswith("--type=")), "browser")
        if p.pid == pid:
            kind = "python"
        elif "node" in p.name():
            kind = "node"
        out[kind] = out.get(kind, 0.0) + pss
        out[f"{kind} processes"] = out.get(f"{kind} processes", 0) + 1
    return out


def total_mb(kinds: dict[str, float]) -> float:
    return sum(v for k, v in kinds.items() if not k.endswith(" processes"))


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


async def crawl(stack: Stack, spec: dict, sample_pss: bool = False) -> tuple[float, dict, dict[str, float], float]:
    """Run one crawl to completion; returns (seconds, final counts, the scraper's PSS by kind when its total
    peaked, scraper CPU s)."""
    config = stack.config
    peak: dict[str, float] = {}
    scraper_pid = stack.procs["scraper"].pid
    cpu0 = cpu_seconds(scraper_pid)
    async with FinishedCrawls(config.nats_url) as finished, GatewayClient(config.gateway_url, config.api_key) as client:
        t0 = time.perf_counter()
        crawl_id = await client.crawl(**spec)
        end = asyncio.create_task(finished.wait(crawl_id, timeout=3600))
        while not end.done():
            if sample_pss:
                kinds = pss_by_kind(scraper_pid)
                if total_mb(kinds) > total_mb(peak):
                    peak = kinds
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


@contextlib.asynccontextmanager
async def demo_site(static_pages: int) -> AsyncIterator[str]:
    """A demo site in a process of its own, its lab sections ``static_pages`` long.

    The speed comparisons crawl this one: a crawl of 200 pages from an index that links 5,000 (the
    stack's site, sized for the memory crawl) would mostly measure that index's links.  A process, not
    ``demo_site.server.serve()`` in this one: serving pages from the event loop that drives the raw
    Playwright loop would slow the raw figure the scraper is compared with."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "showroom.demo_site", "--port", str(port), "--static-pages", str(static_pages),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/lab/static/")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"the demo site on {url} did not start")
        yield url
    finally:
        proc.terminate()
        await proc.wait()


async def speed_round(stack: Stack, site: str, pages: int, concurrency: int, chromium_args: list[str]) -> dict:
    """One round of comparisons 1 and 2, each side cold (no validators or render hints from earlier crawls)."""
    js_urls = [f"{site}/lab/js/"] + [f"{site}/lab/js/articles/{i}" for i in range(1, pages + 1)]
    raw = await raw_playwright(js_urls, concurrency, settle_ms=1500, extra_args=chromium_args)
    await forget_pages(stack.config)
    t_always, c_always, _, _ = await crawl(stack, lab_spec(site, "js", "always", pages, concurrency))
    await forget_pages(stack.config)
    static = lab_spec(site, "static", "always", pages, concurrency)
    t_static_always, c_static, _, cpu_always = await crawl(stack, static)
    await forget_pages(stack.config)
    t_static_auto, _, _, cpu_auto = await crawl(stack, static | {"render": "auto"})
    await forget_pages(stack.config)
    n_static = c_static["scraped"] + c_static["unchanged"]
    showroom = c_always["scraped"] / t_always * 60
    return {
        "js_pages": len(js_urls),
        "raw": raw,
        "showroom": showroom,
        "of_raw": showroom / raw,
        "static_pages": n_static,
        "static_always_s": t_static_always,
        "static_auto_s": t_static_auto,
        "speedup": t_static_always / t_static_auto,
        "cpu_always_ms": cpu_always / n_static * 1000,
        "cpu_auto_ms": cpu_auto / n_static * 1000,
    }


def report_speed(rounds: list[dict], concurrency: int) -> None:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    def each(key: str, fmt: str) -> str:
        return ", ".join(format(r[key], fmt) for r in rounds)

    print(f"JS pages, concurrency {concurrency}, {rounds[0]['js_pages']} pages; medians of {len(rounds)} rounds")
    print(f"  raw Playwright loop        {med('raw'):7.0f} pages/min   (rounds: {each('raw', '.0f')})")
    print(f"  Showroom render=always     {med('showroom'):7.0f} pages/min   (rounds: {each('showroom', '.0f')})")
    print(f"  Showroom / raw, each round {med('of_raw'):7.0%}  goal >= 90%  (rounds: {each('of_raw', '.0%')})")
    print(f"static section, {rounds[0]['static_pages']} pages")
    print(f"  render=always              {med('static_always_s'):7.1f} s   (rounds: {each('static_always_s', '.1f')})")
    print(f"  render=auto                {med('static_auto_s'):7.1f} s   (rounds: {each('static_auto_s', '.1f')})")
    print(f"  always / auto, each round  {med('speedup'):7.1f}x  goal >= 20x  (rounds: {each('speedup', '.1f')})")
    print(f"  scraper CPU per page       always {med('cpu_always_ms'):5.0f} ms, auto {med('cpu_auto_ms'):5.0f} ms")


async def main(pages: int, concurrency: int, memory_pages: int, rounds: int, chromium_args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig.ephemeral(
            Path(tmp), api_key=secrets.token_urlsafe(24), embedder="hashing", scraper_concurrency=concurrency
        )
        for name in ("SHOWROOM_RECYCLE_AFTER", "SHOWROOM_CONTEXT_RECYCLE_AFTER"):
            if name in os.environ:  # else the scraper's defaults
                config.extra_env[name] = os.environ[name]
        config.extra_env["SHOWROOM_CHROMIUM_ARGS"] = json.dumps(chromium_args)
        config.demo_args = ["--static-pages", str(memory_pages)]
        async with Stack(config) as stack, demo_site(pages) as site:
            results = []
            for i in range(rounds):
                results.append(await speed_round(stack, site, pages, concurrency, chromium_args))
                r = results[-1]
                print(f"round {i + 1}: {r['of_raw']:.0%} of raw, auto {r['speedup']:.1f}x faster", flush=True)
            t_mem, c_mem, peak, _ = await crawl(
                stack,
                lab_spec(config.demo_url, "js", "always", memory_pages, concurrency) | {"brand": "memory"},
                sample_pss=True,
            )
    report_speed(results, concurrency)
    print(f"memory: {c_mem['scraped'] + c_mem['unchanged']} JS pages in {t_mem:.0f} s")
    print(f"  scraper peak PSS           {total_mb(peak):7.0f} MB (goal < 800 MB)")
    for kind in sorted(k for k in peak if not k.endswith(" processes")):
        print(f"    {kind:<22} {peak[kind]:7.0f} MB in {peak[kind + ' processes']:.0f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--memory-pages", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the speed comparisons")
    ap.add_argument("--chromium-args", type=json.loads, default=[], help="extra Chromium switches, a JSON list")
    args = ap.parse_args()
    print(f"Chromium switches added: {args.chromium_args or 'none'}")
    asyncio.run(main(args.pages, args.concurrency, args.memory_pages, args.rounds, args.chromium_args))
