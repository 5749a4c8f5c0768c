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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from copy_core.aws.request_log import RequestLog
from copy_core.classify import classify
from copy_core.contract import (
    ChunkMessage,
    ChunkResult,
    CopyItem,
    CopyJob,
    KeyOutcome,
    KeyStatus,
    is_delete_chunk,
    outcome_slots,
)
from copy_core.logs import bound, log_event
from copy_core.runs.leases import LeaseStore, chunk_member
from copy_core.runs.store import QUEUE_PATIENCE_S, Recorded, RunStore
from copy_workers.pacing import RateGate
from copy_workers.retry import CauseBreaker, KeyRetryPolicy, RetriesExhausted, call_with_retries
from copy_workers.s3.copier import CopyReport
from copy_workers.s3.deletes import Deleted
from copy_workers.s3.fastlane import FastLane, LaneDriver, eligible
from copy_workers.settings import WorkerSettings
from copy_workers.window import AdaptiveWindow

log = logging.getLogger(__name__)

CopyFn = Callable[[CopyItem, RequestLog], CopyReport]
DeleteFn = Callable[[Sequence[tuple[int, CopyItem]], RequestLog, KeyRetryPolicy], list[Deleted]]
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
    delete: DeleteFn | None = None  # a sync's delete chunks
    delete_source: Callable[[CopyItem, RequestLog], None] | None = None  # a move


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
        on_recorded: Callable[[list[KeyOutcome], Recorded], None] = lambda batch, done: None,
    ) -> None:
        self.observer = observer
        self._on_recorded = on_recorded
        self._slots = outcome_slots(message.job, len(message.items))
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

    def add(self, outcome: KeyOutcome, urgent: bool = False) -> None:
        """Buffer an outcome; ``urgent``: record it now (a move deletes a source only once
        its copy is recorded)."""
        with self._lock:
            self._buffer.append(outcome)
            due = urgent or time.monotonic() - self._last_flush >= self._every_s
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
        self._on_recorded(batch, result)
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
                return self._store.record(msg.run_id, msg.chunk_id, self._slots, batch)
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
        # Versions of one key (--all-versions) are copied one after another, oldest first:
        # dest key -> the indices still to start, each once the one before has an outcome.
        self.waiting: dict[str, deque[int]] = {}
        # A move: each key has a second outcome slot (its source), at len(items) + index.
        self.moves = paths.delete_source is not None
        self._remaining = 0
        self._lock = threading.Lock()

    # --- LaneChunk -------------------------------------------------------------------------
    def stopping(self) -> bool:
        return self.lost or self.recorder.cancelling or self.engine.stopped

    def drop(self, index: int) -> None:
        if self.recorder.cancelling and not self.lost:
            self.emit(_cancelled(self.items, index), 0.0)
        else:
            self._next_version(index)
            self.one_less(2 if self.moves else 1)  # nor will its source be settled here

    def emit(self, outcome: KeyOutcome, seconds: float) -> None:
        copy_outcome = outcome.index < len(self.items)
        if outcome.status is not KeyStatus.CANCELLED and copy_outcome:
            self.recorder.observer.key_finished(outcome, seconds)
        if outcome.status is KeyStatus.DEFERRED:
            with self._lock:
                self.deferred += 1
            if self.moves:  # the worker that completes the split key settles its source
                self.one_less()
        else:
            # A move's copy outcome is recorded at once: its source is settled after that.
            self.recorder.add(outcome, urgent=self.moves and copy_outcome)
        if copy_outcome:
            self._next_version(outcome.index)
        self.one_less()

    def _next_version(self, index: int) -> None:
        """The key's next version starts once this one has an outcome (copied or not)."""
        if not self.waiting:
            return
        with self._lock:
            queued = self.waiting.get(self.items[index].dest_key)
            following = queued.popleft() if queued else None
        if following is not None:
            self.engine.dispatch(self, [following])

    def handoff(self, index: int) -> None:
        self.engine.run_threaded(self, index, self.paths.copy)

    # --- bookkeeping -----------------------------------------------------------------------
    def expect(self, count: int) -> None:
        with self._lock:
            self._remaining += count

    def one_less(self, count: int = 1) -> None:
        """``count`` of the chunk's outcome slots need nothing more from this delivery."""
        with self._lock:
            self._remaining -= count
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
        on_released: Callable[[str, tuple[str, ...]], None] = lambda run_id, chunks: None,
        on_report: Callable[[CopyJob, str, str, list[KeyOutcome]], None] = lambda *_: None,
    ) -> None:
        self.settings = settings
        self._on_released = on_released
        self._on_report = on_report
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
        work_box: list[ChunkWork] = []
        recorder = Recorder(
            self._store,
            message,
            self.settings,
            self._observer,
            on_recorded=lambda batch, done: self._recorded(work_box[0], batch, done),
        )
        work = ChunkWork(self, message, paths, recorder, gate)
        work_box.append(work)
        n = len(message.items)
        slots = range(outcome_slots(message.job, n))
        unsettled = [i for i in slots if i not in recorded]
        pending = [i for i in unsettled if i < n]
        recorder.tally.already = n - len(pending)
        with self._lock:
            self._chunks[(message.run_id, message.chunk_id)] = work
            self._observer.chunks_held(len(self._chunks))
        self._on_hold(message.run_id, work.member)
        if not unsettled:
            self.finish(work)
            return
        work.expect(len(unsettled))
        for slot in unsettled:
            if slot >= n and slot - n in recorded:
                # A move whose copy an earlier delivery recorded, then stopped before it
                # settled the source: kept, as nothing here can tell whether it was deleted.
                kept = _source_outcome(work, slot - n, KeyStatus.SOURCE_KEPT)
                self._run_on_threads(work.emit, kept, 0.0)
        if not pending:
            return
        if not accepts_work:  # cancelled while it waited in the queue
            recorder.cancelling = True
            for index in pending:
                work.drop(index)
            return
        if is_delete_chunk(message.chunk_id):
            self._run_on_threads(self._delete_keys, work, pending)
            return
        self.dispatch(work, _first_versions(work, pending))

    def _recorded(self, work: ChunkWork, batch: list[KeyOutcome], recorded: Recorded) -> None:
        """After a batch is recorded: send the delete chunks it released; in a move, settle
        the source of each copy outcome it recorded (on a thread: this runs under the
        recorder's lock)."""
        message = work.message
        if recorded.released:
            self._on_released(message.run_id, recorded.released)
        if message.job.report is not None and recorded.added:
            copies = [o for o in recorded.added if o.index < len(work.items)]
            self._run_on_threads(
                self._on_report, message.job, message.run_id, message.chunk_id, copies
            )
        if not work.moves:
            return
        added = {outcome.index for outcome in recorded.added}
        for outcome in batch:
            if outcome.index >= len(work.items):
                continue
            if outcome.index not in added:  # another delivery recorded it, and settles it
                self._run_on_threads(work.one_less)
            elif outcome.status is KeyStatus.COPIED:
                self._run_on_threads(self._move_source, work, outcome)
            else:
                untouched = _source_outcome(work, outcome.index, KeyStatus.SOURCE_UNTOUCHED)
                self._run_on_threads(work.emit, untouched, 0.0)

    def _run_on_threads(self, fn: Callable[..., None], *args: object) -> None:
        with self._lock:
            self._threads_queued += 1
        self._threads.submit(self._counted, fn, *args)

    def _counted(self, fn: Callable[..., None], *args: object) -> None:
        with self._lock:
            self._threads_queued -= 1
        fn(*args)

    def _delete_keys(self, work: ChunkWork, pending: list[int]) -> None:
        """A sync's delete chunk: its destination keys in DeleteObjects batches."""
        if work.stopping():
            for index in pending:
                work.drop(index)
            return
        assert work.paths.delete is not None, "a delete chunk needs the job's delete path"
        gate = work.gate
        requests = RequestLog(None if gate is None else lambda: gate.take(1))
        started = time.monotonic()
        with bound(work.message.run_id, work.message.chunk_id):
            answers = work.paths.delete(
                [(i, work.items[i]) for i in pending], requests, self._policy
            )
        seconds = time.monotonic() - started
        for answer in answers:
            item = work.items[answer.index]
            status = KeyStatus.DELETED
            if answer.error is not None:
                status = KeyStatus.FAILED
            elif answer.changed:
                status = KeyStatus.SKIPPED  # rewritten since it was listed: left alone
            error = answer.error
            outcome = KeyOutcome(
                answer.index,
                item.dest_key,
                status,
                item.size,
                retries=requests.retries,
                error_code=None if error is None else error.code,
                message=None if error is None else error.message,
                retryable=error is not None and error.retryable,
                http_status=None if error is None else error.status,
                deleting=True,
            )
            work.emit(outcome, seconds)

    def _move_source(self, work: ChunkWork, outcome: KeyOutcome) -> None:
        """A move: delete the source of a copy recorded as copied, if it was verified."""
        if work.stopping():  # whoever has the chunk now settles it
            work.one_less()
            return
        delete = work.paths.delete_source
        assert delete is not None
        item, message = work.items[outcome.index], work.message
        with bound(message.run_id, message.chunk_id):
            status = settle_source(item, outcome, delete, self._policy)
        work.emit(_source_outcome(work, outcome.index, status), 0.0)

    def dispatch(self, work: ChunkWork, pending: list[int]) -> None:
        """Start copying these keys of ``work``: on the lane, threaded, or split."""
        paths, items = work.paths, work.items
        big = [
            i
            for i in pending
            if paths.split is not None
            and paths.wants_split(items[i])
            and items[i].dest_key not in work.waiting  # a version's parts stay here, in order
        ]
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
                version_id=item.version_id,
                http_status=error.status,
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
            version_id=item.version_id,
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


