"""A run's completion report in S3 Batch Operations' format: CSV shards and a manifest.json.

The layout is Batch Operations' own (``Report_CSV_20180820``): under ``<prefix><run id>/``,
``results/*.csv`` shards without a header, each holding rows of one task status (succeeded
or failed), and a ``manifest.json`` naming every shard with its MD5. A row is ``bucket, key,
version id, task status, HTTP status, error code, result message``, the order of the example
rows in AWS's documentation (its ReportSchema line names the two middle columns the other way
round); keys are URL-encoded, as Batch Operations writes them.

Who writes what: each worker streams the rows of the outcomes it records (copied, skipped,
deleted as ``succeeded``; cancelled as ``failed``), one shard per recorded batch, so that
Redis keeps no per-key state for keys that did not fail. The failed keys, which the run
store keeps anyway, are written from there when the run ends, with the manifest. Standard
library only: both the workers and the control plane use it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from copy_core.contract import KeyOutcome, KeyStatus, ReportTarget

FORMAT = "Report_CSV_20180820"
SCHEMA = "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"
SUCCEEDED, FAILED = "succeeded", "failed"
STREAMED = {
    KeyStatus.COPIED: (SUCCEEDED, "copied"),
    KeyStatus.SKIPPED: (SUCCEEDED, "skipped: the destination already has this object"),
    KeyStatus.DELETED: (SUCCEEDED, "deleted: the source no longer has this key"),
    KeyStatus.CANCELLED: (FAILED, "cancelled: the run was cancelled before this key"),
}
# A shard's name says how many rows it holds, so that the manifest's writer can tell when
# every recorded outcome has its row without reading the shards.
_SHARD = re.compile(r"-(\d+)-(succeeded|failed)\.csv$")


@dataclass(frozen=True)
class Row:
    """One key's line of the report."""

    bucket: str
    key: str
    version_id: str | None
    status: str  # succeeded or failed
    http_status: int | None
    error_code: str
    message: str


def run_prefix(target: ReportTarget, run_id: str) -> str:
    """Where the run's report lives in the report bucket: ``<prefix><run id>/``."""
    prefix = (
        target.prefix if not target.prefix or target.prefix.endswith("/") else target.prefix + "/"
    )
    return f"{prefix}{run_id}/"


def shard_key(target: ReportTarget, run_id: str, name: str, rows: int, status: str) -> str:
    """The key of a shard: ``results/<name>-<rows>-<status>.csv`` under the run's prefix."""
    return f"{run_prefix(target, run_id)}results/{name}-{rows}-{status}.csv"


def shard_rows(key: str) -> tuple[int, str] | None:
    """(rows, status) of a shard, from its key (None: not a shard)."""
    found = _SHARD.search(key)
    return None if found is None else (int(found.group(1)), found.group(2))


def streamed_rows(bucket: str, outcomes: Iterable[KeyOutcome], scope: str) -> dict[str, list[Row]]:
    """The rows a worker streams for outcomes it recorded, by task status, within ``scope``."""
    by_status: dict[str, list[Row]] = {SUCCEEDED: [], FAILED: []}
    for outcome in outcomes:
        found = STREAMED.get(outcome.status)
        if found is None:
            continue  # failed keys come from the run store; a move's source slots are counted
        status, message = found
        if scope == FAILED and status != FAILED:
            continue
        if outcome.deleting and outcome.status is KeyStatus.SKIPPED:
            message = "skipped: rewritten since it was listed, so not deleted"
        error = "Cancelled" if outcome.status is KeyStatus.CANCELLED else ""
        by_status[status].append(
            Row(bucket, outcome.source_key, outcome.version_id, status, 200, error, message)
        )
    return {status: rows for status, rows in by_status.items() if rows}


def failure_rows(bucket: str, failures: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows of the run store's failure records."""
    return [
        Row(
            bucket,
            str(record.get("key")),
            record.get("version_id"),
            FAILED,
            record.get("http_status"),
            str(record.get("error_code") or "Unknown"),
            str(record.get("message") or ""),
        )
        for record in failures
    ]


def to_csv(rows: Sequence[Row]) -> bytes:
    """A shard's bytes: one CSV line per row, no header."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow(
            [
                row.bucket,
                quote(row.key, safe="/"),
                row.version_id or "",
                row.status,
                "" if row.http_status is None else row.http_status,
                row.error_code,
                row.message,
            ]
        )
    return out.getvalue().encode()


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Shard:
    key: str
    status: str
    md5: str


def manifest(bucket: str, shards: Sequence[Shard], now: datetime | None = None) -> bytes:
    """The top-level manifest.json naming every shard."""
    created = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    results = [
        {"TaskExecutionStatus": s.status, "Bucket": bucket, "MD5Checksum": s.md5, "Key": s.key}
        for s in shards
    ]
    body = {
        "Format": FORMAT,
        "ReportCreationDate": created,
        "Results": results,
        "ReportSchema": SCHEMA,
    }
    return json.dumps(body, indent=2).encode()
