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
        self._log.info(
            "Run %s %s: %d/%d objects done (%d failed), %d bytes copied",
            summary.run_id,
            summary.status,
            objects_done(summary),
            summary.objects_listed,
            summary.objects_failed,
            summary.bytes_copied,
        )
