"""Example DAG: copy every object under a prefix, with the locations as DAG params.

Trigger it with a conf such as ``{"source_prefix": "events/2026/11/"}`` to copy another
prefix: buckets, keys, prefixes, roles and copy options are templated.
"""

from __future__ import annotations

from datetime import datetime

from airflow_plugin.compat import DAG
from airflow_plugin.operators import S3CrossAccountCopyOperator

with DAG(
    dag_id="example_s3fanout_prefix",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "s3fanout"],
    params={
        "source_bucket": "prod-events",
        "source_prefix": "events/2026/11/",
        "dest_bucket": "analytics-landing",
        "dest_prefix": "events/2026/11/",
    },
) as dag:
    S3CrossAccountCopyOperator(
        task_id="copy_events",
        source_bucket="{{ params.source_bucket }}",
        source_prefix="{{ params.source_prefix }}",
        dest_bucket="{{ params.dest_bucket }}",
        dest_prefix="{{ params.dest_prefix }}",
        redis_conn_id="s3fanout_redis",
        source_role_arn="arn:aws:iam::111111111111:role/s3fanout-reader",
        dest_role_arn="arn:aws:iam::222222222222:role/s3fanout-writer",
        overwrite="if-different",  # a re-run skips what is already there
        chunk_size=500,
        max_failures=0,
        timeout=6 * 3600,
        deferrable=True,
    )
