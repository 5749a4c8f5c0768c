"""The deploy artefacts agree with the code: env vars, worker flags, node name, images, versions."""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import io
import re
import socket
import tomllib

import pytest
from celery import Celery

from copy_core.contract import QUEUE
from copy_workers import settings as settings_module
from copy_workers.settings import WorkerSettings
from copy_workers.worker_main import build_parser
from tests.deploy.artefacts import (
    AIRFLOW_DOCKERFILE,
    BASE,
    K8S,
    KUSTOMIZATIONS,
    REDIS,
    REPO,
    WORKER,
    WORKER_DOCKERFILE,
    Doc,
    base_docs,
    compose,
    compose_env,
    container,
    final_stage,
    find,
    kustomize_build,
    labels,
    last,
    load_yaml,
)

METRICS_PORT = "9102"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def settings_env_names() -> set[str]:
    """The S3FANOUT_* names copy_workers/settings.py reads (string literals in its source)."""
    tree = ast.parse(open(settings_module.__file__, encoding="utf-8").read())  # noqa: SIM115
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"S3FANOUT_[A-Z0-9_]+", node.value)
    }


def _configmap_literals() -> dict[str, dict[str, str]]:
    """S3FANOUT_* literals of the worker ConfigMap in every kustomization that sets some."""
    found: dict[str, dict[str, str]] = {}
    for kustomization in K8S.rglob("kustomization.yaml"):
        for entry in load_yaml(kustomization).get("configMapGenerator", []):
            if entry["name"] == WORKER:
                pairs = dict(item.split("=", 1) for item in entry.get("literals", []))
                found[str(kustomization.relative_to(REPO))] = pairs
    return found


def _deploy_env_names() -> dict[str, set[str]]:
    """Every environment variable name the deploy artefacts set, by where it is set."""
    names = {where: set(pairs) for where, pairs in _configmap_literals().items()}
    for kind, name in (("Deployment", WORKER), ("StatefulSet", REDIS)):
        box = container(find(base_docs(), kind, name))
        names[f"{kind} {name}"] = {item["name"] for item in box.get("env", [])}
    for service_name, service in compose()["services"].items():
        names[f"compose {service_name}"] = set(compose_env(service))
    dockerfile_env = " ".join(i.args for i in final_stage(WORKER_DOCKERFILE) if i.keyword == "ENV")
    names["worker.Dockerfile"] = set(re.findall(r"(\w+)=", dockerfile_env))
    return names


def test_settings_are_parsed_from_the_source() -> None:
    names = settings_env_names()
    assert {"S3FANOUT_REDIS_URL", "S3FANOUT_KEYS_IN_FLIGHT", "S3FANOUT_RUN_TTL_S"} <= names


def test_every_s3fanout_variable_set_in_deploy_is_read_by_the_worker() -> None:
    known = settings_env_names()
    for where, names in _deploy_env_names().items():
        unknown = {n for n in names if n.startswith("S3FANOUT_")} - known
        assert not unknown, (
            f"{where} sets {sorted(unknown)}, which copy_workers/settings.py ignores"
        )


def test_the_base_configmap_lists_every_knob_at_its_code_default() -> None:
    literals = _configmap_literals()[str((BASE / "kustomization.yaml").relative_to(REPO))]
    knobs = {k: v for k, v in literals.items() if k.startswith("S3FANOUT_")}
    # The Redis URL carries the password: the Deployment sets it from the Secret.
    assert set(knobs) == settings_env_names() - {"S3FANOUT_REDIS_URL"}, (
        "a knob was added to or removed from copy_workers/settings.py: update the worker "
        "ConfigMap in deploy/k8s/base/kustomization.yaml and the table in deploy/README.md"
    )
    defaults = WorkerSettings.from_env({})
    for name, value in knobs.items():
        assert WorkerSettings.from_env({name: value}) == defaults, f"{name}={value}"


def _pod_env(docs: list[Doc]) -> dict[str, str]:
    """The worker container's environment as the kubelet builds it (secrets stubbed)."""
    box = container(find(docs, "Deployment", WORKER))
    configmap_name = box["envFrom"][0]["configMapRef"]["name"]
    env: dict[str, str] = dict(find(docs, "ConfigMap", configmap_name)["data"])
    for item in box["env"]:
        value = item.get("value", "secret")
        env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], value)
    return env


@pytest.mark.parametrize("build", list(KUSTOMIZATIONS))
def test_every_build_gives_the_worker_valid_settings(build: str) -> None:
    env = _pod_env(kustomize_build(build))
    settings = WorkerSettings.from_env(env)
    assert settings.redis_url == f"redis://:secret@{REDIS}:6379/0"


