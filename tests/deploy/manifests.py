"""What the deployment files say, read the way docker-compose and kustomize read them.

Shared by the tests in this folder: the services and their settings classes, the rendered
kustomize overlays, and the environment each service gets from docker-compose or from k8s.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("dev", "prod")

# A value for each secret the operator must supply (compose `${VAR:?}`, k8s required secretKeyRef).
TEST_SECRETS = {
    # The hashed entry `showroom keys new` prints (for the key "deploy-test-key-0123456789").
    "SHOWROOM_API_KEYS": '[{"name":"deploy-test","scopes":["admin"],'
    '"sha256":"c33d65388cc83b115af6425867f6bbcc62a51056ccd857fc974b76b394c287da"}]',
    "GRAFANA_ADMIN_PASSWORD": "deploy-test-password",
}

# Variables a service may be given that are not its settings: Chromium's profile lives under $HOME.
NON_SETTINGS_ENV = {"HOME"}


@dataclass(frozen=True)
class Service:
    name: str
    """The compose service, the k8s Deployment and the workspace folder."""
    distribution: str
    module: str
    settings: str
    """``module:Class`` of the service's settings."""

    @property
    def folder(self) -> Path:
        return ROOT / self.name

    def settings_class(self) -> type[BaseSettings]:
        module, cls = self.settings.split(":")
        return getattr(importlib.import_module(module), cls)


SERVICES = (
    Service("gateway", "showroom-gateway", "showroom.gateway", "showroom.gateway.settings:GatewaySettings"),
    Service("scraper-svc", "showroom-scraper", "showroom.scraper", "showroom.scraper.settings:ScraperSettings"),
    Service("indexer-svc", "showroom-indexer", "showroom.indexer", "showroom.indexer.settings:IndexerSettings"),
    Service("rag-svc", "showroom-rag", "showroom.rag", "showroom.rag.settings:RagSettings"),
    Service("metrics-svc", "showroom-metrics", "showroom.metrics", "showroom.metrics.settings:MetricsSettings"),
)
BY_NAME = {s.name: s for s in SERVICES}


def settings_env_names(cls: type[BaseSettings]) -> dict[str, Any]:
    """Every environment variable a settings class reads, mapped to its field."""
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, Any] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [])
        for choice in choices or [f"{prefix}{field_name}"]:
            names[str(choice).upper()] = field
    return names


def required_env_names(cls: type[BaseSettings]) -> set[str]:
    prefix = cls.model_config.get("env_prefix", "")
    return {f"{prefix}{n}".upper() for n, f in cls.model_fields.items() if f.is_required()}


# -- docker-compose -------------------------------------------------------------------------------


def dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped), as compose reads them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


_VAR = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match[str]) -> str:
        name = m["name"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = env.get(name)
        if op in (":?", "?") and (present is None or (op == ":?" and not present)):
            raise KeyError(f"required variable {name} is not set: {arg}")
        if op in (":-", "-") and (present is None or (op == ":-" and not present)):
            return arg
        return present or ""

    return _VAR.sub(one, value.replace("$$", "\x00")).replace("\x00", "$")


@functools.cache
def compose_file() -> dict[str, Any]:
    """docker-compose.yml with anchors and merge keys resolved, variables interpolated from
    .env.example plus the test secrets."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = dotenv(ROOT / ".env.example") | TEST_SECRETS
    return interpolate({k: v for k, v in raw.items() if not k.startswith("x-")}, env)


def compose_env(service: str) -> dict[str, str]:
    """The environment compose gives a service.  A bare name (no value) passes a variable through
    from the host only when it is set there: none is, here."""
    environment = compose_file()["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] if "=" in item else (item, None) for item in environment)
    return {k: str(v) for k, v in environment.items() if v is not None}


# -- kustomize ------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A tool installed in the workspace's virtual environment (kubectl, hadolint), else on PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run `uv sync` (it comes with the dev dependencies)")
    return found


@functools.cache
def render(path: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize <path>` (relative to the repository root), parsed."""
    out = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / path)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"no {kind}/{name}")


def k8s_env(overlay: str, deployment: str) -> dict[str, str]:
    """The environment the overlay gives a Deployment's container: its ConfigMaps (envFrom), literal
    values, the test secrets for required secret keys; optional secret keys are left unset."""
    objects = render(f"k8s/overlays/{overlay}")
    container = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]
        env |= {k: str(v) for k, v in find(objects, "ConfigMap", ref["name"]).get("data", {}).items()}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
            if not ref.get("optional", False):
                env[var["name"]] = TEST_SECRETS[var["name"]]
        else:
            raise AssertionError(f"{deployment}: unexpected env source {var}")
    return env


def run_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    """A subprocess environment: this machine's, minus every SHOWROOM_* and Gemini variable, plus ``base``."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("SHOWROOM_") and k != "GEMINI_API_KEY"}
    return keep | base | overrides
