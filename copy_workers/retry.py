"""Key-level retries: what botocore's own retries leave behind.

Layers, each for what the one below cannot handle:
1. botocore (adaptive mode) retries each request on throttling and transient errors and slows
   the client down when S3 throttles it. It gives up after a few attempts, or at once when
   its retry quota is spent: under a storm of 503s that quota runs out in seconds.
2. This module retries the whole key (CopyObject, or the multipart copy from scratch) with
   exponential backoff and full jitter, bounded in attempts and in time. botocore has no
   such operation-level retry, hence this small hand-written loop.
3. One cause is not retried for ever: when the copies between one pair of buckets have failed
   transiently for a whole key deadline without a single success (a deleted bucket answering
   500, say), ``CauseBreaker`` stops retrying them, and each key fails with the last error.
Permanent errors are never retried: they become the key's failed outcome.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from copy_core.classify import ClassifiedError, classify
from copy_core.contract import CopyJob

T = TypeVar("T")


@dataclass(frozen=True)
class KeyRetryPolicy:
    """How often and how long one key is retried."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 20.0
    deadline_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, retry: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**retry)] (AWS architecture blog)."""
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2**retry))

    def pause_before_retry(self, retry: int, started: float, now: float) -> float | None:
        """The backoff before retry ``retry + 1`` of a key first tried at ``started``, or None
        when that retry would exceed the attempts or the deadline."""
        pause = self.backoff(retry)
        if retry + 1 >= self.attempts or now + pause > started + self.deadline_s:
            return None
        return pause


class RetriesExhausted(Exception):
    """The key failed transiently on every attempt; ``last`` is the final error."""

    def __init__(self, last: BaseException, error: ClassifiedError, retries: int) -> None:
        super().__init__(str(last))
        self.last = last
        self.error = error
        self.retries = retries


def call_with_retries(
    operation: Callable[[], T],
    policy: KeyRetryPolicy,
    on_retry: Callable[[ClassifiedError], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    give_up: Callable[[], bool] = lambda: False,
    on_transient: Callable[[ClassifiedError], None] = lambda _: None,
) -> T:
    """Run ``operation``; retry transient failures as ``policy`` allows, until ``give_up``.

    Raises the permanent error itself, or RetriesExhausted wrapping the last transient one.
    """
    started = clock()
    retry = 0
    while True:
        try:
            return operation()
        except Exception as exc:
            error = classify(exc)
            if not error.retryable:
                raise
            on_transient(error)
            pause = policy.pause_before_retry(retry, started, clock())
            if pause is None or give_up():
                raise RetriesExhausted(exc, error, retry) from exc
            on_retry(error)
            sleep(pause)
            retry += 1


class CauseBreaker:
    """Gives up retrying between two buckets that have only failed for ``deadline_s``.

    Per-key deadlines alone let a run that can never succeed (its destination bucket was
    deleted) spend a deadline on every key in turn; this notes, per (source, destination)
    bucket pair, since when every copy has failed, and a success resets it.
    """

    def __init__(self, deadline_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._deadline_s = deadline_s
        self._clock = clock
        self._failing_since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _pair(job: CopyJob) -> tuple[str, str]:
        return job.source_bucket, job.dest_bucket

    def failed(self, job: CopyJob, error: ClassifiedError) -> None:
        with self._lock:
            self._failing_since.setdefault(self._pair(job), self._clock())

    def succeeded(self, job: CopyJob) -> None:
        if self._failing_since:
            with self._lock:
                self._failing_since.pop(self._pair(job), None)

    def given_up(self, job: CopyJob) -> bool:
        since = self._failing_since.get(self._pair(job))
        return since is not None and self._clock() - since >= self._deadline_s

    def explain(self, job: CopyJob, error: ClassifiedError) -> ClassifiedError:
        """The error a key fails with once retries are over (says why, when it was given up)."""
        since = self._failing_since.get(self._pair(job))
        if since is None or not self.given_up(job):
            return error
        seconds = round(self._clock() - since)
        note = (
            f"{error.message} (every copy from {job.source_bucket} to {job.dest_bucket} has "
            f"failed for {seconds} s: no more retries)"
        )
        return dataclasses.replace(error, message=note)
