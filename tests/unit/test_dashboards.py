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
