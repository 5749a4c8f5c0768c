"""Airflow test set-up: a private AIRFLOW_HOME with a migrated SQLite database.

Airflow reads its configuration when first imported, so the environment is set here, at
conftest import, before any test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.servers import RedisServer, Worker, worker_process

DAGS = Path(__file__).parent / "dags"
_HOME = tempfile.mkdtemp(prefix="s3fanout-airflow-")
os.environ.update(
    AIRFLOW_HOME=_HOME,
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__UNIT_TEST_MODE="True",
    AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
    AIRFLOW__CORE__EXECUTOR="LocalExecutor",
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{_HOME}/airflow.db",
)
# Executors of Airflow 2.10 shell out to `airflow`: the venv's bin must be on PATH.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

pytest.importorskip("airflow", reason="Airflow is not installed in this environment")


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="package")
def worker(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    """One copy worker process for the Airflow tests, on the session's Redis and S3."""
    with worker_process(redis_srv.url, s3_endpoint, tmp_path_factory.mktemp("af-worker")) as w:
        yield w


@pytest.fixture
def redis_conn_id(redis_srv: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An Airflow connection (from the environment) to the session's Redis."""
    conn_id = "s3fanout_test_redis"
    value = {"conn_type": "redis", "host": "127.0.0.1", "port": redis_srv.port, "extra": {"db": 0}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(value))
    return conn_id
