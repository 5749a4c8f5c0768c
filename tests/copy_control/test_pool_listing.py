"""A worker's side of ``--list-in-pool``: what it records when it cannot list, on redis-server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import NoCredentialsError

from copy_control.pool_listing import list_run
from copy_control.request import CopyRequest
from copy_workers.contract import ContractError, RunKeys
from copy_workers.runstate import RunStore, connect
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


def test_a_listing_that_fails_is_recorded_with_its_error_code(store: RunStore) -> None:
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    list_run(run_id, _request(), _NoCredentials(), store, app=None)  # type: ignore[arg-type]
    error = store.listing_error(run_id)
    assert error is not None and not error.bad_input
    assert error.message.startswith("NoCredentialsError: Unable to locate credentials")
