"""Celery settings both sides must agree on: JSON only, the queue, and the Redis transport.

Standard library only, so the control plane can build its producer without importing the
worker's Celery app.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from copy_core.contract import QUEUE, TASK_NAME

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


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
            # A message comes back to the queue if its worker has not acked it in this long;
            # it must exceed the longest chunk, or a chunk is delivered again while it runs.
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
