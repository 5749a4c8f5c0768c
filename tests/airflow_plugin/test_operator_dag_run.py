"""The operator inside a real Airflow DAG run (dag.test()) with a real worker, Redis and S3."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.servers import RedisServer, Worker, worker_process

DAG_MODULE = "s3fanout_test_dags"


@pytest.fixture(scope="module")
def worker(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with worker_process(redis_srv.url, s3_endpoint, tmp_path_factory.mktemp("af-worker")) as w:
        yield w


def load_dag(dag_id: str, monkeypatch: pytest.MonkeyPatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(f"S3FANOUT_TEST_{name.upper()}", value)
    from tests.airflow_plugin.conftest import DAGS

    monkeypatch.syspath_prepend(str(DAGS))
    sys.modules.pop(DAG_MODULE, None)
    module = importlib.import_module(DAG_MODULE)
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id)


def test_dag_run_copies_a_prefix_and_reports_the_summary(
    worker: Worker, redis_srv: RedisServer, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    src, dst = f"af-src-{uuid.uuid4().hex[:6]}", f"af-dst-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=src)
    s3.create_bucket(Bucket=dst)
    keys = [f"data/{i % 3}/file-{i}.txt" for i in range(60)]
    for key in keys:
        s3.put_object(Bucket=src, Key=key, Body=key.encode())
    dag = load_dag(
        "s3fanout_test_prefix",
        monkeypatch,
        source_bucket=src,
        dest_bucket=dst,
        redis_url=redis_srv.url,
    )
    dag_run = dag.test()
    assert str(dag_run.state) in ("success", "DagRunState.SUCCESS")
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/")["KeyCount"]
    assert copied == 60
    summary = xcom_summary(dag_run)
    assert summary["status"] == "succeeded"
    assert summary["objects_copied"] == summary["objects_listed"] == 60


def xcom_summary(dag_run, task_id: str = "copy") -> Any:
    """The return value the task pushed, on Airflow 2.10 and 3.x."""
    try:
        from airflow.models.xcom import XComModel as XCom  # Airflow 3.x
    except ImportError:
        from airflow.models.xcom import XCom  # type: ignore[no-redef]
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XCom)
            .filter(
                XCom.dag_id == dag_run.dag_id,
                XCom.run_id == dag_run.run_id,
                XCom.task_id == task_id,
                XCom.key == "return_value",
            )
            .one()
        )
        value = row.value
    import json

    return json.loads(value) if isinstance(value, str | bytes) else value
