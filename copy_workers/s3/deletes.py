"""Deleting objects: a sync's extraneous destination keys, and a move's copied sources.

A sync deletes in DeleteObjects batches (up to 1,000 keys a request), each key pinned to the
ETag the destination listing saw: a key rewritten since it was listed is left alone (S3's
conditional delete answers PreconditionFailed for it) and counted as skipped. A move deletes
one source object after its copy is verified: the pinned version when the copy was of one
(that version is removed for good), otherwise the current version if it still has the listed
ETag (``If-Match``; a versioned bucket keeps it behind a delete marker).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from copy_core.aws.request_log import RequestLog
from copy_core.classify import ClassifiedError, classify, classify_answer
from copy_core.contract import CopyItem, CopyJob
from copy_workers.retry import KeyRetryPolicy
from copy_workers.s3.clients import Side

DELETE_BATCH = 1000  # DeleteObjects' limit
DELETE_ACTION = "s3:DeleteObject"
_CHANGED = ("PreconditionFailed", "412")


@dataclass(frozen=True)
class Deleted:
    """What DeleteObjects said of one key: deleted, changed since listed, or an error."""

    index: int
    changed: bool = False
    error: ClassifiedError | None = None


def delete_dest_keys(
    side: Side,
    job: CopyJob,
    items: Sequence[tuple[int, CopyItem]],
    requests: RequestLog,
) -> list[Deleted]:
    """Delete destination keys (``(index, item)`` pairs) in DeleteObjects batches.

    Raises what the request itself raised (retried by the caller); per-key errors come back.
    """
    found: list[Deleted] = []
    for start in range(0, len(items), DELETE_BATCH):
        batch = items[start : start + DELETE_BATCH]
        objects: list[dict[str, Any]] = []
        for _, item in batch:
            entry: dict[str, Any] = {"Key": item.dest_key}
            if item.etag:
                entry["ETag"] = item.etag
            objects.append(entry)
        response = side.call(
            requests,
            side.client.delete_objects,
            action=DELETE_ACTION,
            side="destination",
            bucket=job.dest_bucket,
            key=None,
            Bucket=job.dest_bucket,
            Delete={"Objects": objects, "Quiet": True},
        )
        errors = {e.get("Key"): e for e in response.get("Errors", [])}
        for index, item in batch:
            error = errors.get(item.dest_key)
            if error is None:
                found.append(Deleted(index))
            elif error.get("Code") in _CHANGED:
                found.append(Deleted(index, changed=True))
            else:
                code = str(error.get("Code") or "DeleteFailed")
                found.append(Deleted(index, error=classify_answer(code, error.get("Message", ""))))
    return found


def delete_source_object(side: Side, job: CopyJob, item: CopyItem, requests: RequestLog) -> None:
    """Delete the source of a verified copy: its pinned version, or the listed current one."""
    pinned: dict[str, Any] = {}
    if item.version_id is not None:
        pinned["VersionId"] = item.version_id
    elif item.etag:
        pinned["IfMatch"] = item.etag
    _delete_object(side, requests, "source", job.source_bucket, item.source_key, **pinned)


def write_delete_marker(side: Side, job: CopyJob, item: CopyItem, requests: RequestLog) -> bool:
    """An --all-versions copy's delete marker: a DeleteObject of the destination key, which
    a versioned bucket answers by writing a delete marker; True if S3 says it wrote one."""
    answer = _delete_object(side, requests, "destination", job.dest_bucket, item.dest_key)
    return bool(answer.get("DeleteMarker"))


def _delete_object(
    side: Side, requests: RequestLog, which: str, bucket: str, key: str, **conditions: Any
) -> Any:
    """One DeleteObject of ``bucket``/``key`` through ``side`` (``which``: "source" or
    "destination", as an AccessDenied names it); S3's answer."""
    return side.call(
        requests,
        side.client.delete_object,
        action=DELETE_ACTION,
        side=which,
        bucket=bucket,
        key=key,
        Bucket=bucket,
        Key=key,
        **conditions,
    )


def delete_with_retries(
    side: Side,
    job: CopyJob,
    items: Sequence[tuple[int, CopyItem]],
    requests: RequestLog,
    policy: KeyRetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Deleted]:
    """``delete_dest_keys``, with the keys that failed transiently tried again as ``policy``
    allows (DeleteObjects answers per key, so only those keys are sent again)."""
    started, retry = time.monotonic(), 0
    left, settled = list(items), []
    while left:
        try:
            answers = delete_dest_keys(side, job, left, requests)
        except Exception as exc:  # the request itself failed: every key in it did
            error = classify(exc)
            answers = [Deleted(index, error=error) for index, _ in left]
        transient = [a for a in answers if a.error is not None and a.error.retryable]
        settled += [a for a in answers if a.error is None or not a.error.retryable]
        if not transient:
            break
        pause = policy.pause_before_retry(retry, started, time.monotonic())
        if pause is None:
            settled += transient
            break
        sleep(pause)
        retry += 1
        again = {a.index for a in transient}
        left = [(index, item) for index, item in left if index in again]
    return settled
