"""What the subcommands share: exit codes, the Redis URL flag, summary printing."""

from __future__ import annotations

import argparse
import json

from copy_core import redis_url
from copy_core.contract import RunSummary
from copy_core.runs.store import RunStore, connect

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by Ctrl-C


def add_redis_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", default=None, help=redis_url.HELP)


def open_store(args: argparse.Namespace) -> RunStore:
    """The run store at the command's Redis URL (resolved in ``args``), checked first.

    RedisUnusable within seconds, with what to check, if the server cannot be used.
    """
    args.redis_url = redis_url.resolve(args.redis_url)
    redis_url.check_reachable(args.redis_url)
    return RunStore(connect(args.redis_url))


def print_summary(summary: RunSummary, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict()))
        return
    print(
        f"{summary.status}: {summary.objects_copied} copied, {summary.objects_skipped} skipped, "
        f"{summary.objects_failed} failed of {summary.objects_listed} listed; "
        f"{summary.bytes_copied} bytes in {summary.duration_s:.1f} s "
        f"({summary.objects_per_second:.1f} objects/s, {summary.retries} retries)"
    )
    extras = {
        "filtered out": summary.objects_filtered,
        "streamed through workers": summary.objects_streamed,
        "cancelled before copy": summary.objects_cancelled,
        f"of {summary.objects_to_delete} extraneous destination keys deleted": (
            summary.objects_deleted if summary.objects_to_delete else 0
        ),
        "sources deleted after a verified copy": summary.objects_source_deleted,
        "sources kept (copy unverified, or delete failed)": summary.objects_source_kept,
    }
    shown = [f"{count} {label}" for label, count in extras.items() if count]
    if shown:
        print("  " + ", ".join(shown))
    if summary.deletes_refused:
        print(
            f"  sync: would delete {summary.deletes_refused} or more destination keys, over "
            "--max-delete: nothing was deleted (check the source and destination, then raise "
            "--max-delete or drop it)"
        )
    elif summary.deletes_withheld:
        print(
            f"  sync: {summary.objects_to_delete} extraneous destination keys were not deleted: "
            "the run failed or was cancelled before its delete phase"
        )
    for failure in summary.failures:
        print(f"  failed: {failure['key']}: {failure['error_code']}: {failure['message']}")
    if summary.failures_omitted:
        print(
            f"  ... and {summary.failures_omitted} more failures (s3fanout report {summary.run_id})"
        )
    print(f"run id: {summary.run_id}")
