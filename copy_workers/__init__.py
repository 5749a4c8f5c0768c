"""The copy worker pool: the Celery app and its tasks, the copy engine, the S3 copy paths."""
