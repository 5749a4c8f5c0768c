"""Every Airflow import of this package, for Airflow 3.x (``airflow.sdk``) and 2.10."""

from __future__ import annotations

try:  # Airflow 3.x
    from airflow.sdk import DAG, BaseOperator, Context
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 2.10
    from airflow import DAG  # type: ignore[no-redef,unused-ignore]
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined,unused-ignore]
        AirflowException,
        AirflowFailException,
    )
    from airflow.models import BaseOperator  # type: ignore[no-redef,unused-ignore]
    from airflow.utils.context import Context  # type: ignore[no-redef,attr-defined]

from airflow.configuration import conf
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = [
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "BaseOperator",
    "BaseTrigger",
    "Context",
    "S3Hook",
    "TriggerEvent",
    "conf",
]
