"""Where the keys of a run come from, as partitions that can be read concurrently and resumed.

- ``PrefixSource``: key ranges of a prefix (ListObjectsV2). It starts as one range; a range
  being listed is split when listing threads are idle (see ``fanout``), so any key layout,
  flat or nested, ends up listed in parallel.
- ``ManifestSource``: the data files of a manifest, one partition each.
- ``KeySource``: the one key of a single-object copy.
- ``VersionSource``: every version of each key under a prefix, or the one current at a time.

Every partition is described by a JSON-able ``spec`` that is stored with the run before the
partition dispatches anything, so a resumed run reads exactly the same partitions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from copy_control.errors import InvalidRequest
from copy_control.listed import ListedObject
from copy_control.listing.keyranges import extrapolated_points, split_points
from copy_control.listing.manifest import (
    ManifestFile,
    Unresolved,
    manifest_files,
    read_rows,
    to_object,
)
from copy_control.listing.partitions import Entry, Partition
from copy_control.listing.s3_listing import (
    PAGE_SIZE,
    VERSIONS_ACTION,
    check_prefix,
    explain_listing_error,
    head_object,
    list_range_pages,
    resolve,
)
from copy_control.listing.versions import all_versions, key_versions, version_as_of

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FIRST_PAGE = 100  # keys asked for first by a range split off another (see list_range_pages)
RESOLVE_THREADS = 32
RESOLVE_BATCH = 128


class RangeSplitter(Protocol):
    """What a range partition calls after each page: the fan-out may split its remainder."""

    def after_page(self, partition: Partition, first_key: str, last_key: str) -> None: ...


class Source(Protocol):
    """A run's keys, as partitions."""

    def check(self) -> None:
        """Read enough to fail on bad input (InvalidRequest) before the run is created."""

    def initial(self) -> list[Partition]:
        """The partitions of a run that starts from nothing."""

    def entries(self, partition: Partition, splitter: RangeSplitter) -> Iterator[Entry]:
        """The partition's entries after its cursor, in order."""

    def split_points(self, first: str, last: str, end: str | None, pieces: int) -> list[str]:
        """Boundaries splitting a range's rest ``last < key <= end`` (none: unsplittable).

        ``first`` and ``last`` are the first and last keys of the page just listed.
        """

    def close(self) -> None:
        """Release threads and connections."""


class PrefixSource:
    """Every key under a prefix, as key ranges ``{"after": .., "end": ..}``."""

    def __init__(
        self, client: S3Client, bucket: str, prefix: str, page_size: int = PAGE_SIZE
    ) -> None:
        self.client, self.bucket, self.prefix, self.page_size = client, bucket, prefix, page_size

    def check(self) -> None:
        check_prefix(self.client, self.bucket, self.prefix)

    def initial(self) -> list[Partition]:
        return [Partition("p0", {"after": None, "end": None})]

    def entries(self, partition: Partition, splitter: RangeSplitter) -> Iterator[Entry]:
        start = partition.cursor.position or partition.spec["after"]
        assert start is None or isinstance(start, str)
        # Key ranges rely on S3's order; a whole-prefix listing read alone does not.
        bounded = partition.spec.get("after") is not None or partition.spec.get("end") is not None
        previous = start or ""
        first = FIRST_PAGE if partition.spec.get("after") is not None else None
        pages = list_range_pages(
            self.client, self.bucket, self.prefix, start, self.page_size, first
        )
        for page, truncated in pages:
            for obj in page:
                end = partition.spec.get("end")  # read each time: a split may lower it
                if end is not None and obj.key > end:
                    return
                if bounded and obj.key <= previous:
                    raise _out_of_order(self.bucket, previous, obj.key)
                previous = obj.key
                yield obj.key, obj
            if truncated and page:
                splitter.after_page(partition, page[0].key, page[-1].key)

    def split_points(self, first: str, last: str, end: str | None, pieces: int) -> list[str]:
        guessed = extrapolated_points(self.prefix, first, last, end, pieces)
        return guessed or split_points(self.prefix, last, end, pieces)

    def close(self) -> None:
        pass


class ListingOrderError(InvalidRequest):
    """The endpoint does not list keys in S3's order: key ranges cannot be trusted on it."""


def _out_of_order(bucket: str, previous: str, key: str) -> ListingOrderError:
    return ListingOrderError(
        f"the S3 endpoint listed s3://{bucket}/{key} after {previous!r}: it does not list "
        "keys in S3's order (UTF-8 binary), which listing key ranges in parallel relies on; "
        "copy with --listing-concurrency 1 (operator: listing_concurrency=1)"
    )


