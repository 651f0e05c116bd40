"""Shared fixtures: a real nats-server with JetStream, started once per session on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.client import Client

from showroom.cli.stack import free_port, nats_server_binary


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nats_server(tmp_path_factory.mktemp("jetstream")) as url:
        yield url


class RestartableNats:
    """A nats-server of a test's own and a client of it that reconnects quickly, for tests of what survives
    a restart of the server (same port, same JetStream store)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.server = self._start()
        self.reconnected = asyncio.Event()
        self.nc: Client

    def _start(self) -> subprocess.Popen[bytes]:
        cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        with open(self.store / "nats-server.log", "ab") as log:  # says why, should it not start
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    async def __aenter__(self) -> RestartableNats:
        async def on_reconnect() -> None:
            self.reconnected.set()

        self.nc = await nats.connect(
            f"nats://127.0.0.1:{self.port}",
            reconnect_time_wait=0.2,
            max_reconnect_attempts=-1,
            reconnected_cb=on_reconnect,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            async with asyncio.timeout(10):  # a client still reconnecting must not hold the test
                await self.nc.close()
        finally:
            self._stop()

    def _stop(self) -> None:
        self.server.terminate()
        self.server.wait(timeout=10)

    async def restart(self) -> None:
        """Stop the server, start it again, and return once the client has reconnected."""
        self.reconnected.clear()
        self._stop()
        self.server = self._start()
        try:
            await asyncio.wait_for(self.reconnected.wait(), 30)
        except TimeoutError:
            log = (self.store / "nats-server.log").read_text(errors="replace")[-2000:]
            state = "exited" if self.server.poll() is not None else "runs"
            raise AssertionError(f"no reconnect within 30 s; nats-server {state}:\n{log}") from None


@contextlib.contextmanager
def nats_server(store: Path) -> Iterator[str]:
    """A nats-server with JetStream on free ports, storing under ``store``; yields its URL.
    For tests whose traffic must not reach the shared server (and its scrapers)."""
    port, monitor = free_port(), free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("nats-server did not start")
        time.sleep(0.02)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def wait_for(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Await an async predicate becoming truthy, bounded.  For state that has no event of its own."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class CountingKv:
    """A KV bucket that counts its reads: what an operation costs on the bus."""

    def __init__(self, kv) -> None:  # type: ignore[no-untyped-def]
        self.kv, self.reads = kv, 0

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        self.reads += 1
        return await self.kv.get(key)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.kv, name)
