"""The KEDA component: schema-checked (no CRD schema ships offline), and wired to the code.

tests/deploy/schemas/ holds small JSON schemas of the ScaledObject and TriggerAuthentication
fields we use, typed as KEDA reads them (every trigger metadata value is a string).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from copy_core.contract import QUEUE
from tests.deploy.artefacts import (
    K8S,
    REDIS,
    WORKER,
    Doc,
    base_docs,
    container,
    find,
    kubernetes_validate,
    kustomize_build,
    load_yaml,
    venv_tool,
)

KEDA = K8S / "autoscaling" / "keda"
SCHEMAS = Path(__file__).parent / "schemas"
SCHEMA_OF = {
    "ScaledObject": SCHEMAS / "keda-scaledobject.schema.json",
    "TriggerAuthentication": SCHEMAS / "keda-triggerauthentication.schema.json",
}


def schema_errors(docs: list[Doc], tmp_path: Path) -> str:
    """check-jsonschema's complaints about ``docs`` (all of one kind) against that kind's schema
    ("" if all are valid). Each document is written to a file named after its position."""
    paths = []
    for index, doc in enumerate(docs):
        paths.append(tmp_path / f"{doc['kind']}-{index}.json")
        paths[-1].write_text(json.dumps(doc), encoding="utf-8")
    (kind,) = {doc["kind"] for doc in docs}
    result = subprocess.run(
        [venv_tool("check-jsonschema"), "--schemafile", str(SCHEMA_OF[kind]), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def _trigger(scaled: Doc) -> Doc:
    triggers: list[Doc] = scaled["spec"]["triggers"]
    assert len(triggers) == 1
    return triggers[0]


@pytest.mark.parametrize("kind", SCHEMA_OF)
def test_the_component_files_match_their_schemas(kind: str, tmp_path: Path) -> None:
    component = load_yaml(KEDA / f"{kind.lower()}.yaml")
    assert component["kind"] == kind
    assert schema_errors([component], tmp_path) == ""


@pytest.mark.parametrize("kind", SCHEMA_OF)
def test_the_prod_rendering_matches_the_schemas(kind: str, tmp_path: Path) -> None:
    assert schema_errors([find(kustomize_build("prod"), kind)], tmp_path) == ""


def test_the_schema_rejects_what_keda_would_reject(tmp_path: Path) -> None:
    number = load_yaml(KEDA / "scaledobject.yaml")
    _trigger(number)["metadata"]["listLength"] = 4  # a number, not a string
    typo = load_yaml(KEDA / "scaledobject.yaml")
    _trigger(typo)["metadata"]["listname"] = _trigger(typo)["metadata"].pop("listName")
    errors = schema_errors([number, typo], tmp_path)
    assert "ScaledObject-0.json" in errors
    assert "ScaledObject-1.json" in errors


def test_the_trigger_watches_the_celery_queue_of_the_contract() -> None:
    trigger = _trigger(load_yaml(KEDA / "scaledobject.yaml"))
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE


def test_the_scaled_object_targets_the_worker_deployment() -> None:
    spec = load_yaml(KEDA / "scaledobject.yaml")["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER}
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_the_trigger_reaches_the_workers_redis() -> None:
    docs = kustomize_build("prod")
    scaled = find(docs, "ScaledObject", WORKER)
    metadata = _trigger(scaled)["metadata"]
    namespace = scaled["metadata"]["namespace"]
    # KEDA's operator resolves the address from its own namespace: fully qualified.
    service = find(docs, "Service", REDIS)
    expected = f"{REDIS}.{namespace}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
    assert metadata["address"] == expected
    url = _env_value(container(find(docs, "Deployment", WORKER)), "S3FANOUT_REDIS_URL")
    assert metadata["databaseIndex"] == urlsplit(url).path.lstrip("/")
    assert metadata["enableTLS"] == ("true" if url.startswith("rediss://") else "false")


def _env_value(box: Doc, name: str) -> str:
    value: str = next(item["value"] for item in box["env"] if item["name"] == name)
    return value


def test_the_trigger_authenticates_with_the_redis_secret() -> None:
    scaled = load_yaml(KEDA / "scaledobject.yaml")
    auth = load_yaml(KEDA / "triggerauthentication.yaml")
    assert _trigger(scaled)["authenticationRef"] == {"name": auth["metadata"]["name"]}
    worker = container(find(base_docs(), "Deployment", WORKER))
    secret = next(i for i in worker["env"] if i["name"] == "REDIS_PASSWORD")
    ref = secret["valueFrom"]["secretKeyRef"]
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "password", **ref}]


def test_keda_may_reach_redis() -> None:
    policy = load_yaml(KEDA / "networkpolicy-keda.yaml")["spec"]
    redis_labels = find(base_docs(), "StatefulSet", REDIS)["spec"]["selector"]["matchLabels"]
    assert policy["podSelector"] == {"matchLabels": redis_labels}
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    namespace = rule["from"][0]["namespaceSelector"]["matchLabels"]
    assert namespace == {"kubernetes.io/metadata.name": "keda"}


def test_the_scaling_behavior_is_a_valid_hpa_behavior(tmp_path: Path) -> None:
    # KEDA copies advanced.horizontalPodAutoscalerConfig.behavior into the HPA it creates:
    # validate it where it ends up.
    spec = find(kustomize_build("prod"), "ScaledObject", WORKER)["spec"]
    hpa: Doc = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-s3fanout-worker"},
        "spec": {
            "scaleTargetRef": spec["scaleTargetRef"],
            "minReplicas": spec["minReplicaCount"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    path = tmp_path / "hpa.json"
    path.write_text(json.dumps(hpa), encoding="utf-8")
    kubernetes_validate([path])
    # The OpenAPI schema leaves these as plain strings; the API server would refuse others.
    for rules in hpa["spec"]["behavior"].values():
        assert rules.get("selectPolicy", "Max") in {"Max", "Min", "Disabled"}
        assert {policy["type"] for policy in rules["policies"]} <= {"Pods", "Percent"}
