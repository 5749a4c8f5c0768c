"""The run state in Redis: the one place that writes it, and its reader for threads.

Every write is one Lua script, so each step is atomic and safe to repeat: a chunk delivered
twice, a dispatcher that resumes after a crash, or a worker that dies between copying a key and
recording it never make a counter count something twice. Keys of a run share one hash tag (see
``RunKeys``), so the scripts also run on Redis Cluster.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from copy_core.contract import KeyOutcome, KeyStatus, RunStatus, RunSummary, summarize
from copy_core.runs.controls import RunControls
from copy_core.runs.keys import RunKeys
from copy_core.runs.scripts import script

DEFAULT_TTL_S = 7 * 24 * 3600
FAILURES_READ = 100
# A chunk sent to the broker and taken by no worker for this long is sent again: its message
# was lost (a Redis that restarted from a snapshot a second old, say). Longer than a chunk
# waits in the queue of a pool at its bound of chunks per run.
QUEUE_PATIENCE_S = 900.0

_CREATE = script("create", with_finalize=True)
_SAVE_LISTING = script("save_listing")
_TAKE = script("take", with_finalize=True)
_REGISTER_CHUNK = script("register_chunk", with_finalize=True)
_FINISH_LISTING = script("finish_listing", with_finalize=True)
_CANCEL = script("cancel", with_finalize=True)
_RECORD = script("record", with_finalize=True)
_REFUSE_DELETES = script("refuse_deletes", with_finalize=True)


@dataclass(frozen=True)
class ChunkState:
    """What a worker needs to know before it copies a chunk."""

    run_status: str | None
    recorded: frozenset[int]

    @property
    def accepts_work(self) -> bool:
        return self.run_status in (
            RunStatus.CREATED,
            RunStatus.DISPATCHING,
            RunStatus.RUNNING,
        )


@dataclass(frozen=True)
class Taken:
    """What taking a chunk said (``take.lua``): the verdict, and for a taken chunk its parts.

    ``items`` and ``job`` are the stored wire JSON (None for a run of an earlier version,
    whose chunks carry them in their messages); ``deliveries`` counts the takes of the chunk.
    """

    verdict: str
    run_status: str | None
    items: str | None = None
    job: str | None = None
    deliveries: int = 0

    @property
    def taken(self) -> bool:
        return self.verdict == "taken"


@dataclass(frozen=True)
class Recorded:
    """The effect of recording a batch of outcomes."""

    added: tuple[KeyOutcome, ...]
    run_status: str | None
    released: tuple[str, ...] = ()  # a sync's delete chunks, released by this batch: send them

    @property
    def cancelling(self) -> bool:
        return self.run_status in (RunStatus.CANCELLING, RunStatus.CANCELLED)


@dataclass(frozen=True)
class ListingError:
    """Why a worker that listed a run stopped; ``bad_input``: the request itself is wrong."""

    message: str
    bad_input: bool


def connect(url: str, timeout_s: float = 10.0, retries: int = 12) -> redis.Redis:
    """A Redis client that rides out a short Redis outage: redis-py's own retry, with backoff.

    A restart (connection refused, timeouts) and a full Redis (``maxmemory`` reached: writes
    answer OOM, and a script is refused before it runs, so nothing is half done) are retried
    alike: with the default 12 retries for about 40 s; workers ask for more.
    """
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=5.0, base=0.2), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, OutOfMemoryError],
    )


class RunGone(RuntimeError):
    """The run's state is no longer in Redis (a Redis restarted without persistence, flushed,
    or evicting keys): nothing of it can be recorded any more."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"the state of run {run_id} is gone from Redis")
        self.run_id = run_id


