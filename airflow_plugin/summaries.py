"""Combine the summaries of several runs, e.g. the XComs of a mapped copy task."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Summed over the runs, besides every ``objects_*`` counter (counters added to the summary
# later are summed too).
TOTALS = ("bytes_copied", "retries")


def _is_total(name: str, value: Any) -> bool:
    counter = name in TOTALS or name.startswith("objects_")
    return counter and isinstance(value, int) and not isinstance(value, bool)


def combine_summaries(summaries: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Totals over run summaries (``RunSummary.to_dict()``), as one JSON-able dict.

    Every ``objects_*`` counter, ``bytes_copied`` and ``retries`` are summed. ``None``
    entries (a mapped task instance that pushed no summary) are counted in ``runs_missing``;
    ``statuses`` counts runs per status, and ``failures`` keeps the failures each run shows.
    """
    totals: dict[str, int] = dict.fromkeys(("objects_copied", "objects_failed", *TOTALS), 0)
    statuses: dict[str, int] = {}
    run_ids: list[str] = []
    failures: list[dict[str, Any]] = []
    missing = 0
    for summary in summaries:
        if summary is None:
            missing += 1
            continue
        for name, value in summary.items():
            if _is_total(name, value):
                totals[name] = totals.get(name, 0) + value
        status = str(summary.get("status"))
        statuses[status] = statuses.get(status, 0) + 1
        run_ids.append(str(summary.get("run_id")))
        failures.extend(summary.get("failures") or [])
    return {
        **totals,
        "runs": len(run_ids),
        "runs_missing": missing,
        "statuses": statuses,
        "run_ids": run_ids,
        "failures": failures,
    }
