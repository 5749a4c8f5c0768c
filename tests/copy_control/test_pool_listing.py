"""A worker's side of ``--list-in-pool``: what it records when it cannot list, on redis-server."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError

from copy_control.dispatch import pool_listing
from copy_control.dispatch.pool_listing import list_run
from copy_control.dispatch.runner import DispatchReport
from copy_control.request import CopyRequest
from copy_core.contract import ContractError
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


class _NoCredentials:
    """A worker's client factory on a host without AWS credentials."""

    def s3(self, identity: Any = None) -> Any:
        raise NoCredentialsError()


def _request() -> dict[str, Any]:
    return CopyRequest("src-bucket", "dst-bucket", source_prefix="in/").to_wire()


def test_a_malformed_run_id_is_refused_before_anything_is_recorded(store: RunStore) -> None:
    with pytest.raises(ContractError, match="run id"):
        list_run("bad}id", _request(), _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    assert store.client.keys("*bad}id*") == []


def test_a_request_that_is_not_one_is_recorded_as_bad_input(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    wire = {**_request(), "chunk_size": 0}
    list_run(run_id, wire, _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    error = store.listing_error(run_id)
    assert error is not None and error.bad_input
    assert "chunk_size must be between 1" in error.message
    assert not store.client.exists(RunKeys(run_id).run)
    assert not store.client.exists(RunKeys(run_id).lister)  # given up after the error too


def test_a_listing_that_fails_is_recorded_with_its_error_code(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    list_run(run_id, _request(), _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    error = store.listing_error(run_id)
    assert error is not None and not error.bad_input
    assert error.message.startswith("NoCredentialsError: Unable to locate credentials")


def test_a_run_another_worker_is_listing_is_left_to_it(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    assert store.take_listing(run_id, "the-other-worker", 30)
    list_run(run_id, _request(), _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    assert store.listing_error(run_id) is None  # it did not try: no client, no error
    assert store.client.get(RunKeys(run_id).lister) == "the-other-worker"
    assert not store.take_listing(run_id, "a-third-worker", 30)


def test_the_lease_is_kept_while_listing_and_given_up_after(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(pool_listing, "LEASE_S", 0.3)
    held: list[bool] = []

    def slow_listing(request: Any, run: str, *rest: Any) -> DispatchReport:
        for _ in range(4):  # 1.2 s: four times the lease, renewed every 0.1 s
            time.sleep(0.3)
            held.append(bool(store.client.exists(RunKeys(run).lister)))
        return DispatchReport(run, "succeeded", 0, resumed=False)

    monkeypatch.setattr("copy_control.dispatch.runner.start_run", slow_listing)

    class _Clients:
        def s3(self, identity: Any = None) -> Any:
            return None

    list_run(run_id, _request(), _Clients(), store, app=None)  # type: ignore[arg-type]
    assert held == [True] * 4
    assert not store.client.exists(RunKeys(run_id).lister)
    assert store.listing_error(run_id) is None


def test_a_run_cancelled_before_it_is_listed_ends_cancelled_unlisted(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    assert store.request_cancel(run_id) is None  # no run yet: marked
    list_run(run_id, _request(), _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    assert store.listing_error(run_id) is None  # it listed nothing: no client was made
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_listed) == ("cancelled", 0)
