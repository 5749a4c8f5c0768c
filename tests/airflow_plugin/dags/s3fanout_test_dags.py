"""Airflow DAGs used by the tests; their arguments come from the test's environment."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow_plugin import S3CrossAccountCopyOperator, combine_summaries
from airflow_plugin.compat import DAG, task

_ENV = os.environ.get


def _copy_args() -> dict[str, Any]:
    """Arguments every test DAG shares, from S3FANOUT_TEST_* variables."""
    return {
        "source_bucket": _ENV("S3FANOUT_TEST_SOURCE_BUCKET", "source-bucket"),
        "dest_bucket": _ENV("S3FANOUT_TEST_DEST_BUCKET", "dest-bucket"),
        "dest_prefix": _ENV("S3FANOUT_TEST_DEST_PREFIX", "copied/"),
        "chunk_size": int(_ENV("S3FANOUT_TEST_CHUNK_SIZE", "25")),
        "max_failures": int(_ENV("S3FANOUT_TEST_MAX_FAILURES", "0")),
        "redis_conn_id": _ENV("S3FANOUT_TEST_REDIS_CONN_ID") or None,
        "redis_url": _ENV("S3FANOUT_TEST_REDIS_URL") or None,
        "deferrable": _ENV("S3FANOUT_TEST_DEFERRABLE", "") == "1",
        "poll_interval": 0.2,
        "timeout": 120,
    }


with DAG(
    "s3fanout_test_prefix", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as prefix_dag:
    S3CrossAccountCopyOperator(
        task_id="copy", source_prefix=_ENV("S3FANOUT_TEST_SOURCE_PREFIX", "data/"), **_copy_args()
    )


with DAG(
    "s3fanout_test_mapped", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as mapped_dag:
    copies = S3CrossAccountCopyOperator.partial(task_id="copy", **_copy_args()).expand(
        source_prefix=_ENV("S3FANOUT_TEST_SOURCE_PREFIXES", "data/0/,data/1/").split(",")
    )

    @task
    def total(summaries: Any) -> dict[str, Any]:
        return combine_summaries(summaries)

    total(copies.output)
