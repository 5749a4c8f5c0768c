"""Manifest parsing rules (pure): inventory manifest.json files, and what each row names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from copy_control.listed import ListedObject
from copy_control.listing.manifest import (
    ManifestError,
    ManifestFile,
    Unresolved,
    inventory_files,
    to_object,
)

BATCH = ManifestFile("m", "list.csv", "csv")
INVENTORY = ManifestFile("m", "d/1.csv.gz", "csv", ("bucket", "key", "is_latest"), True, True)


def _manifest(**changes: Any) -> dict[str, Any]:
    return {
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::inv-bucket",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ETag",
        "files": [{"key": "inv/data/a.csv.gz"}, {"key": "inv/data/b.csv.gz"}],
        **changes,
    }


def test_inventory_files_are_partitions_in_the_destination_bucket() -> None:
    files = inventory_files(_manifest(), "m", "inv/manifest.json", "src")
    assert [(f.bucket, f.key, f.format, f.gzipped) for f in files] == [
        ("inv-bucket", "inv/data/a.csv.gz", "csv", True),
        ("inv-bucket", "inv/data/b.csv.gz", "csv", True),
    ]
    assert files[0].columns == (
        "bucket", "key", "version_id", "is_latest", "is_delete_marker", "size", "e_tag"
    )  # fmt: skip
    assert ManifestFile.from_spec(files[0].to_spec()) == files[0]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sourceBucket": "other"}, "inventory of bucket 'other'"),
        ({"fileFormat": "ORC"}, "CSV and Parquet are supported"),
        ({"files": None}, "no list of data files"),
        ({"fileSchema": "Size, ETag"}, "no Bucket and Key columns"),
    ],
)
def test_unusable_inventories_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        inventory_files(_manifest(**changes), "m", "inv/manifest.json", "src")


def test_a_row_with_size_and_etag_needs_no_lookup() -> None:
    row = {
        "bucket": "src",
        "key": "a b",
        "size": "12",
        "e_tag": "abc",
        "last_modified_date": "2026-11-01T10:00:00.000Z",
        "storage_class": "GLACIER_IR",
    }
    obj = to_object(row, INVENTORY, "src", 0)
    when = datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert obj == ListedObject("a b", 12, '"abc"', "GLACIER_IR", when)


def test_rows_without_size_or_etag_are_looked_up() -> None:
    assert to_object({"bucket": "src", "key": "k"}, BATCH, "src", 3) == Unresolved("k")


@pytest.mark.parametrize(
    "row",
    [
        {"bucket": "src", "key": "k", "is_latest": "false", "version_id": "v1"},
        {"bucket": "src", "key": "k", "is_latest": True, "is_delete_marker": True},
        {},
    ],
)
def test_noncurrent_versions_delete_markers_and_blank_rows_are_not_objects(row) -> None:
    assert to_object(row, INVENTORY, "src", 0) is None


def test_the_current_version_of_an_all_versions_inventory_is_copied_pinned() -> None:
    row = {"bucket": "src", "key": "k", "version_id": "v2", "is_latest": "true", "size": 1}
    row["e_tag"] = '"e"'
    assert to_object(row, INVENTORY, "src", 0) == ListedObject("k", 1, '"e"', version_id="v2")


def test_a_batch_row_with_a_version_id_copies_that_version() -> None:
    row = {"bucket": "src", "key": "k", "version_id": "v1"}
    assert to_object(row, BATCH, "src", 7) == Unresolved("k", "v1")
    assert to_object({"bucket": "src", "key": "k", "version_id": ""}, BATCH, "src", 7) == (
        Unresolved("k")
    )


def test_rows_of_other_buckets_are_refused_with_the_row() -> None:
    with pytest.raises(ManifestError, match="row 1 names bucket 'nope'"):
        to_object({"bucket": "nope", "key": "k"}, BATCH, "src", 0)
