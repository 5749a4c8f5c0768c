"""The DAG the real-deployment tests trigger (an airflow dag file): a deferrable prefix copy.

Buckets come from the DAG run's conf, so that one parsed DAG serves every test.
"""

from __future__ import annotations

from datetime import datetime

from airflow_plugin import S3CrossAccountCopyOperator
from airflow_plugin.compat import DAG

with DAG("s3fanout_deploy", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    S3CrossAccountCopyOperator(
        task_id="copy",
        source_bucket="{{ dag_run.conf['source_bucket'] }}",
        source_prefix="data/",
        dest_bucket="{{ dag_run.conf['dest_bucket'] }}",
        dest_prefix="copied/",
        redis_conn_id="s3fanout_redis",
        aws_conn_id=None,
        deferrable=True,
        poll_interval=0.5,
        chunk_size=20,
        retries=0,
    )
