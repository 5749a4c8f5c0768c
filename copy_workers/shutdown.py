"""How a worker's pool processes tell its main process that they stopped without draining.

A pool process that had to give chunks back when it stopped (they did not finish within
``S3FANOUT_DRAIN_S``) leaves a marker file in the worker's runtime directory; the main process
then exits with a non-zero code, so that whoever stopped it knows work was handed over.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNTIME_ENV = "S3FANOUT_RUNTIME_DIR"  # set by worker_main, inherited by the pool processes
_MARK = "undrained-"


def mark_undrained() -> None:
    """This process stopped with work it had to give back."""
    directory = os.environ.get(RUNTIME_ENV)
    if directory:
        (Path(directory) / f"{_MARK}{os.getpid()}").touch()


def undrained(directory: Path) -> list[int]:
    """The pids of the processes that stopped without draining."""
    return sorted(int(p.name[len(_MARK) :]) for p in directory.glob(f"{_MARK}*"))
