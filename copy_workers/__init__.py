"""The copy worker pool: Celery app, copy engine and run accounting. Never imports Airflow."""
