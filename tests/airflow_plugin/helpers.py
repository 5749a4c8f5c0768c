"""Helpers of the Airflow tests: run states made by hand, trigger driving, a paused worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from copy_core.contract import KeyOutcome, KeyStatus
from copy_core.runs.store import RunStore

try:  # Airflow 3.x
    from airflow.sdk.exceptions import TaskDeferred
except ImportError:  # Airflow 2.10
    from airflow.exceptions import TaskDeferred  # type: ignore[no-redef,unused-ignore]

__all__ = ["TaskDeferred"]


def fake_context(**ti: Any) -> dict[str, Any]:
    """The part of a task context the operator reads: the task instance's identity."""
    fields = {"dag_id": "d", "task_id": "t", "run_id": f"manual__{uuid.uuid4().hex}"}
    return {"ti": SimpleNamespace(**(fields | {"map_index": -1} | ti))}


def new_run(store: RunStore, n: int = 3, max_failures: int | None = 0) -> str:
    """A run with one dispatched chunk of ``n`` keys and its listing done: in progress."""
    run_id = f"t-{uuid.uuid4().hex[:12]}"
    store.create_run(run_id, {"test": True}, max_failures)
    store.register_chunk(run_id, "0", n, n * 10)
    store.finish_listing(run_id)
    return run_id


def record_all(store: RunStore, run_id: str, status: KeyStatus, n: int = 3) -> None:
    """Record the same outcome for every key of the run's chunk (ends the run)."""
    failed = status is KeyStatus.FAILED
    outcomes = [
        KeyOutcome(
            index=i,
            source_key=f"k{i}",
            status=status,
            size=10,
            error_code="AccessDenied" if failed else None,
            message="denied" if failed else None,
        )
        for i in range(n)
    ]
    store.record(run_id, "0", n, outcomes)


def status_of(store: RunStore, run_id: str) -> str | None:
    """The run's status, None if there is no such run."""
    summary = store.summary(run_id)
    return None if summary is None else summary.status


async def first_event(trigger: Any) -> Any:
    """Drive the trigger's run() to its first event (asend(None)), then close it."""
    events = trigger.run()
    try:
        return await events.asend(None)
    finally:
        await events.aclose()


def run_trigger(trigger: Any) -> Any:
    return asyncio.run(first_event(trigger))


class Paused:
    """A stopped worker process (SIGSTOP): its chunks queue up until ``resume()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)  # harmless if it runs already


@contextlib.contextmanager
def paused(pid: int) -> Iterator[Paused]:
    """The worker stopped for the block (or until ``resume()``), running again after it."""
    worker = Paused(pid)
    try:
        yield worker
    finally:
        worker.resume()


class InThread:
    """Runs a call in a thread and keeps its outcome.

    Airflow 2.10 lets an operator's execute() run in the main thread only, so the tests run
    execute() there and what happens meanwhile (on_kill, checks, resuming) in a thread.
    """

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float = 60) -> Any:
        """The call's result; re-raises its error."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not return"
        if self.error is not None:
            raise self.error
        return self.result
