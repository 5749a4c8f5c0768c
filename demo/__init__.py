"""`make demo`: a real copy through a real worker pool, driven by a real Airflow DAG run."""
