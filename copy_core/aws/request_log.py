"""Counting the retries botocore spent on one key, across all the requests the key needed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


class RequestLog:
    """Calls S3 and adds up ``RetryAttempts`` from every response, errors included.

    A key may need several requests (HEAD, CopyObject, one UploadPartCopy per part from
    several threads), and the summary's ``retries`` counts them all. ``gate`` is called before
    each request: a run's rate cap (``copy_workers.pacing``) takes its token there.
    """

    def __init__(self, gate: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._gate = gate
        self.retries = 0
        self.requests = 0

    def call(self, operation: Callable[..., Any], **params: Any) -> Any:
        """Make one request (after the run's rate cap lets it go, if ``gate`` is given)."""
        if self._gate is not None:
            self._gate()
        try:
            response = operation(**params)
        except ClientError as exc:
            self._count(exc.response.get("ResponseMetadata", {}))
            raise
        self._count(response.get("ResponseMetadata", {}))
        return response

    def _count(self, metadata: Any) -> None:
        with self._lock:
            self.requests += 1
            self.retries += int(metadata.get("RetryAttempts", 0) or 0)
