"""What both sides of the broker agree on: Celery's settings (JSON only, the queue, the
Redis transport), and how a task is sent (by name, riding out a full or restarting Redis).

The control plane builds its producer from this without importing the worker's Celery app.
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from copy_core.contract import QUEUE, TASK_NAME

if TYPE_CHECKING:
    from celery import Celery

log = logging.getLogger(__name__)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# A send that fails (Redis full, or restarting) is tried again for this long, with backoff.
PUBLISH_PATIENCE_S = 300.0


def celery_settings(redis_url: str, visibility_timeout_s: int = 6 * 3600) -> dict[str, Any]:
    """Settings for a Celery app that produces or consumes copy chunks on ``redis_url``."""
    settings: dict[str, Any] = {
        "broker_url": redis_url,
        # JSON only: a pickled message is refused by the worker before any code sees it.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": QUEUE,
        "task_routes": {TASK_NAME: {"queue": QUEUE}},
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # A message comes back to the queue if its worker has not acked it in this long: the
            # last resort behind the leases (copy_core.runs.leases), which return the work of a
            # lost worker within a lease. A chunk's task acks as soon as the chunk is admitted.
            "visibility_timeout": visibility_timeout_s,
            # kombu only looks for expired messages every ~100 s unless told otherwise.
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
        },
    }
    if urlsplit(redis_url).scheme == "rediss":
        # Verify the server certificate unless the URL says otherwise (ssl_cert_reqs=...).
        settings["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return settings


def send_task(
    app: Celery,
    name: str,
    kwargs: dict[str, Any],
    label: str,
    patience_s: float = PUBLISH_PATIENCE_S,
) -> None:
    """Send task ``name`` to the pool's queue; a broker error is retried for ``patience_s``.

    Celery retries a send on a lost connection only; a Redis at ``maxmemory`` (OOM) fails it
    at once. ``label`` is what Celery's logs show instead of a repr of the arguments.
    """
    from kombu.exceptions import OperationalError  # noqa: PLC0415 - loaded with Celery
    from redis.exceptions import RedisError  # noqa: PLC0415

    pause, deadline = 0.2, time.monotonic() + patience_s
    while True:
        try:
            app.send_task(name, kwargs=kwargs, queue=QUEUE, argsrepr="()", kwargsrepr=label)
            return
        except (OperationalError, RedisError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("cannot send a task yet; retrying", extra={"error": str(exc)})
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
