"""Progress lines while a run goes on: the same in the task (non-deferrable) and the trigger."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from copy_control.runs.progress import objects_done
from copy_core.contract import RunSummary

DEFAULT_PROGRESS_INTERVAL_S = 30.0


class ProgressLog:
    """Logs a progress line at most every ``interval_s`` seconds, and the final reading."""

    def __init__(
        self,
        logger: Any,
        interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._last: float | None = None

    def __call__(self, summary: RunSummary) -> None:
        now = self._clock()
        due = self._last is None or now - self._last >= self._interval
        if not (due or summary.is_final):
            return
        self._last = now
        self._log.info("%s", progress_line(summary))


def progress_line(summary: RunSummary) -> str:
    """``Run ID cancelled: 3,800/20,000 objects done: 3,800 copied, 16,200 cancelled; ...``.

    Each outcome is named: a cancelled run's keys are done, and not copied.
    """
    outcomes = [
        (summary.objects_copied, "copied"),
        (summary.objects_skipped, "skipped"),
        (summary.objects_failed, "failed"),
        (summary.objects_cancelled, "cancelled"),
    ]
    named = ", ".join(f"{n:,} {what}" for n, what in outcomes if n) or "none yet"
    return (
        f"Run {summary.run_id} {summary.status}: {objects_done(summary):,}/"
        f"{summary.objects_listed:,} objects done ({named}), {summary.bytes_copied:,} bytes copied"
    )
