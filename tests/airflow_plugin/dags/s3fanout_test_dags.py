"""Airflow DAGs used by the tests; their arguments come from the test's environment."""

from __future__ import annotations

import os
from datetime import datetime

from airflow_plugin import S3CrossAccountCopyOperator
from airflow_plugin.compat import DAG

_ENV = os.environ.get

with DAG(
    "s3fanout_test_prefix", schedule=None, start_date=datetime(2026, 1, 1), catchup=False
) as prefix_dag:
    S3CrossAccountCopyOperator(
        task_id="copy",
        source_bucket=_ENV("S3FANOUT_TEST_SOURCE_BUCKET", "source-bucket"),
        source_prefix=_ENV("S3FANOUT_TEST_SOURCE_PREFIX", "data/"),
        dest_bucket=_ENV("S3FANOUT_TEST_DEST_BUCKET", "dest-bucket"),
        dest_prefix=_ENV("S3FANOUT_TEST_DEST_PREFIX", "copied/"),
        chunk_size=int(_ENV("S3FANOUT_TEST_CHUNK_SIZE", "25")),
        max_failures=int(_ENV("S3FANOUT_TEST_MAX_FAILURES", "0")),
        redis_url=_ENV("S3FANOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        poll_interval=0.2,
        timeout=120,
    )
