"""The operator without a worker: arguments, events from the trigger, lineage, packaging."""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from airflow_plugin import S3CrossAccountCopyOperator, combine_summaries, lineage
from airflow_plugin.compat import AirflowException, AirflowFailException, conf
from airflow_plugin.provider_info import get_provider_info
from airflow_plugin.runs import current_run_id
from airflow_plugin.triggers import RunEvent
from copy_control.option_spec import BY_NAME, OPTIONS
from copy_core.contract import KeyStatus, RunStatus
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer
from tests.airflow_plugin.helpers import fake_context, new_run, record_all


def operator(**kwargs: Any) -> S3CrossAccountCopyOperator:
    args = {"task_id": "copy", "source_bucket": "src-bucket", "dest_bucket": "dst-bucket"}
    return S3CrossAccountCopyOperator(**(args | {"source_prefix": "data/"} | kwargs))


def test_locations_roles_and_options_are_templated() -> None:
    fields = set(S3CrossAccountCopyOperator.template_fields)
    expected = {
        "source_bucket",
        "source_key",
        "source_prefix",
        "source_s3_url",
        "dest_bucket",
        "dest_key",
        "dest_prefix",
        "dest_s3_url",
        "source_role_arn",
        "dest_role_arn",
        "external_id",
        "redis_conn_id",
        "overwrite",
        "multipart_threshold",
        "part_size",
        "metadata_directive",
        "metadata",
        "tagging",
        "tags",
        "storage_class",
        "acl",
        "sse",
        "sse_kms_key_id",
        "checksum_algorithm",
        "copy_mode",
    }
    assert expected <= fields
    op = operator()
    assert all(hasattr(op, name) for name in fields)


def test_deferrable_defaults_to_airflows_default_deferrable() -> None:
    default = inspect.signature(S3CrossAccountCopyOperator.__init__).parameters["deferrable"]
    assert default.default is conf.getboolean("operators", "default_deferrable", fallback=False)


def test_s3_urls_are_an_alternative_to_buckets_and_keys() -> None:
    op = S3CrossAccountCopyOperator(
        task_id="copy", source_s3_url="s3://src-bucket/a/", dest_s3_url="s3://dst-bucket/b/"
    )
    request = op.build_request()
    assert (request.source_bucket, request.source_prefix) == ("src-bucket", "a/")
    assert (request.dest_bucket, request.dest_prefix) == ("dst-bucket", "b/")
    assert request.dest_for("a/x/y.txt") == "b/x/y.txt"


def test_a_url_and_a_bucket_together_fail_before_anything_is_dispatched() -> None:
    op = operator(source_s3_url="s3://src-bucket/a/", source_prefix=None)
    with pytest.raises(AirflowFailException, match="give source_s3_url, or source_bucket"):
        op.execute(fake_context())


def test_deferrable_with_a_password_in_the_url_fails_before_anything_is_dispatched(
    redis_srv: RedisServer,
) -> None:
    op = operator(deferrable=True, redis_url="redis://:hunter2@127.0.0.1:1/0")
    with pytest.raises(AirflowFailException, match="use redis_conn_id"):
        op.execute(fake_context())
    with pytest.raises(AirflowFailException, match="not both"):
        operator(redis_url=redis_srv.url, redis_conn_id="c").execute(fake_context())


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url))


def finished_event(store: RunStore, outcome: KeyStatus, **run: Any) -> dict[str, Any]:
    run_id = new_run(store, **run)
    if outcome is KeyStatus.CANCELLED:
        store.request_cancel(run_id)
    record_all(store, run_id, outcome)
    summary = store.summary(run_id)
    assert summary is not None and summary.is_final
    status = {"succeeded": "success", "failed": "failed", "cancelled": "cancelled"}
    return RunEvent(status[summary.status], run_id, summary).to_payload()


def test_execute_complete_returns_the_summary_and_closes_the_run(
    redis_srv: RedisServer, store: RunStore
) -> None:
    event = finished_event(store, KeyStatus.COPIED)
    result = operator(redis_url=redis_srv.url).execute_complete(fake_context(), event=event)
    assert result == event["summary"]
    assert result["status"] == RunStatus.SUCCEEDED and result["objects_copied"] == 3
    client = redis.Redis.from_url(redis_srv.url)
    assert current_run_id(client, event["run_id"]) == f"{event['run_id']}-g2"


