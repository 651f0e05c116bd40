"""Stopping the embedded stack: services exit over a live bus, so their shutdown hooks run."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from showroom.cli.stack import Stack, StackConfig
from showroom.scraper.browser import PROFILE_PREFIX


async def test_services_stop_before_the_bus_and_the_scraper_closes_its_browser(tmp_path: Path) -> None:
    config = StackConfig.ephemeral(tmp_path, api_key=secrets.token_urlsafe(16), with_demo=False, scraper_concurrency=1)
    stack = Stack(config)
    stack.logs.mkdir(parents=True, exist_ok=True)
    await stack.start_nats()
    stack.start_service("scraper")
    try:
        await stack.wait_service_ready("scraper", timeout=90)
        pid = stack.procs["scraper"].pid
        profiles = list(Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}{pid}-*"))
        assert len(profiles) == 1  # the browser runs on its own profile
    finally:
        await stack.stop()
    log = (stack.logs / "scraper.log").read_text()
    assert "Application shutdown failed" not in log and "Application shutdown complete" in log, log[-2000:]
    assert not profiles[0].exists()  # the pool's stop hook ran: browser closed, profile removed
