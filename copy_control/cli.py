"""``s3fanout``: copy S3 objects through the worker pool, watch and manage runs, run workers.

Exit codes: 0 the run succeeded (failures, if any, within --max-failures); 1 the run failed,
was cancelled or timed out; 2 the input was wrong (nothing was copied).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from copy_control.commands import copy, pool, runs, status
from copy_control.commands.common import EXIT_BAD_INPUT
from copy_control.errors import InvalidRequest
from copy_core import logs
from copy_core.process_title import hide_secrets
from copy_core.redis_url import RedisUnusable


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3fanout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    commands = parser.add_subparsers(dest="command", required=True)
    copy.add_parser(commands)
    runs.add_parsers(commands)
    pool.add_parsers(commands)
    status.add_parser(commands)
    commands.add_parser(
        "worker", help="start a copy worker (see `s3fanout worker --help`)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        _exec_worker(argv[1:])
    hide_secrets()
    args = build_parser().parse_args(argv)
    logs.configure("INFO" if args.verbose else "WARNING")
    try:
        code: int = args.run(args)
    except (InvalidRequest, RedisUnusable) as exc:
        print(f"s3fanout: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return code


def _exec_worker(worker_args: list[str]) -> None:
    """Replace this process with a copy worker (``python -m copy_workers``)."""
    os.execv(sys.executable, [sys.executable, "-m", "copy_workers", *worker_args])  # noqa: S606


if __name__ == "__main__":
    raise SystemExit(main())
