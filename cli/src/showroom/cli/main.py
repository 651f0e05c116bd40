"""The ``showroom`` command: run the embedded stack, crawl, watch progress, ask questions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from showroom.cli import extract_cmd, grafana_cmd, keys_cmd
from showroom.cli.client import GatewayClient, GatewayError
from showroom.cli.stack import Stack, StackConfig

app = typer.Typer(help="Showroom: cited answers about music-equipment products, from the brands' own sites.")
console = Console()

VAR = Path(os.environ.get("SHOWROOM_HOME", "var"))
FINAL = {"completed", "failed", "cancelled"}


def _api_key() -> str:
    key = os.environ.get("SHOWROOM_API_KEY")
    if key:
        return key
    path = VAR / "api-key"
    if path.exists():
        return path.read_text().strip()
    raise typer.BadParameter("no API key: set SHOWROOM_API_KEY (the embedded stack writes one to var/api-key)")


def _dev_key() -> str:
    """The embedded stack's development key: made once, kept in var/api-key (mode 600)."""
    path = VAR / "api-key"
    if path.exists():
        return path.read_text().strip()
    VAR.mkdir(parents=True, exist_ok=True)
    key = "dev-" + secrets.token_urlsafe(24)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _client() -> GatewayClient:
    return GatewayClient(os.environ.get("SHOWROOM_URL", "http://127.0.0.1:8000"), _api_key())


async def watch(client: GatewayClient, crawls: dict[str, str], interval: float = 0.5) -> dict[str, dict[str, Any]]:
    """Show one progress bar per crawl until all are final; returns their last status."""
    final: dict[str, dict[str, Any]] = {}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        tasks = {cid: progress.add_task(label, total=None, detail="queued") for cid, label in crawls.items()}
        while len(final) < len(crawls):
            for cid, task in tasks.items():
                if cid in final:
                    continue
                st = await client.status(cid)
                c = st["counts"]
                detail = (
                    f"{st['status']} · scraped {c['scraped']} · indexed {c['indexed']} · failed {c['failed']}"
                    f" · skipped {c['skipped']}"
                )
                progress.update(
                    task, total=max(c["discovered"], 1), completed=c["scraped"] + c["failed"], detail=detail
                )
                if st["status"] in FINAL:
                    final[cid] = st
            await asyncio.sleep(interval)
    return final


async def follow(client: GatewayClient, crawl_id: str, label: str, wait: bool) -> None:
    """Say a crawl is queued; with ``wait``, show its progress and then its final counts."""
    console.print(f"crawl {crawl_id} queued")
    if wait:
        st = (await watch(client, {crawl_id: label}))[crawl_id]
        console.print_json(data=st["counts"])


def print_answer(answer: dict[str, Any]) -> None:
    console.print(f"\n[bold]Q:[/bold] {answer['question']}")
    console.print(f"[bold]A:[/bold] {answer['answer']}  [dim]({answer['model']}, {answer['latency_ms']:.0f} ms)[/dim]")
    for c in answer["citations"]:
        console.print(f"  [{c['n']}] {c['title']} — {c['url']}")


def demo_question() -> tuple[str, str]:
    """A spec question whose answer is on exactly one demo product page."""
    from showroom.demo_site import products

    for p in products():
        specs = dict(p.specs)
        if "Woofer size" in specs:
            return f"What is the woofer size of the {p.name}?", p.brand_slug
    p = products()[0]
    key, _ = p.specs[0]
    return f"What is the {key.lower()} of the {p.name}?", p.brand_slug


async def crawl_registered(client: GatewayClient, brand: str) -> str:
    """Crawl a registered brand now; if its last crawl is still going (409), that crawl."""
    try:
        return await client.crawl_brand(brand)
    except GatewayError as exc:
        last = (await client.brand(brand))["last_crawl"] if exc.status == 409 else None
        if last is None or last["status"] in FINAL:
            raise
        return str(last["crawl_id"])


