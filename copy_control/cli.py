"""``s3fanout``: copy S3 objects through the worker pool, and run workers.

Exit codes: 0 the run succeeded (failures, if any, within --max-failures); 1 the run failed,
was cancelled or timed out; 2 the input was wrong (nothing was copied).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence

from copy_control.dispatch import producer_app
from copy_control.request import CopyRequest, InvalidRequest, build_options, check_run_id
from copy_control.runner import RunTimeout, start_run, wait_for_run
from copy_control.s3url import parse_s3_url
from copy_control.units import parse_pairs, parse_size
from copy_workers import logs
from copy_workers.aws import ClientFactory
from copy_workers.contract import COPY_MODES, RunStatus, RunSummary
from copy_workers.options import (
    CANNED_ACLS,
    CHECKSUM_ALGORITHMS,
    METADATA_DIRECTIVES,
    OVERWRITE,
    SSE,
    STORAGE_CLASSES,
    TAGGING,
    CopyOptions,
)
from copy_workers.runstate import RunStore, connect
from copy_workers.settings import DEFAULT_REDIS_URL

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
log = logging.getLogger("s3fanout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3fanout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    copy = commands.add_parser("copy", help="copy one object, or a prefix with --recursive")
    copy.add_argument("source", help="s3://BUCKET/KEY, or s3://BUCKET/PREFIX with --recursive")
    copy.add_argument("dest", help="s3://BUCKET/KEY or s3://BUCKET/PREFIX")
    copy.add_argument("--recursive", action="store_true", help="copy every key under the prefix")
    _add_redis_url(copy)
    copy.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for listing (workers use their own AWS_ENDPOINT_URL)",
    )
    copy.add_argument("--region", default=None, help="AWS region (default: boto3's)")
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
    _add_copy_options(copy)
    _add_role_options(copy)
    commands.add_parser(
        "worker", help="start a copy worker (see `s3fanout worker --help`)", add_help=False
    )
    return parser


def _add_copy_options(parser: argparse.ArgumentParser) -> None:
    """Flags with the same names as the operator's arguments (see copy_workers.options)."""
    group = parser.add_argument_group("how each object is copied")
    group.add_argument(
        "--overwrite",
        choices=OVERWRITE,
        default="always",
        help="existing destination objects: always overwrite, skip if the same "
        "object is there already (if-different), or never overwrite",
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
    )


def _add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("S3FANOUT_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis that serves as broker and run store (default: %(default)s)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        _exec_worker(argv[1:])
    args = build_parser().parse_args(argv)
    logs.configure("INFO" if args.verbose else "WARNING")
    try:
        return _copy(args)
    except InvalidRequest as exc:
        print(f"s3fanout: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _copy(args: argparse.Namespace) -> int:
    request = _request_from_args(args)
    run_id = args.run_id or f"cli-{uuid.uuid4().hex[:16]}"
    check_run_id(run_id)
    factory = ClientFactory(endpoint_url=args.endpoint_url, region_name=args.region)
    s3 = factory.s3(request.listing_identity(run_id))
    store = RunStore(connect(args.redis_url))
    with logs.bound(run_id):
        start_run(request, run_id, s3, store, producer_app(args.redis_url))
        try:
            summary = wait_for_run(store, run_id, timeout_s=args.timeout)
        except RunTimeout as exc:
            print(f"s3fanout: {exc}", file=sys.stderr)
            return EXIT_FAILED
    _print_summary(summary, as_json=args.json)
    return EXIT_OK if summary.status == RunStatus.SUCCEEDED else EXIT_FAILED


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
    }
    if args.recursive:
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


def _print_summary(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict()))
        return
    print(
        f"{summary.status}: {summary.objects_copied} copied, {summary.objects_skipped} skipped, "
        f"{summary.objects_failed} failed of {summary.objects_listed} listed; "
        f"{summary.bytes_copied} bytes in {summary.duration_s:.1f} s "
        f"({summary.objects_per_second:.1f} objects/s, {summary.retries} retries)"
    )
    for failure in summary.failures:
        print(f"  failed: {failure['key']}: {failure['error_code']}: {failure['message']}")
    if summary.failures_omitted:
        print(
            f"  ... and {summary.failures_omitted} more failures (s3fanout report {summary.run_id})"
        )
    print(f"run id: {summary.run_id}")


def _exec_worker(worker_args: list[str]) -> None:
    """Replace this process with a copy worker (``python -m copy_workers``)."""
    os.execv(sys.executable, [sys.executable, "-m", "copy_workers", *worker_args])  # noqa: S606


if __name__ == "__main__":
    raise SystemExit(main())
