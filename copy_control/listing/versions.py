"""Listing a prefix's versions (ListObjectVersions): every version of each key, or the one
that was current at a time.

S3 lists a key's versions and delete markers together, newest first, and a page may end
inside one key's versions; ``key_versions`` gives each key's whole history at once, read
across pages with the key and version-id markers S3 returns. A version listing is read as one
partition, in key order: its cursor is the last key planned, and a resumed listing starts
after it (``KeyMarker``), dropping whatever an endpoint lists again at or before it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from copy_control.listed import ListedObject
from copy_control.listing.s3_listing import PAGE_SIZE, VERSIONS_ACTION, explain_listing_error

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Version:
    """One version of a key, or a delete marker, as ListObjectVersions gave it."""

    obj: ListedObject
    delete_marker: bool = False
    is_latest: bool = False


def key_versions(
    client: S3Client,
    bucket: str,
    prefix: str,
    after: str | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[tuple[str, list[Version]]]:
    """(key, its versions and delete markers, newest first) for each key after ``after``."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    if after:
        kwargs["KeyMarker"] = after
    current: str | None = None
    history: list[Version] = []
    try:
        while True:
            page = client.list_object_versions(**kwargs)
            for version in _page_versions(page):
                key = version.obj.key
                if after is not None and key <= after:
                    continue  # listed again by an endpoint that takes KeyMarker inclusively
                if key != current:
                    if current is not None:
                        yield current, history
                    current, history = key, []
                history.append(version)
            if not page.get("IsTruncated"):
                break
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker") or ""
    except ClientError as exc:
        raise explain_listing_error(exc, bucket, prefix, VERSIONS_ACTION) from exc
    if current is not None:
        yield current, history


def _page_versions(page: Mapping[str, Any]) -> list[Version]:
    """A page's versions and delete markers in S3's order: by key, newest first.

    boto3 parses them into two lists; within a key both are newest first, so a stable sort
    by key and time restores the one sequence S3 sent. The key's latest entry goes first
    even where a version and a delete marker share a LastModified (S3 keeps milliseconds,
    some stand-ins only seconds).
    """
    found = [Version(_listed(v), False, bool(v.get("IsLatest"))) for v in page.get("Versions", [])]
    found += [
        Version(_listed(m), True, bool(m.get("IsLatest"))) for m in page.get("DeleteMarkers", [])
    ]
    found.sort(
        key=lambda v: (v.obj.key.encode(), not v.is_latest, -_timestamp(v.obj.last_modified))
    )
    return found


def _listed(raw: Mapping[str, Any]) -> ListedObject:
    return ListedObject(
        raw["Key"],
        raw.get("Size", 0),
        raw.get("ETag"),
        raw.get("StorageClass"),
        raw.get("LastModified"),
        version_id=raw.get("VersionId"),
    )


def _timestamp(when: datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0


def all_versions(history: list[Version], delete_markers: bool = False) -> ListedObject | None:
    """The key's versions to copy, oldest first, as one entry; its delete markers among them
    where ``delete_markers`` says so (left out otherwise)."""
    chain = [
        dataclasses.replace(v.obj, delete_marker=True) if v.delete_marker else v.obj
        for v in reversed(history)
        if delete_markers or not v.delete_marker
    ]
    if not chain:
        return None
    newest = chain[-1]
    return dataclasses.replace(newest, older=tuple(chain[:-1]))


def version_as_of(history: list[Version], when: datetime) -> ListedObject | None:
    """The version current at ``when``: the newest written at or before it (None if there
    was none then, or the key was deleted then)."""
    for version in history:  # newest first
        modified = version.obj.last_modified
        if modified is not None and modified <= when:
            return None if version.delete_marker else version.obj
    return None