# --- the worker command ---------------------------------------------------------------------
def _worker_commands() -> dict[str, list[str]]:
    """The full worker command line of each artefact, entrypoint included."""
    stage = final_stage(WORKER_DOCKERFILE)
    entrypoint = last(stage, "ENTRYPOINT").json()
    box = container(find(base_docs(), "Deployment", WORKER))
    return {
        "worker.Dockerfile": entrypoint + last(stage, "CMD").json(),
        "docker-compose.yml": entrypoint + compose()["services"]["worker"]["command"],
        "deploy/k8s": box["command"] + box["args"],
    }


def _parse(args: list[str]) -> argparse.Namespace:
    """Parse with the worker's own parser; argparse's exit becomes a readable failure."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"s3fanout worker rejects {args}: {stderr.getvalue()}")


@pytest.mark.parametrize("where", ["worker.Dockerfile", "docker-compose.yml", "deploy/k8s"])
def test_the_worker_command_is_one_the_worker_accepts(where: str) -> None:
    command = _worker_commands()[where]
    assert command[:2] == ["s3fanout", "worker"]
    args = _parse(command[2:])
    assert args.concurrency >= 1
    # The health checks ping the default node name and read the URL from the environment.
    assert "--hostname" not in command
    assert "--redis-url" not in command


def test_the_worker_serves_metrics_on_the_metrics_port() -> None:
    for where, command in _worker_commands().items():
        args = _parse(command[2:])
        assert str(args.metrics_port) == METRICS_PORT, where


def test_every_worker_command_asks_for_the_metrics_port() -> None:
    for where, command in _worker_commands().items():
        at = command.index("--metrics-port")
        assert command[at + 1] == METRICS_PORT, where
    assert last(final_stage(WORKER_DOCKERFILE), "EXPOSE").args == METRICS_PORT
    assert f"127.0.0.1:{METRICS_PORT}:{METRICS_PORT}" in compose()["services"]["worker"]["ports"]


def test_health_checks_ping_the_node_name_the_worker_takes() -> None:
    assert build_parser().parse_args([]).hostname == f"s3fanout@{socket.gethostname()}"
    box = container(find(base_docs(), "Deployment", WORKER))
    checks = [
        last(final_stage(WORKER_DOCKERFILE), "HEALTHCHECK").args,
        " ".join(compose()["services"]["worker"]["healthcheck"]["test"]),
        box["livenessProbe"]["exec"]["command"][-1],
        box["startupProbe"]["exec"]["command"][-1],
    ]
    for check in checks:
        assert '--destination "s3fanout@$HOSTNAME"' in check, check
        module = re.search(r"celery -A ([\w.]+) inspect ping", check)
        assert module is not None, check
        app = importlib.import_module(module[1]).app
        assert isinstance(app, Celery)
        assert app.conf.task_default_queue == QUEUE


# --- images ---------------------------------------------------------------------------------
def _title(dockerfile_labels: dict[str, str]) -> str:
    return dockerfile_labels["org.opencontainers.image.title"]


def test_the_worker_image_name_and_tag_agree_everywhere() -> None:
    worker_labels = labels(final_stage(WORKER_DOCKERFILE))
    assert worker_labels["org.opencontainers.image.version"] == VERSION
    image = f"{_title(worker_labels)}:{VERSION}"
    assert compose()["services"]["worker"]["image"] == image
    assert container(find(base_docs(), "Deployment", WORKER))["image"] == image
    for overlay in ("dev", "prod"):
        (entry,) = load_yaml(KUSTOMIZATIONS[overlay] / "kustomization.yaml")["images"]
        # The transformer matches on the base image's name; a mismatch silently does nothing.
        assert entry["name"] == _title(worker_labels), overlay
        assert entry["newTag"] == VERSION, overlay
        rendered = container(find(kustomize_build(overlay), "Deployment", WORKER))["image"]
        assert rendered == f"{entry['newName']}:{VERSION}", overlay


def test_the_airflow_and_redis_images_agree() -> None:
    airflow_labels = labels(final_stage(AIRFLOW_DOCKERFILE))
    assert airflow_labels["org.opencontainers.image.version"] == VERSION
    image = compose()["services"]["airflow"]["image"]
    assert image.startswith(f"{_title(airflow_labels)}:{VERSION}-airflow"), image
    redis = container(find(base_docs(), "StatefulSet", REDIS))["image"]
    assert compose()["services"]["redis"]["image"] == redis
