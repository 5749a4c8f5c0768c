"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE = "s3-fanout-copy"
INTEGRATION = "Amazon Simple Storage Service (S3)"  # declared by the amazon provider


def _version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0"


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow's providers manager (``airflow providers list``).

    No connection type is registered: ``redis_conn_id`` reads the fields of the standard
    ``redis`` type (apache-airflow-providers-redis), or of any connection given as a URI.
    """
    return {
        "package-name": PACKAGE,
        "name": "S3 fan-out copy",
        "description": "Copy S3 objects across AWS accounts through a Celery worker pool.",
        "versions": [_version()],
        "operators": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_plugin.operators"]}
        ],
        "triggers": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_plugin.triggers"]}
        ],
    }
