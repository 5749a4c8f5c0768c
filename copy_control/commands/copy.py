"""``s3fanout copy``: list and dispatch (here, or in a worker with --list-in-pool), wait, report."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from copy_control.commands.common import EXIT_FAILED, EXIT_OK, add_redis_url, print_summary
from copy_control.commands.selecting import (
    add_selection_options,
    print_dry_run,
    selection_from_args,
)
from copy_control.dispatch.pool_listing import submit
from copy_control.dispatch.producer import producer_app
from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest, build_options, check_run_id
from copy_control.runs.progress import terminal_bar
from copy_control.runs.waiting import ListingFailed, RunTimeout, wait_for_run
from copy_control.s3url import parse_s3_url
from copy_control.units import parse_pairs, parse_size
from copy_core import logs
from copy_core.contract import COPY_MODES, RunStatus
from copy_core.options import (
    CANNED_ACLS,
    CHECKSUM_ALGORITHMS,
    DEFAULT_PARTS_PER_TASK,
    METADATA_DIRECTIVES,
    OVERWRITE,
    SSE,
    STORAGE_CLASSES,
    TAGGING,
    CopyOptions,
)
from copy_core.runs.store import RunStore, connect

if TYPE_CHECKING:
    from celery import Celery


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    copy = commands.add_parser("copy", help="copy one object, or a prefix with --recursive")
    copy.add_argument("source", help="s3://BUCKET/KEY, or s3://BUCKET/PREFIX with --recursive")
    copy.add_argument("dest", help="s3://BUCKET/KEY or s3://BUCKET/PREFIX")
    copy.add_argument("--recursive", action="store_true", help="copy every key under the prefix")
    add_redis_url(copy)
    copy.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for listing (workers use their own AWS_ENDPOINT_URL)",
    )
    copy.add_argument("--region", default=None, help="AWS region (default: boto3's)")
    copy.add_argument(
        "--list-in-pool",
        action="store_true",
        help="a worker lists the source and dispatches the chunks; this process needs only "
        "Redis, no AWS access, and starts in about half the CPU time",
    )
    copy.add_argument("--chunk-size", type=int, default=500, help="keys per task (default 500)")
    copy.add_argument(
        "--max-failures",
        type=int,
        default=0,
        help="failed keys tolerated before the run fails (default 0)",
    )
    copy.add_argument("--run-id", default=None, help="name the run (repeat it to resume)")
    copy.add_argument("--timeout", type=float, default=None, help="stop waiting after SECONDS")
    copy.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_selection_options(copy)
    _add_copy_options(copy)
    _add_role_options(copy)
    copy.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Copy, wait, print the summary."""
    request = _request_from_args(args)
    run_id = args.run_id or f"cli-{uuid.uuid4().hex[:16]}"
    check_run_id(run_id)
    if args.list_in_pool:
        _check_pool_listing(args)
        return _start_and_wait(args, run_id, lambda store, app: submit(request, run_id, store, app))
    # Imported here: listing in this process needs boto3, which --list-in-pool does without.
    from copy_control.dispatch.runner import dry_run, start_run  # noqa: PLC0415
    from copy_core.aws.clients import ClientFactory  # noqa: PLC0415

    factory = ClientFactory(endpoint_url=args.endpoint_url, region_name=args.region)
    s3 = factory.s3(request.listing_identity(run_id))
    if args.dry_run:
        with logs.bound(run_id):
            report = dry_run(request, s3, factory.s3(request.dest_identity(run_id)))
        print_dry_run(report, request, as_json=args.json)
        return EXIT_OK
    return _start_and_wait(
        args, run_id, lambda store, app: start_run(request, run_id, s3, store, app)
    )


def _start_and_wait(
    args: argparse.Namespace, run_id: str, start: Callable[[RunStore, Celery], object]
) -> int:
    store = RunStore(connect(args.redis_url))
    with logs.bound(run_id):
        start(store, producer_app(args.redis_url))
        try:
            with terminal_bar(sys.stderr, enabled=not args.json) as on_progress:
                # The progress line is read every quarter second (one small Redis read);
                # the run's end is announced, so the wait returns as soon as it happens.
                summary = wait_for_run(
                    store,
                    run_id,
                    poll_s=0.25,
                    timeout_s=args.timeout,
                    on_progress=on_progress,
                    listed_by_worker=args.list_in_pool,
                )
        except (RunTimeout, ListingFailed) as exc:
            print(f"s3fanout: {exc}", file=sys.stderr)
            return EXIT_FAILED
    print_summary(summary, as_json=args.json)
    return EXIT_OK if summary.status == RunStatus.SUCCEEDED else EXIT_FAILED


def _check_pool_listing(args: argparse.Namespace) -> None:
    """--list-in-pool leaves S3 to the workers: flags about this process's S3 access conflict."""
    for flag, given in (
        ("--dry-run", args.dry_run),
        ("--endpoint-url", args.endpoint_url),
        ("--region", args.region),
    ):
        if given:
            raise InvalidRequest(
                f"--list-in-pool and {flag} do not go together: with --list-in-pool the "
                "workers list the source with their own endpoint and region, and a dry run "
                "lists in this process; drop one of them"
            )


