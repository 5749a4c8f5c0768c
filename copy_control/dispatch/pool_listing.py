"""Listing in the worker pool (``s3fanout copy --list-in-pool``): the CLI only submits the run.

A CLI process that lists must first load boto3 and build an S3 client (botocore parses its
JSON models) before its first request, which a copy of a few thousand objects pays again per
object. A
worker has both already. So the CLI sends the whole request as one task; a worker lists and
dispatches it with ``runner.start_run``, the code the CLI and the operator run themselves, and
if it stops, records why for the CLI that waits. The CLI then needs Redis but no AWS access.

Nothing else changes: the listing is recorded in Redis as it goes, so a listing task delivered
again (its worker died) or a repeated command carries on from the recorded cursors. One worker
lists a run at a time: it holds a lease in Redis, renewed while it lists, and a listing task
that finds the lease held leaves the run to its holder (two listers would send the same chunks
twice: counted once, but copied twice while both are in flight).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest, check_run_id, check_same_request
from copy_core.contract import LIST_TASK_NAME, QUEUE, ContractError
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from celery import Celery

    from copy_core.aws.clients import ClientFactory

log = logging.getLogger(__name__)

# A lister that dies loses the run after this long; a live one renews it every third of it.
LEASE_S = 30.0


def submit(request: CopyRequest, run_id: str, store: RunStore, app: Celery) -> None:
    """Hand run ``run_id`` to the pool to list; InvalidRequest if the id is another copy's."""
    check_same_request(store.run_hash(run_id), request, run_id)
    store.clear_listing_error(run_id)
    app.send_task(
        LIST_TASK_NAME,
        kwargs={"run_id": run_id, "request": request.to_wire()},
        queue=QUEUE,
        argsrepr="()",
        kwargsrepr=run_id,
    )


def list_run(
    run_id: str, wire: Mapping[str, Any], clients: ClientFactory, store: RunStore, app: Celery
) -> None:
    """A worker's part: list and dispatch the run, or record why it could not.

    ContractError if ``run_id`` is not a run id: nothing is recorded under a malformed key.
    """
    try:
        check_run_id(run_id)
    except InvalidRequest as exc:
        raise ContractError(str(exc)) from None
    token = uuid.uuid4().hex
    if not store.take_listing(run_id, token, LEASE_S):
        log.info("run already being listed by another worker: left to it")
        return
    with _leased(store, run_id, token):
        _list(run_id, wire, clients, store, app)


def _list(
    run_id: str, wire: Mapping[str, Any], clients: ClientFactory, store: RunStore, app: Celery
) -> None:
    # Imported here: only a worker that takes a listing task needs the listing machinery.
    from copy_control.dispatch.runner import start_run  # noqa: PLC0415
    from copy_core.classify import classify  # noqa: PLC0415

    try:
        request = CopyRequest.from_wire(wire)
        if store.cancel_requested(run_id):
            # Cancelled while this task waited in the queue (an Airflow task killed): the run
            # is created only to end it cancelled, so that whoever waits for it sees the end.
            store.create_run(run_id, request.describe(), request.max_failures)
            log.info("cancelled before listing", extra={"status": store.request_cancel(run_id)})
            return
        report = start_run(
            request, run_id, clients.s3(request.listing_identity(run_id)), store, app
        )
    except InvalidRequest as exc:
        log.warning("run not listed: bad input", extra={"reason": str(exc)})
        store.record_listing_error(run_id, str(exc), bad_input=True)
    except Exception as exc:  # recorded for the CLI; a repeated command resumes the listing
        error = classify(exc)
        log.exception("listing stopped", extra={"error_code": error.code})
        store.record_listing_error(run_id, f"{error.code}: {error.message}", bad_input=False)
    else:
        log.info("listed", extra={"chunks": report.chunks_sent, "status": report.status})


@contextlib.contextmanager
def _leased(store: RunStore, run_id: str, token: str) -> Iterator[None]:
    """Renew the listing lease in the background until the block ends, then give it up."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LEASE_S / 3):
            try:
                if not store.keep_listing(run_id, token, LEASE_S):
                    log.warning("listing lease lost: another worker may list this run too")
            except Exception:  # Redis is away: the listing itself will say so
                log.warning("cannot renew the listing lease", exc_info=True)

    renewer = threading.Thread(target=renew, name=f"lease-{run_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        try:
            store.end_listing(run_id, token)
        except Exception:  # it expires by itself
            log.warning("cannot end the listing lease", exc_info=True)
