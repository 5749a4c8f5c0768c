"""A run's report at its end: written, or a line that says why not and how to write it."""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

import pytest
from botocore.exceptions import ClientError

from copy_control.runs.batch_report import end_report
from copy_core.contract import CopyJob, ReportTarget, canonical_json
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url))


class _Refusing:
    """An S3 client every request of which is denied."""

    def __getattr__(self, operation: str) -> Any:
        def refuse(*_: Any, **__: Any) -> NoReturn:
            answer: Any = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
            raise ClientError(answer, operation)

        return refuse


def test_a_report_s3_refuses_leaves_a_line_saying_how_to_write_it(store: RunStore) -> None:
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    job = CopyJob("src-bucket", "dst-bucket", report=ReportTarget("reports", "copies/"))
    store.create_run(run_id, {}, max_failures=0, job=canonical_json(job.to_wire()))
    s3: Any = _Refusing()

    ended = end_report(store, run_id, s3, "s3://reports/copies/")

    assert ended.failed and ended.written is None
    assert ended.line is not None and "AccessDenied" in ended.line
    assert f"`s3fanout report {run_id} --format batch-csv --output s3://reports/copies/`" in (
        ended.line
    )


def test_a_run_without_a_report_has_nothing_to_say(store: RunStore) -> None:
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    store.create_run(
        run_id, {}, max_failures=0, job=canonical_json(CopyJob("a-b", "c-d").to_wire())
    )
    s3: Any = _Refusing()

    ended = end_report(store, run_id, s3, None)

    assert (ended.written, ended.line, ended.failed) == (None, None, False)
