"""Key-level retries: what botocore's own retries leave behind.

Three layers, each for what the one below cannot handle:
1. botocore (adaptive mode) retries each request on throttling and transient errors and slows
   the client down when S3 throttles it. It gives up after a few attempts, or at once when
   its retry quota is spent: under a storm of 503s that quota runs out in seconds.
2. This module retries the whole key (CopyObject, or the multipart copy from scratch) with
   exponential backoff and full jitter, bounded in attempts and in time. botocore has no
   such operation-level retry, hence this small hand-written loop.
3. A chunk whose keys still fail transiently is retried later by Celery (``autoretry_for``),
   re-copying only those keys.
Permanent errors are never retried: they become the key's failed outcome.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from copy_core.classify import ClassifiedError, classify

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
) -> T:
    """Run ``operation``; retry transient failures as ``policy`` allows.

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
            pause = policy.pause_before_retry(retry, started, clock())
            if pause is None:
                raise RetriesExhausted(exc, error, retry) from exc
            on_retry(error)
            sleep(pause)
            retry += 1