class RunStore:
    """Reads and writes the state of copy runs in Redis."""

    def __init__(self, client: redis.Redis, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._create = client.register_script(_CREATE)
        self._register = client.register_script(_REGISTER_CHUNK)
        self._finish = client.register_script(_FINISH_LISTING)
        self._save_listing = client.register_script(_SAVE_LISTING)
        self._cancel = client.register_script(_CANCEL)
        self._record = client.register_script(_RECORD)
        self._take = client.register_script(_TAKE)
        self._refuse_deletes = client.register_script(_REFUSE_DELETES)

    @property
    def ttl_s(self) -> int:
        return self._ttl

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for modules that keep state of their own next to the run's."""
        return self._redis

    def create_run(
        self,
        run_id: str,
        spec: dict[str, Any],
        max_failures: int | None,
        job: str = "",
        controls: RunControls | None = None,
    ) -> str:
        """Create the run if it does not exist; return its status either way.

        ``job`` is the wire JSON every chunk of the run shares (``CopyJob.to_wire``), kept
        once with the run; ``controls`` its priority, rate caps and owner.
        """
        limit = -1 if max_failures is None else max_failures
        controls = controls or RunControls()
        keys = RunKeys(run_id)
        args: list[str | int] = [
            self._ttl,
            limit,
            json.dumps(spec),
            job,
            controls.weight,
            controls.owner,
            _cap(controls.max_requests_per_second),
            _cap(controls.max_bytes_per_second),
        ]
        return str(self._create(keys=[keys.run, keys.rate], args=args))

    def register_chunk(
        self,
        run_id: str,
        chunk_id: str,
        n_items: int,
        n_bytes: int,
        items: str = "",
        patience_s: float = QUEUE_PATIENCE_S,
        held: bool = False,
    ) -> int:
        """Count a chunk as dispatched (once) and keep its items (wire JSON) in the pool.

        -1 means the run is cancelled or over. ``patience_s``: a chunk no worker has taken
        after that long is sent again (its message was lost). ``held``: a delete chunk of a
        sync, counted in ``objects_to_delete`` and not sent until every copy is done.
        """
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.dispatched, keys.chunk_items, keys.leases, keys.holders]
        args: list[str | int] = [
            self._ttl,
            chunk_id,
            n_items,
            n_bytes,
            items,
            int(patience_s * 1000),
            "1" if held else "",
        ]
        run_keys.append(keys.held_deletes)
        return int(self._register(keys=run_keys, args=args))

    def take_chunk(
        self,
        run_id: str,
        chunk_id: str,
        holder: str,
        lease_s: float,
        digests: tuple[str, str] = ("", ""),
    ) -> Taken:
        """Take a received chunk: authenticate it, and hold a lease on it (``take.lua``).

        ``digests``: SHA-1 of the items and of the job a message carried (canonical JSON), to
        be compared with what the run dispatched; empty for a message by reference.
        """
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.dispatched, keys.done, keys.chunk_items]
        args: list[str | int] = [chunk_id, holder, int(lease_s * 1000), self._ttl, *digests]
        raw = self._take(keys=[*run_keys, keys.leases, keys.holders, keys.deliveries], args=args)
        verdict, status, *rest = [*raw, None, None, 0][:5]
        items, job, deliveries = rest
        return Taken(str(verdict), status or None, items or None, job or None, int(deliveries or 0))

    def outstanding(self, run_id: str) -> int:
        """Chunks of the run in the pool: dispatched and not done (queued, held or returned)."""
        keys = RunKeys(run_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.scard(keys.dispatched)
        pipe.scard(keys.done)
        dispatched, done = pipe.execute()
        return int(dispatched) - int(done)

    def save_listing(
        self, run_id: str, fields: Mapping[str, str], counters: Mapping[str, int] | None = None
    ) -> None:
        """Record listing progress (partitions, cursors) and set listing counters, atomically.

        Counters are absolute values (HSET, not HINCRBY): a dispatcher that resumes recomputes
        them from the saved cursors, so repeating a write never counts anything twice. RunGone
        if the run's state is no longer in Redis: the listing has nothing left to list for.
        """
        keys = RunKeys(run_id)
        args: list[str | int] = [
            self._ttl,
            json.dumps(dict(fields)),
            json.dumps({name: str(value) for name, value in (counters or {}).items()}),
        ]
        if not self._save_listing(keys=[keys.run, keys.listing], args=args):
            raise RunGone(run_id)

    def listing(self, run_id: str) -> dict[str, str]:
        """What ``save_listing`` recorded for the run (empty if nothing yet)."""
        return decoded(self._redis.hgetall(RunKeys(run_id).listing))

    def finish_listing(self, run_id: str) -> str | None:
        """Mark the listing complete; finalizes the run if every chunk is already done."""
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.dispatched, keys.done, *keys.delete_phase()]
        status = self._finish(keys=run_keys, args=[self._ttl])
        return str(status) if status else None

    def refuse_deletes(self, run_id: str, planned: int) -> str | None:
        """A sync would delete ``planned`` keys, more than its max_delete: delete none, and
        let the run fail once its copies are done. Returns the run's status."""
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.dispatched, keys.done, *keys.delete_phase()]
        status = self._refuse_deletes(keys=run_keys, args=[self._ttl, planned])
        return str(status) if status else None

    def request_cancel(self, run_id: str) -> str | None:
        """Stop dispatch and make workers drop the run's remaining keys.

        A run that does not exist yet (a worker has still to list it) is marked, and the worker
        that lists it ends it cancelled instead (``cancel_requested``).
        """
        keys = RunKeys(run_id)
        run_keys = [keys.run, keys.dispatched, keys.done, keys.cancel_requested]
        status = self._cancel(keys=[*run_keys, *keys.delete_phase()], args=[self._ttl])
        return str(status) if status else None

    def cancel_requested(self, run_id: str) -> bool:
        """Whether the run was cancelled before it existed (``request_cancel``)."""
        return bool(self._redis.exists(RunKeys(run_id).cancel_requested))

    @contextlib.contextmanager
    def end_watch(self, run_id: str) -> Iterator[Callable[[float], None]]:
        """A ``pause(seconds)`` that returns early once the run ends, for the waiting loops.

        Subscribed before the caller's first reading, so an end between a reading and the pause
        is not missed: the pause returns at once.
        """
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        pubsub.subscribe(RunKeys(run_id).ended_channel)

        def pause(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            try:
                while (left := deadline - time.monotonic()) > 0:
                    if pubsub.get_message(timeout=left) is not None:
                        return
            except (redis.RedisError, OSError):  # the readings decide; without it, just wait
                time.sleep(max(deadline - time.monotonic(), 0.0))

        try:
            yield pause
        finally:
            pubsub.close()

    def record_listing_error(self, run_id: str, message: str, bad_input: bool) -> None:
        """Say why the worker that listed the run stopped, and wake whoever waits for the run."""
        keys = RunKeys(run_id)
        record = json.dumps({"message": message, "bad_input": bad_input})
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(keys.listing_error, record, ex=self._ttl)
        pipe.publish(keys.ended_channel, "listing-error")
        pipe.execute()

    def listing_error(self, run_id: str) -> ListingError | None:
        """Why the run's listing worker stopped, if it did (``record_listing_error``)."""
        return parse_listing_error(self._redis.get(RunKeys(run_id).listing_error))

    def clear_listing_error(self, run_id: str) -> None:
        """Forget a previous listing's error: the run is being listed again."""
        self._redis.delete(RunKeys(run_id).listing_error)

    def chunk_state(self, run_id: str, chunk_id: str) -> ChunkState:
        """The run status and the items of a chunk that already have an outcome."""
        keys = RunKeys(run_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hget(keys.run, "status")
        # The bitmap is binary: NEVER_DECODE keeps this client's decode_responses off it.
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "GET", keys.recorded(chunk_id), NEVER_DECODE=True
        )
        status, bitmap = pipe.execute()
        return ChunkState(status, frozenset(_set_bits(bitmap or b"")))

    def record(
        self, run_id: str, chunk_id: str, n_items: int, outcomes: Sequence[KeyOutcome]
    ) -> Recorded:
        """Record final outcomes of a chunk's keys; a key already recorded is not counted."""
        keys = RunKeys(run_id)
        batch = [
            [
                outcome.index,
                outcome.status.value,
                outcome.size,
                outcome.retries,
                outcome.error_code or "Unknown",
                json.dumps(outcome.failure_record()) if outcome.status is KeyStatus.FAILED else "",
                list(outcome.extra_counters),
            ]
            for outcome in outcomes
        ]
        args: list[str | int] = [
            self._ttl,
            chunk_id,
            n_items,
            json.dumps(batch),
            keys.chunk_done_channel,
            int(QUEUE_PATIENCE_S * 1000),
        ]
        run_keys = [keys.run, keys.dispatched, keys.done, keys.progress, keys.failures]
        lease_keys = [keys.chunk_items, keys.leases, keys.holders, keys.deliveries]
        positions, status, released = self._record(
            keys=[*run_keys, keys.recorded(chunk_id), *lease_keys, keys.held_deletes], args=args
        )
        added = tuple(outcomes[int(p) - 1] for p in positions)
        return Recorded(added, str(status) if status else None, tuple(map(str, released)))

    def run_hash(self, run_id: str) -> dict[str, str]:
        return decoded(self._redis.hgetall(RunKeys(run_id).run))

    def summary(self, run_id: str) -> RunSummary | None:
        """The run's current summary, or None if no such run exists (or it expired)."""
        keys = RunKeys(run_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.run)
        pipe.lrange(keys.failures, 0, FAILURES_READ - 1)
        pipe.hget(keys.rate, "starved_ms")
        run_hash, failures, limited = pipe.execute()
        if not run_hash:
            return None
        return summarize(run_id, run_hash, failures, time.time(), float(limited or 0))

    def iter_failures(self, run_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        """Every failure record of the run, in the order they were recorded."""
        key = RunKeys(run_id).failures
        start = 0
        while batch := self._redis.lrange(key, start, start + page - 1):
            yield from (json.loads(line) for line in batch)
            start += len(batch)


def _cap(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def parse_listing_error(raw: str | bytes | None) -> ListingError | None:
    if raw is None:
        return None
    record = json.loads(raw)
    return ListingError(str(record["message"]), bool(record["bad_input"]))


def _set_bits(bitmap: bytes) -> Iterator[int]:
    # Redis bitmaps number bits from the most significant bit of the first byte.
    for byte_index, byte in enumerate(bitmap):
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield byte_index * 8 + bit


def decoded(raw: dict[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
