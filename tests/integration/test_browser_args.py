"""Chromium switches from the scraper's settings reach the browser it launches."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psutil
import pytest
from aiohttp import web

from showroom.cli.stack import free_port
from showroom.scraper.browser import (
    DISABLED_FEATURES,
    PLAYWRIGHT_DISABLED_FEATURES,
    PLAYWRIGHT_ENABLED_FEATURES,
    BrowserPool,
    chromium_switches,
)
from showroom.scraper.settings import ScraperSettings
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope

PAGE = "<html><body><p id=probe></p><script>probe.textContent = 'gc is a ' + typeof gc;</script></body></html>"


def test_chromium_args_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWROOM_CHROMIUM_ARGS", '["--process-per-site", "--js-flags=--expose-gc"]')
    assert ScraperSettings().chromium_args == ["--process-per-site", "--js-flags=--expose-gc"]


@pytest.fixture
async def site() -> AsyncIterator[str]:
    """A one-page site on 127.0.0.1: the page says whether V8 exposes ``gc``."""
    app = web.Application()
    app.router.add_get("/", lambda _: web.Response(text=PAGE, content_type="text/html"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def started_pool(extra: list[str]) -> AsyncIterator[BrowserPool]:
    pool = BrowserPool(executable_path="/usr/bin/chromium", chromium_args=extra, size=1, user_agent="test",
                       guard=SsrfGuard(["127.0.0.1"]), nav_timeout_ms=5000, settle_timeout_ms=200)  # fmt: skip
    try:
        await pool.start()
        yield pool
    finally:
        await pool.stop()


@pytest.mark.parametrize(
    ("extra", "expected"), [([], "gc is a undefined"), (["--js-flags=--expose-gc"], "gc is a function")]
)
async def test_extra_chromium_args_reach_the_browser(extra: list[str], expected: str, site: str) -> None:
    async with started_pool(extra) as pool:
        rendered = await pool.render(site, Scope(("127.0.0.1",)))
        assert expected in rendered.html


def test_feature_switches_are_merged_not_replaced() -> None:
    switches = chromium_switches(["--disable-features=Foo,Bar", "--mute-audio", "--enable-features=Baz"])
    disabled = [s for s in switches if s.startswith("--disable-features=")]
    enabled = [s for s in switches if s.startswith("--enable-features=")]
    assert len(disabled) == len(enabled) == 1
    names = disabled[0].removeprefix("--disable-features=").split(",")
    assert {"Foo", "Bar", *PLAYWRIGHT_DISABLED_FEATURES, *DISABLED_FEATURES} == set(names)
    assert len(names) == len(set(names))
    assert {"Baz", *PLAYWRIGHT_ENABLED_FEATURES} <= set(enabled[0].removeprefix("--enable-features=").split(","))
    assert "--mute-audio" in switches


async def test_the_browser_keeps_playwrights_features_and_loads_no_browser_ui(site: str) -> None:
    """Chromium keeps the last feature switch: ours must carry every feature Playwright's own switch names (a
    Playwright upgrade that adds one fails here), and the omnibox WebUI renderer must be gone."""
    async with started_pool([]) as pool:
        await pool.render(site, Scope(("127.0.0.1",)))
        assert pool._browser is not None
        # The browser process's own argv (CDP's Browser.getBrowserCommandLine wants --enable-automation).
        argv = next(
            p.cmdline() for p in psutil.Process().children(recursive=True) if "--remote-debugging-pipe" in p.cmdline()
        )
        for prefix in ("--disable-features=", "--enable-features="):
            given = [set(a.removeprefix(prefix).split(",")) for a in argv if a.startswith(prefix)]
            assert len(given) == 2, argv  # Playwright's, then ours
            assert given[0] <= given[1], f"Playwright also sets {sorted(given[0] - given[1])}"
        cdp = await pool._browser.new_browser_cdp_session()
        targets = (await cdp.send("Target.getTargets"))["targetInfos"]
        assert [t["type"] for t in targets] == ["page"], targets
