"""The control plane: list, plan, dispatch and watch copy runs. Used by the CLI and Airflow.

Its entry points, for whoever drives runs from Python (the operator, the benchmarks):

- ``CopyRequest`` (and ``build_options``): what to copy where, validated; ``InvalidRequest``
  says what is wrong with bad input.
- ``start_run``: list the source here and dispatch the run's chunks; ``submit``: hand the run
  to the pool to list (``--list-in-pool``); ``dry_run``: what a run would do, doing nothing.
- ``producer_app``: the Celery app that sends by task name; ``wait_for_run``: wait for the end.

Imported on first use, so that ``import copy_control`` (the CLI) loads nothing it does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copy_control.dispatch.pool_listing import submit
    from copy_control.dispatch.producer import producer_app
    from copy_control.dispatch.runner import dry_run, start_run
    from copy_control.errors import InvalidRequest
    from copy_control.request import CopyRequest, build_options
    from copy_control.runs.waiting import wait_for_run

__all__ = [
    "CopyRequest",
    "InvalidRequest",
    "build_options",
    "dry_run",
    "producer_app",
    "start_run",
    "submit",
    "wait_for_run",
]

_WHERE = {
    "CopyRequest": "copy_control.request",
    "InvalidRequest": "copy_control.errors",
    "build_options": "copy_control.request",
    "dry_run": "copy_control.dispatch.runner",
    "producer_app": "copy_control.dispatch.producer",
    "start_run": "copy_control.dispatch.runner",
    "submit": "copy_control.dispatch.pool_listing",
    "wait_for_run": "copy_control.runs.waiting",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
