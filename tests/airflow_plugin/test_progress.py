from __future__ import annotations

from airflow_plugin.progress import progress_line
from copy_core.contract import RunSummary


def _summary(copied: int = 0, cancelled: int = 0) -> RunSummary:
    return RunSummary(
        "af-1", "cancelled", 20_000, objects_copied=copied, objects_skipped=0, objects_failed=0,
        bytes_copied=3_800, retries=0, objects_verified=0, objects_streamed=0, duration_s=1.0,
        objects_per_second=1.0, bytes_per_second=1.0, failures=[], objects_cancelled=cancelled,
    )  # fmt: skip


def test_a_cancelled_run_says_what_was_copied_and_what_was_not() -> None:
    line = progress_line(_summary(copied=3_800, cancelled=16_200))
    assert line == (
        "Run af-1 cancelled: 20,000/20,000 objects done (3,800 copied, 16,200 cancelled), "
        "3,800 bytes copied"
    )


def test_a_run_with_nothing_done_yet_says_so() -> None:
    assert "0/20,000 objects done (none yet)" in progress_line(_summary())
