"""Reading S3 objects as streams: lines of a (gzipped) CSV, or a seekable file for Parquet."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

LINE_READ = 1024 * 1024
RANGE_READ = 8 * 1024 * 1024


def text_lines(client: S3Client, bucket: str, key: str, gzipped: bool) -> Iterator[str]:
    """The object's lines, decoded as UTF-8 (a leading BOM dropped), streamed: never whole."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        raw: Any = gzip.GzipFile(fileobj=body) if gzipped else body.iter_lines(LINE_READ, True)
        first = True
        for line in raw:
            text = line.decode("utf-8")
            if first:
                text, first = text.removeprefix("\ufeff"), False
            yield text
    finally:
        body.close()


class RangeReader(io.RawIOBase):
    """A read-only, seekable file over an S3 object: each read is one ranged GetObject.

    Parquet readers need to seek (the footer is at the end, then one column chunk at a time);
    wrapped in ``io.BufferedReader`` small reads are served from one larger range.
    """

    def __init__(self, client: S3Client, bucket: str, key: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._size - self._pos)
        if want <= 0:
            return 0
        end = self._pos + want - 1
        response = self._client.get_object(
            Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-{end}"
        )
        data = response["Body"].read()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def seekable_object(client: S3Client, bucket: str, key: str) -> io.BufferedReader:
    """A buffered, seekable file over ``s3://bucket/key``."""
    return io.BufferedReader(RangeReader(client, bucket, key), buffer_size=RANGE_READ)
