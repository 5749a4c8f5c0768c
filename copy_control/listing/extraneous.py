"""A sync's extraneous keys: destination keys under the destination prefix that the source
prefix does not have.

Both prefixes are listed in S3's key order (UTF-8 binary, which is also the order of Python
strings) and merged: memory stays at a page of each, whatever the number of keys. A key's
name below its prefix is what maps one side to the other (``source_prefix + rest`` is copied
to ``dest_prefix + rest``). The source is listed again for this, whole, rather than kept from
the copy phase's listing: that one is read in parallel key ranges, in no one order, and would
have to be held in memory or in Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

from copy_control.listed import ListedObject
from copy_control.listing.partitions import Entry, Partition
from copy_control.listing.s3_listing import list_range_pages
from copy_core.contract import DELETE_PARTITION

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def delete_partition() -> Partition:
    """The partition a sync's delete phase is recorded as (its cursor: the last key planned)."""
    return Partition(DELETE_PARTITION, {"delete": "extraneous"})


def extraneous_keys(
    source: S3Client,
    source_bucket: str,
    source_prefix: str,
    dest: S3Client,
    dest_bucket: str,
    dest_prefix: str,
    accepts: Callable[[ListedObject], bool],
    after: str | None = None,
) -> Iterator[Entry]:
    """(destination key, its listing) for every destination key after ``after`` that has no
    source key and that the run's selection ``accepts`` (judged as the source key it would
    be: the patterns match the name below the prefix, the sizes and dates are the
    destination object's)."""
    rest_after = None if after is None else after[len(dest_prefix) :]
    source_after = None if rest_after is None else source_prefix + rest_after
    source_rests = _rests(_keys(source, source_bucket, source_prefix, source_after), source_prefix)
    wanted = next(source_rests, None)
    for obj in _keys(dest, dest_bucket, dest_prefix, after):
        rest = obj.key[len(dest_prefix) :]
        while wanted is not None and wanted < rest:
            wanted = next(source_rests, None)
        if wanted == rest:
            continue
        if accepts(replace(obj, key=source_prefix + rest)):
            yield obj.key, obj


def _keys(client: S3Client, bucket: str, prefix: str, after: str | None) -> Iterator[ListedObject]:
    for page, _ in list_range_pages(client, bucket, prefix, after):
        yield from page


def _rests(objects: Iterator[ListedObject], prefix: str) -> Iterator[str]:
    return (obj.key[len(prefix) :] for obj in objects)
