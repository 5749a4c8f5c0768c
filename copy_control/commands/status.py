"""``s3fanout status``: watch a run until it ends (a live bar, plain lines, or JSON lines)."""

from __future__ import annotations

import argparse
import sys

from copy_control.commands.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_redis_url,
    open_store,
    print_summary,
)
from copy_control.runs.progress import LiveProgress, Mode
from copy_control.runs.waiting import read_summary, wait_for_run
from copy_core.contract import RunStatus


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="a run's progress, live until it ends",
        description="Show a run's progress (objects, bytes, rate, ETA, failures) until it ends, "
        "then its summary. Exit code: 0 succeeded (or still running, with --once), "
        "1 failed or cancelled, 2 no such run.",
    )
    status.add_argument("run_id")
    add_redis_url(status)
    status.add_argument(
        "--json", action="store_true", help="one JSON object per reading (JSON lines) on stdout"
    )
    status.add_argument(
        "--interval",
        type=_positive_seconds,
        default=1.0,
        help="seconds between readings (default 1)",
    )
    status.add_argument("--once", action="store_true", help="one reading, then exit")
    status.set_defaults(run=run)


def _positive_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {raw}")
    return value


def run(args: argparse.Namespace) -> int:
    """Draw readings until the run ends (or once), then print the summary."""
    store = open_store(args)
    mode: Mode = "json" if args.json else "bar" if sys.stdout.isatty() else "lines"
    progress = LiveProgress(sys.stdout, mode)
    try:
        if args.once:
            summary = read_summary(store, args.run_id)
            progress(summary)
        else:
            summary = wait_for_run(store, args.run_id, poll_s=args.interval, on_progress=progress)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        progress.close()
    if mode != "json" and summary.is_final:
        print_summary(summary, as_json=False)
    return EXIT_FAILED if summary.is_final and summary.status != RunStatus.SUCCEEDED else EXIT_OK