@pytest.mark.parametrize(
    ("outcome", "run", "max_failures", "error"),
    [
        (KeyStatus.FAILED, {"max_failures": 0}, 0, "3 keys failed"),
        (KeyStatus.FAILED, {"max_failures": None}, 2, r"3 keys failed \(max_failures=2\)"),
        (KeyStatus.CANCELLED, {}, 0, "was cancelled"),
    ],
)
def test_execute_complete_fails_for_good_on_failed_keys_or_a_cancelled_run(
    redis_srv: RedisServer, store: RunStore, outcome, run, max_failures, error: str
) -> None:
    event = finished_event(store, outcome, **run)
    op = operator(redis_url=redis_srv.url, max_failures=max_failures)
    with pytest.raises(AirflowFailException, match=error):
        op.execute_complete(fake_context(), event=event)


def test_execute_complete_accepts_failures_up_to_max_failures(
    redis_srv: RedisServer, store: RunStore
) -> None:
    event = finished_event(store, KeyStatus.FAILED, max_failures=3)
    result = operator(redis_url=redis_srv.url, max_failures=3).execute_complete({}, event=event)
    assert result["objects_failed"] == 3
    assert [f["error_code"] for f in result["failures"]] == ["AccessDenied"] * 3


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (
            {"status": "timeout", "run_id": "af-1", "summary": None},
            "retry of this task re-attaches",
        ),
        ({"status": "error", "run_id": "af-1", "message": "Redis unreachable"}, "unreachable"),
        ({"status": "success", "run_id": "af-1"}, "unexpected event"),
        (None, "unexpected event"),
    ],
)
def test_timeouts_errors_and_bad_events_fail_the_try(event, error: str) -> None:
    with pytest.raises(AirflowException, match=error) as raised:
        operator(timeout=5).execute_complete(fake_context(), event=event)
    assert not isinstance(raised.value, AirflowFailException)  # a retry may help


def test_bad_input_found_by_the_listing_worker_fails_the_task_for_good() -> None:
    event = {"status": "invalid", "run_id": "af-1", "message": "source bucket 'x' does not exist"}
    with pytest.raises(AirflowFailException, match="source bucket 'x' does not exist"):
        operator(list_in_pool=True).execute_complete(fake_context(), event=event)


def test_a_listing_that_stopped_fails_the_try_with_what_a_retry_does(store: RunStore) -> None:
    # Waiting in the task reports it as the trigger does: no CLI advice (--run-id) in Airflow.
    run_id = f"af-stopped-{uuid.uuid4().hex[:6]}"
    store.record_listing_error(run_id, "SlowDown: later", bad_input=False)
    with pytest.raises(AirflowException) as raised:
        op = operator(list_in_pool=True, poll_interval=0.05)
        op._wait(store, run_id, op.prepared())
    assert not isinstance(raised.value, AirflowFailException)  # a retry resumes the listing
    assert str(raised.value) == (
        f"Run {run_id}: the worker listing the run stopped: SlowDown: later (a retry resumes it)"
    )


@dataclass
class FakeDataset:
    namespace: str
    name: str


@dataclass
class FakeLineage:
    inputs: list[FakeDataset] = field(default_factory=list)
    outputs: list[FakeDataset] = field(default_factory=list)


@pytest.mark.parametrize(
    ("kwargs", "source", "dest"),
    [
        ({"source_prefix": "data/", "dest_prefix": "copy/"}, "data/", "copy/"),
        ({"source_prefix": "", "dest_prefix": None}, "/", "/"),
        (
            {"source_prefix": None, "source_key": "a/b.csv", "dest_prefix": "in/"},
            "a/b.csv",
            "in/b.csv",
        ),
        ({"source_prefix": None, "source_key": "a/b.csv", "dest_key": "c.csv"}, "a/b.csv", "c.csv"),
    ],
)
def test_openlineage_datasets_name_the_bucket_and_key_or_prefix(
    monkeypatch: pytest.MonkeyPatch, kwargs, source: str, dest: str
) -> None:
    monkeypatch.setattr(lineage, "openlineage_classes", lambda: (FakeDataset, FakeLineage))
    op = operator(**kwargs)
    expected = FakeLineage(
        inputs=[FakeDataset("s3://src-bucket", source)],
        outputs=[FakeDataset("s3://dst-bucket", dest)],
    )
    assert op.get_openlineage_facets_on_start() == expected
    assert op.get_openlineage_facets_on_complete(None) == expected


