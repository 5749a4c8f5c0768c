"""S3FanoutRunTrigger against a real redis-server: serialization, every event, on_kill."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from airflow_plugin import triggers
from airflow_plugin.compat import TRIGGERS_HAVE_ON_KILL
from airflow_plugin.runs import current_run_id
from airflow_plugin.triggers import RunEvent, S3FanoutRunTrigger
from copy_core.contract import KeyStatus, RunStatus, RunSummary
from copy_core.runs.async_reading import read_summary_async
from copy_core.runs.leases import LISTING, LeaseStore
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer, free_port, redis_server, wait_until
from tests.airflow_plugin.helpers import (
    InThread,
    first_event,
    new_run,
    record_all,
    run_trigger,
    status_of,
)

CLASSPATH = "airflow_plugin.triggers.S3FanoutRunTrigger"
PASSWORD = "s3cret-pw"  # RedisServer.url does not quote it (quoting: test_connections.py)


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url))


def trigger_for(url: str, run_id: str, **kwargs) -> S3FanoutRunTrigger:
    return S3FanoutRunTrigger(run_id=run_id, redis_url=url, poll_interval=0.05, **kwargs)


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The status of every reading the trigger makes, in order ("none": no such run)."""
    seen: list[str] = []

    async def counting_read(client: Any, run: str) -> RunSummary | None:
        summary = await read_summary_async(client, run)
        seen.append(summary.status if summary else "none")
        return summary

    monkeypatch.setattr("airflow_plugin.triggers.read_summary_async", counting_read)
    return seen


def test_serialize_is_the_classpath_and_plain_kwargs() -> None:
    trigger = S3FanoutRunTrigger(
        run_id="af-1", redis_conn_id="pool_redis", poll_interval=3.0, deadline=1800000000.5
    )
    assert trigger.serialize() == (
        CLASSPATH,
        {
            "run_id": "af-1",
            "redis_conn_id": "pool_redis",
            "redis_url": None,
            "poll_interval": 3.0,
            "progress_interval": 30.0,
            "deadline": 1800000000.5,
            "cancel_on_kill": True,
            "listed_by_worker": False,
            "try_number": None,
        },
    )


def test_serialize_round_trips_through_the_installed_classpath() -> None:
    trigger = S3FanoutRunTrigger(run_id="af-2", redis_url="rediss://copy-redis:6380/1")
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    again = cls(**json.loads(json.dumps(kwargs)))  # what the metadata DB stores is JSON
    assert again.serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@copy-redis:6379/0",
        "rediss://copy:hunter2@copy-redis:6380/0",
        "redis://copy-redis:6379/0?password=hunter2",
        "rediss://copy-redis:6380/0?ssl_password=hunter2",
    ],
)
def test_a_url_with_a_password_is_never_taken(url: str) -> None:
    with pytest.raises(ValueError, match="redis_conn_id"):
        S3FanoutRunTrigger(run_id="af-3", redis_url=url)


def test_exactly_one_of_connection_and_url() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        S3FanoutRunTrigger(run_id="af-4")
    with pytest.raises(ValueError, match="exactly one"):
        S3FanoutRunTrigger(run_id="af-4", redis_conn_id="c", redis_url="redis://h:6379/0")


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (KeyStatus.COPIED, "success"),
        (KeyStatus.FAILED, "failed"),
        (KeyStatus.CANCELLED, "cancelled"),
    ],
)
def test_a_finished_run_gives_one_event_with_its_summary(
    redis_srv: RedisServer, store: RunStore, outcome: KeyStatus, status: str
) -> None:
    run_id = new_run(store)
    if outcome is KeyStatus.CANCELLED:
        store.request_cancel(run_id)
    record_all(store, run_id, outcome)
    event = run_trigger(trigger_for(redis_srv.url, run_id))
    parsed = RunEvent.from_payload(event.payload)
    assert (parsed.status, parsed.run_id) == (status, run_id)
    assert parsed.summary is not None
    assert parsed.summary.to_dict() == event.payload["summary"]
    assert parsed.summary.objects_listed == 3


def test_a_run_in_progress_is_polled_until_it_ends(
    redis_srv: RedisServer, store: RunStore, readings: list[str]
) -> None:
    run_id = new_run(store)

    async def scenario() -> Any:
        waiting = asyncio.create_task(first_event(trigger_for(redis_srv.url, run_id)))
        while len(readings) < 2:  # the trigger has seen the run in progress, twice
            await asyncio.sleep(0.01)
        assert not waiting.done()
        record_all(store, run_id, KeyStatus.COPIED)
        return await asyncio.wait_for(waiting, 10)

    event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert readings[0] == RunStatus.RUNNING and readings[-1] == RunStatus.SUCCEEDED


