"""The kustomize overlays render, every object is valid for Kubernetes, and the manifests keep
the promises the deployment guide makes (hardening, probes, scaling, isolation, replication)."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from showroom.common.topology import Durables, Streams
from tests.deploy.manifests import OVERLAYS, ROOT, find, render

# The oldest Kubernetes release still in common support, and the newest whose schemas
# kubernetes-validate bundles.
K8S_VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]

WORKLOADS = ("Deployment", "StatefulSet")
SHOWROOM_SERVICES = ("gateway", "scraper-svc", "indexer-svc", "rag-svc", "metrics-svc")


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def objects(overlay: str) -> tuple[dict[str, Any], ...]:
    return render(f"k8s/overlays/{overlay}")


def of_kind(objects, *kinds: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in kinds]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def policy_targets(policy: dict[str, Any], workloads: dict[str, dict[str, str]]) -> set[str]:
    """The workloads (by name, from their pod labels) a NetworkPolicy applies to."""
    selector = policy["spec"]["podSelector"].get("matchLabels", {})
    return {name for name, labels in workloads.items() if selects(selector, labels)}


# -- KEDA ------------------------------------------------------------------------------------------
# kubernetes-validate knows only built-in kinds.  KEDA's CRD is not vendored here, so this is a
# strict schema of the ScaledObject fields we use, written from KEDA's CRD (keda.sh/v1alpha1):
# an unknown or misspelt field fails, as it would against the cluster's CRD.
_INT = {"type": "integer"}
_BEHAVIOR_RULES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": _INT,
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "value", "periodSeconds"],
                "properties": {"type": {"enum": ["Pods", "Percent"]}, "value": _INT, "periodSeconds": _INT},
            },
        },
    },
}
SCALED_OBJECT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": {"type": "object"}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        n: {"type": "string"} for n in ("apiVersion", "kind", "name", "envSourceContainerName")
                    },
                },
                "pollingInterval": _INT,
                "cooldownPeriod": _INT,
                "initialCooldownPeriod": _INT,
                "idleReplicaCount": _INT,
                "minReplicaCount": _INT,
                "maxReplicaCount": _INT,
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {"scaleUp": _BEHAVIOR_RULES, "scaleDown": _BEHAVIOR_RULES},
                                },
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            # KEDA's CRD: metadata is a map of strings.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
# The nats-jetstream scaler's metadata (KEDA docs): required and optional keys.
NATS_JETSTREAM_REQUIRED = {"natsServerMonitoringEndpoint", "account", "stream", "consumer"}
NATS_JETSTREAM_OPTIONAL = {"lagThreshold", "activationLagThreshold", "useHttps"}
CRD_SCHEMAS = {("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SCHEMA}

# What each autoscaled service consumes; the scaler must watch the durable that service uses.
SCALED_CONSUMERS = {
    "scraper-svc": (Streams.FRONTIER.name, Durables.SCRAPER_FRONTIER),
    "indexer-svc": (Streams.PAGES.name, Durables.INDEXER_PAGES),
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_for_kubernetes(objects, version):
    checked = 0
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            schema = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
            assert schema is not None, f"{name}: no schema for {obj['apiVersion']} {obj['kind']}"
            jsonschema.validate(obj, schema)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} is not valid for Kubernetes {version}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked > 40


def test_keda_scales_scrapers_and_indexers_on_their_consumers_lag(objects):
    scaled = {so["spec"]["scaleTargetRef"]["name"]: so for so in of_kind(objects, "ScaledObject")}
    assert set(scaled) == set(SCALED_CONSUMERS)
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert not hpa_targets & set(scaled), "KEDA makes its own HPA; a second one would fight it"
    nats = find(objects, "Service", "nats")
    for target, so in scaled.items():
        find(objects, "Deployment", target)
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        # nats-jetstream counts num_pending + num_ack_pending, so in-flight work counts too.
        assert trigger["type"] == "nats-jetstream"
        assert NATS_JETSTREAM_REQUIRED <= set(meta) <= NATS_JETSTREAM_REQUIRED | NATS_JETSTREAM_OPTIONAL
        assert (meta["stream"], meta["consumer"]) == SCALED_CONSUMERS[target]
        assert meta["account"] == "$G"
        assert int(meta["lagThreshold"]) > 0
        host, port = meta["natsServerMonitoringEndpoint"].split(":")
        assert host == f"nats.{nats['metadata']['namespace']}.svc.cluster.local"
        assert int(port) in {p["port"] for p in nats["spec"]["ports"]}


def test_the_durables_keda_watches_are_the_ones_the_services_consume():
    for service, (stream, durable) in SCALED_CONSUMERS.items():
        app = (ROOT / service / "src" / "showroom" / service.removesuffix("-svc") / "app.py").read_text()
        name = next(k for k, v in vars(Durables).items() if v == durable)
        spec = next(k for k, v in vars(Streams).items() if getattr(v, "name", None) == stream)
        assert f"durable=Durables.{name}" in app, f"{service} no longer consumes {durable}"
        assert f"Streams.{spec}" in app


def test_gateway_and_rag_scale_on_cpu(objects):
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"gateway", "rag-svc"}
    for hpa in hpas.values():
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(objects):
    autoscaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objects, "HorizontalPodAutoscaler")}
    autoscaled |= {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(objects, "ScaledObject")}
    for name in autoscaled:
        assert "replicas" not in find(objects, "Deployment", name)["spec"], f"apply would reset {name}'s scale"


def test_every_pod_is_hardened_and_probed(objects):
    workloads = of_kind(objects, *WORKLOADS)
    assert {w["metadata"]["name"] for w in workloads} >= {*SHOWROOM_SERVICES, "nats", "qdrant"}
    for w in workloads:
        name, spec = w["metadata"]["name"], pod_spec(w)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        for c in spec["containers"]:
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{where} {kind}"
        main = spec["containers"][0]
        assert "readinessProbe" in main and "livenessProbe" in main, name
        if name in SHOWROOM_SERVICES:
            ports = {p["name"]: p["containerPort"] for p in main["ports"]}
            assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
            assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
            assert "http" in ports
            assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"], "read-only root needs a /tmp"


def test_every_workload_has_a_disruption_budget_and_every_service_selects_pods(objects):
    workloads = of_kind(objects, *WORKLOADS)
    budgets = of_kind(objects, "PodDisruptionBudget")
    for w in workloads:
        assert any(selects(b["spec"]["selector"]["matchLabels"], pod_labels(w)) for b in budgets), w["metadata"]
    for svc in of_kind(objects, "Service"):
        backing = [w for w in workloads if selects(svc["spec"]["selector"], pod_labels(w))]
        assert backing, f"Service {svc['metadata']['name']} selects no pods"
        port_names = {p["name"] for w in backing for c in pod_spec(w)["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, f"{svc['metadata']['name']}: {port}"


def test_config_and_secret_references_resolve(objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for w in of_kind(objects, *WORKLOADS):
        spec = pod_spec(w)
        for c in spec["containers"]:
            for src in c.get("envFrom", []):
                assert ("ConfigMap", src["configMapRef"]["name"]) in names
            for var in c.get("env", []):
                if ref := var.get("valueFrom", {}).get("secretKeyRef"):
                    assert ("Secret", ref["name"]) in names, ref
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in names
    rag = pod_spec(find(objects, "Deployment", "rag-svc"))["containers"][0]
    (gemini,) = [v for v in rag["env"] if v["name"] == "GEMINI_API_KEY"]
    assert gemini["valueFrom"]["secretKeyRef"]["optional"] is True, "rag-svc must start without a Gemini key"


def test_only_the_gateway_takes_traffic_from_outside(objects):
    policies = of_kind(objects, "NetworkPolicy")
    (deny,) = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] and "egress" not in p["spec"]
    ]
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    workloads = {w["metadata"]["name"]: pod_labels(w) for w in of_kind(objects, *WORKLOADS)}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            targets = policy_targets(policy, workloads)
            sources = rule.get("from")
            if not sources:
                assert targets == {"gateway"}, f"{policy['metadata']['name']} opens {targets} to everyone"
                continue
            for source in sources:
                assert "ipBlock" not in source
                if ns := source.get("namespaceSelector"):
                    # Only Prometheus (monitoring) and KEDA (keda) come from other namespaces.
                    assert ns["matchLabels"]["kubernetes.io/metadata.name"] in {"monitoring", "keda"}


PRIVATE = [
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "fc00::/7", "fe80::/10")
]


def test_scrapers_reach_the_internet_but_not_private_ranges(objects):
    workloads = {w["metadata"]["name"]: pod_labels(w) for w in of_kind(objects, *WORKLOADS)}
    open_to_internet = set()
    for policy in of_kind(objects, "NetworkPolicy"):
        targets = policy_targets(policy, workloads)
        for rule in policy["spec"].get("egress", []):
            for dest in rule.get("to", []):
                if block := dest.get("ipBlock"):
                    open_to_internet |= targets
                    excepted = [ipaddress.ip_network(n) for n in block.get("except", [])]
                    cidr = ipaddress.ip_network(block["cidr"])
                    for private in PRIVATE:
                        if private.version == cidr.version:
                            assert any(private.subnet_of(e) for e in excepted), (
                                f"{policy['metadata']['name']}: {private}"
                            )
    assert open_to_internet == {"scraper-svc", "rag-svc"}


def test_jetstream_replication_matches_the_nats_cluster(overlay, objects):
    nats = find(objects, "StatefulSet", "nats")
    conf = next(iter(find(objects, "ConfigMap", _config_name(objects, nats)).get("data", {}).values()))
    replicas = nats["spec"]["replicas"]
    stream_replicas = int(_common_config(objects)["SHOWROOM_STREAM_REPLICAS"])
    routes = re.findall(r"nats://nats-(\d+)\.nats-headless:6222", conf)
    if overlay == "prod":
        assert replicas == 3 and stream_replicas == 3, "prod: a 3-node cluster with streams replicated 3 ways"
    assert stream_replicas <= replicas
    if replicas > 1:
        assert sorted(map(int, routes)) == list(range(replicas)), "every server is a route"
    else:
        assert not re.search(r"^\s*cluster\s*\{", conf, re.M), "a single server must not wait for peers"
    for claim in nats["spec"]["volumeClaimTemplates"]:
        assert claim["spec"]["resources"]["requests"]["storage"]


def _config_name(objects, nats) -> str:
    (vol,) = [v for v in pod_spec(nats)["volumes"] if v["name"] == "config"]
    return vol["configMap"]["name"]


def _common_config(objects) -> dict[str, str]:
    (cm,) = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("showroom-common")]
    return cm["data"]


def test_prometheus_finds_every_metrics_endpoint(objects):
    for w in of_kind(objects, *WORKLOADS):
        name = w["metadata"]["name"]
        annotations = w["spec"]["template"]["metadata"].get("annotations", {})
        if name == "gateway":  # no /metrics yet
            continue
        assert annotations.get("prometheus.io/scrape") == "true", name
        ports = {p["containerPort"] for c in pod_spec(w)["containers"] for p in c["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, name


def test_prod_pins_image_tags():
    # (dev runs locally built :latest images)
    for w in of_kind(render("k8s/overlays/prod"), *WORKLOADS):
        for c in pod_spec(w)["containers"]:
            assert ":" in c["image"] and not c["image"].endswith(":latest"), c["image"]


def test_every_dashboard_ships_as_a_sidecar_configmap(objects):
    dashboards = sorted((ROOT / "observability/grafana/dashboards").glob("*.json"))
    shipped = {
        key: cm["data"][key]
        for cm in of_kind(objects, "ConfigMap")
        if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
        for key in cm.get("data", {})
    }
    for path in dashboards:
        assert path.name in shipped, f"list {path.relative_to(ROOT)} in observability/kustomization.yaml"
        assert json.loads(shipped[path.name]) == json.loads(path.read_text())
    assert len(shipped) == len(dashboards)
    rules = find(objects, "ConfigMap", "showroom-prometheus-rules")["data"]["alerts.yml"]
    assert rules == (ROOT / "observability/prometheus/alerts.yml").read_text()


def test_overlays_render_the_same_objects(overlay):
    """dev and prod differ in sizes and counts, never in what exists."""

    def kinds(objects) -> list[tuple[str, str]]:
        # Generated ConfigMaps carry a content hash in their names; namespaces differ by design.
        return sorted(
            (o["kind"], "" if o["kind"] == "Namespace" else re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"]))
            for o in objects
        )

    assert kinds(render(f"k8s/overlays/{overlay}")) == kinds(render("k8s/overlays/prod"))


def test_no_overlay_file_is_left_unused():
    for overlay in OVERLAYS:
        folder = ROOT / "k8s/overlays" / overlay
        kustomization = (folder / "kustomization.yaml").read_text()
        for path in folder.iterdir():
            if path.name != "kustomization.yaml":
                assert path.name in kustomization, f"{path.relative_to(ROOT)} is not used"
