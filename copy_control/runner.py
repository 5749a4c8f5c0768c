"""Running a copy: list, plan and dispatch a run, then wait for it. Shared by CLI and operator."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from copy_control.dispatch import Dispatcher
from copy_control.listing import ListedObject, head_object, list_pages
from copy_control.planning import plan_chunks
from copy_control.request import CopyRequest, InvalidRequest
from copy_workers.contract import RunStatus, RunSummary
from copy_workers.runstate import RunStore

if TYPE_CHECKING:
    from celery import Celery
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

ProgressFn = Callable[[RunSummary], None]


class RunTimeout(TimeoutError):
    """The run did not finish in the time allowed (it goes on; wait again or cancel it)."""


@dataclass(frozen=True)
class DispatchReport:
    """What ``start_run`` did."""

    run_id: str
    status: str
    chunks_sent: int
    resumed: bool


def start_run(
    request: CopyRequest,
    run_id: str,
    s3: S3Client,
    store: RunStore,
    app: Celery,
) -> DispatchReport:
    """Create (or resume) run ``run_id``: list the source and dispatch its chunks.

    The source is read before the run is created, so a missing bucket or key fails here
    with InvalidRequest and nothing is recorded or dispatched. A run that already exists
    is resumed from its dispatch cursor; a finished one is left as it is.
    """
    existing = store.run_hash(run_id)
    _check_same_request(existing, request, run_id)
    cursor = existing.get("cursor") or None
    pages = _pages(request, s3, cursor)
    first_page = next(pages, [])  # raises InvalidRequest for a bad source, before any write
    status = store.create_run(run_id, request.describe(), request.max_failures)
    if RunStatus(status).is_final or existing.get("listing_done") == "1":
        return DispatchReport(run_id, status, 0, resumed=bool(existing))
    dispatcher = Dispatcher(app, store, run_id, request.job(run_id))
    first_chunk = int(existing.get("next_chunk", 0))
    sent = 0
    chunks = plan_chunks(
        itertools.chain([first_page], pages), request.dest_for, request.chunk_size, first_chunk
    )
    for chunk in chunks:
        if not dispatcher.send(chunk):
            log.info("dispatch stopped: run %s was cancelled", run_id)
            break
        sent += 1
    final = store.finish_listing(run_id) or status
    log.info("dispatched %d chunks of run %s", sent, run_id)
    return DispatchReport(run_id, final, sent, resumed=bool(existing))


def wait_for_run(
    store: RunStore,
    run_id: str,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    on_progress: ProgressFn | None = None,
) -> RunSummary:
    """Poll the run until it ends; ``on_progress`` sees every reading."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        summary = store.summary(run_id)
        if summary is None:
            raise InvalidRequest(f"no run {run_id!r} in Redis (wrong run id, or it expired)")
        if on_progress is not None:
            on_progress(summary)
        if summary.is_final:
            return summary
        if deadline is not None and time.monotonic() >= deadline:
            raise RunTimeout(f"run {run_id} is still {summary.status} after {timeout_s} s")
        time.sleep(poll_s)


def _pages(request: CopyRequest, s3: S3Client, cursor: str | None) -> Iterator[list[ListedObject]]:
    if request.source_prefix is not None:
        return list_pages(s3, request.source_bucket, request.source_prefix, start_after=cursor)
    if cursor is not None:  # the single key was already dispatched
        return iter([])
    assert request.source_key is not None
    return iter([[head_object(s3, request.source_bucket, request.source_key)]])


def _check_same_request(existing: dict[str, str], request: CopyRequest, run_id: str) -> None:
    if existing and json.loads(existing.get("spec", "{}")) != request.describe():
        raise InvalidRequest(
            f"run {run_id!r} already exists for a different copy; "
            "choose another run id, or repeat the original request to resume it"
        )
