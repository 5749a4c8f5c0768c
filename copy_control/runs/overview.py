"""The runs of a pool, as ``s3fanout runs`` shows them: active first, then the recent ones."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from copy_core.contract import RunStatus
from copy_core.pool import PoolRegistry
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore

_FIELDS = (
    "status",
    "owner",
    "weight",
    "created_at",
    "finished_at",
    "objects_listed",
    "objects_copied",
    "objects_skipped",
    "objects_failed",
    "objects_cancelled",
    "bytes_copied",
    "listing_done",
)


@dataclass(frozen=True)
class RunView:
    """One line of the list of runs."""

    run_id: str
    status: str
    owner: str
    weight: int
    objects_listed: int
    objects_done: int
    objects_failed: int
    bytes_copied: int
    objects_per_second: float
    age_s: float
    listing_done: bool
    chunks_in_pool: int

    @property
    def active(self) -> bool:
        return not RunStatus(self.status).is_final

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_runs(store: RunStore, limit: int = 50, now: float | None = None) -> list[RunView]:
    """The pool's runs, active ones first, newest first within each; at most ``limit``."""
    pool = PoolRegistry(store.client)
    run_ids = pool.recent_runs(max(limit * 4, limit))
    pipe = store.client.pipeline(transaction=False)
    for run_id in run_ids:
        keys = RunKeys(run_id)
        pipe.hmget(keys.run, list(_FIELDS))
        pipe.zcard(keys.leases)
    raw = pipe.execute()
    now = time.time() if now is None else now
    views, gone = [], []
    for i, run_id in enumerate(run_ids):
        values, in_pool = raw[2 * i], raw[2 * i + 1]
        if values[0] is None:
            gone.append(run_id)
            continue
        views.append(_view(run_id, dict(zip(_FIELDS, values, strict=True)), int(in_pool), now))
    pool.forget_runs(gone)
    views.sort(key=lambda v: (not v.active, v.age_s))
    return views[:limit]


def _view(run_id: str, h: dict[str, Any], in_pool: int, now: float) -> RunView:
    def n(name: str) -> int:
        return int(h.get(name) or 0)

    done = sum(n(f"objects_{s}") for s in ("copied", "skipped", "failed", "cancelled"))
    created = float(h.get("created_at") or now)
    ended = float(h.get("finished_at") or now)
    seconds = max(ended - created, 0.0)
    return RunView(
        run_id=run_id,
        status=str(h["status"]),
        owner=str(h.get("owner") or ""),
        weight=n("weight") or 1,
        objects_listed=n("objects_listed"),
        objects_done=done,
        objects_failed=n("objects_failed"),
        bytes_copied=n("bytes_copied"),
        objects_per_second=round(n("objects_copied") / seconds, 1) if seconds > 0 else 0.0,
        age_s=round(max(now - created, 0.0), 1),
        listing_done=h.get("listing_done") == "1",
        chunks_in_pool=in_pool,
    )
