"""The ``s3fanout`` command's process: :func:`copy_control.cli.main`, set up for a short life.

A copy command spends more CPU starting and stopping Python than dispatching a few thousand
keys (``make bench`` charges the CLI's CPU to every object it copies; docs/performance.md says
how much each step saves), so this entry point:

- skips three optional imports of its libraries that it never uses, by a ``None`` in
  ``sys.modules``, which makes an optional import fail as if the package were absent:
  redis-py 8 imports the OpenTelemetry SDK whenever it is installed (Airflow installs it) for
  client metrics this command never turns on; botocore loads the AWS CRT (the workers'
  HTTP client, a native library) for SigV4A, multi-Region access points, which this
  command does not take (it addresses buckets by name), and for CRC checksums of uploads,
  which it does not make; kombu imports PyYAML to offer a YAML serializer, and
  every message of this project is JSON;
- keeps the garbage collector off while some 700 modules import, whose objects all live to
  the end, then freezes them out of later collections;
- ends with ``os._exit`` once output is flushed, skipping the interpreter's teardown, which
  frees every module one by one. Everything a run needs is in Redis by then: the
  broker's sends and the run store's writes are synchronous.

Tests and library callers use :func:`copy_control.cli.main`, which changes none of this.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from typing import NoReturn


def main() -> NoReturn:
    for optional in ("opentelemetry", "awscrt", "yaml"):
        sys.modules.setdefault(optional, None)  # type: ignore[arg-type]
    gc.disable()
    try:
        from copy_control import cli  # noqa: PLC0415 - imported with the collector off
    finally:
        gc.enable()
        gc.freeze()
    try:
        code = cli.main()
    except SystemExit as exc:  # argparse's --help and usage errors
        code = _exit_code(exc)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (`| head`) reads no more
            stream.flush()
    os._exit(code)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    main()
