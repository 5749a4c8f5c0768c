"""``s3fanout copy`` flags that choose the objects (docs/selection.md), and the dry-run report."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from copy_control.request import DEFAULT_LISTING_CONCURRENCY, CopyRequest
from copy_control.selection import Selection, build_selection

if TYPE_CHECKING:
    from copy_control.dispatch.dry_run import DryRunReport


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """--manifest, --include/--exclude, size and date bounds, --dry-run, --listing-concurrency."""
    group = parser.add_argument_group(
        "which objects (docs/selection.md); patterns match the key below the source prefix"
    )
    group.add_argument(
        "--manifest",
        metavar="s3://BUCKET/KEY",
        default=None,
        help="copy the keys a manifest lists: a CSV of bucket,key (URL-encoded keys) or an "
        "S3 Inventory manifest.json (CSV or Parquet); the source is then s3://BUCKET/[PREFIX]",
    )
    group.add_argument(
        "--include",
        metavar="GLOB",
        action="append",
        help="copy only keys matching a pattern (repeatable; any of them)",
    )
    group.add_argument(
        "--exclude",
        metavar="GLOB",
        action="append",
        help="skip keys matching a pattern (repeatable; excludes win over includes)",
    )
    group.add_argument("--min-size", default=None, help="copy only objects of at least SIZE")
    group.add_argument("--max-size", default=None, help="copy only objects of at most SIZE")
    group.add_argument(
        "--modified-after",
        metavar="ISO8601",
        default=None,
        help="copy only objects last modified at or after this time (UTC if no zone)",
    )
    group.add_argument(
        "--modified-before",
        metavar="ISO8601",
        default=None,
        help="copy only objects last modified before this time (UTC if no zone)",
    )
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="list, filter and plan; report what would be copied or skipped; copy nothing",
    )
    group.add_argument(
        "--listing-concurrency",
        type=int,
        default=DEFAULT_LISTING_CONCURRENCY,
        help="key ranges (or manifest files) listed at once (default %(default)s)",
    )


def selection_from_args(args: argparse.Namespace) -> Selection:
    """The filters the flags ask for; InvalidRequest (exit code 2) if one is malformed."""
    return build_selection(
        include=args.include,
        exclude=args.exclude,
        min_size=args.min_size,
        max_size=args.max_size,
        modified_after=args.modified_after,
        modified_before=args.modified_before,
    )


def print_dry_run(report: DryRunReport, request: CopyRequest, as_json: bool) -> None:
    """One line for people, or the report as one JSON object."""
    if as_json:
        print(json.dumps(report.to_dict()))
        return
    print(
        f"dry run: {report.objects_to_copy:,} objects ({report.bytes_to_copy:,} bytes) would be "
        f"copied, {report.objects_to_skip:,} skipped (--overwrite {request.options.overwrite}), "
        f"{report.objects_missing:,} missing, of {report.objects_listed:,} selected in "
        f"{report.chunks:,} chunks; {report.objects_filtered:,} filtered out. Nothing was copied."
    )
