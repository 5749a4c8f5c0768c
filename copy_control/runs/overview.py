"""The runs of a pool, as ``s3fanout runs`` shows them: active first, then the recent ones."""

from __future__ import annotations

from copy_core.pool import PoolRegistry
from copy_core.runs.census import RunState, read_runs
from copy_core.runs.store import RunStore


def list_runs(store: RunStore, limit: int = 50) -> list[RunState]:
    """The pool's runs, active ones first, newest first within each; at most ``limit``."""
    pool = PoolRegistry(store.client)
    run_ids = pool.recent_runs(max(limit * 4, limit))
    found = read_runs(store.client, run_ids)
    pool.forget_runs([run_id for run_id in run_ids if run_id not in found])
    states = sorted(found.values(), key=lambda v: (not v.active, v.age_s))
    return states[:limit]
