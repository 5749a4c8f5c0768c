"""deploy/k8s: schema-valid for Kubernetes 1.29, and the properties the README promises.

Every manifest file is validated on its own; each kustomization (base, dev, prod) is rendered
with `kubectl kustomize` and validated again, since patches and generators only exist there.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from copy_workers.settings import WorkerSettings
from tests.deploy.artefacts import (
    DEPLOY,
    KUSTOMIZATIONS,
    REDIS,
    REDIS_CONF,
    WORKER,
    Doc,
    base_docs,
    container,
    find,
    kinds,
    kubernetes_validate,
    kustomization_files,
    kustomize_build,
    load_yaml,
    manifest_files,
    pod_spec,
    rendered_text,
)

BUILDS = list(KUSTOMIZATIONS)
# "files": the base's files as written, checked even where kubectl cannot render them.
SOURCES = ["files", *BUILDS]
WORKLOADS = (("Deployment", WORKER), ("StatefulSet", REDIS))


def docs_of(source: str) -> list[Doc]:
    return base_docs() if source == "files" else kustomize_build(source)


def test_every_manifest_file_is_valid_for_kubernetes_1_29() -> None:
    files = manifest_files()
    assert len(files) >= 15
    kubernetes_validate(files)


def test_every_kustomization_lists_files_that_exist() -> None:
    for kustomization in kustomization_files():
        data = load_yaml(kustomization)
        for entry in [*data.get("resources", []), *data.get("components", [])]:
            assert (kustomization.parent / entry).exists(), f"{kustomization}: {entry}"


@pytest.mark.parametrize("build", BUILDS)
def test_every_rendered_build_is_valid_for_kubernetes_1_29(build: str, tmp_path: Path) -> None:
    rendered = tmp_path / f"{build}.yaml"
    rendered.write_text(rendered_text(build), encoding="utf-8")
    kubernetes_validate([rendered])


@pytest.mark.parametrize("source", SOURCES)
def test_pods_run_non_root_with_read_only_root_filesystems(source: str) -> None:
    docs = docs_of(source)
    for kind, name in WORKLOADS:
        workload = find(docs, kind, name)
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for box in pod["containers"]:
            context = box["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            resources = box["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources[bound].keys(), f"{name}: {bound}"


def test_the_worker_runs_as_the_images_uid() -> None:
    pod = pod_spec(find(base_docs(), "Deployment", WORKER))
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["runAsGroup"] == 10001


def test_the_worker_shuts_down_warm_within_its_grace_period() -> None:
    worker = find(base_docs(), "Deployment", WORKER)
    pod = pod_spec(worker)
    box = container(worker)
    # The drain, then the copies in flight: what is left is given back, not lost.
    drain = WorkerSettings().drain_s  # the ConfigMap holds the defaults (test_code_agreement)
    assert pod["terminationGracePeriodSeconds"] >= drain + 20
    assert "lifecycle" not in box, "SIGTERM is the warm shutdown: no preStop hook needed"
    assert box["command"] == ["s3fanout", "worker"]
    liveness = box["livenessProbe"]
    assert liveness["terminationGracePeriodSeconds"] <= pod["terminationGracePeriodSeconds"]
    for probe in ("startupProbe", "livenessProbe"):
        command = box[probe]["exec"]["command"]
        assert command[:2] == ["sh", "-c"]
        assert "celery -A copy_workers.celery_app inspect ping" in command[2]
        assert '--destination "s3fanout@$HOSTNAME"' in command[2]
    assert box["readinessProbe"]["tcpSocket"]["port"] == "metrics"
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("source", SOURCES)
def test_the_worker_service_account_assumes_an_iam_role_without_keys(source: str) -> None:
    docs = docs_of(source)
    account = find(docs, "ServiceAccount", WORKER)
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", role), role
    assert pod_spec(find(docs, "Deployment", WORKER))["serviceAccountName"] == WORKER
    for doc in docs:
        assert "AWS_ACCESS_KEY_ID" not in str(doc)
        assert "AWS_SECRET_ACCESS_KEY" not in str(doc)


def test_no_file_under_deploy_carries_aws_access_keys() -> None:
    for path in DEPLOY.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            text = path.read_bytes().decode("utf-8", errors="replace")
            assert "AWS_ACCESS_KEY_ID" not in text, path
            assert "AWS_SECRET_ACCESS_KEY" not in text, path
            assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), path


def _env(box: Doc) -> dict[str, Doc]:
    return {item["name"]: item for item in box.get("env", [])}


def test_redis_requires_the_password_from_the_secret() -> None:
    redis = container(find(base_docs(), "StatefulSet", REDIS))
    script = redis["command"][-1]
    assert redis["command"][:2] == ["sh", "-c"]
    assert script.startswith("exec redis-server /etc/redis/redis.conf - <<EOF\n")
    assert "\nrequirepass $REDIS_PASSWORD\n" in script
    secret = _env(redis)["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": REDIS, "key": "password"}
    conf = REDIS_CONF.read_text(encoding="utf-8")
    assert "requirepass" not in re.sub(r"#.*", "", conf), "the password never lives in the file"
    for directive in ("appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"):
        assert re.search(rf"^{directive}$", conf, re.M), directive


def test_the_worker_connects_to_redis_with_the_same_secret() -> None:
    worker = container(find(base_docs(), "Deployment", WORKER))
    env = _env(worker)
    names = list(env)
    # $(REDIS_PASSWORD) is expanded only if it is defined earlier in the list.
    assert names.index("REDIS_PASSWORD") < names.index("S3FANOUT_REDIS_URL")
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": REDIS, "key": "password"}
    assert env["S3FANOUT_REDIS_URL"]["value"] == f"redis://:$(REDIS_PASSWORD)@{REDIS}:6379/0"
    service = find(base_docs(), "Service", REDIS)
    assert service["spec"]["ports"][0]["port"] == 6379


def test_the_metrics_service_and_pdb_select_the_worker_pods() -> None:
    docs = base_docs()
    worker = find(docs, "Deployment", WORKER)
    pod_labels = worker["spec"]["template"]["metadata"]["labels"].items()
    service = find(docs, "Service", "s3fanout-worker-metrics")
    assert service["spec"]["selector"].items() <= pod_labels
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert {"name": "metrics", "containerPort": 9102, "protocol": "TCP"} in container(worker)[
        "ports"
    ]
    pdb = find(docs, "PodDisruptionBudget", WORKER)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels


def _ports(rules: list[Doc]) -> set[object]:
    return {port["port"] for rule in rules for port in rule.get("ports", [])}


def test_network_policies_confine_workers_and_redis() -> None:
    docs = base_docs()
    deny = find(docs, "NetworkPolicy", "s3fanout-default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    worker = find(docs, "NetworkPolicy", WORKER)["spec"]
    assert _ports(worker["egress"]) == {6379, 53, 443}
    assert _ports(worker["ingress"]) == {"metrics"}
    redis = find(docs, "NetworkPolicy", REDIS)["spec"]
    assert redis["egress"] == []
    assert _ports(redis["ingress"]) == {6379}
    sources = redis["ingress"][0]["from"]
    worker_labels = find(docs, "Deployment", WORKER)["spec"]["selector"]["matchLabels"]
    assert {"podSelector": {"matchLabels": worker_labels}} in sources
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}}
    } in sources


def test_the_overlays_pick_one_autoscaler_each() -> None:
    dev, prod = kustomize_build("dev"), kustomize_build("prod")
    assert "HorizontalPodAutoscaler" in kinds(dev)
    assert "ScaledObject" not in kinds(dev)
    assert "ScaledObject" in kinds(prod)
    assert "HorizontalPodAutoscaler" not in kinds(prod)
    for docs in (dev, prod):
        # The autoscaler owns the replica count.
        assert "replicas" not in find(docs, "Deployment", WORKER)["spec"]
    assert find(kustomize_build("base"), "Deployment", WORKER)["spec"]["replicas"] >= 1


def test_the_hpa_scales_the_worker_deployment_on_cpu() -> None:
    hpa = find(kustomize_build("dev"), "HorizontalPodAutoscaler", WORKER)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


def test_only_dev_ships_a_redis_password() -> None:
    secret = find(kustomize_build("dev"), "Secret", REDIS)
    assert set(secret["data"]) == {"password"}
    # Prod's Secret is created out of band: no password in git.
    assert "Secret" not in kinds(kustomize_build("prod"))


@pytest.mark.parametrize("build", ["dev", "prod"])
def test_every_resource_lands_in_the_overlay_namespace(build: str) -> None:
    docs = kustomize_build(build)
    namespace = load_yaml(KUSTOMIZATIONS[build] / "kustomization.yaml")["namespace"]
    assert find(docs, "Namespace")["metadata"]["name"] == namespace
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]
