"""The copy engine: copies the keys of one chunk, several at once, and records each outcome.

It knows nothing of Celery. A chunk may be delivered more than once (a worker died, a
visibility timeout passed, a chunk-level retry), so the engine first asks the run store which
keys already have an outcome and copies only the others; the store counts a key once even if
two deliveries race.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from copy_core.aws.request_log import RequestLog
from copy_core.classify import classify
from copy_core.contract import ChunkMessage, ChunkResult, CopyItem, KeyOutcome, KeyStatus
from copy_core.logs import log_event
from copy_core.runs.store import Recorded, RunStore
from copy_workers.retry import KeyRetryPolicy, RetriesExhausted, call_with_retries
from copy_workers.s3.copier import CopyReport
from copy_workers.s3.fastlane import FastLane, eligible
from copy_workers.s3.split import SplitStarter
from copy_workers.settings import WorkerSettings
from copy_workers.throttle import AdaptiveLimit

log = logging.getLogger(__name__)

CopyFn = Callable[[CopyItem, RequestLog], CopyReport]


class ChunkObserver:
    """Hooks for whoever watches the engine (Prometheus metrics); the default does nothing."""

    def key_finished(self, outcome: KeyOutcome, seconds: float) -> None:
        """One key's attempt ended (copied, skipped or failed), after ``seconds``."""

    def recorded(self, outcomes: Sequence[KeyOutcome]) -> None:
        """These outcomes were counted in the run for the first time (exactly once per key)."""


class ChunkIncomplete(Exception):
    """Some keys hit transient errors after every per-request retry; retry the chunk later."""

    def __init__(self, run_id: str, chunk_id: str, left: int) -> None:
        super().__init__(f"chunk {chunk_id} of run {run_id}: {left} keys left to retry")
        self.left = left


@dataclass
class _Tally:
    """Counts what this delivery recorded, for the task's return value and its log line."""

    counts: dict[KeyStatus, int] = field(default_factory=lambda: dict.fromkeys(KeyStatus, 0))
    bytes_copied: int = 0
    retries: int = 0
    already: int = 0


class _Recorder:
    """Buffers outcomes and records them in batches: one Redis round trip per batch."""

    def __init__(
        self,
        store: RunStore,
        message: ChunkMessage,
        settings: WorkerSettings,
        observer: ChunkObserver,
        limit: AdaptiveLimit,
    ) -> None:
        self.observer = observer
        self.retry_policy = settings.key_retry_policy()
        self.limit = limit
        self._store = store
        self._message = message
        self._every_s = settings.flush_every_s
        self._every_keys = settings.flush_every_keys
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
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        batch, self._buffer = self._buffer, []
        self._last_flush = time.monotonic()
        if not batch:
            return
        msg = self._message
        result: Recorded = self._store.record(msg.run_id, msg.chunk_id, len(msg.items), batch)
        self.cancelling = self.cancelling or result.cancelling
        self.tally.already += len(batch) - len(result.added)
        self.observer.recorded(result.added)
        for outcome in result.added:
            self.tally.counts[outcome.status] += 1
            self.tally.retries += outcome.retries
            if outcome.status is KeyStatus.COPIED:
                self.tally.bytes_copied += outcome.size


def copy_chunk(
    message: ChunkMessage,
    copy: CopyFn,
    store: RunStore,
    settings: WorkerSettings,
    *,
    final_attempt: bool = True,
    observer: ChunkObserver | None = None,
    limit: AdaptiveLimit | None = None,
    lane: FastLane | None = None,
    split_starter: SplitStarter | None = None,
) -> ChunkResult:
    """Copy every key of ``message`` that has no recorded outcome yet, and record outcomes.

    Raises ChunkIncomplete when keys failed transiently and this is not the final attempt;
    on the final attempt those keys are recorded as failed.
    """
    state = store.chunk_state(message.run_id, message.chunk_id)
    limit = limit or AdaptiveLimit(settings.keys_in_flight)
    recorder = _Recorder(store, message, settings, observer or ChunkObserver(), limit)
    pending = [i for i in range(len(message.items)) if i not in state.recorded]
    recorder.tally.already = len(message.items) - len(pending)
    if state.run_status is None:
        log_event(log, "chunk dropped: run unknown or expired")
        return _result(message, recorder.tally)
    if not state.accepts_work:
        _record_all(recorder, message, pending, KeyStatus.CANCELLED)
        return _result(message, recorder.tally)
    left = 0
    if split_starter is not None:
        big = [i for i in pending if split_starter.wants(message.job, message.items[i])]
        if big:
            split_off = set(big)
            pending = [i for i in pending if i not in split_off]
            left += _copy_pending(
                message,
                pending=big,
                copy=split_starter.starter(message),
                recorder=recorder,
                settings=settings,
                final_attempt=final_attempt,
            )
    if lane is not None:
        pending, lane_left = _run_lane(lane, message, pending, recorder, final_attempt)
        left += lane_left
    left += _copy_pending(
        message,
        pending=pending,
        copy=copy,
        recorder=recorder,
        settings=settings,
        final_attempt=final_attempt,
    )
    recorder.flush()
    result = _result(message, recorder.tally)
    log_event(log, "chunk finished", **result.to_wire(), left_for_retry=left)
    if left:
        raise ChunkIncomplete(message.run_id, message.chunk_id, left)
    return result


