"""The operator inside real Airflow DAG runs (dag.test()) with a real worker, Redis and S3.

dag.test() runs a deferred task's trigger inline and then resumes the task, on Airflow 2.10
and 3.x alike; the DAGs are in files of the dags folder (Airflow 3 needs that).
"""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from typing import Any

import boto3
import pytest

from airflow_plugin.runs import run_id_for
from airflow_plugin.triggers import RunEvent, S3FanoutRunTrigger
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer, Worker
from tests.airflow_plugin.conftest import DAGS
from tests.airflow_plugin.helpers import fake_context

DAG_MODULE = "s3fanout_test_dags"


def load_dag(dag_id: str, monkeypatch: pytest.MonkeyPatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(f"S3FANOUT_TEST_{name.upper()}", value)
    monkeypatch.syspath_prepend(str(DAGS))
    sys.modules.pop(DAG_MODULE, None)
    module = importlib.import_module(DAG_MODULE)
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id)


@pytest.fixture
def buckets(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A source bucket with 3 prefixes of 10 objects each, and an empty destination."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    src, dst = f"af-src-{uuid.uuid4().hex[:6]}", f"af-dst-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=src)
    s3.create_bucket(Bucket=dst)
    for i in range(30):
        key = f"data/{i % 3}/file-{i}.txt"
        s3.put_object(Bucket=src, Key=key, Body=key.encode())
    return s3, src, dst


@pytest.fixture
def trigger_events(monkeypatch: pytest.MonkeyPatch) -> list[RunEvent]:
    """Every event a S3FanoutRunTrigger produces in this process (dag.test runs them inline)."""
    events: list[RunEvent] = []
    wait = S3FanoutRunTrigger._wait

    async def recording(self: S3FanoutRunTrigger) -> RunEvent:
        event = await wait(self)
        events.append(event)
        return event

    monkeypatch.setattr(S3FanoutRunTrigger, "_wait", recording)
    return events


def succeeded(dag_run) -> bool:
    return str(dag_run.state) in ("success", "DagRunState.SUCCESS")


def test_dag_run_copies_a_prefix_and_reports_the_summary(
    worker: Worker, redis_srv: RedisServer, buckets, trigger_events, monkeypatch
) -> None:
    s3, src, dst = buckets
    env = {"source_bucket": src, "dest_bucket": dst, "redis_url": redis_srv.url}
    dag_run = load_dag("s3fanout_test_prefix", monkeypatch, **env).test()
    assert succeeded(dag_run)
    assert s3.list_objects_v2(Bucket=dst, Prefix="copied/")["KeyCount"] == 30
    summary = xcom_value(dag_run)
    assert summary["status"] == "succeeded"
    assert summary["objects_copied"] == summary["objects_listed"] == 30
    assert trigger_events == []  # not deferrable: it waited in the task


def test_a_deferrable_task_defers_to_the_trigger_and_resumes_with_the_summary(
    worker: Worker, redis_conn_id: str, buckets, trigger_events, monkeypatch
) -> None:
    s3, src, dst = buckets
    env = {"source_bucket": src, "dest_bucket": dst, "redis_conn_id": redis_conn_id}
    dag_run = load_dag("s3fanout_test_prefix", monkeypatch, deferrable="1", **env).test()
    assert succeeded(dag_run)
    summary = xcom_value(dag_run)
    assert summary["status"] == "succeeded" and summary["objects_copied"] == 30
    assert [(e.status, e.run_id) for e in trigger_events] == [("success", summary["run_id"])]
    assert trigger_events[0].summary.to_dict() == summary
    assert s3.list_objects_v2(Bucket=dst, Prefix="copied/")["KeyCount"] == 30


def test_mapped_prefixes_each_drive_a_run_and_a_downstream_task_adds_them_up(
    worker: Worker, redis_srv: RedisServer, buckets, trigger_events, monkeypatch
) -> None:
    s3, src, dst = buckets
    env = {"source_bucket": src, "dest_bucket": dst, "redis_url": redis_srv.url}
    dag = load_dag(
        "s3fanout_test_mapped",
        monkeypatch,
        deferrable="1",
        source_prefixes="data/0/,data/2/",
        **env,
    )
    dag_run = dag.test()
    assert succeeded(dag_run)
    total = xcom_value(dag_run, "total")
    assert total["runs"] == 2 and total["statuses"] == {"succeeded": 2}
    assert total["objects_copied"] == total["objects_listed"] == 20
    assert len(set(total["run_ids"])) == 2  # one run per map index
    assert {e.run_id for e in trigger_events} == set(total["run_ids"])
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/")["Contents"]
    assert sorted(o["Key"] for o in copied) == sorted(
        f"copied/file-{i}.txt" for i in range(30) if i % 3 in (0, 2)
    )


def test_more_failed_keys_than_max_failures_fail_the_task(
    worker: Worker, redis_srv: RedisServer, buckets, monkeypatch
) -> None:
    s3, src, dst = buckets
    for i in range(10):  # archived: every copy fails (S3 copies only restored archives)
        s3.put_object(Bucket=src, Key=f"archived/{i}.txt", Body=b"cold", StorageClass="GLACIER")
    env = {"source_bucket": src, "dest_bucket": dst, "redis_url": redis_srv.url}
    env |= {"source_prefix": "archived/", "max_failures": "4", "deferrable": "1"}
    dag_run = load_dag("s3fanout_test_prefix", monkeypatch, **env).test()
    assert not succeeded(dag_run)
    context = fake_context(dag_id=dag_run.dag_id, task_id="copy", run_id=dag_run.run_id)
    summary = RunStore(connect(redis_srv.url)).summary(run_id_for(context))
    assert summary is not None
    assert (summary.status, summary.objects_failed, summary.objects_copied) == ("failed", 10, 0)
    assert summary.errors == {"ObjectNotInActiveTierError": 10}


def xcom_value(dag_run, task_id: str = "copy") -> Any:
    """The return value a task pushed, on Airflow 2.10 and 3.x."""
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
    return json.loads(value) if isinstance(value, str | bytes) else value
