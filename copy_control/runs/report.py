"""The failure report of a run: one JSON line per failed key, to stdout or to S3."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def report_lines(store: RunStore, run_id: str) -> Iterator[bytes]:
    """JSON lines (key, size, error_code, message, attempts) for every failed key."""
    for record in store.iter_failures(run_id):
        yield (json.dumps(record, ensure_ascii=False) + "\n").encode()


class _LinesReader(io.RawIOBase):
    """A read-only file over an iterator of byte strings, so s3transfer can stream it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def upload_report(store: RunStore, run_id: str, s3: S3Client, bucket: str, key: str) -> int:
    """Stream the report to ``s3://bucket/key`` (s3transfer's multipart upload for large ones).

    Returns the number of failure records written.
    """
    count = 0

    def counted() -> Iterator[bytes]:
        nonlocal count
        for line in report_lines(store, run_id):
            count += 1
            yield line

    s3.upload_fileobj(
        io.BufferedReader(_LinesReader(counted())),
        bucket,
        key,
        ExtraArgs={"ContentType": "application/x-ndjson"},
    )
    return count
