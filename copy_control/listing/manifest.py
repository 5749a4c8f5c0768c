"""Manifests: the keys to copy, read from S3 as a CSV or an S3 Inventory report.

Two kinds, told apart by the manifest's name:

- ``*.json``: an S3 Inventory ``manifest.json``. Its data files (CSV, gzipped, or Parquet) are
  the manifest's partitions, read concurrently. Inventory columns give size, ETag, date and
  storage class when the inventory was configured with them; otherwise each object is looked
  up (HeadObject). Inventories of all versions are reduced to the current version of each key:
  noncurrent versions and delete markers count as filtered.
- anything else: a CSV of ``bucket,key[,version_id]`` rows without a header, as S3 Batch
  Operations takes it (``.gz``: gzipped). Each object is looked up with HeadObject.

Keys in CSV files are URL-encoded (``+`` or ``%20`` for a space, ``%2B`` for ``+``), as S3
Inventory writes them and Batch Operations requires; Parquet keys are plain. Every row must
name the source bucket. A row with a version id copies that version (CopySource with
``versionId``); an inventory of all versions copies each key's current version, pinned to its
version id.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from copy_control.errors import InvalidRequest
from copy_control.listed import ListedObject
from copy_control.listing.s3file import seekable_object, text_lines
from copy_control.s3url import check_key
from copy_core.classify import MISSING_CODES, error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Inventory columns we use, by their CSV schema name; Parquet uses the snake_case names.
_CSV_COLUMNS = {
    "Bucket": "bucket",
    "Key": "key",
    "VersionId": "version_id",
    "IsLatest": "is_latest",
    "IsDeleteMarker": "is_delete_marker",
    "Size": "size",
    "LastModifiedDate": "last_modified_date",
    "ETag": "e_tag",
    "StorageClass": "storage_class",
}
PARQUET_COLUMNS = tuple(_CSV_COLUMNS.values())
BATCH_CSV_COLUMNS = ("bucket", "key", "version_id")
PARQUET_BATCH_ROWS = 8192
_ARN_BUCKET = re.compile(r"^arn:aws[a-z-]*:s3:::([^/]+)$")


class ManifestError(InvalidRequest):
    """The manifest cannot be used as it is; the message says where and why."""


@dataclass(frozen=True)
class ManifestFile:
    """One data file of a manifest, read as one partition of the run."""

    bucket: str
    key: str
    format: str  # "csv" or "parquet"
    columns: tuple[str, ...] = BATCH_CSV_COLUMNS  # CSV column names, in file order
    gzipped: bool = False
    inventory: bool = False

    def to_spec(self) -> dict[str, Any]:
        return {**vars(self), "columns": list(self.columns)}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ManifestFile:
        return cls(**{**spec, "columns": tuple(spec["columns"])})


@dataclass(frozen=True)
class Unresolved:
    """A row whose object's size and ETag are not in the manifest: HeadObject tells."""

    key: str
    version_id: str | None = None


Row = ListedObject | Unresolved | None  # None: not an object to copy (counted as filtered)


def manifest_files(
    client: S3Client, bucket: str, key: str, source_bucket: str
) -> list[ManifestFile]:
    """The data files of the manifest at ``s3://bucket/key``; ManifestError if unusable."""
    if not key.endswith(".json"):
        return [ManifestFile(bucket, key, "csv", gzipped=key.endswith(".gz"))]
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        raise _explain(exc, bucket, key) from exc
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise ManifestError(f"s3://{bucket}/{key} is not valid JSON: {exc}") from None
    return inventory_files(manifest, bucket, key, source_bucket)


def inventory_files(
    manifest: Mapping[str, Any], bucket: str, key: str, source_bucket: str
) -> list[ManifestFile]:
    """The data files an S3 Inventory manifest.json lists (pure)."""
    where = f"s3://{bucket}/{key}"
    listed = manifest.get("sourceBucket")
    if listed != source_bucket:
        raise ManifestError(
            f"{where} is an inventory of bucket {listed!r}, but the source is {source_bucket!r}"
        )
    fmt = str(manifest.get("fileFormat", "")).lower()
    if fmt not in ("csv", "parquet"):
        raise ManifestError(
            f"{where} lists {manifest.get('fileFormat')!r} files: CSV and Parquet are supported"
        )
    match = _ARN_BUCKET.match(str(manifest.get("destinationBucket", "")))
    data_bucket = match.group(1) if match else bucket
    columns = _csv_schema(str(manifest.get("fileSchema", ""))) if fmt == "csv" else ()
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and "key" in f for f in files):
        raise ManifestError(f"{where} has no list of data files ('files')")
    gz = fmt == "csv"
    return [ManifestFile(data_bucket, f["key"], fmt, columns, gz, True) for f in files]


def _csv_schema(schema: str) -> tuple[str, ...]:
    names = tuple(_CSV_COLUMNS.get(n.strip(), n.strip()) for n in schema.split(","))
    if "bucket" not in names or "key" not in names:
        raise ManifestError(f"inventory schema {schema!r} has no Bucket and Key columns")
    return names


