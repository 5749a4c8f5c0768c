"""The copy engine of one worker process: the chunks it holds, copied through one window.

A chunk task admits its chunk here and returns as soon as the process has room for another
(``wait_for_room``): the keys of every chunk the process holds share one adaptive window of
copies in flight (``window``) on the fast lane's one thread and on a pool of threads for what
only botocore can do, so the next chunk's first keys start while the previous chunk's last
ones are still in flight. Outcomes are recorded per chunk, in batches, exactly once per key
(``copy_core.runs.store``); a chunk whose every key has an outcome is done, and leaves the
pool. The engine knows nothing of Celery.

A chunk may be delivered more than once (its worker died, a message was sent again), so the
task first takes it (a lease, checked against what the run dispatched) and the engine copies
only the keys without an outcome; the store counts a key once even if two deliveries race.
Each key is retried with backoff within its deadline (``retry``); what is left then fails with
its last error. A process that stops returns the chunks it still holds to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from copy_core.aws.request_log import RequestLog
from copy_core.classify import classify
from copy_core.contract import ChunkMessage, ChunkResult, CopyItem, CopyJob, KeyOutcome, KeyStatus
from copy_core.logs import bound, log_event
from copy_core.runs.leases import LeaseStore, chunk_member
from copy_core.runs.store import QUEUE_PATIENCE_S, Recorded, RunStore
from copy_workers.pacing import RateGate
from copy_workers.retry import CauseBreaker, KeyRetryPolicy, RetriesExhausted, call_with_retries
from copy_workers.s3.copier import CopyReport
from copy_workers.s3.fastlane import FastLane, LaneDriver, eligible
from copy_workers.settings import WorkerSettings
from copy_workers.window import AdaptiveWindow

log = logging.getLogger(__name__)

CopyFn = Callable[[CopyItem, RequestLog], CopyReport]
_ROOM_POLL_S = 0.02
_RECORD_BACKOFF_MAX_S = 30.0
_STOP_GRACE_S = 5.0


class ChunkObserver:
    """Hooks for whoever watches the engine (Prometheus metrics); the default does nothing."""

    def key_finished(self, outcome: KeyOutcome, seconds: float) -> None:
        """One key's attempt ended (copied, skipped or failed), after ``seconds``."""

    def recorded(self, outcomes: Sequence[KeyOutcome]) -> None:
        """These outcomes were counted in the run for the first time (exactly once per key)."""

    def chunks_held(self, count: int) -> None:
        """The process holds this many chunks now."""


@dataclass(frozen=True)
class CopyPaths:
    """How the engine copies a job's keys: the threaded copier, the lane, the split starter.

    Built per job by the process (``process.WorkerProcess``): each carries the job's clients.
    """

    copy: CopyFn
    lane: FastLane | None = None
    split: CopyFn | None = None
    wants_split: Callable[[CopyItem], bool] = lambda _: False


@dataclass
class _Tally:
    """What this delivery recorded, for its log line."""

    counts: dict[KeyStatus, int] = field(default_factory=lambda: dict.fromkeys(KeyStatus, 0))
    bytes_copied: int = 0
    retries: int = 0
    already: int = 0


