"""A dry run: list, filter and plan exactly as a run would, and say what the copy would do.

Nothing is written anywhere (no run in Redis, no message, no object). For each planned chunk
the destination is consulted the cheap way first: one listing of the destination keys the
chunk spans (ListObjectsV2 from just before its first key to its last) tells which keys exist
and their sizes, which decides ``overwrite=never`` and every key that is absent or of another
size. Only ``if-different`` keys of equal size need HeadObject (and, when just the checksums
can tell, the source's HeadObject too), decided by ``copy_core.s3.overwrite``: the worker's
own rule, so a dry run counts what the copy that follows will count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from copy_control.dispatch.planning import PartitionEnd, PlannedChunk
from copy_core.classify import MISSING_CODES, error_code
from copy_core.contract import CopyItem
from copy_core.s3.overwrite import skip_existing, skip_from_listing

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

KEYS_SHOWN = 10_000
CHUNKS_IN_FLIGHT = 8
HEAD_THREADS = 32
LIST_PAGE = 1000


@dataclass
class DryRunReport:
    """What a copy would do; field names follow the run summary's."""

    objects_listed: int = 0  # selected keys: a run would dispatch these
    objects_filtered: int = 0
    objects_to_copy: int = 0
    objects_to_skip: int = 0  # by the overwrite policy
    objects_missing: int = 0  # manifest rows whose object is not there: they would fail
    bytes_listed: int = 0
    bytes_to_copy: int = 0
    chunks: int = 0
    partitions: int = 0
    duration_s: float = 0.0
    dry_run: bool = field(default=True, init=False)
    # A sync (--delete): the destination keys it would delete, listed up to KEYS_SHOWN, and
    # whether that is more than its max_delete (the run would then delete none of them).
    objects_to_delete: int = 0
    keys_to_delete: list[str] = field(default_factory=list)
    keys_to_delete_omitted: int = 0
    over_max_delete: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DestState:
    """How the destination is read: its client and bucket, and the run's overwrite policy."""

    client: S3Client
    bucket: str
    policy: str
    source_client: S3Client
    source_bucket: str