class KeySource:
    """The one object of a single-key copy (a given version of it, with ``version_id``)."""

    def __init__(
        self, client: S3Client, bucket: str, key: str, version_id: str | None = None
    ) -> None:
        self.client, self.bucket, self.key, self.version_id = client, bucket, key, version_id
        self._obj: ListedObject | None = None

    def check(self) -> None:
        self._obj = head_object(self.client, self.bucket, self.key, self.version_id)

    def initial(self) -> list[Partition]:
        return [Partition("k0", {"key": self.key})]

    def entries(self, partition: Partition, splitter: RangeSplitter) -> Iterator[Entry]:
        if partition.cursor.position is None:
            found = self._obj or head_object(self.client, self.bucket, self.key, self.version_id)
            yield self.key, found

    def split_points(self, first: str, last: str, end: str | None, pieces: int) -> list[str]:
        return []

    def close(self) -> None:
        pass


class VersionSource:
    """A prefix's versions (ListObjectVersions), one entry per key, read as one partition.

    ``as_of`` None: every version of each key, oldest first (``--all-versions``); a time:
    the version current then (``--as-of``). Keys with no version to copy are filtered.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        as_of: datetime | None = None,
        delete_markers: bool = False,
    ) -> None:
        self.client, self.bucket, self.prefix, self.as_of = client, bucket, prefix, as_of
        self.delete_markers = delete_markers

    def check(self) -> None:
        try:
            self.client.list_object_versions(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except ClientError as exc:
            raise explain_listing_error(exc, self.bucket, self.prefix, VERSIONS_ACTION) from exc

    def initial(self) -> list[Partition]:
        return [Partition("v0", {"versions": "all" if self.as_of is None else "as-of"})]

    def entries(self, partition: Partition, splitter: RangeSplitter) -> Iterator[Entry]:
        after = partition.cursor.position
        assert after is None or isinstance(after, str)
        for key, history in key_versions(self.client, self.bucket, self.prefix, after):
            if self.as_of is None:
                yield key, all_versions(history, self.delete_markers)
            else:
                yield key, version_as_of(history, self.as_of)

    def split_points(self, first: str, last: str, end: str | None, pieces: int) -> list[str]:
        return []

    def close(self) -> None:
        pass


class ManifestSource:
    """The keys a manifest lists, one partition per data file."""

    def __init__(self, client: S3Client, location: tuple[str, str], source_bucket: str) -> None:
        self.client, self.location, self.source_bucket = client, location, source_bucket
        self._files: list[ManifestFile] = []
        self._pool = ThreadPoolExecutor(RESOLVE_THREADS, thread_name_prefix="s3fanout-head")
        self._lock = threading.Lock()

    def check(self) -> None:
        """Read manifest.json (if any) and every row of every data file, so that a bad row
        fails the run before anything is copied. Streamed, without HEADs; the rows are read
        again as the listing dispatches them (a second pass, not measured yet)."""
        bucket, key = self.location
        self._files = manifest_files(self.client, bucket, key, self.source_bucket)
        for _ in self._pool.map(self._check_file, self._files):
            pass

    def _check_file(self, file: ManifestFile) -> None:
        for number, row in enumerate(read_rows(self.client, file)):
            to_object(row, file, self.source_bucket, number)

    def initial(self) -> list[Partition]:
        return [Partition(f"f{i}", file.to_spec()) for i, file in enumerate(self._files)]

    def entries(self, partition: Partition, splitter: RangeSplitter) -> Iterator[Entry]:
        file = ManifestFile.from_spec(partition.spec)
        position = partition.cursor.position
        start = 0 if position is None else int(position) + 1
        rows = read_rows(self.client, file, start)
        numbered = (
            (n, to_object(row, file, self.source_bucket, n)) for n, row in enumerate(rows, start)
        )
        while batch := list(islice(numbered, RESOLVE_BATCH)):
            resolved = self._pool.map(self._resolve, [row for _, row in batch])
            yield from zip([number for number, _ in batch], resolved, strict=True)

    def _resolve(self, row: ListedObject | Unresolved | None) -> ListedObject | None:
        if isinstance(row, Unresolved):
            return resolve(self.client, self.source_bucket, row.key, row.version_id)
        return row

    def split_points(self, first: str, last: str, end: str | None, pieces: int) -> list[str]:
        return []

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