def read_rows(
    client: S3Client, file: ManifestFile, start: int = 0
) -> Generator[dict[str, Any], None, None]:
    """The file's rows as dicts of column values, from row number ``start`` on."""
    try:
        if file.format == "parquet":
            yield from _parquet_rows(client, file, start)
        else:
            yield from _csv_rows(client, file, start)
    except ClientError as exc:
        raise _explain(exc, file.bucket, file.key) from exc


def _csv_rows(client: S3Client, file: ManifestFile, start: int) -> Iterator[dict[str, Any]]:
    where = f"s3://{file.bucket}/{file.key}"
    lines = text_lines(client, file.bucket, file.key, file.gzipped)
    number = -1  # the last row read
    try:
        for number, values in enumerate(csv.reader(lines)):
            if number < start:
                continue
            if not values or values == [""]:
                yield {}
                continue
            if len(values) < 2:
                raise ManifestError(
                    f"{where} row {number + 1}: expected bucket,key [,version_id], got "
                    f"{_shown(values)}"
                )
            row = dict(zip(file.columns, values, strict=False))
            row["key"] = _decoded_key(row["key"], where, number)
            yield row
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{where} row {number + 2}: byte 0x{exc.object[exc.start]:02x} is "
            "not UTF-8; a manifest is UTF-8 text (S3 Inventory and Batch Operations write it so)"
        ) from None
    except csv.Error as exc:
        raise ManifestError(
            f"{where} row {number + 2}: not a CSV row of bucket,key ({exc})"
        ) from None


def _decoded_key(raw: str, where: str, number: int) -> str:
    """The key of a CSV row: URL-encoded UTF-8, at most 1,024 bytes once decoded."""
    try:
        key = unquote_plus(raw, errors="strict")
    except UnicodeDecodeError:
        raise ManifestError(
            f"{where} row {number + 1}: key {_shown(raw)} does not decode to UTF-8; keys are "
            "URL-encoded UTF-8 (%C3%A9 for é)"
        ) from None
    try:
        check_key(key, f"{where} row {number + 1}: key {_shown(key)}")
    except InvalidRequest as exc:
        raise ManifestError(str(exc)) from None
    return key


def _shown(value: Any, limit: int = 80) -> str:
    """``value`` for a message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _parquet_rows(client: S3Client, file: ManifestFile, start: int) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 - optional: only Parquet inventories need it
    except ImportError:
        raise ManifestError(
            f"s3://{file.bucket}/{file.key} is Parquet, which needs pyarrow: "
            "pip install 's3-fanout-copy[parquet]'"
        ) from None

    with seekable_object(client, file.bucket, file.key) as handle:
        parquet = pq.ParquetFile(handle)
        names = [n for n in PARQUET_COLUMNS if n in parquet.schema_arrow.names]
        first_group, skip = _first_row_group(parquet.metadata, start)
        groups = list(range(first_group, parquet.metadata.num_row_groups))
        batches = parquet.iter_batches(PARQUET_BATCH_ROWS, groups, names, use_threads=False)
        for batch in batches:
            columns = {name: batch.column(name).to_pylist() for name in names}
            for i in range(skip, batch.num_rows):
                yield {name: values[i] for name, values in columns.items()}
            skip = max(skip - batch.num_rows, 0)


def _first_row_group(metadata: Any, start: int) -> tuple[int, int]:
    """(row group holding row ``start``, rows of it to skip)."""
    seen = 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if seen + rows > start:
            return group, start - seen
        seen += rows
    return metadata.num_row_groups, 0


def to_object(row: Mapping[str, Any], file: ManifestFile, source_bucket: str, number: int) -> Row:
    """What a row names: an object, one to look up, or nothing to copy (pure)."""
    if not row:
        return None  # a blank line
    if row.get("bucket") != source_bucket:
        raise ManifestError(
            f"s3://{file.bucket}/{file.key} row {number + 1} names bucket "
            f"{row.get('bucket')!r}, but the source bucket is {source_bucket!r}: "
            "a manifest may only list objects of the source bucket"
        )
    superseded = not _true(row.get("is_latest")) or _true(row.get("is_delete_marker"))
    if file.inventory and "is_latest" in row and superseded:
        return None
    version_id = row.get("version_id") or None
    try:
        size, etag = _int(row.get("size")), row.get("e_tag")
        if size is None or not etag:
            return Unresolved(row["key"], version_id)
        return ListedObject(
            row["key"],
            size,
            etag if etag.startswith('"') else f'"{etag}"',
            row.get("storage_class") or None,
            _time(row.get("last_modified_date")),
            version_id=version_id,
        )
    except (TypeError, ValueError) as exc:
        raise ManifestError(
            f"s3://{file.bucket}/{file.key} row {number + 1}: a size or date is not one ({exc})"
        ) from None


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _explain(exc: ClientError, bucket: str, key: str) -> Exception:
    code = error_code(exc)
    if code in (*MISSING_CODES, "NoSuchBucket"):
        return ManifestError(f"manifest s3://{bucket}/{key} does not exist")
    if code in ("AccessDenied", "403"):
        return ManifestError(
            f"access denied reading manifest s3://{bucket}/{key}: the listing identity needs "
            f"s3:GetObject on arn:aws:s3:::{bucket}/{key}"
        )
    return exc
