"""docker-compose.yml is accepted by docker-compose, and wires the stack the way the guide says."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import ROOT, SERVICES, TEST_SECRETS, compose_env, compose_file, tool

PROMETHEUS_DIR = ROOT / "observability/prometheus"


def docker_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # docker-compose v1 comes from Debian's package (`make system-deps`); `config` needs no engine.
    clean = {k: v for k, v in os.environ.items() if k not in TEST_SECRETS and k != "GEMINI_API_KEY"}
    return subprocess.run(
        [tool("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), *args],
        capture_output=True,
        text=True,
        env=clean | env,
        cwd=ROOT,
        timeout=60,
    )


def test_docker_compose_accepts_the_file_with_the_example_env():
    result = docker_compose("--env-file", str(ROOT / ".env.example"), "config", env={})
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["services"]["scraper-svc"]["deploy"]["replicas"] == 2


def test_required_secrets_fail_with_a_message(tmp_path: Path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = docker_compose("--env-file", str(empty), "config", env={})
    assert result.returncode != 0
    assert "SHOWROOM_API_KEYS" in result.stderr


def test_gemini_key_is_passed_through_only_when_set(tmp_path: Path):
    env_file = tmp_path / "keys.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in TEST_SECRETS.items()))
    without = yaml.safe_load(docker_compose("--env-file", str(env_file), "config", env={}).stdout)
    assert without["services"]["rag-svc"]["environment"].get("GEMINI_API_KEY") is None
    env_file.write_text(env_file.read_text() + "GEMINI_API_KEY=from-env-file\n")
    with_key = yaml.safe_load(docker_compose("--env-file", str(env_file), "config", env={}).stdout)
    assert with_key["services"]["rag-svc"]["environment"]["GEMINI_API_KEY"] == "from-env-file"


def test_every_service_is_built_from_its_dockerfile_hardened_and_health_checked():
    services = compose_file()["services"]
    for service in SERVICES:
        spec = services[service.name]
        assert spec["build"] == {"context": ".", "dockerfile": f"{service.name}/Dockerfile"}
        assert (ROOT / spec["build"]["dockerfile"]).is_file()
        assert spec["read_only"] is True and spec["cap_drop"] == ["ALL"], service.name
        assert "/tmp" in spec["tmpfs"]
        assert spec["depends_on"]["nats"]["condition"] == "service_healthy"
        port = compose_env(service.name)["SHOWROOM_HTTP_PORT"]
        assert f"127.0.0.1:{port}/readyz" in " ".join(spec["healthcheck"]["test"]), service.name
    assert services["indexer-svc"]["depends_on"]["qdrant"]["condition"] == "service_healthy"
    for name in ("nats", "qdrant", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_nats_runs_jetstream_and_stateful_services_keep_volumes():
    file = compose_file()
    services = file["services"]
    assert "--jetstream" in services["nats"]["command"]
    assert any(v.endswith(":/data") for v in services["nats"]["volumes"])
    assert "--store_dir=/data" in services["nats"]["command"]
    assert any(v.endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    for name in ("nats", "qdrant", "prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert source in file["volumes"] or (ROOT / source).exists(), volume


def test_prometheus_config_and_rules_pass_promtool():
    for what, path in (("config", "prometheus.yml"), ("rules", "alerts.yml")):
        result = subprocess.run(
            [tool("promtool"), "check", what, str(PROMETHEUS_DIR / path)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_service_with_metrics_and_the_bus():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for service in SERVICES:
        if service.name == "gateway":  # no /metrics yet
            continue
        (sd,) = jobs[service.name]["dns_sd_configs"]
        assert sd["names"] == [service.name]
        assert sd["port"] == int(compose_env(service.name)["SHOWROOM_HTTP_PORT"])
    assert jobs["nats"]["static_configs"][0]["targets"] == ["nats-exporter:7777"]
    mounts = compose_file()["services"]["prometheus"]["volumes"]
    assert "./observability/prometheus:/etc/prometheus:ro" in mounts


def test_grafana_is_provisioned_from_the_repository():
    grafana = compose_file()["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    provider = yaml.safe_load((ROOT / "observability/grafana/provisioning/dashboards/showroom.yml").read_text())
    (dashboards,) = provider["providers"]
    assert mounts["./observability/grafana/dashboards"] == dashboards["options"]["path"]
    assert mounts["./observability/grafana/provisioning"] == "/etc/grafana/provisioning"
    datasources = yaml.safe_load((ROOT / "observability/grafana/provisioning/datasources/prometheus.yml").read_text())
    (prometheus,) = datasources["datasources"]
    assert prometheus["url"] == "http://prometheus:9090" and prometheus["uid"] == "prometheus"


@pytest.mark.parametrize("name", ["SHOWROOM_API_KEYS", "GRAFANA_ADMIN_PASSWORD"])
def test_env_example_documents_every_required_variable(name):
    text = (ROOT / "docker-compose.yml").read_text()
    assert f"${{{name}:?" in text
    assert f"\n{name}=" in (ROOT / ".env.example").read_text()