def test_the_deadline_gives_a_timeout_event_with_the_last_summary(
    redis_srv: RedisServer, store: RunStore
) -> None:
    run_id = new_run(store)
    started = time.monotonic()
    event = run_trigger(trigger_for(redis_srv.url, run_id, deadline=time.time() + 0.3))
    assert event.payload["status"] == "timeout"
    assert event.payload["summary"]["status"] == RunStatus.RUNNING
    assert "it goes on" in event.payload["message"]
    assert time.monotonic() - started < 5
    assert status_of(store, run_id) == RunStatus.RUNNING  # the trigger only reads


def test_a_missing_run_is_an_error_event(redis_srv: RedisServer) -> None:
    event = run_trigger(trigger_for(redis_srv.url, "af-no-such-run"))
    assert event.payload == {
        "status": "error",
        "run_id": "af-no-such-run",
        "summary": None,
        "message": "no run 'af-no-such-run' in Redis (wrong Redis, or it was lost)",
    }


def test_a_run_a_worker_lists_is_waited_for_until_it_exists(
    redis_srv: RedisServer, store: RunStore, readings: list[str]
) -> None:
    run_id = f"af-pool-{uuid.uuid4().hex[:6]}"
    LeaseStore(store.client, 600).offer(run_id, LISTING, "{}", 900)  # as submit() does

    def list_and_end() -> None:
        wait_until(lambda: len(readings) >= 2, 30, "the trigger to read a missing run")
        store.create_run(run_id, {}, max_failures=0)
        store.finish_listing(run_id)  # no keys: the run succeeds at once

    lister = InThread(list_and_end)
    event = run_trigger(trigger_for(redis_srv.url, run_id, listed_by_worker=True))
    lister.join()
    assert event.payload["status"] == "success"
    assert readings[:2] == ["none", "none"]


def test_a_run_neither_in_redis_nor_on_its_way_is_an_error_event(
    redis_srv: RedisServer, store: RunStore
) -> None:
    # Listed in the pool, but Redis lost everything: no run, and no listing queued or held.
    event = run_trigger(trigger_for(redis_srv.url, "af-lost-run", listed_by_worker=True))
    assert event.payload["status"] == "error"
    assert "its state was lost" in event.payload["message"]


@pytest.mark.parametrize(
    ("bad_input", "status", "message"),
    [
        (True, "invalid", "source bucket 'gone' does not exist"),
        (False, "error", "the worker listing the run stopped: SlowDown: later (a retry resumes"),
    ],
)
def test_a_listing_the_worker_could_not_do_ends_the_wait(
    redis_srv: RedisServer, store: RunStore, bad_input: bool, status: str, message: str
) -> None:
    run_id = f"af-pool-{uuid.uuid4().hex[:6]}"
    reason = "source bucket 'gone' does not exist" if bad_input else "SlowDown: later"
    store.record_listing_error(run_id, reason, bad_input)
    event = run_trigger(trigger_for(redis_srv.url, run_id, listed_by_worker=True))
    assert event.payload["status"] == status
    assert message in event.payload["message"]


def test_an_unreachable_redis_is_retried_then_an_error_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(triggers, "REDIS_OUTAGE_S", 0.2)
    event = run_trigger(trigger_for(f"redis://127.0.0.1:{free_port()}/0", "af-5"))
    assert event.payload["status"] == "error"
    assert "Redis unreachable" in event.payload["message"]


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    workdir = tmp_path_factory.mktemp("redis-acl")
    with redis_server(workdir, username="pool", password=PASSWORD) as server:
        yield server


