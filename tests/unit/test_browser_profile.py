"""The browser's own profile directories: one per live scraper process, none left by a dead one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from showroom.scraper.browser import PROFILE_PREFIX, _remove_orphaned_profiles


def test_profiles_of_dead_scrapers_go_and_live_ones_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # exited: its profile is an orphan
    orphan = tmp_path / f"{PROFILE_PREFIX}{dead_pid}-x1"
    mine = tmp_path / f"{PROFILE_PREFIX}{os.getpid()}-x2"
    parent = tmp_path / f"{PROFILE_PREFIX}{os.getppid()}-x3"  # another live process
    unrelated = tmp_path / "playwright-something"
    for path in (orphan, mine, parent, unrelated):
        (path / "Default").mkdir(parents=True)
    _remove_orphaned_profiles()
    assert not orphan.exists()
    assert mine.exists() and parent.exists() and unrelated.exists()
