"""The services start with exactly the environment docker-compose and the k8s overlays give them.

A renamed or removed setting would otherwise be ignored silently (settings ignore unknown
variables) and the deployment would run on defaults: wrong NATS address, embedded Qdrant, no
keys.  So every SHOWROOM_* variable the deployment sets must be a field of that service's
settings, the settings must accept the values, and the process must reach /readyz with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from showroom.cli.stack import free_port, nats_server_binary
from showroom.gateway.settings import GatewaySettings
from tests.deploy.manifests import (
    NON_SETTINGS_ENV,
    OVERLAYS,
    ROOT,
    SERVICES,
    compose_env,
    dotenv,
    k8s_env,
    required_env_names,
    run_env,
    settings_env_names,
)

SOURCES = ["compose", *(f"k8s/{o}" for o in OVERLAYS)]


def deployment_env(source: str, service: str) -> dict[str, str]:
    return compose_env(service) if source == "compose" else k8s_env(source.split("/")[1], service)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_every_variable_is_a_setting_and_the_settings_accept_them(source, service, monkeypatch):
    env = deployment_env(source, service.name)
    cls = service.settings_class()
    known = settings_env_names(cls)
    unknown = sorted(set(env) - set(known) - NON_SETTINGS_ENV)
    assert not unknown, f"{source} gives {service.name} variables its settings do not read: {unknown}"
    assert not required_env_names(cls) - set(env), f"{source} leaves required settings of {service.name} unset"

    for name in list(os.environ):
        if name.startswith("SHOWROOM_") or name == "GEMINI_API_KEY":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = cls()
    # Inside a container the service must listen on every interface, and find the bus by name.
    assert settings.http_host == "0.0.0.0"
    assert settings.nats_url == "nats://nats:4222"
    if service.name == "indexer-svc":
        assert settings.qdrant_url, "indexers share a Qdrant server; the embedded store cannot scale"
    if service.name == "rag-svc":
        assert settings.gemini_api_key is None, "without a Gemini key rag-svc must answer extractively"


def test_the_example_api_key_is_refused_until_replaced(monkeypatch):
    monkeypatch.setenv("SHOWROOM_API_KEYS", dotenv(ROOT / ".env.example")["SHOWROOM_API_KEYS"])
    monkeypatch.setenv("SHOWROOM_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="sha256"):
        GatewaySettings()


@pytest.fixture(scope="module")
def local_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A nats-server of this module's own: the services declare streams and durable consumers,
    which must not leak into other tests' server."""
    store: Path = tmp_path_factory.mktemp("jetstream")
    port, monitor = free_port(), free_port()
    cmd = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true", proc, 10)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready after {timeout}s")
        time.sleep(0.05)


# compose and prod differ in values (stream replicas, log level); dev matches prod but for values.
@pytest.mark.parametrize("source", ["compose", "k8s/prod"])
@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_the_service_gets_ready_with_the_deployment_environment(source, service, local_nats, tmp_path):
    env = deployment_env(source, service.name)
    port = free_port()
    # Only what cannot be the same here changes: addresses, and Qdrant's server becomes the
    # embedded store.  One local NATS server cannot hold streams with 3 replicas.
    env |= {"SHOWROOM_NATS_URL": local_nats, "SHOWROOM_HTTP_HOST": "127.0.0.1", "SHOWROOM_HTTP_PORT": str(port)}
    env["SHOWROOM_STREAM_REPLICAS"] = "1"
    if env.pop("SHOWROOM_QDRANT_URL", None):
        env["SHOWROOM_QDRANT_PATH"] = str(tmp_path / "qdrant")
    if "HOME" in env:
        env["HOME"] = str(tmp_path)
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", service.module], env=run_env(env), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc, 60)
    except AssertionError as exc:
        raise AssertionError(
            f"{service.name} with the {source} environment: {exc}\n{log.read_text()[-3000:]}"
        ) from None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
