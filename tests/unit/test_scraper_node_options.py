"""The NODE_OPTIONS that ``python -m showroom.scraper`` gives Playwright's node driver."""

from __future__ import annotations

import os
import subprocess
import sys

from playwright._impl._driver import compute_driver_executable


def _scraper_node_options(env: dict[str, str]) -> str:
    code = "import os, showroom.scraper.__main__; print(os.environ['NODE_OPTIONS'])"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_driver_preloads_the_heap_settings() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"}
    options = _scraper_node_options(env)
    assert "--max-semi-space-size=1" in options
    node, _ = compute_driver_executable()
    probe = "console.log(Object.keys(require.cache).some(k => k.endsWith('node_heap.js')))"
    run = subprocess.run([node, "-e", probe], env=env | {"NODE_OPTIONS": options}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "true"


def test_a_deployment_s_own_node_options_win() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NODE_OPTIONS"} | {"NODE_OPTIONS": "--max-old-space-size=512"}
    assert _scraper_node_options(env) == "--max-old-space-size=512"