async def _up(ask: bool, crawl: bool) -> None:
    key = _dev_key()
    # The scheduler re-crawls the registry's brands hourly; without --crawl, nothing is crawled.
    config = StackConfig(root=VAR.resolve(), api_key=key, scheduler=crawl)
    stack = Stack(config)
    console.print("[bold]Starting Showroom[/bold] (nats-server, demo brand sites, 5 services)…")
    async with stack:
        console.print(f"  gateway   {config.gateway_url}  (docs: {config.gateway_url}/docs)")
        console.print(f"  API key   {key}  (also in {VAR / 'api-key'})")
        console.print(f"  NATS      {config.nats_url}   monitor http://127.0.0.1:{config.nats_monitor_port}")
        console.print(f"  metrics   http://127.0.0.1:{config.ports['metrics']}/metrics   logs {stack.logs}")
        console.print(f"  demo site {config.demo_url}/")
        async with GatewayClient(config.gateway_url, key) as client:
            if crawl:
                # The demo's brand registry (demo-site's brands.toml), as the gateway loaded it.
                registered = [b for b in await client.brands() if b["enabled"]]
                await watch(client, {await crawl_registered(client, b["brand"]): b["name"] for b in registered})
            if ask:
                question, brand = demo_question()
                print_answer(await client.ask(question, brand=brand))
        console.print("\n[bold green]Showroom is running.[/bold green] Try:")
        console.print(f"  export SHOWROOM_API_KEY={key}")
        console.print('  uv run showroom ask "Which Cobalt mixers have USB audio?"')
        console.print("Press Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        console.print("Stopping…")


@app.command()
def up(
    ask: Annotated[bool, typer.Option(help="Ask a sample question once the crawls finish.")] = True,
    crawl: Annotated[bool, typer.Option(help="Crawl the demo brands after start-up.")] = True,
) -> None:
    """Start the embedded stack (local NATS, embedded Qdrant, offline embedder), crawl the demo brands, ask."""
    asyncio.run(_up(ask, crawl))


@app.command("crawl")
def crawl_cmd(
    brand: str,
    start_urls: list[str],
    allowed_domain: Annotated[list[str] | None, typer.Option(help="Extra host the crawl may visit.")] = None,
    max_pages: int = 500,
    max_depth: int = 5,
    wait: Annotated[bool, typer.Option(help="Show progress until the crawl finishes.")] = True,
) -> None:
    """Crawl a brand's site."""

    async def run() -> None:
        async with _client() as client:
            spec: dict[str, Any] = {"max_pages": max_pages, "max_depth": max_depth}
            if allowed_domain:
                spec["allowed_domains"] = allowed_domain
            await follow(client, await client.crawl(brand, start_urls, **spec), brand, wait)

    _run(run())


@app.command()
def status(
    crawl_id: str, watch_: Annotated[bool, typer.Option("--watch", help="Progress bar until done.")] = False
) -> None:
    """Show a crawl's status and counts."""

    async def run() -> None:
        async with _client() as client:
            if watch_:
                await watch(client, {crawl_id: crawl_id})
            console.print_json(data=await client.status(crawl_id))

    _run(run())


@app.command()
def ask(
    question: str,
    brand: Annotated[str | None, typer.Option(help="Only search this brand's pages.")] = None,
    top_k: int = 5,
) -> None:
    """Ask a question; prints the answer and its citations."""

    async def run() -> None:
        async with _client() as client:
            print_answer(await client.ask(question, brand=brand, top_k=top_k))

    _run(run())


brands_app = typer.Typer(help="The brand registry: what is crawled, how, and how often.")


@brands_app.callback(invoke_without_command=True)
def brands(ctx: typer.Context) -> None:
    """List the registered brands, their schedules and last crawls."""
    if ctx.invoked_subcommand is not None:
        return

    async def run() -> None:
        async with _client() as client:
            table = Table("brand", "name", "every", "last crawl", "status", "next due")
            for b in await client.brands():
                last = b["last_crawl"] or {}
                every = b["recrawl_interval"] or "manual"
                table.add_row(b["brand"], b["name"], every if b["enabled"] else "disabled", last.get("crawl_id", ""),
                              last.get("status", ""), b["state"]["next_due_at"] or "")  # fmt: skip
            console.print(table)

    _run(run())


@brands_app.command("crawl")
def brands_crawl(
    brand: str, wait: Annotated[bool, typer.Option(help="Show progress until the crawl finishes.")] = True
) -> None:
    """Crawl a registered brand now, as the registry defines it."""

    async def run() -> None:
        async with _client() as client:
            await follow(client, await client.crawl_brand(brand), brand, wait)

    _run(run())


@app.command()
def replay(
    chunk_tokens: Annotated[int, typer.Option(help="Chunk size of the rebuilt collection, in tokens.")] = 180,
    embedder: Annotated[str, typer.Option(help="Embedder of the rebuilt collection.")] = "minilm",
    brand: Annotated[str | None, typer.Option(help="Only this brand's page events.")] = None,
    from_seq: Annotated[int | None, typer.Option(help="First PAGES sequence to replay.")] = None,
    to_seq: Annotated[int | None, typer.Option(help="Last PAGES sequence to replay.")] = None,
    re_extract: Annotated[bool, typer.Option(help="Re-extract pages from their stored raw HTML.")] = False,
    swap: Annotated[bool | None, typer.Option(help="Point the alias at the result (default: when complete).")] = None,
    wait: Annotated[bool, typer.Option(help="Show progress until the replay finishes.")] = True,
) -> None:
    """Rebuild the index from the event log into a new collection; nothing is fetched again."""

    async def run() -> None:
        spec: dict[str, Any] = {"target": {"chunk_tokens": chunk_tokens, "embedder": embedder},
                                "re_extract": re_extract}  # fmt: skip
        for name, value in (("brand", brand), ("from_seq", from_seq), ("to_seq", to_seq), ("swap", swap)):
            if value is not None:
                spec[name] = value
        async with _client() as client:
            rid = await client.replay(**spec)
            console.print(f"replay {rid} queued")
            if wait:
                console.print_json(data=await watch_replay(client, rid))

    _run(run())


async def watch_replay(client: GatewayClient, replay_id: str, interval: float = 0.5) -> dict[str, Any]:
    """A progress bar (events done of total, rate, ETA) until the replay is final; its last state."""
    columns = (TextColumn("[bold]replay"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("replay", total=None, detail="queued")
        while True:
            st = await client.replay_status(replay_id)
            p = st["progress"]
            eta = f" · ETA {p['eta_s']:.0f} s" if p.get("eta_s") else ""
            detail = f"{st['status']} · {p['rate']:.0f} events/s{eta} · into {st['target_collection'] or '…'}"
            progress.update(task, total=max(p["total"], 1), completed=p["done"], detail=detail)
            if st["status"] in FINAL:
                return st
            await asyncio.sleep(interval)


dlq_app = typer.Typer(help="Dead letters: messages a service gave up on, with the reason; re-drive them after a fix.")


@dlq_app.command("list")
def dlq_list(
    service: Annotated[str | None, typer.Option(help="Only this service's letters, e.g. indexer-svc.")] = None,
    after: Annotated[int, typer.Option(help="Letters after this id (paging).")] = 0,
    limit: int = 50,
) -> None:
    """List dead letters, oldest first."""

    async def run() -> None:
        async with _client() as client:
            page = await client.dlq_list(service, after, limit)
        table = Table("id", "service", "subject", "deliveries", "occurred", "reason")
        for item in page["items"]:
            table.add_row(str(item["id"]), item["service"], item["subject"], str(item["deliveries"]),
                          item["occurred_at"][:19], item["reason"])  # fmt: skip
        console.print(table)
        more = f"; next page: --after {page['next_after']}" if page["next_after"] else ""
        console.print(f"{len(page['items'])} of {page['total']}{more}")

    _run(run())


@dlq_app.command("show")
def dlq_show(letter_id: int) -> None:
    """One dead letter, whole (payload and headers)."""

    async def run() -> None:
        async with _client() as client:
            console.print_json(data=await client.dlq_get(letter_id))

    _run(run())


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[list[int] | None, typer.Argument(help="Letter ids; none with --all.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every letter (of --service).")] = False,
    service: Annotated[str | None, typer.Option(help="With --all: only this service's letters.")] = None,
) -> None:
    """Publish letters to their original subjects again, once each, for the service that gave up."""
    if bool(ids) == all_:
        raise typer.BadParameter("give letter ids, or --all")

    async def run() -> None:
        async with _client() as client:
            console.print_json(data=await client.dlq_redrive(ids, all=all_, service=service))

    _run(run())


@dlq_app.command("purge")
def dlq_purge(
    service: Annotated[str | None, typer.Option(help="Only this service's letters.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
) -> None:
    """Drop dead letters for good."""
    if not yes:
        typer.confirm(f"Drop every dead letter{' of ' + service if service else ''}?", abort=True)

    async def run() -> None:
        async with _client() as client:
            console.print(f"purged {await client.dlq_purge(service)} letters")

    _run(run())


app.add_typer(brands_app, name="brands")
app.add_typer(dlq_app, name="dlq")
app.command("extract")(extract_cmd.extract)
app.add_typer(grafana_cmd.app, name="grafana")
app.add_typer(keys_cmd.app, name="keys")


def _run(coro: Any) -> None:
    try:
        asyncio.run(coro)
    except GatewayError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            coro.close()
        raise typer.Exit(130) from None
