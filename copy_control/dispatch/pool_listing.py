"""Listing in the worker pool (``s3fanout copy --list-in-pool``): the CLI only submits the run.

A CLI process that lists must first load boto3 and build an S3 client (botocore parses its
JSON models) before its first request, which a copy of a few thousand objects pays again per
object. A
worker has both already. So the CLI sends the whole request as one task; a worker lists and
dispatches it with ``runner.start_run``, the code the CLI and the operator run themselves, and
if it stops, records why for the CLI that waits. The CLI then needs Redis but no AWS access.

Nothing else changes: the listing is recorded in Redis as it goes, so a listing task delivered
again (its worker died: the listing's lease expires, and the message is sent again) or a
repeated command carries on from the recorded cursors. One worker lists a run at a time: it
holds the run's listing lease (``copy_core.runs.leases``), and a listing task that finds it
held leaves the run to its holder (two listers would send the same chunks
twice: counted once, but copied twice while both are in flight).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest, check_run_id, check_same_request
from copy_core.broker import send_task
from copy_core.contract import LIST_TASK_NAME, ContractError, canonical_json
from copy_core.runs.controls import InvalidControl, RunControls
from copy_core.runs.leases import LISTING, LeaseStore
from copy_core.runs.store import QUEUE_PATIENCE_S, RunGone, RunStore

if TYPE_CHECKING:
    from celery import Celery

    from copy_core.aws.clients import ClientFactory

log = logging.getLogger(__name__)


def submit(
    request: CopyRequest,
    run_id: str,
    store: RunStore,
    app: Celery,
    controls: RunControls | None = None,
) -> None:
    """Hand run ``run_id`` to the pool to list; InvalidRequest if the id is another copy's.

    The listing is put in the pool first, with its message, so that a message lost before any
    worker took it is sent again, and a waiter can tell a run waiting for a lister from one
    whose state is gone.
    """
    check_same_request(store.run_hash(run_id), request, run_id)
    store.clear_listing_error(run_id)
    kwargs = {
        "run_id": run_id,
        "request": request.to_wire(),
        "controls": (controls or RunControls()).to_wire(),
    }
    resend = canonical_json({"task": LIST_TASK_NAME, "kwargs": kwargs})
    LeaseStore(store.client, store.ttl_s).offer(run_id, LISTING, resend, QUEUE_PATIENCE_S)
    send_task(app, LIST_TASK_NAME, kwargs, run_id)


def check_listing_message(run_id: Any, wire: Any, controls: Any) -> RunControls:
    """ContractError unless the message has a run id, a request and controls.

    Nothing is recorded under a malformed run id.
    """
    if not isinstance(run_id, str) or not isinstance(wire, Mapping):
        raise ContractError("a listing message has a run id and a request object")
    try:
        check_run_id(run_id)
        return RunControls.from_wire(controls or {})
    except (InvalidRequest, InvalidControl) as exc:
        raise ContractError(str(exc)) from None


def list_run(
    run_id: str,
    wire: Mapping[str, Any],
    controls: RunControls,
    clients: ClientFactory,
    store: RunStore,
    app: Celery,
) -> None:
    """A worker's part (under the run's listing lease): list and dispatch the run, or record
    why it could not."""
    # Imported here: only a worker that takes a listing task needs the listing machinery.
    from copy_control.dispatch.runner import control_clients, start_run  # noqa: PLC0415
    from copy_core.classify import classify  # noqa: PLC0415

    try:
        request = CopyRequest.from_wire(wire)
        if store.cancel_requested(run_id):
            # Cancelled while this task waited in the queue (an Airflow task killed): the run
            # is created only to end it cancelled, so that whoever waits for it sees the end.
            store.create_run(run_id, request.describe(), request.max_failures, controls=controls)
            log.info("cancelled before listing", extra={"status": store.request_cancel(run_id)})
            return
        s3, dest_s3 = control_clients(request, run_id, clients)
        report = start_run(request, run_id, s3, store, app, controls, dest_s3=dest_s3)
    except RunGone:  # nothing to record it in: the waiting side finds the run lost
        log.warning("listing stopped: the run's state is gone from Redis")
    except InvalidRequest as exc:
        log.warning("run not listed: bad input", extra={"reason": str(exc)})
        store.record_listing_error(run_id, str(exc), bad_input=True)
    except Exception as exc:  # recorded for the CLI; a repeated command resumes the listing
        error = classify(exc)
        log.exception("listing stopped", extra={"error_code": error.code})
        store.record_listing_error(run_id, f"{error.code}: {error.message}", bad_input=False)
    else:
        log.info("listed", extra={"chunks": report.chunks_sent, "status": report.status})
