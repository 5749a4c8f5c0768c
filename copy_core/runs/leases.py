"""Leases on the work of a run in the pool: who holds what, renewed while held, returned when not.

Every piece of a run's work in the pool (a chunk, a batch of a split object's parts, the
listing) is a member of the run's lease set from when it is sent until it is done, with a
holder and an expiry (``RunKeys.leases``):

- sent, not yet taken: holder ``queued``, expiring after a long patience (a lost message is
  sent again then);
- taken by a worker process: its token, expiring after a short lease that the process renews
  while it works, however long the work takes;
- given back for a retry: holder ``retry``, expiring when it is due.

Whoever finds an expired member (``reap``: any live worker, every few seconds) claims it for
another patience and sends its message again. So the work of a worker that vanished resumes
after one lease, and work that runs long is never taken from a live worker. Celery's
visibility timeout stays underneath as the last resort. All times are the Redis server's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from copy_core.runs.keys import RunKeys
from copy_core.runs.scripts import script

_RENEW = script("renew", with_finalize=True)
_RELEASE = script("release", with_finalize=True)
_REAP = script("reap", with_finalize=True)
_OFFER = script("offer", with_finalize=True)
_TAKE_LEASE = script("take_lease", with_finalize=True)
_DROP_LEASE = script("drop_lease", with_finalize=True)

LISTING = "l"


def chunk_member(chunk_id: str) -> str:
    """The lease member of a chunk."""
    return f"c:{chunk_id}"


def batch_member(chunk_id: str, index: int, batch: int) -> str:
    """The lease member of one batch of parts of a split object."""
    return f"b:{chunk_id}:{index}:{batch}"


def chunk_of(member: str) -> str | None:
    """The chunk id of a chunk's member, else None."""
    return member[2:] if member.startswith("c:") else None


@dataclass(frozen=True)
class Returned:
    """Work whose lease expired, claimed to be sent again: its member and resend message."""

    run_id: str
    member: str
    message: str | None


class LeaseStore:
    """Takes, renews, gives back and reaps the leases of runs' work."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._reap = client.register_script(_REAP)
        self._offer = client.register_script(_OFFER)
        self._take = client.register_script(_TAKE_LEASE)
        self._drop = client.register_script(_DROP_LEASE)

    def renew(self, run_id: str, holder: str, members: Sequence[str], lease_s: float) -> list[str]:
        """Extend ``holder``'s leases; the members it no longer holds (done, or taken over)."""
        if not members:
            return []
        keys = RunKeys(run_id)
        args: list[str | int] = [holder, int(lease_s * 1000), self._ttl, *members]
        return [str(m) for m in self._renew(keys=[keys.leases, keys.holders], args=args)]

    def release(
        self, run_id: str, holder: str, member: str, delay_s: float, retry: bool = True
    ) -> bool:
        """Give ``member`` back: it is sent again after ``delay_s`` (``retry``), or at once."""
        keys = RunKeys(run_id)
        args: list[str | int] = [
            holder,
            member,
            int(delay_s * 1000),
            "retry" if retry else "queued",
        ]
        return bool(self._release(keys=[keys.leases, keys.holders], args=args))

    def reap(self, run_id: str, patience_s: float, limit: int = 100) -> list[Returned]:
        """Claim the run's expired work, to send it again (each member to one caller only)."""
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.done, keys.leases, keys.holders, keys.deliveries, keys.resend]
        raw = self._reap(keys=run_keys, args=[int(patience_s * 1000), limit, self._ttl])
        return [
            Returned(run_id, str(raw[i]), None if not raw[i + 1] else str(raw[i + 1]))
            for i in range(0, len(raw), 2)
        ]

    def offer(self, run_id: str, member: str, message: str, patience_s: float) -> None:
        """Put work other than a chunk in the pool, with the message that sends it again."""
        keys = RunKeys(run_id)
        args: list[str | int] = [member, message, int(patience_s * 1000), self._ttl]
        self._offer(keys=[keys.leases, keys.holders, keys.resend], args=args)

    def take(self, run_id: str, member: str, holder: str, lease_s: float) -> int:
        """Take work other than a chunk: its deliveries so far, this one included; 0 if another
        live worker holds it."""
        keys = RunKeys(run_id)
        args: list[str | int] = [member, holder, int(lease_s * 1000), self._ttl]
        return int(self._take(keys=[keys.leases, keys.holders, keys.deliveries], args=args))

    def drop(self, run_id: str, member: str, holder: str = "") -> bool:
        """Work other than a chunk is over; it leaves the pool (only ``holder``'s, if given)."""
        keys = RunKeys(run_id)
        lease_keys = [keys.leases, keys.holders, keys.deliveries, keys.resend]
        return bool(self._drop(keys=lease_keys, args=[member, holder]))

    def holder(self, run_id: str, member: str) -> str | None:
        """Who holds ``member`` now (``queued``, ``retry``, a process token), or None."""
        value = self._redis.hget(RunKeys(run_id).holders, member)
        return None if value is None else str(value)

    def members(self, run_id: str) -> dict[str, float]:
        """Every member of the run in the pool, with its expiry (server ms)."""
        pairs: list[tuple[str, float]] = self._redis.zrange(  # type: ignore[assignment]
            RunKeys(run_id).leases, 0, -1, withscores=True
        )
        return {str(member): float(score) for member, score in pairs}
