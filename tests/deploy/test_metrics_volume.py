"""Where a read-only worker writes its Prometheus multiprocess files: a writable /tmp.

``s3fanout worker --metrics-port`` creates its metrics directory in the temporary directory
(``tempfile.gettempdir()``: ``$TMPDIR``, else ``/tmp``). Every artefact that runs the worker
with a read-only root filesystem must make that directory writable, or the worker cannot start.
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.artefacts import (
    KUSTOMIZATIONS,
    WORKER,
    WORKER_DOCKERFILE,
    base_docs,
    compose,
    compose_env,
    container,
    final_stage,
    find,
    kustomize_build,
    pod_spec,
)


def _temp_dir(env: dict[str, str]) -> str:
    return env.get("TMPDIR", "/tmp")


def _size_mib(quantity: str) -> float:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", quantity)
    assert match, f"unexpected quantity {quantity}"
    number, unit = match.groups()
    return int(number) * {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, None: 1 / 1024**2}[unit]


@pytest.mark.parametrize("build", ["files", *KUSTOMIZATIONS])
def test_the_worker_pod_has_a_writable_temp_dir_on_an_emptydir(build: str) -> None:
    docs = base_docs() if build == "files" else kustomize_build(build)
    deployment = find(docs, "Deployment", WORKER)
    box = container(deployment)
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert "--metrics-port" in box["args"]
    env = {item["name"]: item.get("value", "") for item in box.get("env", [])}
    (mount,) = [m for m in box["volumeMounts"] if m["mountPath"] == _temp_dir(env)]
    assert not mount.get("readOnly", False)
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    # Room for the metric files of a few hundred pool processes, started and replaced.
    assert _size_mib(volume["emptyDir"].get("sizeLimit", "1Gi")) >= 32


def test_the_compose_worker_has_a_tmpfs_temp_dir() -> None:
    worker = compose()["services"]["worker"]
    assert worker["read_only"] is True
    assert "--metrics-port" in worker["command"]
    assert _temp_dir(compose_env(worker)) in worker["tmpfs"]


def test_the_image_leaves_the_temp_dir_where_the_mounts_are() -> None:
    stage = final_stage(WORKER_DOCKERFILE)
    assert not any(i.keyword == "ENV" and "TMPDIR" in i.args for i in stage)
    assert not any(i.keyword == "VOLUME" for i in stage)