def _first_versions(work: ChunkWork, pending: list[int]) -> list[int]:
    """The keys to start now: all of them, but only the oldest pending version of a key that
    has several in the chunk (the others wait in ``work.waiting``, in order)."""
    items = work.items
    if len({item.dest_key for item in items}) == len(items):
        return pending
    first: list[int] = []
    for index in pending:  # the listing put each key's versions oldest first
        queued = work.waiting.get(items[index].dest_key)
        if queued is None:
            work.waiting[items[index].dest_key] = deque()
            first.append(index)
        else:
            queued.append(index)
    return first


def settle_source(
    item: CopyItem,
    outcome: KeyOutcome,
    delete: Callable[[CopyItem, RequestLog], None],
    policy: KeyRetryPolicy,
) -> KeyStatus:
    """Delete a moved key's source once its copy is recorded: only if the copy was verified,
    retried as a copy is; a source that stays is logged with the reason."""
    if not outcome.verified:
        log.warning("source kept: its copy was not verified", extra={"key": item.source_key})
        return KeyStatus.SOURCE_KEPT
    try:
        call_with_retries(lambda: delete(item, RequestLog()), policy)
    except Exception as exc:  # the copy stands; the source stays, and says why
        error = exc.error if isinstance(exc, RetriesExhausted) else classify(exc)
        log.warning(
            "source kept: it could not be deleted",
            extra={"key": item.source_key, "error_code": error.code, "reason": error.message},
        )
        return KeyStatus.SOURCE_KEPT
    return KeyStatus.SOURCE_DELETED


def _source_outcome(work: ChunkWork, index: int, status: KeyStatus) -> KeyOutcome:
    item = work.items[index]
    slot = len(work.items) + index
    return KeyOutcome(slot, item.source_key, status, attempts=0, version_id=item.version_id)


def _cancelled(items: Sequence[CopyItem], index: int) -> KeyOutcome:
    return KeyOutcome(
        index,
        items[index].source_key,
        KeyStatus.CANCELLED,
        attempts=0,
        version_id=items[index].version_id,
    )


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