class DryRunSink:
    """Counts what each chunk would do, several chunks at once (bounded)."""

    def __init__(self, dest: DestState) -> None:
        self.report = DryRunReport()
        self._dest = dest
        self._lock = threading.Lock()
        self._chunks = ThreadPoolExecutor(CHUNKS_IN_FLIGHT, thread_name_prefix="s3fanout-dry")
        self._heads = ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="s3fanout-dry-head")
        self._slots = threading.Semaphore(CHUNKS_IN_FLIGHT * 2)
        self._futures: list[Future[None]] = []
        self._started = time.monotonic()

    def chunk(self, chunk: PlannedChunk) -> bool:
        self._slots.acquire()
        future = self._chunks.submit(self._count, chunk)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)
        self._futures = [f for f in self._futures if not f.done() or f.exception()]
        return True

    def partition_end(self, end: PartitionEnd) -> None:
        with self._lock:
            self.report.partitions += 1
            self.report.objects_filtered += end.cursor.filtered

    def finish(self) -> DryRunReport:
        """Wait for the chunks under way; the final report."""
        for future in self._futures:
            future.result()
        self.close()
        self.report.duration_s = round(time.monotonic() - self._started, 3)
        return self.report

    def close(self) -> None:
        self._chunks.shutdown(wait=True, cancel_futures=True)
        self._heads.shutdown(wait=True, cancel_futures=True)

    def _count(self, chunk: PlannedChunk) -> None:
        present = [item for i, item in enumerate(chunk.items) if i not in chunk.missing]
        skips = [
            self._from_listing(item, size)
            for item, size in zip(present, self._sizes(present), strict=True)
        ]
        undecided = [item for item, skip in zip(present, skips, strict=True) if skip is None]
        by_head = iter(self._heads.map(self._from_head, undecided))  # only these need requests
        decided = [next(by_head) if skip is None else skip for skip in skips]
        copied = [item for item, skip in zip(present, decided, strict=True) if not skip]
        with self._lock:
            r = self.report
            r.chunks += 1
            r.objects_listed += len(chunk.items)
            r.bytes_listed += chunk.total_bytes
            r.objects_missing += len(chunk.items) - len(present)
            r.objects_to_skip += len(present) - len(copied)
            r.objects_to_copy += len(copied)
            r.bytes_to_copy += sum(item.size for item in copied)

    def _sizes(self, items: Sequence[CopyItem]) -> list[int | _Unknown | None]:
        """Each item's destination size (None: absent), from one listing where it can tell."""
        if self._dest.policy == "always" or not items:
            return [None] * len(items)
        keys = sorted(item.dest_key for item in items)
        listed, reached = _listed_range(self._dest, keys, pages=2 + len(keys) // LIST_PAGE)
        return [
            listed.get(item.dest_key) if item.dest_key <= reached else UNKNOWN for item in items
        ]

    def _from_listing(self, item: CopyItem, listed_size: int | _Unknown | None) -> bool | None:
        if isinstance(listed_size, _Unknown):
            return None
        return skip_from_listing(self._dest.policy, item, listed_size)

    def _from_head(self, item: CopyItem) -> bool:
        dest = _head(self._dest.client, self._dest.bucket, item.dest_key)
        decided = skip_existing(self._dest.policy, item, dest)
        if decided is None:
            source = _head(self._dest.source_client, self._dest.source_bucket, item.source_key)
            decided = skip_existing(self._dest.policy, item, dest, source or {})
        return bool(decided)


class _Unknown:
    """A key the chunk's destination listing did not reach: HeadObject tells."""


UNKNOWN = _Unknown()


def _listed_range(dest: DestState, keys: list[str], pages: int) -> tuple[dict[str, int], str]:
    """Sizes of the destination keys among ``keys`` (sorted), listing at most ``pages`` pages.

    Returns them and the last key the listing covered: keys after it are unknown. Keys of a
    prefix copy's chunk are contiguous, so one or two pages cover them; a manifest's rows may
    be in any order, and then the budget runs out and HeadObject decides the rest.
    """
    wanted, first, last = set(keys), keys[0], keys[-1]
    found: dict[str, int] = {}
    kwargs: dict[str, Any] = {
        "Bucket": dest.bucket,
        "Prefix": _common_prefix(first, last),
        "PaginationConfig": {"PageSize": LIST_PAGE, "MaxItems": pages * LIST_PAGE},
    }
    if first[:-1]:
        kwargs["StartAfter"] = first[:-1]  # a proper prefix sorts before ``first``
    reached = ""
    for page in dest.client.get_paginator("list_objects_v2").paginate(**kwargs):
        contents = page.get("Contents", [])
        for obj in contents:
            if obj["Key"] > last:
                return found, last
            if obj["Key"] in wanted:
                found[obj["Key"]] = obj["Size"]
        reached = contents[-1]["Key"] if contents else reached
        if not page.get("IsTruncated"):
            return found, last
    return found, reached


def _common_prefix(first: str, last: str) -> str:
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _head(client: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return dict(client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"))
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        raise


def count_deletes(
    report: DryRunReport,
    planned: Iterator[PlannedChunk | PartitionEnd],
    max_delete: int | None,
) -> None:
    """Add a sync's delete phase to the report: every key it would delete, in key order."""
    for chunk in planned:
        if not isinstance(chunk, PlannedChunk):
            continue
        for item in chunk.items:
            report.objects_to_delete += 1
            if len(report.keys_to_delete) < KEYS_SHOWN:
                report.keys_to_delete.append(item.dest_key)
            else:
                report.keys_to_delete_omitted += 1
    report.over_max_delete = max_delete is not None and report.objects_to_delete > max_delete
