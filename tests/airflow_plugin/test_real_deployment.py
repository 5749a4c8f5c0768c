"""The operator in a real Airflow 3.x deployment: api-server, scheduler, dag-processor and
triggerer as processes, LocalExecutor on SQLite, a copy worker, Redis and S3 over HTTP.

Every step goes through what a user has: DAG runs triggered, tasks marked failed and cleared
through the REST API; states read from the metadata database. Waits are on states, never a
fixed time. (Airflow 2.10 runs the same operator through ``dag.test()`` in tests/airflow_plugin:
its LocalExecutor needs PostgreSQL or MySQL, which the CI machines do not have.)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from copy_core.contract import RunStatus
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer, Worker, redis_server, wait_until, worker_process
from tests.airflow_plugin.helpers import fake_context, paused, status_of

airflow = pytest.importorskip("airflow")
if not airflow.__version__.startswith("3."):
    pytest.skip("the real-deployment suite runs Airflow 3.x", allow_module_level=True)

from airflow_plugin.runs import run_id_for  # noqa: E402
from devstack.airflow_deployment import AirflowDeployment, airflow_deployment  # noqa: E402

DAG_ID, TASK_ID = "s3fanout_deploy", "copy"
NAMESPACE = "s3fanout-deploy-test"
N = 60  # objects: 3 chunks of 20


@pytest.fixture(scope="module")
def deploy_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("deploy-redis")) as server:
        yield server


@pytest.fixture(scope="module")
def copy_worker(
    deploy_redis: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    with worker_process(deploy_redis.url, s3_endpoint, tmp_path_factory.mktemp("dw")) as worker:
        yield worker


@pytest.fixture(scope="module")
def deployment(
    deploy_redis: RedisServer, copy_worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowDeployment]:
    redis_conn = {"conn_type": "redis", "host": "127.0.0.1", "port": deploy_redis.port}
    env = {
        "AIRFLOW_CONN_S3FANOUT_REDIS": json.dumps(redis_conn),
        "AIRFLOW__S3FANOUT__RUN_NAMESPACE": NAMESPACE,
    }
    dags = Path(__file__).parent / "deploy_dags"
    with airflow_deployment(tmp_path_factory.mktemp("airflow-home"), dags, env) as found:
        found.wait_for_dag(DAG_ID)
        yield found


@pytest.fixture
def buckets(s3_endpoint: str) -> tuple[object, dict[str, str]]:
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    conf = {
        "source_bucket": f"dep-src-{uuid.uuid4().hex[:6]}",
        "dest_bucket": f"dep-dst-{uuid.uuid4().hex[:6]}",
    }
    for bucket in conf.values():
        s3.create_bucket(Bucket=bucket)
    for i in range(N):
        s3.put_object(Bucket=conf["source_bucket"], Key=f"data/{i % 3}/f{i}.txt", Body=b"x" * i)
    return s3, conf


def copied(s3: object, bucket: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="copied/")  # type: ignore[attr-defined]
    return sum(page.get("KeyCount", 0) for page in pages)


def test_a_deferred_copy_is_resumed_by_the_triggerer_and_reports_its_summary(
    deployment: AirflowDeployment, copy_worker: Worker, buckets
) -> None:
    s3, conf = buckets
    with paused(copy_worker.process.pid):  # the run cannot end before the task has deferred
        run_id = deployment.trigger(DAG_ID, conf)
        deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"deferred"})
    assert deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"success", "failed"}) == "success"
    summary = deployment.xcom(DAG_ID, run_id, TASK_ID)
    assert (summary["status"], summary["objects_copied"]) == ("succeeded", N)
    assert copied(s3, conf["dest_bucket"]) == N


def _run_id(monkeypatch: pytest.MonkeyPatch, dag_run_id: str) -> str:
    """The copy run id the deployment's task derives (its namespace is NAMESPACE)."""
    monkeypatch.setenv("AIRFLOW__S3FANOUT__RUN_NAMESPACE", NAMESPACE)
    return run_id_for(fake_context(dag_id=DAG_ID, task_id=TASK_ID, run_id=dag_run_id))


def test_marking_a_deferred_task_failed_cancels_its_run(
    deployment: AirflowDeployment, copy_worker: Worker, deploy_redis: RedisServer, buckets,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s3, conf = buckets
    store = RunStore(connect(deploy_redis.url))
    with paused(copy_worker.process.pid):
        run_id = deployment.trigger(DAG_ID, conf)
        deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"deferred"})
        # A trigger the triggerer has not taken yet has no on_kill to call (docs/airflow.md).
        wait_until(lambda: deployment.trigger_claimed(DAG_ID, run_id, TASK_ID), 60, "the trigger")
        deployment.set_task_state(DAG_ID, run_id, TASK_ID, "failed")
        copy_run = _run_id(monkeypatch, run_id)
        # The triggerer's on_kill of the trigger cancels the run (before a worker listed it).
        wait_until(lambda: store.cancel_requested(copy_run), 120, "the cancellation")
    wait_until(lambda: status_of(store, copy_run) == RunStatus.CANCELLED, 120, "the run to end")
    assert deployment.task_state(DAG_ID, run_id, TASK_ID) == "failed"
    assert copied(s3, conf["dest_bucket"]) == 0


def test_clearing_a_deferred_task_ends_in_one_successful_copy(
    deployment: AirflowDeployment, copy_worker: Worker, deploy_redis: RedisServer, buckets
) -> None:
    s3, conf = buckets
    with paused(copy_worker.process.pid):
        run_id = deployment.trigger(DAG_ID, conf)
        deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"deferred"})
        wait_until(lambda: deployment.trigger_claimed(DAG_ID, run_id, TASK_ID), 60, "the trigger")
        deployment.clear_task(DAG_ID, run_id, TASK_ID)
        wait_until(lambda: deployment.try_number(DAG_ID, run_id, TASK_ID) >= 2, 120, "try 2")
        deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"deferred"})
    assert deployment.wait_for_task(DAG_ID, run_id, TASK_ID, {"success", "failed"}) == "success"
    summary = deployment.xcom(DAG_ID, run_id, TASK_ID)
    assert (summary["status"], summary["objects_copied"]) == ("succeeded", N)
    assert copied(s3, conf["dest_bucket"]) == N
