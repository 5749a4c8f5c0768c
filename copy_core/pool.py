"""The pool as a whole, in Redis: its live worker processes and its runs.

Worker processes beat (``heartbeat``) every few seconds with how many chunks each takes at a
time (its slots); the pool's capacity is the sum over the live ones. Runs register when they
are created: ``active`` holds the runs that may still have work (a reader that finds one over
removes it), ``runs`` every run of the last days, for ``s3fanout runs``. Times are the Redis
server's, so hosts with skewed clocks agree on who is alive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from copy_core.contract import RunStatus
from copy_core.runs.keys import PoolKeys, RunKeys

# A process that has not beaten for this long is gone (it beats every PROCESS_BEAT_S).
PROCESS_TTL_S = 30.0
PROCESS_BEAT_S = 5.0


@dataclass(frozen=True)
class ActiveRun:
    """A run with work in the pool, and its weight (its priority)."""

    run_id: str
    weight: int


class PoolRegistry:
    """Reads and writes the pool-wide keys."""

    def __init__(self, client: redis.Redis, keys: PoolKeys | None = None) -> None:
        self._redis = client
        self._keys = keys or PoolKeys()

    def now_ms(self) -> int:
        """The Redis server's clock, in ms since the epoch."""
        seconds, micros = self._redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # --- worker processes ----------------------------------------------------------------
    def heartbeat(self, token: str, info: dict[str, Any]) -> None:
        """Process ``token`` is alive; ``info`` says where it runs and its ``slots``."""
        now = self.now_ms()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._keys.processes, {token: now})
        pipe.hset(self._keys.process_info, token, json.dumps(info))
        # Processes gone for an hour leave the registry (whoever beats cleans up).
        stale = now - 3600 * 1000
        pipe.zremrangebyscore(self._keys.processes, "-inf", stale)
        pipe.execute()

    def leave(self, token: str) -> None:
        """Process ``token`` stops: it no longer counts in the pool's capacity."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(self._keys.processes, token)
        pipe.hdel(self._keys.process_info, token)
        pipe.execute()

    def live_processes(self) -> dict[str, dict[str, Any]]:
        """The processes that beat within ``PROCESS_TTL_S``, with what they said."""
        since = self.now_ms() - int(PROCESS_TTL_S * 1000)
        tokens = [str(t) for t in self._redis.zrangebyscore(self._keys.processes, since, "+inf")]
        if not tokens:
            return {}
        infos = self._redis.hmget(self._keys.process_info, tokens)
        return {t: json.loads(i) if i else {} for t, i in zip(tokens, infos, strict=True)}

    def capacity(self) -> int:
        """Chunks the live processes take at a time, in all."""
        return sum(int(info.get("slots", 1)) for info in self.live_processes().values())

    # --- runs ------------------------------------------------------------------------------
    def add_run(self, run_id: str) -> None:
        """A run was created: it is in the pool until it is over."""
        now = self.now_ms()
        pipe = self._redis.pipeline(transaction=False)
        pipe.zadd(self._keys.runs, {run_id: now}, nx=True)
        pipe.sadd(self._keys.active, run_id)
        pipe.execute()

    def active_runs(self) -> list[ActiveRun]:
        """The runs that may still have work in the pool; over or expired ones are removed."""
        run_ids = sorted(str(r) for r in self._redis.smembers(self._keys.active))
        if not run_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(RunKeys(run_id).run, ["status", "weight"])
        active, over = [], []
        for run_id, (status, weight) in zip(run_ids, pipe.execute(), strict=True):
            if status is None or RunStatus(status).is_final:
                over.append(run_id)
            else:
                active.append(ActiveRun(run_id, int(weight or 1)))
        if over:
            self._redis.srem(self._keys.active, *over)
        return active

    def recent_runs(self, limit: int = 100) -> list[str]:
        """Run ids, newest first (runs whose state expired are dropped on the way)."""
        return [str(r) for r in self._redis.zrevrange(self._keys.runs, 0, limit - 1)]

    def forget_runs(self, run_ids: list[str]) -> None:
        """Runs whose state is gone leave the list."""
        if run_ids:
            self._redis.zrem(self._keys.runs, *run_ids)

    # --- the reaper's turn ------------------------------------------------------------------
    def take_reaper_turn(self, token: str, seconds: float) -> bool:
        """Whether ``token`` reaps this round: one process of the pool at a time does."""
        return bool(self._redis.set(self._keys.reaper, token, nx=True, px=int(seconds * 1000)))