def test_a_connection_is_resolved_in_the_trigger_and_its_password_never_serialized(
    redis_with_password: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = {
        "conn_type": "redis",
        "host": "127.0.0.1",
        "port": redis_with_password.port,
        "login": "pool",
        "password": PASSWORD,
    }
    monkeypatch.setenv("AIRFLOW_CONN_S3FANOUT_ACL_REDIS", json.dumps(conn))
    store = RunStore(connect(redis_with_password.url))
    run_id = new_run(store)
    record_all(store, run_id, KeyStatus.COPIED)
    trigger = S3FanoutRunTrigger(run_id=run_id, redis_conn_id="s3fanout_acl_redis")
    assert PASSWORD not in json.dumps(trigger.serialize())
    assert run_trigger(trigger).payload["status"] == "success"


def test_on_kill_cancels_the_run_and_closes_it(redis_srv: RedisServer, store: RunStore) -> None:
    run_id = new_run(store)
    asyncio.run(trigger_for(redis_srv.url, run_id).on_kill())
    assert status_of(store, run_id) == RunStatus.CANCELLING
    record_all(store, run_id, KeyStatus.CANCELLED)  # what the workers do with its chunks
    assert status_of(store, run_id) == RunStatus.CANCELLED
    client = redis.Redis.from_url(redis_srv.url)
    assert current_run_id(client, run_id) == f"{run_id}-g2"


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (None, "expected a dict"),
        ({"status": "done", "run_id": "r"}, "unknown event status"),
        ({"status": "error", "run_id": ""}, "no run id"),
        ({"status": "success", "run_id": "r", "summary": None}, "final summary"),
        ({"status": "success", "run_id": "r", "summary": {"run_id": "r"}}, "missing"),
    ],
)
def test_malformed_events_are_refused(payload, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        RunEvent.from_payload(payload)


def with_task_instance(trigger: Any, state: str | None) -> Any:
    """Give the trigger a task instance in Airflow 2.10's metadata DB, as 2.10's triggerer does.

    The row is in ``state``; the trigger's object only carries its identity (and no
    trigger_timeout), as the triggerer's ORM object would.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.operators.empty import EmptyOperator
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType

    from airflow_plugin.compat import DAG

    dag_id, run_id = f"cleanup_{uuid.uuid4().hex[:8]}", "manual__cleanup"
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        task = EmptyOperator(task_id="copy")
    with create_session() as session:
        run = DagRun(  # type: ignore[call-arg,unused-ignore]
            dag_id=dag_id,
            run_id=run_id,
            execution_date=datetime.now(UTC),
            run_type=DagRunType.MANUAL,
        )
        session.add(run)
        session.flush()
        session.add(TaskInstance(task, run_id=run_id, state=state))  # type: ignore[call-arg,unused-ignore]
    trigger.task_instance = SimpleNamespace(
        dag_id=dag_id, task_id="copy", run_id=run_id, map_index=-1, trigger_timeout=None
    )
    return trigger.task_instance


@pytest.mark.skipif(TRIGGERS_HAVE_ON_KILL, reason="Airflow 3.x calls on_kill instead")
@pytest.mark.parametrize(
    ("ti_state", "cancelled"),
    [("deferred", False), ("failed", True), ("success", True), (None, True)],
)
def test_airflow2_cleanup_cancels_only_when_the_task_left_deferral(
    redis_srv: RedisServer, store: RunStore, ti_state: str | None, cancelled: bool
) -> None:
    run_id = new_run(store)
    trigger = trigger_for(redis_srv.url, run_id)
    with_task_instance(trigger, ti_state)
    asyncio.run(trigger.cleanup())  # the trigger was removed (or the triggerer stops)
    expected = RunStatus.CANCELLING if cancelled else RunStatus.RUNNING
    assert status_of(store, run_id) == expected


@pytest.mark.skipif(TRIGGERS_HAVE_ON_KILL, reason="Airflow 3.x calls on_kill instead")
def test_airflow2_cleanup_leaves_the_run_after_its_event_or_a_timeout(
    redis_srv: RedisServer, store: RunStore
) -> None:
    run_id = new_run(store)
    timed_out = trigger_for(redis_srv.url, run_id)
    ti = with_task_instance(timed_out, "scheduled")
    ti.trigger_timeout = datetime.now(UTC) - timedelta(seconds=1)
    asyncio.run(timed_out.cleanup())
    after_event = trigger_for(redis_srv.url, run_id, deadline=time.time())
    with_task_instance(after_event, "scheduled")
    assert run_trigger(after_event).payload["status"] == "timeout"
    asyncio.run(after_event.cleanup())
    no_cancel = trigger_for(redis_srv.url, run_id, cancel_on_kill=False)
    with_task_instance(no_cancel, "failed")
    asyncio.run(no_cancel.cleanup())
    asyncio.run(no_cancel.on_kill())
    assert status_of(store, run_id) == RunStatus.RUNNING


@pytest.mark.skipif(not TRIGGERS_HAVE_ON_KILL, reason="Airflow 2.10 cancels in cleanup")
def test_airflow3_cleanup_never_cancels(redis_srv: RedisServer, store: RunStore) -> None:
    run_id = new_run(store)
    asyncio.run(trigger_for(redis_srv.url, run_id).cleanup())  # e.g. a triggerer restart
    assert status_of(store, run_id) == RunStatus.RUNNING


def test_the_end_of_a_run_is_seen_without_waiting_for_the_next_reading(
    redis_srv: RedisServer, store: RunStore, readings: list[str]
) -> None:
    run_id = new_run(store)
    trigger = S3FanoutRunTrigger(run_id=run_id, redis_url=redis_srv.url, poll_interval=600)

    async def scenario() -> Any:
        waiting = asyncio.create_task(first_event(trigger))
        while not readings:  # the trigger has read the run once and is pausing for 600 s
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        record_all(store, run_id, KeyStatus.COPIED)
        return await asyncio.wait_for(waiting, 30)  # the run's end cuts the pause short

    event = asyncio.run(scenario())
    assert event.payload["status"] == "success"
    assert readings == [RunStatus.RUNNING, RunStatus.SUCCEEDED]
