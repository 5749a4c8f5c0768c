"""Worker settings: the one module that reads the worker's environment.

AWS settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain) are not read here:
boto3 reads them itself, the same way for workers, the CLI and real S3.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from copy_core.broker import DEFAULT_REDIS_URL
from copy_workers.retry import KeyRetryPolicy


@dataclass(frozen=True)
class WorkerSettings:
    """Tuning knobs of one worker process."""

    redis_url: str = DEFAULT_REDIS_URL
    # Copies in flight in one process, across its chunks: the adaptive window's ceiling (it
    # starts at ``window_initial`` and finds its size; see window.py). The fast lane keeps up
    # to this many connections per S3 host.
    keys_in_flight: int = 256
    # 128: a default worker (2 processes) starts with s5cmd's default copies in flight (256);
    # from 32, the window spent three round trips doubling (a second at 250 ms).
    window_initial: int = 128
    # Chunks one process holds at once (the one draining and the next ones): its slots in the
    # pool's capacity, which sizes every run's share of chunks in the broker.
    chunks_per_process: int = 3
    copy_threads: int = 32  # keys on the threaded path (botocore) at once
    max_pool_connections: int = 64  # botocore's connections per client
    max_attempts: int = 4
    # "standard": botocore's adaptive mode collapses throughput under throttling (see
    # copy_workers/throttle.py, which slows down instead).
    retry_mode: Literal["standard", "adaptive"] = "standard"
    key_attempts: int = 12
    key_retry_base_s: float = 0.5
    key_retry_deadline_s: float = 300.0
    part_concurrency: int = 16
    stream_buffers: int = 16
    credential_refresh_margin_s: int | None = None
    fast_lane: bool = True
    chunk_retries: int = 3  # deliveries of a batch of parts that end in a transient error
    # A worker holds a lease on the work it has and renews it every third of this: the work
    # of a worker that vanished goes back to the queue this long after its last renewal.
    lease_s: int = 30
    reap_every_s: float = 5.0
    drain_s: float = 25.0  # a process told to stop finishes its chunks within this, or gives
    # them back (Kubernetes' terminationGracePeriodSeconds must leave room for it)
    # The last resort behind the leases: a message not acknowledged for this long is
    # delivered again by Redis itself.
    visibility_timeout_s: int = 3600
    run_ttl_s: int = 7 * 24 * 3600
    flush_every_s: float = 0.5
    flush_every_keys: int = 200

    def __post_init__(self) -> None:
        positive = (
            "keys_in_flight",
            "window_initial",
            "chunks_per_process",
            "copy_threads",
            "max_pool_connections",
            "max_attempts",
            "key_attempts",
            "part_concurrency",
            "stream_buffers",
            "chunk_retries",
            "lease_s",
            "visibility_timeout_s",
            "run_ttl_s",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{_env(name)} must be at least 1, got {getattr(self, name)}")
        for name in ("key_retry_base_s", "key_retry_deadline_s", "reap_every_s", "drain_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{_env(name)} must be a positive number of seconds, got {value}")
        if self.visibility_timeout_s < 2 * self.lease_s:
            raise ValueError(
                "S3FANOUT_VISIBILITY_TIMEOUT_S must be at least twice S3FANOUT_LEASE_S: it is "
                "the last resort behind the leases"
            )

    def key_retry_policy(self) -> KeyRetryPolicy:
        return KeyRetryPolicy(
            attempts=self.key_attempts,
            base_s=self.key_retry_base_s,
            deadline_s=self.key_retry_deadline_s,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """The settings the ``S3FANOUT_*`` variables give; ValueError names a bad one."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            redis_url=env.get("S3FANOUT_REDIS_URL", d.redis_url),
            keys_in_flight=_int(env, "S3FANOUT_KEYS_IN_FLIGHT", d.keys_in_flight),
            window_initial=_int(env, "S3FANOUT_WINDOW_INITIAL", d.window_initial),
            chunks_per_process=_int(env, "S3FANOUT_CHUNKS_PER_PROCESS", d.chunks_per_process),
            copy_threads=_int(env, "S3FANOUT_COPY_THREADS", d.copy_threads),
            max_pool_connections=_int(env, "S3FANOUT_MAX_POOL_CONNECTIONS", d.max_pool_connections),
            max_attempts=_int(env, "S3FANOUT_MAX_ATTEMPTS", d.max_attempts),
            retry_mode=_retry_mode(env.get("S3FANOUT_RETRY_MODE", d.retry_mode)),
            key_attempts=_int(env, "S3FANOUT_KEY_ATTEMPTS", d.key_attempts),
            key_retry_base_s=_float(env, "S3FANOUT_KEY_RETRY_BASE_S", d.key_retry_base_s),
            key_retry_deadline_s=_float(
                env, "S3FANOUT_KEY_RETRY_DEADLINE_S", d.key_retry_deadline_s
            ),
            part_concurrency=_int(env, "S3FANOUT_PART_CONCURRENCY", d.part_concurrency),
            stream_buffers=_int(env, "S3FANOUT_STREAM_BUFFERS", d.stream_buffers),
            credential_refresh_margin_s=_optional_int(env, "S3FANOUT_CREDENTIAL_REFRESH_MARGIN_S"),
            fast_lane=_flag(env, "S3FANOUT_FAST_LANE", d.fast_lane),
            chunk_retries=_int(env, "S3FANOUT_CHUNK_RETRIES", d.chunk_retries),
            lease_s=_int(env, "S3FANOUT_LEASE_S", d.lease_s),
            reap_every_s=_float(env, "S3FANOUT_REAP_EVERY_S", d.reap_every_s),
            drain_s=_float(env, "S3FANOUT_DRAIN_S", d.drain_s),
            visibility_timeout_s=_int(env, "S3FANOUT_VISIBILITY_TIMEOUT_S", d.visibility_timeout_s),
            run_ttl_s=_int(env, "S3FANOUT_RUN_TTL_S", d.run_ttl_s),
        )


def _env(field_name: str) -> str:
    """The variable that sets a field: ``lease_s`` is ``S3FANOUT_LEASE_S``."""
    return f"S3FANOUT_{field_name.upper()}"


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 1 or 0 (true or false), got {raw!r}")


def _retry_mode(value: str) -> Literal["standard", "adaptive"]:
    if value == "standard":
        return "standard"
    if value == "adaptive":
        return "adaptive"
    raise ValueError(f"S3FANOUT_RETRY_MODE must be standard or adaptive, got {value!r}")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {raw!r}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    return _int(env, name, 0) if env.get(name) else None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None
