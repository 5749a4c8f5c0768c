"""The operator's run lifecycle with a real worker: on_kill, timeouts, retries, deferral.

The tests call execute() as Airflow's task runner would (one call per try, with the same
task instance), and pause the worker process (SIGSTOP) to hold a run in progress.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
import redis

from airflow_plugin import S3CrossAccountCopyOperator, operators
from airflow_plugin.compat import AirflowException, AirflowFailException
from airflow_plugin.runs import current_run_id, generation_key, run_id_for
from copy_control.dispatch import runner
from copy_control.dispatch.runner import DispatchReport
from copy_core.contract import QUEUE, RunStatus, RunSummary
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer, Worker, wait_until
from tests.airflow_plugin.helpers import (
    InThread,
    TaskDeferred,
    fake_context,
    paused,
    run_trigger,
    status_of,
)

N = 6


@pytest.fixture
def buckets(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    src, dst = f"af-src-{uuid.uuid4().hex[:6]}", f"af-dst-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=src)
    s3.create_bucket(Bucket=dst)
    for i in range(N):
        s3.put_object(Bucket=src, Key=f"data/file-{i}.txt", Body=b"x" * i)
    return s3, src, dst


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url))


@pytest.fixture
def dispatches(monkeypatch: pytest.MonkeyPatch) -> list[DispatchReport]:
    """What every start_run of the operator reported."""
    reports: list[DispatchReport] = []

    def recording(*args: Any, **kwargs: Any) -> DispatchReport:
        reports.append(runner.start_run(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr("airflow_plugin.operators.start_run", recording)
    return reports


def make_operator(
    redis_url: str | None, src: str, dst: str, **kwargs: Any
) -> S3CrossAccountCopyOperator:
    args: dict[str, Any] = {"source_prefix": "data/", "dest_prefix": "copied/", "chunk_size": 2}
    return S3CrossAccountCopyOperator(
        task_id="copy",
        source_bucket=src,
        dest_bucket=dst,
        redis_url=redis_url,
        aws_conn_id=None,
        poll_interval=0.05,
        **(args | kwargs),
    )


def final(store: RunStore, run_id: str) -> RunSummary:
    def ended() -> bool:
        summary = store.summary(run_id)
        return summary is not None and summary.is_final

    wait_until(ended, 60, f"run {run_id} to end")
    summary = store.summary(run_id)
    assert summary is not None
    return summary


def test_on_kill_cancels_the_run_in_progress(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    s3, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    op = make_operator(redis_srv.url, src, dst)
    with paused(worker.process.pid) as stopped:

        def kill_when_running() -> str | None:
            wait_until(lambda: status_of(store, run_id) == RunStatus.RUNNING, 30, "dispatch")
            op.on_kill()  # what Airflow calls when the task is killed
            status = status_of(store, run_id)
            stopped.resume()
            return status

        killer = InThread(kill_when_running)
        with pytest.raises(AirflowFailException, match="was cancelled"):
            op.execute(context)
        assert killer.join() == RunStatus.CANCELLING
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_copied, summary.objects_cancelled) == (
        RunStatus.CANCELLED,
        0,
        N,
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=dst)
    # Killed: the next execution of this task instance starts a new run.
    assert current_run_id(redis.Redis.from_url(redis_srv.url), run_id) == f"{run_id}-g2"


def test_a_retry_re_attaches_to_its_run_in_progress_and_a_rerun_starts_a_new_one(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets, dispatches
) -> None:
    _, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    broker = redis.Redis.from_url(redis_srv.url)
    with paused(worker.process.pid) as stopped:
        first_try = make_operator(redis_srv.url, src, dst, timeout=0.3)
        with pytest.raises(AirflowException, match="retry of this task re-attaches") as raised:
            first_try.execute(context)
        assert not isinstance(raised.value, AirflowFailException)
        assert status_of(store, run_id) == RunStatus.RUNNING  # the run goes on
        queued = broker.llen(QUEUE)

        def check_then_resume() -> tuple[bool, int, int]:
            wait_until(lambda: len(dispatches) == 2, 30, "the retry to re-attach")
            seen = (dispatches[1].resumed, dispatches[1].chunks_sent, broker.llen(QUEUE))
            stopped.resume()
            return seen

        checks = InThread(check_then_resume)
        summary = make_operator(redis_srv.url, src, dst).execute(context)  # the retry
        assert checks.join() == (True, 0, queued)  # re-attached, nothing dispatched again
    assert (summary["run_id"], summary["status"]) == (run_id, RunStatus.SUCCEEDED)
    assert summary["objects_listed"] == summary["objects_copied"] == N
    # Its outcome was reported: running the task instance again (a clear) copies again.
    rerun = make_operator(redis_srv.url, src, dst).execute(context)
    assert rerun["run_id"] == f"{run_id}-g2" and rerun["objects_copied"] == N


def test_a_retry_finds_its_finished_run_and_returns_its_summary_without_listing(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    s3, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    args = {"source_prefix": None, "source_key": "data/file-3.txt"}
    args |= {"dest_prefix": None, "dest_key": "one.txt"}
    with paused(worker.process.pid), pytest.raises(AirflowException, match="had not ended"):
        make_operator(redis_srv.url, src, dst, timeout=0.2, **args).execute(context)
    assert final(store, run_id).status == RunStatus.SUCCEEDED
    s3.delete_object(Bucket=src, Key="data/file-3.txt")  # a listing would now fail
    summary = make_operator(redis_srv.url, src, dst, **args).execute(context)
    assert (summary["run_id"], summary["objects_copied"]) == (run_id, 1)
    assert s3.get_object(Bucket=dst, Key="one.txt")["Body"].read() == b"xxx"


def test_deferrable_defers_to_the_trigger_and_completes_from_its_event(
    worker: Worker, redis_conn_id: str, buckets
) -> None:
    s3, src, dst = buckets
    context = fake_context(map_index=3)
    op = S3CrossAccountCopyOperator(
        task_id="copy",
        source_s3_url=f"s3://{src}/data/",
        dest_s3_url=f"s3://{dst}/by-url/",
        redis_conn_id=redis_conn_id,
        aws_conn_id=None,
        deferrable=True,
        poll_interval=0.05,
        timeout=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=60 + operators.DEFER_GRACE_S)
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["run_id"] == run_id_for(context)
    assert (kwargs["redis_conn_id"], kwargs["redis_url"]) == (redis_conn_id, None)
    assert time.time() < kwargs["deadline"] <= time.time() + 60
    event = run_trigger(deferred.value.trigger)
    summary = op.execute_complete(context, event=event.payload)
    assert summary == event.payload["summary"]
    assert (summary["status"], summary["objects_copied"]) == (RunStatus.SUCCEEDED, N)
    copied = s3.list_objects_v2(Bucket=dst, Prefix="by-url/")["Contents"]
    assert sorted(o["Key"] for o in copied) == [f"by-url/file-{i}.txt" for i in range(N)]


def test_a_deferred_wait_times_out_and_the_retry_re_attaches(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    _, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    op = make_operator(redis_srv.url, src, dst, deferrable=True, timeout=0.3)
    with paused(worker.process.pid):
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(context)
        event = run_trigger(deferred.value.trigger)
        assert event.payload["status"] == "timeout"
        with pytest.raises(AirflowException, match="had not ended") as raised:
            op.execute_complete(context, event=event.payload)
        assert not isinstance(raised.value, AirflowFailException)
    assert final(store, run_id).status == RunStatus.SUCCEEDED
    summary = make_operator(redis_srv.url, src, dst, deferrable=True).execute(context)
    assert (summary["run_id"], summary["objects_copied"]) == (run_id, N)


def _no_s3(self: Any) -> Any:
    raise AssertionError("the operator built an S3 client: with list_in_pool it lists nothing")


def test_listed_in_the_pool_the_task_only_submits_and_reports_the_copy(
    worker: Worker, redis_srv: RedisServer, buckets, dispatches, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3, src, dst = buckets
    monkeypatch.setattr(S3CrossAccountCopyOperator, "_client_factory", _no_s3)
    summary = make_operator(redis_srv.url, src, dst, list_in_pool=True).execute(fake_context())
    assert dispatches == []  # the worker ran start_run, not the task
    assert (summary["status"], summary["objects_copied"]) == (RunStatus.SUCCEEDED, N)
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/")["Contents"]
    assert sorted(o["Key"] for o in copied) == [f"copied/file-{i}.txt" for i in range(N)]


def test_listed_in_the_pool_and_deferred_the_trigger_waits_for_the_worker(
    worker: Worker, redis_conn_id: str, buckets, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, src, dst = buckets
    monkeypatch.setattr(S3CrossAccountCopyOperator, "_client_factory", _no_s3)
    context = fake_context()
    op = make_operator(
        None, src, dst, redis_conn_id=redis_conn_id, list_in_pool=True, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["listed_by_worker"] is True
    event = run_trigger(deferred.value.trigger)
    summary = op.execute_complete(context, event=event.payload)
    assert (summary["status"], summary["objects_copied"]) == (RunStatus.SUCCEEDED, N)


@pytest.mark.parametrize("deferrable", [False, True])
def test_bad_input_found_by_the_listing_worker_fails_the_task_for_good(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets, deferrable: bool
) -> None:
    _, _, dst = buckets
    context = fake_context()
    missing = f"af-missing-{uuid.uuid4().hex[:6]}"
    op = make_operator(redis_srv.url, missing, dst, list_in_pool=True, deferrable=deferrable)
    with pytest.raises(AirflowFailException, match=f"source bucket '{missing}' does not exist"):
        if not deferrable:
            op.execute(context)
        else:
            with pytest.raises(TaskDeferred) as deferred:
                op.execute(context)
            event = run_trigger(deferred.value.trigger)
            assert event.payload["status"] == "invalid"
            op.execute_complete(context, event=event.payload)
    assert store.summary(run_id_for(context)) is None  # no run was created


def test_killed_before_a_worker_lists_its_run_the_copy_never_starts(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    s3, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    op = make_operator(redis_srv.url, src, dst, list_in_pool=True)
    with paused(worker.process.pid) as stopped:

        def kill_while_queued() -> str | None:
            # Once the task knows its run (just before it submits it; a kill in between is
            # found by the listing worker all the same), while the paused pool cannot list it.
            wait_until(lambda: op._attached is not None, 30, "the task to start its run")
            op.on_kill()  # no run yet: a worker has still to list it
            status = status_of(store, run_id)  # read while the pool is paused: no race
            stopped.resume()
            return status

        killer = InThread(kill_while_queued)
        with pytest.raises(AirflowFailException, match="was cancelled"):
            op.execute(context)
        assert killer.join() is None
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_listed, summary.objects_copied) == (
        RunStatus.CANCELLED,
        0,
        0,
    )
    assert "Contents" not in s3.list_objects_v2(Bucket=dst)


def test_a_run_id_another_copy_ended_under_is_never_reported_as_this_copy(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    # Another copy ran to its end under this task instance's run id (a deployment with the
    # same ids sharing the pool, or this task with other arguments): the task copies its own
    # request in the next generation instead of returning that copy's summary.
    s3, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    other = make_operator(redis_srv.url, src, dst, dest_prefix="elsewhere/")
    other._run_for = lambda client, store, base, request: run_id  # type: ignore[method-assign]
    assert other.execute(context)["run_id"] == run_id
    redis.Redis.from_url(redis_srv.url).delete(generation_key(run_id))  # as if never closed
    summary = make_operator(redis_srv.url, src, dst).execute(context)
    assert summary["run_id"] == f"{run_id}-g2"
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/").get("Contents", [])
    assert summary["objects_copied"] == len(copied) == N


def test_a_run_still_copying_another_request_fails_the_task_untouched(
    worker: Worker, redis_srv: RedisServer, store: RunStore, buckets
) -> None:
    _, src, dst = buckets
    context = fake_context()
    run_id = run_id_for(context)
    with paused(worker.process.pid):
        with pytest.raises(AirflowException, match="had not ended"):
            make_operator(redis_srv.url, src, dst, dest_prefix="other/", timeout=0.2).execute(
                context
            )
        with pytest.raises(AirflowFailException, match="still copying another request"):
            make_operator(redis_srv.url, src, dst).execute(context)
        assert status_of(store, run_id) == RunStatus.RUNNING  # not cancelled, not closed
    assert final(store, run_id).objects_copied == N


def test_run_ids_are_scoped_to_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    context = fake_context()
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://a@staging/airflow")
    staging = run_id_for(context)
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://a@prod/airflow")
    prod = run_id_for(context)
    assert staging != prod and run_id_for(context) == prod  # stable within one deployment
    monkeypatch.setenv("AIRFLOW__S3FANOUT__RUN_NAMESPACE", "team-a")
    named = run_id_for(context)
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://a@moved/airflow")
    assert run_id_for(context) == named not in (staging, prod)


def _try(context: dict[str, Any], number: int) -> dict[str, Any]:
    """The context of another try of the same task instance."""
    return {"ti": SimpleNamespace(**(vars(context["ti"]) | {"try_number": number}))}


def _deferred(op: S3CrossAccountCopyOperator, context: dict[str, Any]) -> Any:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    return deferred.value.trigger


@pytest.mark.parametrize("kill", ["after the new try attached", "before the new try started"])
def test_a_cleared_deferred_task_ends_in_one_outcome_whenever_the_old_kill_lands(
    worker: Worker, redis_conn_id: str, store: RunStore, buckets, kill: str
) -> None:
    # A clear of a deferred task on Airflow 3.x: the old trigger's on_kill comes from the
    # triggerer a moment after the clear, before or after the new try has started.
    s3, src, dst = buckets
    first = fake_context(try_number=1)
    base = run_id_for(first)

    def deferrable() -> S3CrossAccountCopyOperator:
        return make_operator(None, src, dst, redis_conn_id=redis_conn_id, deferrable=True)

    with paused(worker.process.pid) as stopped:
        old_trigger = _deferred(deferrable(), first)
        if kill == "before the new try started":
            asyncio.run(old_trigger.on_kill())
        new = deferrable()
        new_trigger = _deferred(new, _try(first, 2))
        if kill == "after the new try attached":
            asyncio.run(old_trigger.on_kill())
        stopped.resume()
    summary = new.execute_complete(_try(first, 2), event=run_trigger(new_trigger).payload)
    assert (summary["status"], summary["objects_copied"]) == (RunStatus.SUCCEEDED, N)
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/")["Contents"]
    assert len(copied) == N
    if kill == "after the new try attached":  # the new try drives the run the old one began
        assert summary["run_id"] == base
    else:  # the old run was cancelled first: the new try drives the next generation
        assert summary["run_id"] == f"{base}-g2"
        assert final(store, base).status == RunStatus.CANCELLED


def test_a_sync_with_a_report_deletes_extraneous_keys_and_returns_its_report(
    worker: Worker, redis_srv: RedisServer, buckets
) -> None:
    s3, src, dst = buckets
    s3.put_object(Bucket=dst, Key="copied/stale.txt", Body=b"the source has no such key")
    operator = make_operator(
        redis_srv.url,
        src,
        dst,
        delete_extraneous=True,
        max_delete=1,
        report=f"s3://{dst}/reports/",
    )
    summary = operator.execute(fake_context())
    assert (summary["objects_copied"], summary["objects_deleted"]) == (N, 1)
    copied = s3.list_objects_v2(Bucket=dst, Prefix="copied/")["Contents"]
    assert sorted(o["Key"] for o in copied) == [f"copied/file-{i}.txt" for i in range(N)]
    report = summary["report"]
    assert report["rows"] == N + 1 and report["missing"] == 0
    assert report["manifest_url"] == f"s3://{dst}/reports/{summary['run_id']}/manifest.json"
