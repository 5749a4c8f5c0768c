"""Waiting for a run whose listing a worker does (``--list-in-pool``), against redis-server."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from copy_control.errors import InvalidRequest
from copy_control.runs.waiting import ListingFailed, RunTimeout, wait_for_run
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


@pytest.fixture
def run_id() -> str:
    return f"wait-{uuid.uuid4().hex[:8]}"


def _later(seconds: float, action, *args) -> threading.Timer:
    timer = threading.Timer(seconds, action, args)
    timer.start()
    return timer


def _list_empty_run(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.finish_listing(run_id)  # no keys: the run succeeds at once


def test_a_run_not_listed_yet_is_waited_for(store: RunStore, run_id: str) -> None:
    with pytest.raises(InvalidRequest, match="no run"):
        wait_for_run(store, run_id, poll_s=0.05)  # listed here: it must exist already
    listed = _later(0.3, _list_empty_run, store, run_id)
    summary = wait_for_run(store, run_id, poll_s=0.05, timeout_s=60, listed_by_worker=True)
    listed.join()
    assert summary.status == "succeeded"


def test_bad_input_found_by_the_listing_worker_is_reported_at_once(
    store: RunStore, run_id: str
) -> None:
    message = "source bucket 'gone' does not exist: check the name"
    recorded = _later(0.2, store.record_listing_error, run_id, message, True)
    started = time.monotonic()
    with pytest.raises(InvalidRequest, match="source bucket 'gone' does not exist"):
        # The error is announced: the 20 s pause between readings is cut short.
        wait_for_run(store, run_id, poll_s=20, listed_by_worker=True)
    recorded.join()
    assert time.monotonic() - started < 10


def test_a_listing_that_stopped_says_how_to_resume(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)  # created, then the listing broke off
    store.record_listing_error(run_id, "SlowDown: please reduce your request rate", False)
    with pytest.raises(ListingFailed, match=f"SlowDown.*--run-id {run_id} to resume"):
        wait_for_run(store, run_id, poll_s=0.05, listed_by_worker=True)


def test_listing_again_forgets_the_previous_error(store: RunStore, run_id: str) -> None:
    store.record_listing_error(run_id, "InternalError: try again", False)
    store.clear_listing_error(run_id)
    assert store.listing_error(run_id) is None
    with pytest.raises(RunTimeout, match="waiting for a worker to list it"):
        wait_for_run(store, run_id, poll_s=0.05, timeout_s=0.2, listed_by_worker=True)
