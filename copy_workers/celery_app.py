"""The Celery app of the worker pool. Built from the environment (see ``settings``)."""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging
from kombu.transport import TRANSPORT_ALIASES

from copy_core import logs
from copy_core.broker import celery_settings
from copy_workers.settings import WorkerSettings

TRANSPORT = "copy_workers.broker_transport:Transport"
settings = WorkerSettings.from_env()

app = Celery("s3fanout", include=["copy_workers.tasks", "copy_workers.listing_task"])
app.conf.update(
    celery_settings(settings.redis_url, settings.visibility_timeout_s),
    # A chunk is acknowledged only once it is done, and comes back if its worker dies.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Results are aggregated in the run store, never in Celery's result backend.
    task_ignore_result=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
    worker_cancel_long_running_tasks_on_connection_loss=False,
)
# This process's redis:// and rediss:// broker URLs use kombu's Redis transport made to survive
# a garbage queue entry and a full Redis (broker_transport.py). Aliases rather than Celery's
# broker_transport setting: kombu then reads the URL by its scheme, exactly as it would.
TRANSPORT_ALIASES.update(redis=TRANSPORT, rediss=TRANSPORT)


@setup_logging.connect
def _json_logging(loglevel: str | int | None = None, **_: object) -> None:
    """Replace Celery's log format with one JSON object per event."""
    logs.configure(loglevel or "INFO")