class Recorder:
    """Buffers a chunk's outcomes and records them in batches: one Redis call per batch.

    A write that fails (Redis away, or full) is retried with backoff for as long as it takes:
    outcomes are never dropped while the process lives.
    """

    def __init__(
        self,
        store: RunStore,
        message: ChunkMessage,
        settings: WorkerSettings,
        observer: ChunkObserver,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.observer = observer
        self._store = store
        self._message = message
        self._every_s = settings.flush_every_s
        self._every_keys = settings.flush_every_keys
        self._sleep = sleep
        self._buffer: list[KeyOutcome] = []
        # As if the last flush were due: a chunk's first outcome is recorded at once, so a
        # run's progress shows copying as soon as it starts; later ones go in batches.
        self._last_flush = time.monotonic() - self._every_s
        self._lock = threading.Lock()
        self.cancelling = False
        self.tally = _Tally()

    def add(self, outcome: KeyOutcome) -> None:
        with self._lock:
            self._buffer.append(outcome)
            due = time.monotonic() - self._last_flush >= self._every_s
            if due or len(self._buffer) >= self._every_keys:
                self._flush_locked(force=False)

    def flush(self) -> None:
        """Record what is buffered; with nothing buffered, still let the store see the chunk
        (a redelivered chunk whose keys all have outcomes is done then)."""
        with self._lock:
            self._flush_locked(force=True)

    def _flush_locked(self, force: bool) -> None:
        batch, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if not batch and not force:
            return
        result = self._record(batch)
        self.cancelling = self.cancelling or result.cancelling
        self.tally.already += len(batch) - len(result.added)
        self.observer.recorded(result.added)
        for outcome in result.added:
            self.tally.counts[outcome.status] += 1
            self.tally.retries += outcome.retries
            if outcome.status is KeyStatus.COPIED:
                self.tally.bytes_copied += outcome.size

    def _record(self, batch: list[KeyOutcome]) -> Recorded:
        msg, pause = self._message, 0.5
        while True:
            try:
                return self._store.record(msg.run_id, msg.chunk_id, len(msg.items), batch)
            except (redis.RedisError, OSError) as exc:
                log.warning("cannot record outcomes yet; retrying", extra={"error": str(exc)})
                self._sleep(pause)
                pause = min(pause * 2, _RECORD_BACKOFF_MAX_S)


class ChunkWork:
    """A chunk the engine holds: its keys in flight, its outcomes, its lease."""

    def __init__(
        self,
        engine: ProcessEngine,
        message: ChunkMessage,
        paths: CopyPaths,
        recorder: Recorder,
        gate: RateGate | None,
    ) -> None:
        self.engine = engine
        self.message = message
        self.job: CopyJob = message.job
        self.items = message.items
        self.paths = paths
        self.recorder = recorder
        self.gate = gate
        self.member = chunk_member(message.chunk_id)
        self.lost = False  # another worker holds the chunk now: stop, record nothing more
        self.deferred = 0  # keys split across workers: whoever finishes them records them
        self._remaining = 0
        self._lock = threading.Lock()

    # --- LaneChunk -------------------------------------------------------------------------
    def stopping(self) -> bool:
        return self.lost or self.recorder.cancelling or self.engine.stopped

    def drop(self, index: int) -> None:
        if self.recorder.cancelling and not self.lost:
            self.emit(_cancelled(self.items, index), 0.0)
        else:
            self._one_less()

    def emit(self, outcome: KeyOutcome, seconds: float) -> None:
        if outcome.status is not KeyStatus.CANCELLED:
            self.recorder.observer.key_finished(outcome, seconds)
        if outcome.status is KeyStatus.DEFERRED:
            with self._lock:
                self.deferred += 1
        else:
            self.recorder.add(outcome)
        self._one_less()

    def handoff(self, index: int) -> None:
        self.engine.run_threaded(self, index, self.paths.copy)

    # --- bookkeeping -----------------------------------------------------------------------
    def expect(self, count: int) -> None:
        with self._lock:
            self._remaining += count

    def _one_less(self) -> None:
        with self._lock:
            self._remaining -= 1
            finished = self._remaining == 0
        if finished:
            self.engine.finish(self)


class ProcessEngine:
    """The chunks one worker process holds, and the window their keys share."""

    def __init__(
        self,
        store: RunStore,
        leases: LeaseStore,
        settings: WorkerSettings,
        observer: ChunkObserver,
        window: AdaptiveWindow,
        holder: str,
        on_hold: Callable[[str, str], None] = lambda run_id, member: None,
        on_release: Callable[[str, str], None] = lambda run_id, member: None,
    ) -> None:
        self.settings = settings
        self.window = window
        self.stopped = False
        self._store = store
        self._leases = leases
        self._observer = observer
        self._holder = holder
        self._on_hold = on_hold
        self._on_release = on_release
        self._policy: KeyRetryPolicy = settings.key_retry_policy()
        self._breaker = CauseBreaker(settings.key_retry_deadline_s)
        self._lane = LaneDriver(window, self._policy, self._breaker)
        self._threads = ThreadPoolExecutor(settings.copy_threads, thread_name_prefix="copy")
        self._threads_queued = 0
        self._chunks: dict[tuple[str, str], ChunkWork] = {}
        self._lock = threading.Condition()

    @property
    def chunks_held(self) -> int:
        return len(self._chunks)

    def admit(
        self,
        message: ChunkMessage,
        recorded: frozenset[int],
        accepts_work: bool,
        paths: CopyPaths,
        gate: RateGate | None = None,
    ) -> None:
        """Start copying the keys of ``message`` without an outcome (the caller holds its lease)."""
        recorder = Recorder(self._store, message, self.settings, self._observer)
        work = ChunkWork(self, message, paths, recorder, gate)
        pending = [i for i in range(len(message.items)) if i not in recorded]
        recorder.tally.already = len(message.items) - len(pending)
        with self._lock:
            self._chunks[(message.run_id, message.chunk_id)] = work
            self._observer.chunks_held(len(self._chunks))
        self._on_hold(message.run_id, work.member)
        if not pending:
            self.finish(work)
            return
        work.expect(len(pending))
        if not accepts_work:  # cancelled while it waited in the queue
            recorder.cancelling = True
            for index in pending:
                work.drop(index)
            return
        self._dispatch(work, pending)

    def _dispatch(self, work: ChunkWork, pending: list[int]) -> None:
        paths, items = work.paths, work.items
        big = [i for i in pending if paths.split is not None and paths.wants_split(items[i])]
        fast: list[int] = []
        if paths.lane is not None:
            split_off = set(big)
            fast = [i for i in pending if i not in split_off and eligible(work.job, items[i])]
        threaded = sorted(set(pending) - set(big) - set(fast))
        for index in big:
            assert paths.split is not None
            self.run_threaded(work, index, paths.split)
        if fast:
            assert paths.lane is not None
            self._lane.submit(work, paths.lane, fast)
        for index in threaded:
            self.run_threaded(work, index, paths.copy)

    def run_threaded(self, work: ChunkWork, index: int, copy: CopyFn) -> None:
        """Copy one key on the threaded path (botocore: multipart, streams, checks...)."""
        with self._lock:
            self._threads_queued += 1
        self._threads.submit(self._copy_threaded, work, index, copy)

    def _copy_threaded(self, work: ChunkWork, index: int, copy: CopyFn) -> None:
        with self._lock:
            self._threads_queued -= 1
        if work.stopping():
            work.drop(index)
            return
        started = time.monotonic()
        with bound(work.message.run_id, work.message.chunk_id):
            outcome = self._attempt(work, index, copy)
        work.emit(outcome, time.monotonic() - started)

    def _attempt(self, work: ChunkWork, index: int, copy: CopyFn) -> KeyOutcome:
        item, job, gate = work.items[index], work.job, work.gate
        requests = RequestLog(None if gate is None else lambda: gate.take(1))
        key_retries = 0

        def count_retry(_: object) -> None:
            nonlocal key_retries
            key_retries += 1

        def one_try() -> CopyReport:
            self.window.acquire()
            ok = False
            try:
                if gate is not None:
                    gate.take(0, item.size)  # the key's bytes; each request takes its own
                report = copy(item, requests)
                ok = True
                return report
            finally:
                self.window.release(succeeded=ok)

        try:
            report = call_with_retries(
                one_try,
                self._policy,
                on_retry=count_retry,
                give_up=lambda: self._breaker.given_up(job),
                on_transient=lambda error: self._breaker.failed(job, error),
            )
        except Exception as exc:  # every failure of one key becomes that key's outcome
            error = exc.error if isinstance(exc, RetriesExhausted) else classify(exc)
            if error.retryable:
                error = self._breaker.explain(job, error)
            else:
                log.warning("copy failed", extra={"key": item.source_key, "error_code": error.code})
            return KeyOutcome(
                index,
                item.source_key,
                KeyStatus.FAILED,
                size=item.size,
                retries=requests.retries + key_retries,
                attempts=key_retries + 1,
                error_code=error.code,
                message=error.message,
                retryable=error.retryable,
            )
        self._breaker.succeeded(job)
        return KeyOutcome(
            index,
            item.source_key,
            report.status,
            item.size,
            retries=requests.retries + key_retries,
            attempts=key_retries + 1,
            verified=report.verified,
            streamed=report.streamed,
        )

    # --- room, ends, and stopping ------------------------------------------------------------
    def has_room(self) -> bool:
        """Whether the process should take another chunk now."""
        queued = self._lane.queued + self._threads_queued
        return queued < self.window.limit and len(self._chunks) < self.settings.chunks_per_process

    def wait_for_room(self, timeout_s: float | None = None) -> bool:
        """Block until the process has room for another chunk (False: ``timeout_s`` passed)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.has_room() and not self.stopped:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_ROOM_POLL_S)
        return True

    def finish(self, work: ChunkWork) -> None:
        """Every key of the chunk has an outcome (or is split off): record, let go of it."""
        message = work.message
        work.recorder.flush()  # even if another worker has the chunk now: outcomes count once
        if not work.lost:
            if self.stopped:  # keys were left: another worker takes the chunk now
                self._leases.release(message.run_id, self._holder, work.member, 0.0, retry=False)
            elif work.deferred:
                # The chunk is done when its split keys are: it stays in the pool, 'queued'
                # (should it come back, its split keys are started already and it goes again).
                self._leases.release(
                    message.run_id, self._holder, work.member, QUEUE_PATIENCE_S, retry=False
                )
        with self._lock:
            self._chunks.pop((message.run_id, message.chunk_id), None)
            self._observer.chunks_held(len(self._chunks))
        self._on_release(message.run_id, work.member)
        result = _result(message, work.recorder.tally)
        with bound(message.run_id, message.chunk_id):
            log_event(log, "chunk finished", **result.to_wire(), deferred=work.deferred)

    def lose(self, run_id: str, member: str) -> None:
        """This process no longer holds ``member`` (another worker took it): stop copying it."""
        for (work_run, _), work in list(self._chunks.items()):
            if work_run == run_id and work.member == member:
                work.lost = True

    def drain(self, timeout_s: float) -> bool:
        """Stop taking keys; wait for the chunks held to finish, and give back the rest.

        True if every chunk finished; the others are returned to the queue at once, for
        another worker to take (their recorded outcomes stand).
        """
        deadline = time.monotonic() + timeout_s
        while self._chunks and time.monotonic() < deadline:
            time.sleep(0.05)
        drained = not self._chunks
        self.stopped = True  # keys not started are dropped: their chunks finish and go back
        deadline = time.monotonic() + _STOP_GRACE_S
        while self._chunks and time.monotonic() < deadline:
            time.sleep(0.05)
        for work in list(self._chunks.values()):  # copies still in flight: give them back
            work.recorder.flush()
            message = work.message
            self._leases.release(message.run_id, self._holder, work.member, 0.0, retry=False)
        return drained


def _cancelled(items: Sequence[CopyItem], index: int) -> KeyOutcome:
    return KeyOutcome(index, items[index].source_key, KeyStatus.CANCELLED, attempts=0)


def _result(message: ChunkMessage, tally: _Tally) -> ChunkResult:
    return ChunkResult(
        run_id=message.run_id,
        chunk_id=message.chunk_id,
        copied=tally.counts[KeyStatus.COPIED],
        skipped=tally.counts[KeyStatus.SKIPPED],
        failed=tally.counts[KeyStatus.FAILED],
        cancelled=tally.counts[KeyStatus.CANCELLED],
        already_recorded=tally.already,
        bytes_copied=tally.bytes_copied,
        retries=tally.retries,
    )
