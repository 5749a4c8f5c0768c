"""The task that lists a run in the pool (``s3fanout copy --list-in-pool``): a composition root.

It wires the worker's resources (its S3 clients, its run store, its Celery app) to the control
plane's listing and dispatch (``copy_control.dispatch.pool_listing``), so that a run listed in
the pool is listed by the same code as one listed by the CLI or the operator. It is the one
module of ``copy_workers`` that imports the control plane (an import-linter contract in
pyproject.toml says so); the copy engine and the copy paths know nothing of it.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Reject

from copy_control.dispatch.pool_listing import list_run
from copy_core import logs
from copy_core.contract import LIST_TASK_NAME, ContractError
from copy_workers.celery_app import app
from copy_workers.tasks import PROCESS

log = logging.getLogger(__name__)


@app.task(name=LIST_TASK_NAME)
def list_run_task(run_id: str, request: dict[str, Any]) -> None:
    """List a run's source and dispatch its chunks (``s3fanout copy --list-in-pool``)."""
    try:
        if not isinstance(run_id, str) or not isinstance(request, dict):
            raise ContractError("a listing message has a run id and a request object")
        with logs.bound(run_id):
            list_run(run_id, request, PROCESS.clients, PROCESS.store, app)
    except ContractError as exc:  # rejected, not retried: it never gets better
        log.error("rejected malformed listing message", extra={"reason": str(exc)})
        raise Reject(str(exc), requeue=False) from exc
