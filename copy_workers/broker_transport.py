"""The worker's Redis transport: kombu's, made to survive what a shared Redis can hold.

Two things kombu's Redis transport does not survive, and a worker must (``celery_settings``
selects this transport for the workers; producers keep kombu's own):

- **an entry of the queue that is not a message** (not JSON, or a body that is not the base64
  it claims): kombu raises in the consumer's event loop and the worker stops. Here the entry
  (already popped: nothing of it was recorded as delivered) is logged and dropped, and the
  worker goes on. Pickles, unknown tasks and malformed arguments never get this far: Celery
  rejects them itself.
- **a full Redis** (``maxmemory`` reached: OOM): recording a message as delivered, or its
  acknowledgement, fails, and kombu stops the worker ("Unrecoverable error"). Here the write is
  retried with backoff, for as long as ``DELIVERY_RETRY_S``; the message is in this process's
  hands meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

DELIVERY_RETRY_S = 600.0
_NOT_A_MESSAGE = (ValueError, TypeError, AttributeError)  # JSON, base64, shape


_REDIS_AWAY = (OutOfMemoryError, RedisConnectionError, RedisTimeoutError)


def _until_written(what: str, write: Callable[[], None]) -> None:
    """Run ``write``, retrying with backoff while Redis is full or away (DELIVERY_RETRY_S)."""
    pause, deadline = 0.2, time.monotonic() + DELIVERY_RETRY_S
    while True:
        try:
            write()
            return
        except _REDIS_AWAY as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning(f"cannot {what} yet; retrying", extra={"error": str(exc)})
            time.sleep(pause)
            pause = min(pause * 2, 10.0)


class QoS(kombu_redis.QoS):
    """Records deliveries and acknowledgements as kombu does, retrying while Redis is full or
    away; each write is idempotent (a ZADD/HSET or ZREM/HDEL by delivery tag), so a retry of
    one that half-happened is safe."""

    def append(self, message: Any, delivery_tag: Any) -> None:
        _until_written("record a delivery", lambda: super(QoS, self).append(message, delivery_tag))

    def ack(self, delivery_tag: Any) -> None:
        _until_written("acknowledge a delivery", lambda: super(QoS, self).ack(delivery_tag))

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        _until_written(
            "reject a delivery", lambda: super(QoS, self).reject(delivery_tag, requeue=requeue)
        )

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        # Periodic (the visibility timeout's sweep): skipped while Redis is full, not retried.
        try:
            super().restore_visible(*args, **kwargs)
        except _REDIS_AWAY as exc:
            log.warning("skipped a visibility sweep", extra={"error": str(exc)})


class Channel(kombu_redis.Channel):
    """kombu's channel, dropping queue entries that are not messages."""

    QoS = QoS

    def _brpop_read(self, **options: Any) -> bool:
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        except _NOT_A_MESSAGE as exc:
            raw = getattr(exc, "doc", None)
            log.error(
                "dropped a queue entry that is not a message",
                extra={"error": f"{type(exc).__name__}: {exc}", "entry": repr(raw)[:200]},
            )
            return True


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the channel above (for ``redis://`` and ``rediss://``)."""

    Channel = Channel
