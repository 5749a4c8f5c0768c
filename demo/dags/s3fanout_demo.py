"""The demo's Airflow DAG: copy a prefix from the source bucket to the destination bucket.

`make demo` sets the environment this file reads; in your own DAG you would write the
buckets, prefixes and Redis URL in place.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow_plugin import S3CrossAccountCopyOperator
from airflow_plugin.compat import DAG

with DAG(
    dag_id="s3fanout_demo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["s3fanout", "demo"],
) as dag:
    S3CrossAccountCopyOperator(
        task_id="copy_prefix",
        source_bucket=os.environ.get("DEMO_SOURCE_BUCKET", "demo-source"),
        source_prefix="datasets/",
        dest_bucket=os.environ.get("DEMO_DEST_BUCKET", "demo-destination"),
        dest_prefix="replica/datasets/",
        chunk_size=100,
        max_failures=0,
        redis_url=os.environ.get("DEMO_REDIS_URL", "redis://127.0.0.1:6379/0"),
        # The workers assume these roles through STS; the destination role signs the
        # server-side copies (the source bucket's policy lets it read).
        source_role_arn=os.environ.get("DEMO_SOURCE_ROLE_ARN"),
        dest_role_arn=os.environ.get("DEMO_DEST_ROLE_ARN"),
        external_id=os.environ.get("DEMO_EXTERNAL_ID"),
        copy_mode="server_side",
        poll_interval=1.0,
    )
