"""Rate caps of a run, enforced in Redis for every worker of the pool (``rate_take.lua``).

A worker process asks for tokens in small batches and spends them within 50 ms
(``copy_workers.pacing``); the script's buckets are sized so that no second of the run ever
sees more requests than its cap, whichever workers send them.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from copy_core.runs.keys import RunKeys
from copy_core.runs.scripts import script

_RATE_TAKE = script("rate_take")


@dataclass(frozen=True)
class Grant:
    """Tokens granted: requests, bytes, and how long to wait before asking again if short."""

    requests: int
    bytes: int
    wait_s: float


@dataclass(frozen=True)
class Caps:
    """A run's caps (None: no cap) and how long it has waited on them so far."""

    requests_per_second: float | None
    bytes_per_second: float | None
    limited_s: float


class RateStore:
    """The token buckets of runs' rate caps."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._take = client.register_script(_RATE_TAKE)

    def take(self, run_id: str, requests: int, n_bytes: int) -> Grant:
        """Up to ``requests`` request tokens and ``n_bytes`` byte tokens of the run's caps."""
        granted, granted_bytes, wait_ms = self._take(
            keys=[RunKeys(run_id).rate], args=[requests, n_bytes, self._ttl]
        )
        return Grant(int(granted), int(granted_bytes), int(wait_ms) / 1000)

    def set_caps(
        self,
        run_id: str,
        requests_per_second: float | None = None,
        bytes_per_second: float | None = None,
        *,
        clear: bool = False,
    ) -> None:
        """Change a running run's caps (given ones only; ``clear``: none at all)."""
        mapping: dict[str, str] = {}
        if clear:
            mapping = {"rps": "", "bps": ""}
        if requests_per_second is not None:
            mapping["rps"] = repr(float(requests_per_second))
        if bytes_per_second is not None:
            mapping["bps"] = repr(float(bytes_per_second))
        if mapping:
            key = RunKeys(run_id).rate
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
            pipe.expire(key, self._ttl)
            pipe.execute()

    def caps(self, run_id: str) -> Caps:
        raw: list[str | None] = self._redis.hmget(  # type: ignore[assignment]
            RunKeys(run_id).rate, ["rps", "bps", "starved_ms"]
        )
        rps, bps, starved = (None if not v else float(v) for v in raw)
        return Caps(rps, bps, round((starved or 0.0) / 1000, 3))
