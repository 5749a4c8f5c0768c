"""Provider metadata, found by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Describe this package to Airflow's providers manager (``airflow providers list``)."""
    return {
        "package-name": "s3-fanout-copy",
        "name": "S3 fan-out copy",
        "description": "Copy S3 objects across AWS accounts through a Celery worker pool.",
        "versions": ["0.1.0"],
        "operators": [
            {
                "integration-name": "Amazon Simple Storage Service (S3)",
                "python-modules": ["airflow_plugin.operators"],
            }
        ],
    }
