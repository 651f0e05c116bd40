"""The committed Grafana dashboards are exactly what observability/dashboards.py generates, and well-formed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "observability/grafana/dashboards"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("showroom_dashboards", ROOT / "observability/dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = load_generator()


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p.get("type") != "row"]


def test_every_generated_dashboard_is_committed_unchanged() -> None:
    committed = {p.stem for p in DASHBOARD_DIR.glob("*.json")}
    assert committed == set(GENERATOR.DASHBOARDS), "run: uv run python observability/dashboards.py"
    for name in GENERATOR.DASHBOARDS:
        assert (DASHBOARD_DIR / f"{name}.json").read_text() == GENERATOR.render(name), (
            f"{name}.json is stale: run uv run python observability/dashboards.py"
        )


@pytest.mark.parametrize("name", sorted(GENERATOR.DASHBOARDS))
def test_dashboards_query_the_provisioned_prometheus(name: str) -> None:
    dashboard = json.loads((DASHBOARD_DIR / f"{name}.json").read_text())
    assert dashboard["schemaVersion"] == 41
    assert dashboard["uid"] == f"showroom-{name}"
    assert panels(dashboard)
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            assert target["expr"].strip(), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_four_dashboards_an_operator_needs_exist() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARD_DIR.glob("*.json")}
    assert titles == {"Showroom / Overview", "Showroom / Crawler", "Showroom / Index & answers", "Showroom / Bus"}


# -- showroom grafana push, against a local fake of Grafana's HTTP API ------------------------


class FakeGrafana:
    """The few endpoints `showroom grafana push` uses, recording every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None, object]] = []
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}
        self.datasources: dict[str, dict] = {}

    def app(self):  # type: ignore[no-untyped-def]
        from aiohttp import web

        async def record(request: web.Request) -> object:
            body = await request.json() if request.can_read_body else None
            self.requests.append((request.method, request.path, request.headers.get("Authorization"), body))
            return body

        async def get_folder(request: web.Request) -> web.Response:
            await record(request)
            uid = request.match_info["uid"]
            if uid not in self.folders:
                return web.json_response({"message": "folder not found"}, status=404)
            return web.json_response(self.folders[uid])

        async def create_folder(request: web.Request) -> web.Response:
            body = await record(request)
            self.folders[body["uid"]] = body
            return web.json_response({"uid": body["uid"], "title": body["title"]})

        async def save_dashboard(request: web.Request) -> web.Response:
            body = await record(request)
            self.dashboards[body["dashboard"]["uid"]] = body
            return web.json_response({"status": "success", "uid": body["dashboard"]["uid"]})

        async def get_datasource(request: web.Request) -> web.Response:
            await record(request)
            uid = request.match_info["uid"]
            if uid not in self.datasources:
                return web.json_response({"message": "data source not found"}, status=404)
            return web.json_response(self.datasources[uid])

        async def create_datasource(request: web.Request) -> web.Response:
            body = await record(request)
            self.datasources[body["uid"]] = body
            return web.json_response({"datasource": body})

        app = web.Application()
        app.router.add_get("/api/folders/{uid}", get_folder)
        app.router.add_post("/api/folders", create_folder)
        app.router.add_post("/api/dashboards/db", save_dashboard)
        app.router.add_get("/api/datasources/uid/{uid}", get_datasource)
        app.router.add_post("/api/datasources", create_datasource)
        app.router.add_put("/api/datasources/uid/{uid}", create_datasource)
        return app


async def test_grafana_push_uploads_every_committed_dashboard_into_the_folder() -> None:
    import asyncio

    from aiohttp import web
    from typer.testing import CliRunner

    from showroom.cli.main import app as cli
    from showroom.cli.stack import free_port

    fake = FakeGrafana()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        args = ["grafana", "push", "--url", f"http://127.0.0.1:{port}", "--token", "glsa_test",
                "--dir", str(DASHBOARD_DIR), "--prometheus-url", "http://prometheus:9090"]  # fmt: skip
        first = await asyncio.to_thread(CliRunner().invoke, cli, args)
        second = await asyncio.to_thread(CliRunner().invoke, cli, args)  # idempotent: overwrites
    finally:
        await runner.cleanup()
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert all(auth == "Bearer glsa_test" for _, _, auth, _ in fake.requests)
    assert fake.folders == {"showroom": {"uid": "showroom", "title": "Showroom"}}
    assert [m for m, p, *_ in fake.requests].count("POST") == 1 + 1 + 2 * len(GENERATOR.DASHBOARDS)
    for name in GENERATOR.DASHBOARDS:
        saved = fake.dashboards[f"showroom-{name}"]
        assert saved["folderUid"] == "showroom" and saved["overwrite"] is True
        assert saved["dashboard"] == json.loads((DASHBOARD_DIR / f"{name}.json").read_text())
    assert fake.datasources["prometheus"]["url"] == "http://prometheus:9090"
    assert ("PUT", "/api/datasources/uid/prometheus") in [(m, p) for m, p, *_ in fake.requests]  # the second run
    assert "pushed showroom-overview" in first.output


def test_grafana_push_needs_a_credential() -> None:
    from typer.testing import CliRunner

    from showroom.cli.main import app as cli

    result = CliRunner().invoke(cli, ["grafana", "push", "--url", "http://127.0.0.1:9"], env={"GRAFANA_TOKEN": ""})
    assert result.exit_code != 0
