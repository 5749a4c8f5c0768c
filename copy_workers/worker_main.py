"""Start a Celery worker of the copy pool with the right app, queue and settings."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from typing import NoReturn

from copy_workers.contract import QUEUE
from copy_workers.settings import DEFAULT_REDIS_URL


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3fanout worker", description=__doc__)
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("S3FANOUT_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis that serves as broker and run store (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="worker processes (default: CPU count)"
    )
    parser.add_argument("--keys-in-flight", type=int, default=None, help="copies at once per chunk")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--hostname", default=f"s3fanout@{socket.gethostname()}")
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = build_parser().parse_args(argv)
    # The Celery app reads its settings from the environment when it is imported, and the
    # pool's child processes inherit it: set it before the import.
    os.environ["S3FANOUT_REDIS_URL"] = args.redis_url
    if args.keys_in_flight is not None:
        os.environ["S3FANOUT_KEYS_IN_FLIGHT"] = str(args.keys_in_flight)
    from copy_workers.celery_app import app  # noqa: PLC0415 - after the environment is set

    worker_args = ["worker", "-Q", QUEUE, "--loglevel", args.loglevel, "-n", args.hostname]
    if args.concurrency is not None:
        worker_args += ["--concurrency", str(args.concurrency)]
    app.worker_main(worker_args)
