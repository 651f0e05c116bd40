"""Chromium switches from the scraper's settings reach the browser it launches."""

from __future__ import annotations

import pytest
from aiohttp import web

from showroom.cli.stack import free_port
from showroom.scraper.browser import BrowserPool
from showroom.scraper.settings import ScraperSettings
from showroom.scraper.ssrf import SsrfGuard
from showroom.scraper.urls import Scope

PAGE = "<html><body><p id=probe></p><script>probe.textContent = 'gc is a ' + typeof gc;</script></body></html>"


def test_chromium_args_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOWROOM_CHROMIUM_ARGS", '["--process-per-site", "--js-flags=--expose-gc"]')
    assert ScraperSettings().chromium_args == ["--process-per-site", "--js-flags=--expose-gc"]


@pytest.mark.parametrize(
    ("extra", "expected"), [([], "gc is a undefined"), (["--js-flags=--expose-gc"], "gc is a function")]
)
async def test_extra_chromium_args_reach_the_browser(extra: list[str], expected: str) -> None:
    app = web.Application()
    app.router.add_get("/", lambda _: web.Response(text=PAGE, content_type="text/html"))
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    pool = BrowserPool(executable_path="/usr/bin/chromium", chromium_args=extra, size=1, user_agent="test",
                       guard=SsrfGuard(["127.0.0.1"]), nav_timeout_ms=5000, settle_timeout_ms=200)  # fmt: skip
    try:
        await pool.start()
        rendered = await pool.render(f"http://127.0.0.1:{port}/", Scope(("127.0.0.1",)))
        assert expected in rendered.html
    finally:
        await pool.stop()
        await runner.cleanup()
