"""Which copy run a task instance drives, and how it lets go of it.

A task instance's run id is derived from (deployment, dag, task, Airflow run, map index), so
every try of it finds the same run, and no other Airflow deployment sharing the pool (staging
beside prod, 2.10 beside 3.x during a migration, with the same dag ids and run ids) can. A
retry after a crash, an eviction or a timeout re-attaches to the run instead of dispatching it
again, once the run is checked to be the same request. Once the operator has reported a run's
outcome (it returned the summary, or failed the task because keys failed or the run was
cancelled), the run is *closed*: executing the task instance again (a user clears it) starts
the next run, ``<id>-g2``, ``<id>-g3``... instead of replaying an old summary forever.

The current generation is one small Redis key next to the run's own keys, with the same TTL.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from airflow_plugin.compat import conf
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import DEFAULT_TTL_S, RunStore, connect

if TYPE_CHECKING:
    import redis

_GENERATION = re.compile(r"^(?P<base>.+)-g(?P<n>[2-9]|[1-9]\d+)$")

# KEYS: generation pointer. ARGV: generation being closed, ttl. Advances the pointer only if
# it still names that generation, so on_kill and a report closing the same run advance once.
_CLOSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '1')
if current == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], current + 1, 'EX', tonumber(ARGV[2]))
  return current + 1
end
return current
"""


def run_id_for(context: Any) -> str:
    """The base run id of a task instance: the same for every try.

    Derived from the deployment's namespace, dag, task, Airflow run and map index, so a
    retried task finds its run again instead of starting another.
    """
    ti = context["ti"]
    parts = (deployment_namespace(), ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))
    ident = "\0".join(str(part) for part in parts)
    return f"af-{hashlib.sha256(ident.encode()).hexdigest()[:24]}"


def deployment_namespace() -> str:
    """What sets this Airflow deployment's run ids apart from another's in the same pool.

    ``[s3fanout] run_namespace`` (``AIRFLOW__S3FANOUT__RUN_NAMESPACE``) when set: give it the
    same value on every component of one deployment, and a different one per deployment.
    Otherwise a digest of the metadata database's URL, which each deployment has of its own
    (the URL itself, credentials included, never leaves this function).
    """
    configured = conf.get("s3fanout", "run_namespace", fallback="") or ""
    if configured:
        return configured
    database = conf.get("database", "sql_alchemy_conn", fallback="") or ""
    return "db:" + hashlib.sha256(database.encode()).hexdigest()[:16]


# KEYS: generation pointer, driver. ARGV: the run's generation, try number, ttl. Attaches the
# try to the run unless the run was closed (0: take the next generation instead).
_ATTACH = """
local current = tonumber(redis.call('GET', KEYS[1]) or '1')
if current ~= tonumber(ARGV[1]) then return 0 end
local driver = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) > driver then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
"""

# KEYS: generation pointer, driver. ARGV: the run's generation, try number, ttl. Closes the run
# for a kill of that try, unless a later try attached to it (-1: the run is that try's now).
_CLOSE_FOR_KILL = """
local driver = tonumber(redis.call('GET', KEYS[2]) or '0')
if driver > tonumber(ARGV[2]) then return -1 end
local current = tonumber(redis.call('GET', KEYS[1]) or '1')
if current == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], current + 1, 'EX', tonumber(ARGV[3]))
end
return 1
"""

SUPERSEDED = "superseded"  # cancel_run's answer when a later try drives the run


def split_run_id(run_id: str) -> tuple[str, int]:
    """``(base run id, generation)`` of a run id made by ``current_run_id``."""
    match = _GENERATION.match(run_id)
    if match is None:
        return run_id, 1
    return match["base"], int(match["n"])


def generation_key(base: str) -> str:
    """The Redis key holding the current generation of a task instance's runs."""
    return RunKeys(base).airflow_generation


def current_run_id(client: redis.Redis, base: str, ttl_s: int = DEFAULT_TTL_S) -> str:
    """The run this execution of the task instance drives (new or to re-attach to)."""
    key = generation_key(base)
    raw = client.get(key)
    if raw is None:
        return base
    client.expire(key, ttl_s)  # lives at least as long as the run it points to
    generation = int(raw)
    return base if generation <= 1 else f"{base}-g{generation}"


def close_run(client: redis.Redis, run_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
    """The task instance is done with ``run_id``: its next execution starts a new run."""
    base, generation = split_run_id(run_id)
    client.eval(_CLOSE, 1, generation_key(base), generation, ttl_s)


def attach(client: redis.Redis, base: str, try_number: int, ttl_s: int = DEFAULT_TTL_S) -> str:
    """The run try ``try_number`` of the task instance drives, attached to it.

    From then on, a kill of an earlier try (a clear of a deferred task: Airflow 3.x calls the
    old trigger's on_kill, maybe after the new try started) leaves the run alone. A run that
    such a kill closed first is not attached to: the try takes the next generation.
    """
    while True:
        run_id = current_run_id(client, base, ttl_s)
        if attach_to(client, run_id, try_number, ttl_s):
            return run_id


def attach_to(
    client: redis.Redis, run_id: str, try_number: int, ttl_s: int = DEFAULT_TTL_S
) -> bool:
    """Attach try ``try_number`` to ``run_id``; False if the run was closed meanwhile."""
    keys, generation = _pointer_and_driver(run_id)
    return bool(client.eval(_ATTACH, 2, *keys, generation, try_number, ttl_s))


def _pointer_and_driver(run_id: str) -> tuple[tuple[str, str], int]:
    """The keys of ``_ATTACH`` and ``_CLOSE_FOR_KILL`` for ``run_id``, and its generation."""
    base, generation = split_run_id(run_id)
    return (generation_key(base), RunKeys(run_id).airflow_driver), generation


def cancel_run(redis_url: str, run_id: str, try_number: int | None = None) -> str | None:
    """Stop ``run_id`` (queued chunks are dropped) and close it; the run's status after.

    For a kill of try ``try_number``: a run a later try has attached to is that try's, and is
    left alone (``SUPERSEDED``). The run is closed first, so that no try attaches to it while
    it is being cancelled. Blocking, on a connection of its own: it runs in a signal handler
    (``on_kill``) while the task's main thread may be in the middle of a Redis call, or in a
    thread of a triggerer.
    """
    client = connect(redis_url, timeout_s=5.0)
    try:
        if try_number is None:
            close_run(client, run_id)
        else:
            keys, generation = _pointer_and_driver(run_id)
            if client.eval(_CLOSE_FOR_KILL, 2, *keys, generation, try_number, DEFAULT_TTL_S) == -1:
                return SUPERSEDED
        return RunStore(client).request_cancel(run_id)
    finally:
        client.close()
