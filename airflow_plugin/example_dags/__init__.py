"""Example Airflow DAGs for S3CrossAccountCopyOperator (import them, or copy them as a start).

Each reads the worker pool's Redis from the Airflow connection ``s3fanout_redis`` (see
docs/airflow.md) and waits in the triggerer (``deferrable=True``).
"""
