"""Every Airflow import of this package, for Airflow 3.x (``airflow.sdk``) and 2.10."""

from __future__ import annotations

from typing import Any

try:  # Airflow 3.x
    from airflow.sdk import DAG, BaseHook, BaseOperator, Context, task
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 2.10
    from airflow import DAG  # type: ignore[no-redef,unused-ignore]
    from airflow.decorators import task  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
    )
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,attr-defined,unused-ignore]
    from airflow.models import BaseOperator  # type: ignore[no-redef,unused-ignore]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined]
    from airflow.utils.log.secrets_masker import (  # type: ignore[no-redef,unused-ignore]
        mask_secret,
    )

from airflow.configuration import conf

# Resolves a connection without blocking the triggerer's event loop, on both versions
# (a dependency of the amazon provider, so always installed beside it).
from airflow.providers.common.compat.connection import get_async_connection
from airflow.triggers.base import BaseTrigger, TriggerEvent

# Airflow 3.x calls BaseTrigger.on_kill when a user kills a deferred task (mark failed or
# success, clear); Airflow 2.10 only removes the trigger, which calls its cleanup().
TRIGGERS_HAVE_ON_KILL = hasattr(BaseTrigger, "on_kill")


def s3_hook(aws_conn_id: str | None) -> Any:
    """The amazon provider's S3Hook for ``aws_conn_id``.

    Imported on call: the triggerer imports this module (the trigger's), and S3Hook pulls in
    the whole AWS provider, which would block its event loop for the better part of a second.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: PLC0415

    return S3Hook(aws_conn_id=aws_conn_id)


def left_deferral(ti: Any) -> bool:
    """Whether a trigger's task instance is no longer deferred (Airflow 2.10 only).

    Blocking: it reads the metadata DB, which 2.10's triggerer can (3.x's cannot, and needs
    not: it has on_kill). A task instance that is gone counts as no longer deferred.
    """
    from airflow.models.taskinstance import TaskInstance  # noqa: PLC0415
    from airflow.utils.session import create_session  # noqa: PLC0415
    from airflow.utils.state import TaskInstanceState  # noqa: PLC0415

    with create_session() as session:
        state = (
            session.query(TaskInstance.state)
            .filter(
                TaskInstance.dag_id == ti.dag_id,
                TaskInstance.task_id == ti.task_id,
                TaskInstance.run_id == ti.run_id,
                TaskInstance.map_index == ti.map_index,
            )
            .scalar()
        )
    return bool(state != TaskInstanceState.DEFERRED)


def openlineage_classes() -> tuple[Any, Any] | None:
    """``(Dataset, OperatorLineage)`` if the OpenLineage provider is installed, else None.

    Imported on call, not at module import: the operator works without the provider, and
    Airflow only asks for lineage when the provider's listener is there to use it.
    """
    try:
        from airflow.providers.common.compat.openlineage.facet import (  # noqa: PLC0415
            Dataset,
        )
        from airflow.providers.openlineage.extractors import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            OperatorLineage,
        )
    except ImportError:
        return None
    return Dataset, OperatorLineage


__all__ = [
    "DAG",
    "TRIGGERS_HAVE_ON_KILL",
    "AirflowException",
    "AirflowFailException",
    "BaseHook",
    "BaseOperator",
    "BaseTrigger",
    "Context",
    "TriggerEvent",
    "conf",
    "get_async_connection",
    "left_deferral",
    "mask_secret",
    "openlineage_classes",
    "s3_hook",
    "task",
]
