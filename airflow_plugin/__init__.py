"""Airflow operator for the S3 fan-out copy pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_plugin.operators import S3CrossAccountCopyOperator

__all__ = ["S3CrossAccountCopyOperator"]


def __getattr__(name: str) -> Any:
    # Lazy, so that Airflow's provider discovery can import ``airflow_plugin.provider_info``
    # while Airflow itself is still initialising.
    if name == "S3CrossAccountCopyOperator":
        from airflow_plugin.operators import S3CrossAccountCopyOperator  # noqa: PLC0415

        return S3CrossAccountCopyOperator
    raise AttributeError(name)
