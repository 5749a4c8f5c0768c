"""Example DAG: copy one object to another account's bucket, under a new name.

The source and destination are ``s3://`` URLs; the task waits for the copy in the triggerer.
"""

from __future__ import annotations

from datetime import datetime

from airflow_plugin.compat import DAG
from airflow_plugin.operators import S3CrossAccountCopyOperator

with DAG(
    dag_id="example_s3fanout_single_object",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "s3fanout"],
) as dag:
    S3CrossAccountCopyOperator(
        task_id="copy_report",
        source_s3_url="s3://prod-reports/daily/{{ ds }}/report.parquet",
        dest_s3_url="s3://analytics-landing/reports/report-{{ ds_nodash }}.parquet",
        redis_conn_id="s3fanout_redis",
        dest_role_arn="arn:aws:iam::222222222222:role/s3fanout-writer",
        acl="bucket-owner-full-control",
        deferrable=True,
    )
