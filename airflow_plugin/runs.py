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


def cancel_run(redis_url: str, run_id: str) -> str | None:
    """Stop ``run_id`` (queued chunks are dropped) and close it; the run's status after.

    Blocking, on a connection of its own: it runs in a signal handler (``on_kill``) while the
    task's main thread may be in the middle of a Redis call, or in a thread of a triggerer.
    """
    client = connect(redis_url, timeout_s=5.0)
    try:
        status = RunStore(client).request_cancel(run_id)
        close_run(client, run_id)
        return status
    finally:
        client.close()
