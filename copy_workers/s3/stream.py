"""Streamed copy: the source role reads, the destination role writes, nothing touches disk.

For organisations that cannot grant one principal both sides (the source account will not
trust the destination's role, or the other way round), bytes flow through the worker: ranged
GETs with ``IfMatch`` pinned to the listed ETag, then PutObject or a multipart upload carrying
every property explicitly. Memory is bounded: each part is one buffer of ``STREAM_PART_SIZE``
(more for objects needing larger parts), and a per-process budget caps the buffers in use.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from awscrt import checksums

from copy_core.aws.request_log import RequestLog
from copy_core.contract import CopyItem, CopyJob
from copy_core.options import MiB
from copy_core.s3.part_plan import Part, plan_parts
from copy_core.s3.properties import checksum_params, source_version
from copy_core.s3.verify import combine_part_crcs, encode_crc
from copy_workers.s3.clients import Side
from copy_workers.s3.multipart import (
    CopiedPart,
    abort_upload,
    complete_upload,
    create_upload,
    results_in_order,
)

STREAM_PART_SIZE = 8 * MiB
_CRC = {"CRC32": checksums.crc32, "CRC32C": checksums.crc32c, "CRC64NVME": checksums.crc64nvme}


class BufferBudget:
    """At most ``buffers`` part buffers in memory at once in this process."""

    def __init__(self, buffers: int) -> None:
        self._slots = threading.BoundedSemaphore(buffers)

    def __enter__(self) -> None:
        self._slots.acquire()

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


@dataclass(frozen=True)
class StreamResult:
    """The written object's ETag and the CRC of the bytes that went through."""

    etag: str
    algorithm: str | None
    crc: str | None


@dataclass(frozen=True)
class StreamCopy:
    """One streamed copy: who reads, who writes, and what to write with it."""

    reader: Side
    writer: Side
    job: CopyJob
    item: CopyItem
    source_etag: str
    put_params: Mapping[str, Any]
    algorithm: str | None
    requests: RequestLog

    def run(self, pool: Executor, budget: BufferBudget) -> StreamResult:
        parts = plan_parts(self.item.size, self.job.options.part_size or STREAM_PART_SIZE)
        if len(parts) == 1 or self.item.size == 0:
            return self._single(budget)
        return self._multipart(parts, pool, budget)

    def _single(self, budget: BufferBudget) -> StreamResult:
        with budget:
            data = self._read(None)
            put = self.writer.call(
                self.requests,
                self.writer.client.put_object,
                action="s3:PutObject",
                side="destination",
                bucket=self.job.dest_bucket,
                key=self.item.dest_key,
                **self._new_object_params(),
                Body=data,
            )
        return StreamResult(put["ETag"], self.algorithm, self._crc(data))

    def _multipart(self, parts: list[Part], pool: Executor, budget: BufferBudget) -> StreamResult:
        params = {**self._new_object_params(), **checksum_params(self.algorithm)}
        upload_id = create_upload(self.writer, self.job, self.item, params, self.requests)
        try:
            futures = [pool.submit(self._part, upload_id, part, budget) for part in parts]
            results = results_in_order(futures)
            written = [part for part, _ in results]
            etag = complete_upload(
                self.writer, self.job, self.item, upload_id, written, self.algorithm, self.requests
            )
        except BaseException:
            abort_upload(self.writer.client, self.job, self.item, upload_id)
            raise
        crc = combine_part_crcs(self.algorithm, [(c or "", p.size) for p, c in results])
        return StreamResult(etag, self.algorithm, crc)

    def _new_object_params(self) -> dict[str, Any]:
        """PutObject / CreateMultipartUpload parameters: the properties, and the checksum."""
        params = dict(self.put_params)
        if self.algorithm:
            params["ChecksumAlgorithm"] = self.algorithm
        return params

    def _part(
        self, upload_id: str, part: Part, budget: BufferBudget
    ) -> tuple[CopiedPart, str | None]:
        with budget:
            data = self._read(part)
            params: dict[str, Any] = {
                "Bucket": self.job.dest_bucket,
                "Key": self.item.dest_key,
                "UploadId": upload_id,
                "PartNumber": part.number,
                "Body": data,
            }
            if self.algorithm:
                params["ChecksumAlgorithm"] = self.algorithm
            response = self.requests.call(self.writer.client.upload_part, **params)
        checksum = response.get(f"Checksum{self.algorithm}") if self.algorithm else None
        copied = CopiedPart(part.number, part.size, response["ETag"], checksum)
        return copied, self._crc(data)

    def _read(self, part: Part | None) -> bytes:
        params: dict[str, Any] = {
            "Bucket": self.job.source_bucket,
            "Key": self.item.source_key,
            "IfMatch": self.source_etag,
            **source_version(self.item),
        }
        if part is not None:
            params["Range"] = part.copy_source_range
        response = self.reader.call(
            self.requests,
            self.reader.client.get_object,
            action="s3:GetObject",
            side="source",
            bucket=self.job.source_bucket,
            key=self.item.source_key,
            **params,
        )
        data: bytes = response["Body"].read()
        return data

    def _crc(self, data: bytes) -> str | None:
        if self.algorithm not in _CRC:
            return None
        return encode_crc(self.algorithm, _CRC[self.algorithm](data))
