"""S3FanoutRunTrigger: wait for a copy run in the triggerer, without holding a worker slot.

The trigger only reads the run's state (it may run more than once: a triggerer restart
starts it again), never blocks the event loop (``redis.asyncio``), and yields exactly one
event. Its serialized arguments are stored in Airflow's database, so they hold no secret:
with ``redis_conn_id`` the Redis URL (and its password) is built from the connection in the
triggerer; a ``redis_url`` is accepted only if it carries no password.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from airflow_plugin.compat import TRIGGERS_HAVE_ON_KILL, BaseTrigger, TriggerEvent, left_deferral
from airflow_plugin.connections import aresolve_redis_url, url_has_secret
from airflow_plugin.progress import DEFAULT_PROGRESS_INTERVAL_S, ProgressLog
from airflow_plugin.runs import cancel_run
from copy_core.contract import ContractError, RunStatus, RunSummary
from copy_core.runs.async_reading import (
    end_watch_async,
    listing_pending_async,
    read_listing_error_async,
    read_summary_async,
)
from copy_core.runs.store import ListingError

# Redis may be restarted under a long run: readings that fail are retried for this long.
REDIS_OUTAGE_S = 300.0
# "invalid": the worker that listed the run found the request wrong (list_in_pool).
EVENT_STATUSES = ("success", "failed", "cancelled", "timeout", "error", "invalid")
_FINAL: dict[str, str] = {
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class RunEvent:
    """The one event of the trigger: how the wait ended, and the run's last summary."""

    status: str
    run_id: str
    summary: RunSummary | None = None
    message: str | None = None

    def to_payload(self) -> dict[str, Any]:
        summary = None if self.summary is None else self.summary.to_dict()
        return {
            "status": self.status,
            "run_id": self.run_id,
            "summary": summary,
            "message": self.message,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> RunEvent:
        """Validate an event payload; ValueError says what is wrong with it."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"expected a dict from {S3FanoutRunTrigger.__name__}, got {payload!r}")
        status, run_id = payload.get("status"), payload.get("run_id")
        if status not in EVENT_STATUSES:
            raise ValueError(f"unknown event status {status!r}")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"event has no run id: {payload!r}")
        summary = _summary(payload.get("summary"), run_id)
        if status in _FINAL.values() and (summary is None or _FINAL.get(summary.status) != status):
            raise ValueError(f"a {status!r} event needs the run's final summary, got {summary}")
        message = payload.get("message")
        return cls(status, run_id, summary, None if message is None else str(message))


class S3FanoutRunTrigger(BaseTrigger):  # type: ignore[misc,unused-ignore]
    """Wait until copy run ``run_id`` ends; yield one TriggerEvent of ``RunEvent.to_payload()``.

    :param run_id: the run to wait for
    :param redis_conn_id: Airflow connection of the worker pool's Redis (resolved in the
        triggerer, so its password is never serialized)
    :param redis_url: or the Redis URL itself, only if it holds no password
    :param poll_interval: seconds between two readings of the run's state
    :param progress_interval: seconds between two progress lines in the triggerer's log
    :param deadline: Unix time after which the wait ends with a "timeout" event (an
        absolute time, so a trigger restarted by another triggerer keeps the same limit)
    :param cancel_on_kill: cancel the run when a user kills the deferred task
    :param listed_by_worker: a worker lists the run (the operator's ``list_in_pool``): until it
        has created the run there is none to read, and a listing it could not do ends the wait

    Cancellation is the one write, and only for a user's action: Airflow 3.x calls
    ``on_kill``; Airflow 2.10 only removes the trigger, so ``cleanup`` cancels when the task
    instance has left the deferred state without this trigger's event (and not by timeout).
    A triggerer restart or a trigger moved to another triggerer leaves the task deferred.
    """

    def __init__(
        self,
        *,
        run_id: str,
        redis_conn_id: str | None = None,
        redis_url: str | None = None,
        poll_interval: float = 5.0,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL_S,
        deadline: float | None = None,
        cancel_on_kill: bool = True,
        listed_by_worker: bool = False,
        try_number: int | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        if bool(redis_conn_id) == bool(redis_url):
            raise ValueError("give the trigger redis_conn_id or redis_url (exactly one)")
        if redis_url and url_has_secret(redis_url):
            raise ValueError(
                "redis_url holds a password, and trigger arguments are stored in Airflow's "
                "database: use redis_conn_id"
            )
        self.run_id = run_id
        self.redis_conn_id = redis_conn_id
        self.redis_url = redis_url
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.deadline = deadline
        self.cancel_on_kill = cancel_on_kill
        self.listed_by_worker = listed_by_worker
        self.try_number = try_number  # the deferred try: its kill spares a later try's run
        self._event_sent = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run_id": self.run_id,
                "redis_conn_id": self.redis_conn_id,
                "redis_url": self.redis_url,
                "poll_interval": self.poll_interval,
                "progress_interval": self.progress_interval,
                "deadline": self.deadline,
                "cancel_on_kill": self.cancel_on_kill,
                "listed_by_worker": self.listed_by_worker,
                "try_number": self.try_number,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._wait()
        except Exception as exc:  # an event, not a trigger failure (on 2.10 that is a kill)
            self.log.exception("Run %s: the trigger failed", self.run_id)
            event = RunEvent("error", self.run_id, message=f"the trigger failed: {exc!r}")
        self.log.info("Run %s: %s", self.run_id, event.message or event.status)
        self._event_sent = True
        yield TriggerEvent(event.to_payload())  # type: ignore[no-untyped-call,unused-ignore]

    async def on_kill(self) -> None:
        """Airflow 3.x: a user killed the deferred task (mark failed or success, clear)."""
        await self._cancel()

    async def cleanup(self) -> None:
        """Airflow 2.10: cancel the run if the trigger was removed because of a user's action."""
        if TRIGGERS_HAVE_ON_KILL or self._event_sent or not self.cancel_on_kill:
            return
        ti = self.task_instance
        if ti is None or _timed_out(ti):
            return
        try:
            killed = await asyncio.to_thread(left_deferral, ti)
        except Exception as exc:  # never cancel on a guess
            self.log.warning("Run %s: cannot read the task's state (%s)", self.run_id, exc)
            return
        if killed:
            await self._cancel()

    async def _cancel(self) -> None:
        if not self.cancel_on_kill:
            return
        url = await aresolve_redis_url(self.redis_conn_id, self.redis_url)
        status = await asyncio.to_thread(cancel_run, url, self.run_id, self.try_number)
        self.log.info("Run %s: cancellation requested (status %s)", self.run_id, status)

    async def _wait(self) -> RunEvent:
        try:
            url = await aresolve_redis_url(self.redis_conn_id, self.redis_url)
        except Exception as exc:  # any failure to find Redis is reported as the event
            return RunEvent("error", self.run_id, message=f"cannot resolve Redis: {exc}")
        client = redis.asyncio.Redis.from_url(
            url, decode_responses=True, socket_timeout=10, socket_connect_timeout=10
        )
        try:
            return await self._poll(client)
        finally:
            await client.aclose()

    async def _poll(self, client: redis.asyncio.Redis) -> RunEvent:
        # Readings every poll_interval; the run's end is announced, so it is seen at once.
        async with end_watch_async(client, self.run_id) as pause:
            return await self._read_until_end(client, pause)

    async def _read_until_end(
        self, client: redis.asyncio.Redis, pause: Callable[[float], Awaitable[None]]
    ) -> RunEvent:
        progress = ProgressLog(self.log, self.progress_interval)
        summary: RunSummary | None = None
        failing_since: float | None = None
        while True:
            try:
                listing = None
                if self.listed_by_worker:
                    listing = await read_listing_error_async(client, self.run_id)
                summary = await read_summary_async(client, self.run_id)
                failing_since = None
            except (RedisError, OSError) as exc:
                failing_since = failing_since or time.monotonic()
                if time.monotonic() - failing_since > REDIS_OUTAGE_S:
                    return RunEvent("error", self.run_id, summary, f"Redis unreachable: {exc}")
                self.log.warning("Run %s: cannot read its state (%s); retrying", self.run_id, exc)
            else:
                if listing is not None:
                    return _listing_event(self.run_id, listing, summary)
                if summary is None and not self.listed_by_worker:
                    message = f"no run {self.run_id!r} in Redis (wrong Redis, or it was lost)"
                    return RunEvent("error", self.run_id, message=message)
                if summary is None and not await listing_pending_async(client, self.run_id):
                    message = (
                        f"run {self.run_id!r} is not in Redis, and no listing of it is on its "
                        "way (its state was lost): a retry starts it again"
                    )
                    return RunEvent("error", self.run_id, message=message)
                if summary is not None:
                    progress(summary)
                    if summary.is_final:
                        return RunEvent(_FINAL[summary.status], self.run_id, summary)
            if self.deadline is not None and time.time() >= self.deadline:
                message = f"run {self.run_id} had not ended by the deadline (it goes on)"
                return RunEvent("timeout", self.run_id, summary, message)
            left = None if self.deadline is None else self.deadline - time.time()
            await pause(self.poll_interval if left is None else min(self.poll_interval, left))


def listing_stopped(reason: str) -> str:
    """What a task says when the worker listing its run stopped (not for bad input)."""
    return f"the worker listing the run stopped: {reason} (a retry resumes it)"


def _listing_event(run_id: str, error: ListingError, summary: RunSummary | None) -> RunEvent:
    """The event of a run whose listing worker stopped: bad input, or another error."""
    if error.bad_input:
        return RunEvent("invalid", run_id, summary, error.message)
    return RunEvent("error", run_id, summary, listing_stopped(error.message))


def _timed_out(ti: Any) -> bool:
    """Whether Airflow removed the trigger because its deferral timeout passed."""
    limit = getattr(ti, "trigger_timeout", None)
    if limit is None:
        return False
    limit = limit if limit.tzinfo else limit.replace(tzinfo=UTC)
    return bool(limit <= datetime.now(UTC))


def _summary(raw: Any, run_id: str) -> RunSummary | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ValueError(f"event summary must be a dict, got {type(raw).__name__}")
    try:
        summary = RunSummary.from_dict(raw)
    except (ContractError, TypeError) as exc:
        raise ValueError(f"event summary does not follow RunSummary: {exc}") from exc
    if summary.run_id != run_id:
        raise ValueError(f"event of run {run_id!r} carries the summary of {summary.run_id!r}")
    return summary
