"""A worker's side of ``--list-in-pool``: what it records when it cannot list, on redis-server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError

from copy_control.dispatch.pool_listing import check_listing_message, list_run, submit
from copy_control.request import CopyRequest
from copy_core.contract import ContractError
from copy_core.runs.controls import RunControls
from copy_core.runs.keys import RunKeys
from copy_core.runs.leases import LISTING, LeaseStore
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url), ttl_s=600)


class _NoCredentials:
    """A worker's client factory on a host without AWS credentials."""

    def s3(self, identity: Any = None, **_: Any) -> Any:
        raise NoCredentialsError()


def _request() -> dict[str, Any]:
    return CopyRequest("src-bucket", "dst-bucket", source_prefix="in/").to_wire()


CONTROLS = RunControls()


def test_a_malformed_listing_message_is_refused_before_anything_is_recorded(
    store: RunStore,
) -> None:
    with pytest.raises(ContractError, match="run id"):
        check_listing_message("bad}id", _request(), None)
    with pytest.raises(ContractError, match="priority"):
        check_listing_message("good-id", _request(), {"priority": "urgent"})
    with pytest.raises(ContractError, match="request object"):
        check_listing_message("good-id", "not a request", None)
    assert store.client.keys("*bad}id*") == []


def test_a_request_that_is_not_one_is_recorded_as_bad_input(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    wire = {**_request(), "chunk_size": 0}
    list_run(run_id, wire, CONTROLS, _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    error = store.listing_error(run_id)
    assert error is not None and error.bad_input
    assert "chunk_size must be between 1" in error.message
    assert not store.client.exists(RunKeys(run_id).run)


def test_a_listing_that_fails_is_recorded_with_its_error_code(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    list_run(run_id, _request(), CONTROLS, _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    error = store.listing_error(run_id)
    assert error is not None and not error.bad_input
    assert error.message.startswith("NoCredentialsError: Unable to locate credentials")


def test_a_submitted_listing_is_in_the_pool_with_its_message(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    sent: list[dict[str, Any]] = []

    class _App:
        def send_task(self, name: str, kwargs: dict[str, Any], **_: Any) -> None:
            sent.append({"task": name, "kwargs": kwargs})

    submit(CopyRequest.from_wire(_request()), run_id, store, _App(), RunControls("high"))  # type: ignore[arg-type]
    assert LeaseStore(store.client, 600).holder(run_id, LISTING) == "queued"
    resend = store.client.hget(RunKeys(run_id).resend, LISTING)
    assert resend is not None and json.loads(resend) == sent[0]
    assert sent[0]["kwargs"]["controls"]["priority"] == "high"


def test_a_run_cancelled_before_it_is_listed_ends_cancelled_unlisted(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    assert store.request_cancel(run_id) is None  # no run yet: marked
    list_run(run_id, _request(), CONTROLS, _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    assert store.listing_error(run_id) is None  # it listed nothing: no client was made
    summary = store.summary(run_id)
    assert summary is not None
    assert (summary.status, summary.objects_listed) == ("cancelled", 0)