def _copy_pending(
    message: ChunkMessage,
    *,
    pending: list[int],
    copy: CopyFn,
    recorder: _Recorder,
    settings: WorkerSettings,
    final_attempt: bool,
) -> int:
    """Copy ``pending`` items with up to ``keys_in_flight`` at once; return how many are left."""
    left = 0
    with ThreadPoolExecutor(settings.keys_in_flight, thread_name_prefix="copy") as pool:
        futures: dict[Future[KeyOutcome], int] = {
            pool.submit(_copy_one, copy, index, message.items[index], recorder): index
            for index in pending
        }
        for future in as_completed(futures):
            if future.cancelled():
                continue
            outcome = future.result()
            if outcome.status is KeyStatus.DEFERRED:
                continue
            if outcome.status is KeyStatus.FAILED and outcome.retryable and not final_attempt:
                left += 1
                continue
            recorder.add(outcome)
            if recorder.cancelling:
                _cancel_rest(futures, recorder, message)
    return left


def _run_lane(
    lane: FastLane,
    message: ChunkMessage,
    pending: list[int],
    recorder: _Recorder,
    final_attempt: bool,
) -> tuple[list[int], int]:
    """Copy the keys the fast lane can take; return the rest and how many are left to retry."""
    fast = [i for i in pending if eligible(message.job, message.items[i])]
    if not fast:
        return pending, 0
    taken = set(fast)

    def emit(outcome: KeyOutcome, seconds: float) -> None:
        recorder.observer.key_finished(outcome, seconds)
        recorder.add(outcome)

    handoff, left = lane.run(
        message, fast, emit, cancelled=lambda: recorder.cancelling, final_attempt=final_attempt
    )
    return [i for i in pending if i not in taken] + handoff, left


def _cancel_rest(
    futures: dict[Future[KeyOutcome], int], recorder: _Recorder, message: ChunkMessage
) -> None:
    """Drop keys that have not started; keys already copying finish and are recorded."""
    dropped = [index for future, index in futures.items() if future.cancel()]
    _record_all(recorder, message, dropped, KeyStatus.CANCELLED)


def _record_all(
    recorder: _Recorder, message: ChunkMessage, indexes: list[int], status: KeyStatus
) -> None:
    for index in indexes:
        recorder.add(KeyOutcome(index, message.items[index].source_key, status, attempts=0))
    recorder.flush()


def _copy_one(copy: CopyFn, index: int, item: CopyItem, recorder: _Recorder) -> KeyOutcome:
    if recorder.cancelling:  # seen at the last flush: start nothing new
        return KeyOutcome(index, item.source_key, KeyStatus.CANCELLED, attempts=0)
    started = time.monotonic()
    outcome = _attempt(copy, index, item, recorder.retry_policy, recorder.limit)
    recorder.observer.key_finished(outcome, time.monotonic() - started)
    return outcome


def _attempt(
    copy: CopyFn, index: int, item: CopyItem, policy: KeyRetryPolicy, limit: AdaptiveLimit
) -> KeyOutcome:
    requests = RequestLog()
    key_retries = 0

    def count_retry(_: object) -> None:
        nonlocal key_retries
        key_retries += 1

    try:
        report = call_with_retries(
            lambda: limit.run(lambda: copy(item, requests)), policy, on_retry=count_retry
        )
    except Exception as exc:  # every failure of one key becomes that key's outcome
        error = exc.error if isinstance(exc, RetriesExhausted) else classify(exc)
        if not error.retryable:
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
