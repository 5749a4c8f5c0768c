"""``s3fanout report`` and ``s3fanout cancel``: act on a run by its id."""

from __future__ import annotations

import argparse
import json
import sys

from copy_control.commands.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    add_redis_url,
    open_store,
    print_summary,
)
from copy_control.errors import InvalidRequest
from copy_control.runs.batch_report import WAIT_FOR_SHARDS_S
from copy_control.runs.report import report_lines, upload_report
from copy_control.runs.waiting import RunTimeout, wait_for_run
from copy_control.s3url import parse_s3_url
from copy_core.contract import CopyJob, ReportTarget, RunStatus
from copy_core.runs.store import RunStore


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="a run's failed keys as JSON lines, or its completion report in S3 Batch "
        "Operations' CSV format (--format batch-csv)",
    )
    report.add_argument("run_id")
    add_redis_url(report)
    report.add_argument(
        "--format",
        choices=("jsonl", "batch-csv"),
        default="jsonl",
        help="jsonl: one JSON line per failed key; batch-csv: CSV shards and a manifest.json "
        "under --output s3://BUCKET/PREFIX (every key needs the copy's --report)",
    )
    report.add_argument(
        "--scope", choices=("all", "failed"), default="all", help="batch-csv: which keys"
    )
    report.add_argument(
        "--output",
        default="-",
        help="- (stdout) or s3://BUCKET/KEY; batch-csv: s3://BUCKET/PREFIX",
    )
    report.add_argument("--endpoint-url", default=None, help="S3 endpoint for --output")
    report.set_defaults(run=run_report)

    cancel = commands.add_parser("cancel", help="stop a run: queued chunks are dropped")
    cancel.add_argument("run_id")
    add_redis_url(cancel)
    cancel.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait for running chunks to stop (default 60)",
    )
    cancel.add_argument("--json", action="store_true", help="print the summary as JSON")
    cancel.set_defaults(run=run_cancel)


def _store(args: argparse.Namespace) -> RunStore:
    store = open_store(args)
    if store.summary(args.run_id) is None:
        raise InvalidRequest(f"no run {args.run_id!r} in Redis (wrong id or URL, or it expired)")
    return store


def run_report(args: argparse.Namespace) -> int:
    """Print (or upload) one JSON line per failed key, or write the batch-csv report."""
    store = _store(args)
    if args.format == "batch-csv":
        return _batch_report(args, store)
    if args.output == "-":
        for line in report_lines(store, args.run_id):
            sys.stdout.write(line.decode())
        return EXIT_OK
    bucket, key = parse_s3_url(args.output, "--output")
    if not key:
        raise InvalidRequest("--output needs a key: s3://BUCKET/KEY")
    from copy_core.aws.clients import ClientFactory  # noqa: PLC0415 - boto3 only for an upload

    s3 = ClientFactory(endpoint_url=args.endpoint_url).s3()
    count = upload_report(store, args.run_id, s3, bucket, key)
    print(f"wrote {count} failure records to {args.output}", file=sys.stderr)
    return EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Ask the run to stop, then wait for its running chunks to drain."""
    store = _store(args)
    before = store.summary(args.run_id)
    if before is not None and before.is_final:
        # Not an error: there is nothing left to stop.
        print(
            f"run {args.run_id} had already ended ({before.status}): nothing to cancel",
            file=sys.stderr,
        )
        print_summary(before, as_json=args.json)
        return EXIT_OK
    status = store.request_cancel(args.run_id)
    print(f"run {args.run_id}: {status}", file=sys.stderr)
    try:
        summary = wait_for_run(store, args.run_id, poll_s=0.5, timeout_s=args.wait)
    except RunTimeout:
        print(
            "chunks are still draining: no worker is taking them, or they are slow; "
            "the run ends as 'cancelled' once they are done",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print_summary(summary, as_json=args.json)
    return EXIT_OK if summary.status == RunStatus.CANCELLED else EXIT_BAD_INPUT


def _batch_report(args: argparse.Namespace, store: RunStore) -> int:
    """Finish the run's completion report (streamed by its workers) at --output."""
    from copy_control.runs.batch_report import describe, write_report  # noqa: PLC0415
    from copy_core.aws.clients import ClientFactory  # noqa: PLC0415 - boto3 only for S3

    if args.output == "-":
        raise InvalidRequest("--format batch-csv writes to S3: give --output s3://BUCKET/PREFIX")
    bucket, prefix = parse_s3_url(args.output, "--output")
    run = store.run_hash(args.run_id)
    if not RunStatus(run.get("status", RunStatus.RUNNING)).is_final:
        raise InvalidRequest(f"run {args.run_id} is still going: report it once it has ended")
    job = CopyJob.from_wire(json.loads(run["job"])) if run.get("job") else None
    streamed = job.report if job is not None else None
    target = ReportTarget(bucket, prefix, args.scope)
    if streamed is not None and (streamed.bucket, streamed.prefix) == (bucket, prefix):
        if streamed.scope != args.scope:
            raise InvalidRequest(
                f"run {args.run_id} streamed a report of {streamed.scope} keys: "
                f"use --scope {streamed.scope}"
            )
        target, wait_s = streamed, WAIT_FOR_SHARDS_S
    elif args.scope == "all":
        if streamed is not None:
            raise InvalidRequest(
                f"run {args.run_id} streamed its report to s3://{streamed.bucket}/"
                f"{streamed.prefix}: give that --output (or --scope failed for the failed "
                "keys elsewhere)"
            )
        raise InvalidRequest(
            f"run {args.run_id} streamed no report, and only a streamed one lists the keys "
            "that did not fail (copy with --report s3://BUCKET/PREFIX); --scope failed "
            "writes the failed keys, which Redis keeps"
        )
    else:
        wait_s = 0.0  # nothing was streamed here: the failed keys come from the run store
    s3 = ClientFactory(endpoint_url=args.endpoint_url).s3(region=target.region)
    buckets = (job.source_bucket, job.dest_bucket) if job is not None else ("", "")
    written = write_report(store, args.run_id, target, s3, buckets, wait_s=wait_s)
    print(describe(written), file=sys.stderr)
    return EXIT_OK
