"""Worker settings: the one module that reads the worker's environment.

AWS settings (``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain) are not read here:
boto3 reads them itself, the same way for workers, the CLI and real S3.
"""

from __future__ import annotations

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
    keys_in_flight: int = 32
    max_pool_connections: int = 64
    max_attempts: int = 4
    # "standard": botocore's adaptive mode collapses throughput under throttling (see
    # copy_workers/throttle.py, which slows down instead).
    retry_mode: Literal["standard", "adaptive"] = "standard"
    key_attempts: int = 6
    key_retry_base_s: float = 0.5
    key_retry_deadline_s: float = 300.0
    part_concurrency: int = 16
    stream_buffers: int = 16
    credential_refresh_margin_s: int | None = None
    fast_lane: bool = True
    chunk_retries: int = 3
    visibility_timeout_s: int = 3600
    run_ttl_s: int = 7 * 24 * 3600
    flush_every_s: float = 0.5
    flush_every_keys: int = 200

    def __post_init__(self) -> None:
        positive = (
            "keys_in_flight",
            "max_pool_connections",
            "max_attempts",
            "key_attempts",
            "part_concurrency",
            "stream_buffers",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_pool_connections < self.keys_in_flight:
            raise ValueError(
                "S3FANOUT_MAX_POOL_CONNECTIONS must be at least S3FANOUT_KEYS_IN_FLIGHT, "
                "or copies queue for a connection"
            )

    def key_retry_policy(self) -> KeyRetryPolicy:
        return KeyRetryPolicy(
            attempts=self.key_attempts,
            base_s=self.key_retry_base_s,
            deadline_s=self.key_retry_deadline_s,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        defaults = cls()
        keys_in_flight = _int(env, "S3FANOUT_KEYS_IN_FLIGHT", defaults.keys_in_flight)
        return cls(
            redis_url=env.get("S3FANOUT_REDIS_URL", defaults.redis_url),
            keys_in_flight=keys_in_flight,
            max_pool_connections=_int(
                env,
                "S3FANOUT_MAX_POOL_CONNECTIONS",
                max(defaults.max_pool_connections, keys_in_flight),
            ),
            max_attempts=_int(env, "S3FANOUT_MAX_ATTEMPTS", defaults.max_attempts),
            retry_mode=_retry_mode(env.get("S3FANOUT_RETRY_MODE", defaults.retry_mode)),
            key_attempts=_int(env, "S3FANOUT_KEY_ATTEMPTS", defaults.key_attempts),
            key_retry_base_s=_float(env, "S3FANOUT_KEY_RETRY_BASE_S", defaults.key_retry_base_s),
            key_retry_deadline_s=_int(
                env, "S3FANOUT_KEY_RETRY_DEADLINE_S", int(defaults.key_retry_deadline_s)
            ),
            part_concurrency=_int(env, "S3FANOUT_PART_CONCURRENCY", defaults.part_concurrency),
            stream_buffers=_int(env, "S3FANOUT_STREAM_BUFFERS", defaults.stream_buffers),
            credential_refresh_margin_s=_optional_int(env, "S3FANOUT_CREDENTIAL_REFRESH_MARGIN_S"),
            fast_lane=env.get("S3FANOUT_FAST_LANE", "1") not in ("0", "false", "no"),
            chunk_retries=_int(env, "S3FANOUT_CHUNK_RETRIES", defaults.chunk_retries),
            visibility_timeout_s=_int(
                env, "S3FANOUT_VISIBILITY_TIMEOUT_S", defaults.visibility_timeout_s
            ),
            run_ttl_s=_int(env, "S3FANOUT_RUN_TTL_S", defaults.run_ttl_s),
        )


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
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


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