def _request_from_args(args: argparse.Namespace) -> CopyRequest:
    source_bucket, source_key = parse_s3_url(args.source, "source")
    dest_bucket, dest_key = parse_s3_url(args.dest, "destination")
    common = {
        "chunk_size": args.chunk_size,
        "max_failures": args.max_failures,
        "options": _options_from_args(args),
        "source_role_arn": args.source_role_arn,
        "dest_role_arn": args.dest_role_arn,
        "external_id": args.external_id,
        "session_duration_s": args.session_duration,
        "copy_mode": args.copy_mode,
        "manifest": args.manifest,
        "selection": selection_from_args(args),
        "listing_concurrency": args.listing_concurrency,
    }
    if args.recursive or args.manifest:
        return CopyRequest(
            source_bucket, dest_bucket, source_prefix=source_key, dest_prefix=dest_key, **common
        )
    if not source_key:
        raise InvalidRequest(
            f"{args.source} names a bucket, not an object: add --recursive "
            "to copy every object in it"
        )
    if dest_key == "" or dest_key.endswith("/"):
        return CopyRequest(
            source_bucket, dest_bucket, source_key=source_key, dest_prefix=dest_key, **common
        )
    return CopyRequest(
        source_bucket, dest_bucket, source_key=source_key, dest_key=dest_key, **common
    )


def _add_copy_options(parser: argparse.ArgumentParser) -> None:
    """Flags with the same names as the operator's arguments (see copy_core.options)."""
    group = parser.add_argument_group("how each object is copied")
    group.add_argument(
        "--overwrite",
        choices=OVERWRITE,
        default="always",
        help="existing destination objects: always overwrite, skip if the same "
        "object is there already (if-different), or never overwrite",
    )
    group.add_argument(
        "--split-threshold",
        default="4GiB",
        help="server-side copies larger than this are split: their parts go to several "
        "workers (default 4GiB)",
    )
    group.add_argument(
        "--parts-per-task",
        type=int,
        default=DEFAULT_PARTS_PER_TASK,
        help="parts per task of a split object (default %(default)s)",
    )
    group.add_argument(
        "--multipart-threshold",
        default="256MiB",
        help="objects larger than this are copied in parts (default 256MiB)",
    )
    group.add_argument("--part-size", default=None, help="part size (default: by object size)")
    group.add_argument("--metadata-directive", choices=METADATA_DIRECTIVES, default="COPY")
    group.add_argument(
        "--metadata",
        action="append",
        metavar="KEY=VALUE",
        help="user metadata for --metadata-directive REPLACE (repeatable)",
    )
    group.add_argument(
        "--tagging",
        choices=TAGGING,
        default="copy",
        help="copy the source's tags, set none, or replace them with --tag",
    )
    group.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="a tag for --tagging replace (repeatable)",
    )
    group.add_argument(
        "--storage-class",
        choices=STORAGE_CLASSES,
        default=None,
        help="destination storage class (default: the source's)",
    )
    group.add_argument(
        "--acl",
        choices=CANNED_ACLS,
        default=None,
        help="canned ACL (default: none, for buckets with ACLs disabled)",
    )
    group.add_argument(
        "--sse",
        choices=SSE,
        default=None,
        help="server-side encryption (default: the destination bucket's)",
    )
    group.add_argument(
        "--sse-kms-key-id",
        default=None,
        help="KMS key of the destination account, with --sse aws:kms",
    )
    group.add_argument(
        "--checksum-algorithm",
        choices=CHECKSUM_ALGORITHMS,
        default="auto",
        help="checksum S3 computes for the copies (default auto: the source's)",
    )
    group.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="do not compare checksums/ETags of source and copy",
    )


def _add_role_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cross-account roles (assumed through STS; no stored keys)")
    group.add_argument(
        "--source-role-arn", default=None, help="role that reads the source (and lists it)"
    )
    group.add_argument(
        "--dest-role-arn",
        default=None,
        help="role that writes the destination (signs server-side copies)",
    )
    group.add_argument("--external-id", default=None, help="sts:ExternalId for both roles")
    group.add_argument(
        "--session-duration",
        type=int,
        default=3600,
        help="seconds per STS session; renewed before expiry (default 3600)",
    )
    group.add_argument(
        "--copy-mode",
        choices=COPY_MODES,
        default="server_side",
        help="server_side: one principal copies inside S3; stream: the source "
        "role reads and the destination role writes; auto: server-side, "
        "streaming a key when its server-side copy is denied",
    )


def _options_from_args(args: argparse.Namespace) -> CopyOptions:
    return build_options(
        overwrite=args.overwrite,
        multipart_threshold=parse_size(args.multipart_threshold, "--multipart-threshold"),
        part_size=parse_size(args.part_size, "--part-size") if args.part_size else None,
        metadata_directive=args.metadata_directive,
        metadata=parse_pairs(args.metadata, "--metadata"),
        tagging=args.tagging,
        tags=parse_pairs(args.tag, "--tag"),
        storage_class=args.storage_class,
        acl=args.acl,
        sse=args.sse,
        sse_kms_key_id=args.sse_kms_key_id,
        checksum_algorithm=args.checksum_algorithm,
        verify=args.verify,
        split_threshold=parse_size(args.split_threshold, "--split-threshold"),
        parts_per_task=args.parts_per_task,
    )
