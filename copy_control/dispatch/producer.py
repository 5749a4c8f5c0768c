"""The sending side of the worker pool: a Celery app that sends tasks by name only."""

from __future__ import annotations

from celery import Celery

from copy_core.broker import celery_settings


def producer_app(redis_url: str) -> Celery:
    """A Celery app that only sends: it never imports the worker's tasks."""
    app = Celery("s3fanout-control", set_as_current=False)
    app.conf.update(celery_settings(redis_url))
    return app
