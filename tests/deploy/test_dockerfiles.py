"""The images: pinned bases, non-root users, the worker's signals and health check, and the lock.

Docker has no engine here, so nothing is built: the Dockerfiles are read as data, and what the
worker image's install step resolves to is computed from this environment, which was installed
from the same lock.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from tests.deploy.artefacts import (
    AIRFLOW_DOCKERFILE,
    DEPLOY,
    REPO,
    WORKER_DOCKERFILE,
    final_stage,
    global_args,
    last,
    parse_dockerfile,
    stages,
    substitute,
)

DOCKERFILES = [WORKER_DOCKERFILE, AIRFLOW_DOCKERFILE]
LOCK = REPO / "requirements" / "airflow3.txt"


def _check_lock() -> ModuleType:
    """deploy/docker/check_lock.py, the script the worker image runs after its install.

    Executed from its source rather than imported, so no __pycache__ lands in deploy/.
    """
    path = DEPLOY / "docker" / "check_lock.py"
    module = ModuleType("check_lock")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), path, "exec"), module.__dict__)
    return module


def _run_commands(path: Path) -> str:
    return "\n".join(i.args for i in parse_dockerfile(path) if i.keyword == "RUN")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned(path: Path) -> None:
    instructions = parse_dockerfile(path)
    defaults = global_args(instructions)
    froms = [substitute(s[0].args.split()[0], defaults) for s in stages(instructions)]
    assert len(froms) >= 2, f"{path.name} should be multi-stage"
    for image in froms:
        _, _, tag = image.rpartition(":")
        assert "@sha256:" in image or re.search(r"\d", tag), f"{image} is not pinned to a version"
        assert tag != "latest"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_the_final_stage_runs_as_a_numeric_non_root_user(path: Path) -> None:
    # Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    user = last(final_stage(path), "USER").args.split(":")[0]
    assert user.isdigit(), f"{path.name}: USER {user} should be a numeric uid"
    assert int(user) != 0


def test_the_worker_runs_as_uid_10001() -> None:
    stage = final_stage(WORKER_DOCKERFILE)
    assert last(stage, "USER").args == "10001:10001"
    assert "--uid 10001" in _run_commands(WORKER_DOCKERFILE)


def test_the_worker_stops_on_sigterm_and_starts_a_worker() -> None:
    stage = final_stage(WORKER_DOCKERFILE)
    assert last(stage, "STOPSIGNAL").args == "SIGTERM"
    assert last(stage, "ENTRYPOINT").json() == ["s3fanout", "worker"]


def test_the_worker_health_check_pings_the_workers_own_node() -> None:
    check = last(final_stage(WORKER_DOCKERFILE), "HEALTHCHECK").args
    assert "CMD celery -A copy_workers.celery_app inspect ping" in check
    assert '--destination "s3fanout@$HOSTNAME"' in check


def test_the_worker_image_installs_from_the_lock() -> None:
    commands = _run_commands(WORKER_DOCKERFILE)
    assert "--constraint requirements/airflow3.txt /wheels/*.whl" in commands
    assert "check_lock.py requirements/airflow3.txt" in commands
    assert LOCK.exists()


def _runtime_closure() -> dict[str, str]:
    """The distributions that installing this package (no extras) pulls in, with versions.

    Walks the installed metadata of this environment, which was synced from the same lock the
    worker image is constrained by, evaluating markers for the requested extras.
    """
    normalize = _check_lock().normalize
    found: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str]]] = [("s3-fanout-copy", frozenset())]
    seen = set(pending)
    while pending:
        name, extras = pending.pop()
        dist = metadata.distribution(name)
        found[normalize(name)] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            environments = [{"extra": extra} for extra in {"", *extras}]
            if req.marker is not None and not any(map(req.marker.evaluate, environments)):
                continue
            key = (normalize(req.name), frozenset(req.extras))
            if key not in seen:
                seen.add(key)
                pending.append(key)
    return found


def test_every_runtime_dependency_of_the_worker_is_pinned_in_the_lock() -> None:
    check_lock = _check_lock()
    closure = _runtime_closure()
    assert {"boto3", "awscrt", "celery", "kombu", "redis"} <= closure.keys()
    lock = check_lock.read_lock(LOCK.read_text(encoding="utf-8"))
    assert check_lock.problems(closure, lock) == []


def test_check_lock_reports_what_strays_from_the_lock() -> None:
    check_lock = _check_lock()
    lock = check_lock.read_lock("celery==5.7.0\n    # via s3-fanout-copy\nredis==8.1.0\n")
    present = {
        "s3-fanout-copy": "0.1.0",
        "celery": "5.7.0",
        "redis": "8.0.0",
        "left-pad": "1.0",
        "apache-airflow": "3.3.2",
    }
    assert check_lock.problems(present, lock) == [
        "apache-airflow==3.3.2 must not be installed in this image",
        "left-pad==1.0 is not pinned in the lock: run `make lock`",
        "redis==8.0.0 installed, but the lock pins 8.1.0",
    ]
    assert check_lock.normalize("Prompt_Toolkit") == "prompt-toolkit"


def test_the_airflow_image_adds_the_package_without_reinstalling_airflow() -> None:
    instructions = parse_dockerfile(AIRFLOW_DOCKERFILE)
    defaults = global_args(instructions)
    image = next(s[0].args.split()[0] for s in stages(instructions) if "airflow" in s[0].args)
    assert image == "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
    assert defaults["PYTHON_VERSION"] == "3.11"
    commands = _run_commands(AIRFLOW_DOCKERFILE)
    # Airflow named at its own version in the same command, everything else frozen.
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in commands
    assert "--constraint /tmp/image-constraints.txt" in commands
    assert "pip freeze" in commands


def test_the_airflow_versions_are_the_locked_ones() -> None:
    default = global_args(parse_dockerfile(AIRFLOW_DOCKERFILE))["AIRFLOW_VERSION"]
    airflow2 = (REPO / "requirements" / "airflow2.txt").read_text(encoding="utf-8")
    assert f"\napache-airflow=={default}\n" in airflow2
    airflow3 = re.search(r"^apache-airflow==(\S+)$", LOCK.read_text(encoding="utf-8"), re.M)
    assert airflow3 is not None
    assert f"AIRFLOW_VERSION={airflow3[1]}" in AIRFLOW_DOCKERFILE.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_package_of_the_project_is_copied_into_the_image(path: Path) -> None:
    """What pyproject.toml packages (setuptools' include list) is what the image installs."""
    import tomllib

    include = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {pattern.rstrip("*") for pattern in include["packages"]["find"]["include"]}
    copied = {
        i.args.split()[0]
        for i in parse_dockerfile(path)
        if i.keyword == "COPY" and not i.args.startswith("--")
    }
    assert packages <= copied
