"""S3 clients: the one place that builds them and decides whose credentials they carry.

One client per identity per process, shared by all threads (botocore clients are thread-safe),
so connections are reused across keys and chunks. Endpoint, region and the base credentials
come from boto3's standard configuration (environment, config files, IRSA, instance profile).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ClientFactory:
    """Builds and caches S3 clients for this process."""

    def __init__(
        self,
        *,
        max_pool_connections: int = 64,
        max_attempts: int = 8,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        read_timeout_s: int = 120,
        endpoint_url: str | None = None,
        region_name: str | None = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._config = Config(
            max_pool_connections=max_pool_connections,
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=read_timeout_s,
            tcp_keepalive=True,
        )
        self._lock = threading.Lock()
        self._clients: dict[str, S3Client] = {}

    def s3(self) -> S3Client:
        """The client for the worker's own identity."""
        with self._lock:
            client = self._clients.get("base")
            if client is None:
                session = boto3.session.Session(region_name=self._region_name)
                client = session.client("s3", config=self._config, endpoint_url=self._endpoint_url)
                self._clients["base"] = client
            return client
