"""A reading of many runs at once: their counters, their work in the pool, their age.

What ``s3fanout runs`` lists and what the workers' metrics export per run, read the same way:
one pipeline for all the runs asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from copy_core.contract import RunStatus
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import QUEUE_PATIENCE_S

_FIELDS = (
    "status",
    "owner",
    "weight",
    "created_at",
    "finished_at",
    "progressed_at",
    "objects_listed",
    "objects_copied",
    "objects_skipped",
    "objects_failed",
    "objects_cancelled",
    "bytes_copied",
    "listing_done",
)


@dataclass(frozen=True)
class RunState:
    """One run, as read now."""

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
    chunks_queued: int
    oldest_queued_s: float  # how long the oldest chunk sent and not yet taken has waited
    created_at: float  # Unix time, the Redis server's
    progressed_at: float | None  # when an outcome was last recorded

    @property
    def active(self) -> bool:
        return not RunStatus(self.status).is_final

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_runs(client: redis.Redis, run_ids: Sequence[str]) -> dict[str, RunState]:
    """The runs of ``run_ids`` that exist, by id (one pipeline)."""
    pipe = client.pipeline(transaction=False)
    for run_id in run_ids:
        keys = RunKeys(run_id)
        pipe.hmget(keys.run, list(_FIELDS))
        pipe.zrange(keys.leases, 0, -1, withscores=True)
        pipe.hgetall(keys.holders)
    pipe.time()
    raw = pipe.execute()
    seconds, micros = raw[-1]
    now = int(seconds) + int(micros) / 1e6
    found = {}
    for i, run_id in enumerate(run_ids):
        values, leases, holders = raw[3 * i : 3 * i + 3]
        if values[0] is None:
            continue
        found[run_id] = _state(
            run_id, dict(zip(_FIELDS, values, strict=True)), leases, holders, now
        )
    return found


def _state(
    run_id: str,
    h: dict[str, Any],
    leases: list[tuple[Any, float]],
    holders: dict[Any, Any],
    now: float,
) -> RunState:
    def n(name: str) -> int:
        return int(h.get(name) or 0)

    done = sum(n(f"objects_{s}") for s in ("copied", "skipped", "failed", "cancelled"))
    created = float(h.get("created_at") or now)
    ended = float(h.get("finished_at") or now)
    seconds = max(ended - created, 0.0)
    queued_sent = [
        score / 1000 - QUEUE_PATIENCE_S
        for member, score in leases
        if _text(holders.get(member, holders.get(_text(member)))) == "queued"
    ]
    return RunState(
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
        chunks_in_pool=len(leases),
        chunks_queued=len(queued_sent),
        oldest_queued_s=round(max((now - t for t in queued_sent), default=0.0), 1),
        created_at=created,
        progressed_at=float(h["progressed_at"]) if h.get("progressed_at") else None,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
