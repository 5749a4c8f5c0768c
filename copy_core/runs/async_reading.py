"""Reading a run's state without blocking an event loop (the Airflow trigger's side).

The same readings as ``RunStore``'s, over ``redis.asyncio``; parsing is shared with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import redis
import redis.asyncio

from copy_core.contract import RunSummary, summarize
from copy_core.runs.keys import RunKeys
from copy_core.runs.leases import LISTING
from copy_core.runs.store import FAILURES_READ, ListingError, decoded, parse_listing_error, text


async def read_summary_async(client: redis.asyncio.Redis, run_id: str) -> RunSummary | None:
    """The same summary as ``RunStore.summary``, read without blocking an event loop."""
    keys = RunKeys(run_id)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.run)
        pipe.lrange(keys.failures, 0, FAILURES_READ - 1)
        pipe.hget(keys.rate, "starved_ms")
        run_hash, failures, limited = await pipe.execute()
    if not run_hash:
        return None
    shown = [text(f) for f in failures]
    return summarize(run_id, decoded(run_hash), shown, time.time(), float(limited or 0))


async def read_listing_error_async(client: redis.asyncio.Redis, run_id: str) -> ListingError | None:
    """The same as ``RunStore.listing_error``, read without blocking an event loop."""
    return parse_listing_error(await client.get(RunKeys(run_id).listing_error))


@contextlib.asynccontextmanager
async def end_watch_async(
    client: redis.asyncio.Redis, run_id: str
) -> AsyncIterator[Callable[[float], Awaitable[None]]]:
    """``RunStore.end_watch`` for an event loop: an awaitable pause that ends with the run.

    If the channel cannot be subscribed to (Redis is down: the caller's readings report that),
    the pause is a plain sleep.
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(RunKeys(run_id).ended_channel)
    except (redis.RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        yield asyncio.sleep
        return

    async def pause(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0:
                if await pubsub.get_message(timeout=left) is not None:
                    return
        except (redis.RedisError, OSError):  # the readings decide; without the channel, wait
            await asyncio.sleep(max(deadline - time.monotonic(), 0.0))

    try:
        yield pause
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def listing_pending_async(client: redis.asyncio.Redis, run_id: str) -> bool:
    """Whether the run's listing is in the pool (queued or being listed): ``LeaseStore``'s
    holder of the listing, read without blocking."""
    return bool(await client.hexists(RunKeys(run_id).holders, LISTING))