def test_openlineage_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    assert operator().get_openlineage_facets_on_start() is None  # provider not installed here
    monkeypatch.setattr(lineage, "openlineage_classes", lambda: (FakeDataset, FakeLineage))
    assert operator(source_s3_url="s3://x/").get_openlineage_facets_on_start() == FakeLineage()


def test_combine_summaries_adds_up_mapped_runs() -> None:
    one = {"run_id": "a", "status": "succeeded", "objects_copied": 2, "bytes_copied": 10}
    two = {"run_id": "b", "status": "failed", "objects_copied": 1, "objects_failed": 1}
    total = combine_summaries([one, None, {**two, "failures": [{"key": "k"}]}])
    assert total["objects_copied"] == 3 and total["objects_failed"] == 1
    assert total["bytes_copied"] == 10
    assert total["runs"] == 2 and total["runs_missing"] == 1
    assert total["statuses"] == {"succeeded": 1, "failed": 1}
    assert total["failures"] == [{"key": "k"}]


def test_provider_info_lists_the_operator_and_the_trigger() -> None:
    info = get_provider_info()
    assert info["package-name"] == "s3-fanout-copy"
    assert info["versions"] and info["versions"][0][0].isdigit()
    modules = {kind: info[kind][0]["python-modules"] for kind in ("operators", "triggers")}
    assert modules == {
        "operators": ["airflow_plugin.operators"],
        "triggers": ["airflow_plugin.triggers"],
    }


def test_airflow_finds_the_provider_through_its_entry_point() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()  # type: ignore[no-untyped-call,unused-ignore]
    assert "s3-fanout-copy" in manager.providers
    assert any(t.trigger_class_name == "airflow_plugin.triggers" for t in manager.trigger)


def test_selection_arguments_reach_the_request() -> None:
    request = operator(
        include=["*.parquet"],
        exclude="tmp/*",
        min_size="1KiB",
        max_size=10_000,
        modified_after="2026-01-01T00:00:00Z",
        listing_concurrency=4,
    ).build_request()
    assert request.selection is not None
    assert request.selection.include == ("*.parquet",)
    assert request.selection.exclude == ("tmp/*",)
    assert (request.selection.min_size, request.selection.max_size) == (1024, 10_000)
    assert request.listing_concurrency == 4


def test_a_dry_run_counts_and_dispatches_nothing(
    s3_endpoint: str, redis_srv: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    source, dest = "plan-src-bucket", "plan-dst-bucket"
    for bucket in (source, dest):
        s3.create_bucket(Bucket=bucket)
    for i in range(5):
        s3.put_object(Bucket=source, Key=f"data/{i}.csv", Body=b"x" * (i + 1))
    s3.put_object(Bucket=dest, Key="data/0.csv", Body=b"x")
    op = operator(
        source_bucket=source,
        dest_bucket=dest,
        dest_prefix="data/",
        dry_run=True,
        overwrite="if-different",
        exclude="4.csv",
        redis_url=redis_srv.url,
    )
    queued = redis.Redis.from_url(redis_srv.url).llen("s3copy")
    result = op.execute(fake_context())
    assert (result["objects_filtered"], result["objects_to_skip"]) == (1, 1), result
    assert result["objects_to_copy"] == 3
    assert redis.Redis.from_url(redis_srv.url).llen("s3copy") == queued
    assert s3.list_objects_v2(Bucket=dest)["KeyCount"] == 1


OPERATOR_ONLY = {
    *("source_bucket", "source_key", "source_prefix", "source_s3_url"),
    *("dest_bucket", "dest_key", "dest_prefix", "dest_s3_url"),
    *("redis_conn_id", "redis_url", "aws_conn_id", "deferrable"),
    *("poll_interval", "progress_interval", "cancel_on_kill"),
}


def test_the_operator_arguments_are_the_declared_options_and_its_own() -> None:
    parameters = inspect.signature(S3CrossAccountCopyOperator.__init__).parameters
    names = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert names - OPERATOR_ONLY == set(BY_NAME)
    assert {n: parameters[n].default for n in BY_NAME} == {o.name: o.default for o in OPTIONS}
