"""What a worker process does in the background while it copies: it beats, it renews its
leases, and, in turn with the pool's other processes, it returns expired work to the queue.

One thread per process. Every ``PROCESS_BEAT_S`` it tells the pool it is alive and how many
chunks it takes (its slots: the pool's capacity, from which each run's share of the broker is
sized); every third of a lease it renews the leases of the work it holds (a chunk, a batch of
parts, a listing), however long that work takes; every ``reap_every_s`` it asks for the pool's
reaper turn and, if it gets it, sends again the work of every active run whose lease expired
(a worker that vanished, a retry that is due, a message that was lost). Redis being away is
logged and tried again at the next tick: nothing here ever stops the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from copy_core.pool import PROCESS_BEAT_S, PoolRegistry
from copy_core.runs.leases import LeaseStore, Returned
from copy_core.runs.store import QUEUE_PATIENCE_S
from copy_workers.settings import WorkerSettings

log = logging.getLogger(__name__)

_TICK_S = 0.5


class Keeper:
    """The background duties of one worker process (see the module's docstring)."""

    def __init__(
        self,
        pool: PoolRegistry,
        leases: LeaseStore,
        settings: WorkerSettings,
        token: str,
        info: dict[str, Any],
        resend: Callable[[Returned], None],
        on_lost: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._leases = leases
        self._settings = settings
        self._token = token
        self._info = info
        self._resend = resend
        self._on_lost = on_lost
        self._clock = clock
        self._held: defaultdict[str, set[str]] = defaultdict(set)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due = {"beat": 0.0, "renew": 0.0, "reap": 0.0}

    def hold(self, run_id: str, member: str) -> None:
        with self._lock:
            self._held[run_id].add(member)

    def release(self, run_id: str, member: str) -> None:
        with self._lock:
            members = self._held.get(run_id)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._held[run_id]

    def held(self) -> dict[str, set[str]]:
        with self._lock:
            return {run_id: set(members) for run_id, members in self._held.items()}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="keeper", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the duties and leave the pool (the leases still held expire on their own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self._pool.leave(self._token)
        except Exception:  # Redis away: the heartbeat ages out of the pool by itself
            log.warning("cannot leave the pool", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(_TICK_S):
            self.tick()

    def tick(self) -> None:
        """Whatever duty is due now (the thread's body; tests call it directly)."""
        now = self._clock()
        duties: list[tuple[str, float, Callable[[], None]]] = [
            ("beat", PROCESS_BEAT_S, self.beat),
            ("renew", self._settings.lease_s / 3, self.renew),
            ("reap", self._settings.reap_every_s, self.reap),
        ]
        for name, every, duty in duties:
            if now < self._due[name]:
                continue
            self._due[name] = now + every
            try:
                duty()
            except Exception as exc:  # Redis is away: the next tick tries again
                log.warning("%s failed; trying again", name, extra={"error": str(exc)})

    def beat(self) -> None:
        self._pool.heartbeat(self._token, self._info)

    def renew(self) -> None:
        for run_id, members in self.held().items():
            lost = self._leases.renew(run_id, self._token, sorted(members), self._settings.lease_s)
            for member in lost:
                self.release(run_id, member)
                if member in members:
                    self._on_lost(run_id, member)

    def reap(self) -> None:
        if not self._pool.take_reaper_turn(self._token, self._settings.reap_every_s * 0.8):
            return
        for run in self._pool.active_runs():
            for returned in self._leases.reap(run.run_id, QUEUE_PATIENCE_S):
                log.info(
                    "work returned to the queue",
                    extra={"run_id": returned.run_id, "member": returned.member},
                )
                self._resend(returned)
