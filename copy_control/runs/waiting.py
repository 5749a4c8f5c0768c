"""Waiting for a run to end: the readings the CLI, ``status`` and the operator show.

Kept apart from ``runner`` (listing and dispatch), so that what only waits does not load boto3.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from copy_control.errors import InvalidRequest
from copy_core.contract import RunSummary
from copy_core.runs.leases import LISTING, LeaseStore
from copy_core.runs.store import RunStore

ProgressFn = Callable[[RunSummary], None]


class RunTimeout(TimeoutError):
    """The run did not finish in the time allowed (it goes on; wait again or cancel it)."""


class ListingFailed(RuntimeError):
    """The worker that listed the run stopped before the end of the listing (not bad input).

    ``reason`` is the worker's own account; the message adds how to resume from the CLI.
    """

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(
            f"the worker listing run {run_id} stopped: {reason}; repeat the command "
            f"with --run-id {run_id} to resume it"
        )
        self.reason = reason


class RunLost(RuntimeError):
    """The run's state vanished from Redis while it was waited for: its outcome is unknown."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"the state of run {run_id} is gone from Redis (a Redis restarted without "
            "persistence, flushed, or evicting keys): what it copied cannot be counted any "
            "more; run the copy again under a new run id (with --overwrite if-different, "
            "objects already copied are skipped)"
        )
        self.run_id = run_id


def wait_for_run(
    store: RunStore,
    run_id: str,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
    on_progress: ProgressFn | None = None,
    listed_by_worker: bool = False,
    started_here: bool = False,
) -> RunSummary:
    """Read the run every ``poll_s`` until it ends; ``on_progress`` sees every reading.

    The end itself is not left to the next reading: the run store announces it, and the wait
    returns at once (a run's wall time is what people wait for). With ``listed_by_worker``
    the run may not exist yet (no worker has taken its listing), and a listing worker that
    stops is reported: InvalidRequest for bad input, ListingFailed otherwise. A run that was
    started by the caller (``started_here``) or seen by this wait, and then is not in Redis,
    was lost: RunLost, never a wait without end.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen = started_here and not listed_by_worker  # a worker has still to create it
    leases = LeaseStore(store.client, store.ttl_s)
    with store.end_watch(run_id) as pause:
        while True:
            if listed_by_worker:
                _raise_listing_error(store, run_id)
                summary = store.summary(run_id)
                if summary is None and leases.holder(run_id, LISTING) is None:
                    seen = True  # no run, and no listing on its way: nothing will make it
            else:
                summary = store.summary(run_id)
            if summary is None and seen:
                raise RunLost(run_id)
            if summary is None and not listed_by_worker:
                raise InvalidRequest(f"no run {run_id!r} in Redis (wrong run id, or it expired)")
            seen = seen or summary is not None
            if summary is not None:
                if on_progress is not None:
                    on_progress(summary)
                if summary.is_final:
                    return summary
            if deadline is not None and time.monotonic() >= deadline:
                state = "waiting for a worker to list it" if summary is None else summary.status
                raise RunTimeout(f"run {run_id} is still {state} after {timeout_s} s")
            pause(poll_s if deadline is None else min(poll_s, deadline - time.monotonic()))


def read_summary(store: RunStore, run_id: str) -> RunSummary:
    """The run's summary now; InvalidRequest if Redis has no such run."""
    summary = store.summary(run_id)
    if summary is None:
        raise InvalidRequest(f"no run {run_id!r} in Redis (wrong run id, or it expired)")
    return summary


def _raise_listing_error(store: RunStore, run_id: str) -> None:
    error = store.listing_error(run_id)
    if error is None:
        return
    if error.bad_input:
        raise InvalidRequest(error.message)
    raise ListingFailed(run_id, error.message)
