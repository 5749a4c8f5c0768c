"""The task that lists a run in the pool (``s3fanout copy --list-in-pool``): a composition root.

It wires the worker's resources (its S3 clients, its run store, its Celery app, the listing
lease its keeper renews) to the control plane's listing and dispatch
(``copy_control.dispatch.pool_listing``), so that a run listed in the pool is listed by the
same code as one listed by the CLI or the operator. It is the one module of ``copy_workers``
that imports the control plane (an import-linter contract in pyproject.toml says so); the copy
engine and the copy paths know nothing of it.

The listing runs in a thread of its own, and the task returns at once: a listing waits while
its run is at its bound of chunks in the pool, and must not hold a pool process meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.exceptions import Reject

from copy_control.dispatch.pool_listing import check_listing_message, list_run
from copy_core import logs
from copy_core.contract import LIST_TASK_NAME, ContractError
from copy_core.runs.controls import RunControls
from copy_workers.celery_app import app
from copy_workers.tasks import PROCESS

log = logging.getLogger(__name__)


@app.task(name=LIST_TASK_NAME)
def list_run_task(run_id: str, request: dict[str, Any], controls: Any = None) -> str:
    """List a run's source and dispatch its chunks (``s3fanout copy --list-in-pool``)."""
    try:
        checked = check_listing_message(run_id, request, controls)
    except ContractError as exc:  # rejected, not retried: it never gets better
        log.error("rejected malformed listing message", extra={"reason": str(exc)})
        raise Reject(str(exc), requeue=False) from exc
    thread = threading.Thread(
        target=_list, args=(run_id, request, checked), name=f"list-{run_id}", daemon=True
    )
    thread.start()
    return "listing"


def _list(run_id: str, request: dict[str, Any], controls: RunControls) -> None:
    with logs.bound(run_id), PROCESS.hold_listing(run_id) as held:
        if not held:
            log.info("run already being listed by another worker: left to it")
            return
        list_run(run_id, request, controls, PROCESS.clients, PROCESS.store, app)
