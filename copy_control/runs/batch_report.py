"""Finishing a run's completion report in S3 Batch Operations' format (``copy_core.batch_report``).

Once a run has ended: wait for the shards its workers stream to account for every outcome
they recorded (each shard's name says how many rows it holds; a worker writes its shard just
after it records the batch, so the last ones may still be on their way), write the failed
keys from the run store as shards of their own, and write ``manifest.json`` naming them all.

A worker that stops between recording a batch and writing its shard leaves those rows out:
the manifest's writer says how many (``ReportWritten.missing``), and the counts of the run
summary stand. The failed keys are always complete: the run store keeps every one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

from copy_core.batch_report import (
    FAILED,
    Shard,
    failure_rows,
    manifest,
    md5,
    run_prefix,
    shard_key,
    shard_rows,
    to_csv,
)
from copy_core.contract import CopyJob, ReportTarget, RunSummary
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FAILED_SHARD_ROWS = 10_000
HEAD_THREADS = 16
WAIT_FOR_SHARDS_S = 120.0
_POLL_S = 0.5


@dataclass(frozen=True)
class ReportWritten:
    """Where the report is, and what it holds."""

    manifest_url: str
    rows: int
    shards: int
    missing: int  # recorded outcomes whose rows no worker wrote (it stopped in between)


def expected_streamed(summary: RunSummary, scope: str) -> int:
    """How many rows the workers stream for a run: every outcome but the failures."""
    cancelled = summary.objects_cancelled
    if scope == FAILED:
        return cancelled
    done = summary.objects_copied + summary.objects_skipped + summary.objects_deleted
    return done + cancelled


def write_report(
    store: RunStore,
    run_id: str,
    target: ReportTarget,
    s3: S3Client,
    buckets: tuple[str, str],
    wait_s: float = WAIT_FOR_SHARDS_S,
    sleep: Callable[[float], None] = time.sleep,
) -> ReportWritten:
    """Write the failed keys' shards and the manifest of run ``run_id``'s report.

    ``buckets``: the run's source and destination buckets (a failed delete names the
    destination's). Safe to repeat: the same shards and manifest are written again.
    """
    summary = store.summary(run_id)
    if summary is None:
        raise LookupError(f"no run {run_id!r} in Redis")
    wanted = expected_streamed(summary, target.scope)
    deadline = time.monotonic() + wait_s
    while True:
        streamed = _streamed_shards(s3, target, run_id)
        rows = sum(count for _, count, _ in streamed)
        if rows >= wanted or time.monotonic() >= deadline:
            break
        sleep(_POLL_S)
    with ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="s3fanout-report") as pool:
        sums = list(pool.map(lambda found: _md5_of(s3, target.bucket, found[0]), streamed))
    shards = [
        Shard(key, status, digest) for (key, _, status), digest in zip(streamed, sums, strict=True)
    ]
    shards += _write_failures(store, run_id, target, s3, buckets)
    key = f"{run_prefix(target, run_id)}manifest.json"
    s3.put_object(
        Bucket=target.bucket,
        Key=key,
        Body=manifest(target.bucket, shards),
        ContentType="application/json",
    )
    failures = summary.objects_failed
    return ReportWritten(
        f"s3://{target.bucket}/{key}", rows + failures, len(shards), max(wanted - rows, 0)
    )


def _streamed_shards(s3: S3Client, target: ReportTarget, run_id: str) -> list[tuple[str, int, str]]:
    """(key, rows, status) of every shard the workers wrote."""
    found: list[tuple[str, int, str]] = []
    prefix = f"{run_prefix(target, run_id)}results/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            named = shard_rows(obj["Key"])
            if named is None or obj["Key"].startswith(prefix + "failed-"):
                continue  # not a shard, or one of the failures' (written below, again)
            found.append((obj["Key"], named[0], named[1]))
    return found


def _md5_of(s3: S3Client, bucket: str, key: str) -> str:
    """A streamed shard's MD5, as its writer recorded it (an ETag is not one under SSE-KMS)."""
    head = s3.head_object(Bucket=bucket, Key=key)
    return str(head.get("Metadata", {}).get("md5") or head["ETag"].strip('"'))


def _write_failures(
    store: RunStore,
    run_id: str,
    target: ReportTarget,
    s3: S3Client,
    buckets: tuple[str, str],
) -> list[Shard]:
    """The run store's failed keys, as shards of at most FAILED_SHARD_ROWS rows."""
    source, dest = buckets
    shards: list[Shard] = []
    records = store.iter_failures(run_id)
    for number, batch in enumerate(_batches(records, FAILED_SHARD_ROWS)):
        rows = []
        for record in batch:
            rows += failure_rows(dest if record.get("deleting") else source, [record])
        body = to_csv(rows)
        key = shard_key(target, run_id, f"failed-{number}", len(rows), FAILED)
        s3.put_object(Bucket=target.bucket, Key=key, Body=body, ContentType="text/csv")
        shards.append(Shard(key, FAILED, md5(body)))
    return shards


def _batches(records: Iterator[dict[str, object]], size: int) -> Iterator[list[dict[str, object]]]:
    while batch := list(islice(records, size)):
        yield batch


def finish_report(store: RunStore, run_id: str, s3: S3Client) -> ReportWritten | None:
    """Write the report of an ended run that asked for one (its stored job says where)."""
    raw = store.run_hash(run_id).get("job")
    if not raw:
        return None
    job = CopyJob.from_wire(json.loads(raw))
    if job.report is None:
        return None
    return write_report(store, run_id, job.report, s3, (job.source_bucket, job.dest_bucket))


@dataclass(frozen=True)
class ReportEnd:
    """What became of a run's report at its end: written, or not (why, and how to redo it)."""

    written: ReportWritten | None
    line: str | None  # for people: where the report is, or why it is not there
    failed: bool = False


def end_report(store: RunStore, run_id: str, s3: S3Client, location: str | None) -> ReportEnd:
    """``finish_report`` at a run's end, for the CLI and the operator alike.

    A manifest S3 refused leaves the run as it ended: the line says how to write the report
    again (``location``: where the run asked for it).
    """
    # Imported here: every CLI command imports this module, and a copy listed in the pool
    # loads no botocore.
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        written = finish_report(store, run_id, s3)
    except (BotoCoreError, ClientError) as exc:
        return ReportEnd(
            None,
            f"the report's manifest was not written ({exc}); write it with "
            f"`s3fanout report {run_id} --format batch-csv --output {location}`",
            failed=True,
        )
    return ReportEnd(written, None if written is None else describe(written))


def describe(written: ReportWritten) -> str:
    """One line for people: where the report is, and anything it lacks."""
    line = f"report: {written.manifest_url} ({written.rows:,} rows in {written.shards:,} shards)"
    if written.missing:
        line += (
            f"; {written.missing:,} recorded keys have no row (a worker stopped between "
            "recording them and writing their rows: the summary's counts include them)"
        )
    return line
