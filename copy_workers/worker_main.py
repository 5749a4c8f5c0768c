"""Start a Celery worker of the copy pool with the right app, queue and settings."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from celery.signals import worker_shutting_down

from copy_core import redis_url
from copy_core.contract import QUEUE
from copy_core.process_title import hide_secrets
from copy_workers import shutdown
from copy_workers.settings import WorkerSettings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client when it is imported
METRICS_DIR_PREFIX = "s3fanout-metrics-"
_STAGING_PREFIX = ".s3fanout-metrics-staging-"
_LOCK = ".lock"


def _port(raw: str) -> int:
    port = int(raw)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 1 to 65535, not {port}")
    return port


def _at_least_one(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3fanout worker", description=__doc__)
    parser.add_argument("--redis-url", default=None, help=redis_url.HELP)
    parser.add_argument(
        "--concurrency",
        type=_at_least_one,
        default=None,
        help="worker processes (default: CPU count)",
    )
    parser.add_argument(
        "--keys-in-flight", type=_at_least_one, default=None, help="copies at once per chunk"
    )
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument("--hostname", default=f"s3fanout@{socket.gethostname()}")
    parser.add_argument(
        "--metrics-port",
        type=_port,
        default=None,
        help="serve Prometheus metrics on this port (default: no metrics, no port)",
    )
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104 - a container's metrics port is reached from outside it
        help="address the metrics port binds to (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run a worker until a signal stops it; exit non-zero if it stopped for another reason,
    or if a pool process had to give back chunks it could not finish (see ``shutdown``)."""
    args = build_parser().parse_args(argv)
    hide_secrets()  # after parsing: sys.argv is masked in place
    args.redis_url = redis_url.resolve(args.redis_url)
    # The Celery app reads its settings from the environment when it is imported, and the
    # pool's child processes inherit it: set it before the import.
    os.environ[redis_url.ENV] = args.redis_url
    if args.keys_in_flight is not None:
        os.environ["S3FANOUT_KEYS_IN_FLIGHT"] = str(args.keys_in_flight)
    try:
        redis_url.check_url(args.redis_url)
        WorkerSettings.from_env()
    except ValueError as exc:
        # Exit 2, as for a bad flag: the configuration is wrong, and restarting will not help.
        print(f"s3fanout worker: {exc}", file=sys.stderr)
        sys.exit(2)
    with contextlib.ExitStack() as stack:
        runtime = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="s3fanout-")))
        os.environ[shutdown.RUNTIME_ENV] = str(runtime)
        # prometheus_client picks its storage when it is first imported (the app imports it):
        # files in a directory shared with the pool's children, or, without a metrics port,
        # plain memory that nobody reads.
        os.environ.pop(MULTIPROC_ENV, None)
        directory = None if args.metrics_port is None else stack.enter_context(metrics_dir())
        if directory is not None:
            os.environ[MULTIPROC_ENV] = str(directory)
        from copy_workers.celery_app import app  # noqa: PLC0415 - after the environment is set

        if directory is not None:
            _serve_metrics(args, directory)
        worker_args = ["worker", "-Q", QUEUE, "--loglevel", args.loglevel, "-n", args.hostname]
        if args.concurrency is not None:
            worker_args += ["--concurrency", str(args.concurrency)]
        code = _run(app, worker_args)
        left = shutdown.undrained(runtime)
    if left:
        print(f"s3fanout worker: pool processes {left} gave back chunks they could not finish")
    sys.exit(code or (3 if left else 0))


def _run(app: Any, worker_args: list[str]) -> int:
    """Celery's worker until it stops; its exit code (Celery's ``worker_main`` drops it).

    A worker stopped by a signal exits 0; one that stopped by itself (Celery's "Unrecoverable
    error") exits 1, so that a supervisor restarting on failure restarts it.
    """
    signalled: list[str] = []

    def note(sig: str | None = None, **_: object) -> None:
        signalled.append(str(sig))

    worker_shutting_down.connect(note, weak=False)
    code = app.start(argv=worker_args)
    if not signalled:
        return int(code or 1)
    return int(code or 0)


def _serve_metrics(args: argparse.Namespace, directory: Path) -> None:
    from copy_workers import metrics  # noqa: PLC0415 - imports prometheus_client

    try:
        metrics.serve(args.metrics_address, args.metrics_port, directory, args.redis_url)
    except OSError as exc:
        sys.exit(
            f"s3fanout worker: cannot serve metrics on {args.metrics_address}:"
            f"{args.metrics_port}: {exc}"
        )


@contextlib.contextmanager
def metrics_dir(base: Path | None = None) -> Iterator[Path]:
    """A new, empty, private directory for the pool's metric files; removed on exit.

    The worker holds a lock on it while it lives. Directories of workers that died without
    cleaning up (SIGKILL; in Kubernetes /tmp is an emptyDir that outlives a container restart)
    are unlocked, and are removed first.
    """
    base = Path(tempfile.gettempdir()) if base is None else base
    remove_orphans(base)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=base))
    lock = open(staging / _LOCK, "w")  # noqa: SIM115 - held until the directory is removed
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Renamed once locked: another worker never sees it under its final name unlocked.
        directory = staging.rename(base / (METRICS_DIR_PREFIX + staging.name[-8:]))
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    finally:
        lock.close()


def remove_orphans(base: Path) -> list[Path]:
    """Remove the metric directories under ``base`` that no live worker holds; return them."""
    removed = []
    for directory in sorted(base.glob(METRICS_DIR_PREFIX + "*")):
        try:
            fd = os.open(directory / _LOCK, os.O_RDONLY)
        except OSError:  # not ours, or being removed by another worker
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its worker is alive
            os.close(fd)
            continue
        shutil.rmtree(directory, ignore_errors=True)
        os.close(fd)
        removed.append(directory)
    return removed
