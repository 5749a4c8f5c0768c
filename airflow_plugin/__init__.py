"""Airflow operator and trigger for the S3 fan-out copy pool."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_plugin.operators import S3CrossAccountCopyOperator
    from airflow_plugin.summaries import combine_summaries
    from airflow_plugin.triggers import S3FanoutRunTrigger

__all__ = ["S3CrossAccountCopyOperator", "S3FanoutRunTrigger", "combine_summaries"]

_LAZY = {
    "S3CrossAccountCopyOperator": "airflow_plugin.operators",
    "S3FanoutRunTrigger": "airflow_plugin.triggers",
    "combine_summaries": "airflow_plugin.summaries",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that Airflow's provider discovery can import ``airflow_plugin.provider_info``
    # while Airflow itself is still initialising.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
