"""Waiting for a run whose listing a worker does (``--list-in-pool``), against redis-server."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from copy_control.errors import InvalidRequest
from copy_control.runs.waiting import ListingFailed, RunLost, RunTimeout, wait_for_run
from copy_core.runs.keys import RunKeys
from copy_core.runs.leases import LISTING, LeaseStore
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


def _submitted(store: RunStore, run_id: str) -> None:
    """The listing in the pool, as ``submit`` puts it there before sending its task."""
    LeaseStore(store.client, 600).offer(run_id, LISTING, "{}", 900)


def _list_empty_run(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.finish_listing(run_id)  # no keys: the run succeeds at once


def test_a_run_not_listed_yet_is_waited_for(store: RunStore, run_id: str) -> None:
    with pytest.raises(InvalidRequest, match="no run"):
        wait_for_run(store, run_id, poll_s=0.05)  # listed here: it must exist already
    _submitted(store, run_id)
    listed = _later(0.3, _list_empty_run, store, run_id)
    summary = wait_for_run(store, run_id, poll_s=0.05, timeout_s=60, listed_by_worker=True)
    listed.join()
    assert summary.status == "succeeded"


def test_bad_input_found_by_the_listing_worker_is_reported_at_once(
    store: RunStore, run_id: str
) -> None:
    message = "source bucket 'gone' does not exist: check the name"
    _submitted(store, run_id)
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
    _submitted(store, run_id)
    with pytest.raises(RunTimeout, match="waiting for a worker to list it"):
        wait_for_run(store, run_id, poll_s=0.05, timeout_s=0.2, listed_by_worker=True)


def test_a_run_neither_in_redis_nor_on_its_way_is_lost(store: RunStore, run_id: str) -> None:
    # Listed in the pool, then Redis lost everything: no run, no listing queued or held.
    with pytest.raises(RunLost, match=f"the state of run {run_id} is gone"):
        wait_for_run(store, run_id, poll_s=0.05, timeout_s=60, listed_by_worker=True)


def test_a_run_that_vanishes_while_waited_for_is_lost(store: RunStore, run_id: str) -> None:
    store.create_run(run_id, {}, max_failures=0)
    store.register_chunk(run_id, "p0-0", 1, 1)
    _later(0.2, store.client.delete, RunKeys(run_id).run)
    with pytest.raises(RunLost):
        wait_for_run(store, run_id, poll_s=0.05, timeout_s=60)
