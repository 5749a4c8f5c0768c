"""What one worker process shares between its chunks: clients, pools, limits, the run store.

Everything is built lazily, in the process that uses it: with Celery's prefork pool that is the
child, after the fork, so no connection or CRT event loop is ever shared across a fork.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from copy_core.aws.clients import ClientFactory, Identity
from copy_core.contract import ChunkMessage, CopyJob, PartsMessage
from copy_core.runs.store import Recorded, RunStore, connect
from copy_workers.s3.clients import CopyClients, signer_identity
from copy_workers.s3.copier import ObjectCopier
from copy_workers.s3.crt_http import Transport
from copy_workers.s3.fastlane import Addressing, FastLane, s3_headers
from copy_workers.s3.split import BatchCopier, SplitStarter, SplitStore
from copy_workers.s3.stream import BufferBudget
from copy_workers.settings import WorkerSettings
from copy_workers.throttle import AdaptiveLimit


class WorkerProcess:
    """The shared resources of a worker process, built on first use."""

    def __init__(
        self, settings: WorkerSettings, send_parts: Callable[[PartsMessage], None]
    ) -> None:
        self.settings = settings
        self._send_parts = send_parts

    @functools.cached_property
    def store(self) -> RunStore:
        return RunStore(connect(self.settings.redis_url), ttl_s=self.settings.run_ttl_s)

    @functools.cached_property
    def limit(self) -> AdaptiveLimit:
        """Copies in flight in this process: fewer while S3 throttles (see throttle.py)."""
        return AdaptiveLimit(self.settings.keys_in_flight)

    @functools.cached_property
    def clients(self) -> ClientFactory:
        return ClientFactory(
            max_pool_connections=self.settings.max_pool_connections,
            max_attempts=self.settings.max_attempts,
            retry_mode=self.settings.retry_mode,
            refresh_margin_s=self.settings.credential_refresh_margin_s,
            on_throttle=self.limit.throttled,
        )

    @functools.cached_property
    def buffers(self) -> BufferBudget:
        """Streamed copies hold at most this many part buffers in memory per process."""
        return BufferBudget(self.settings.stream_buffers)

    @functools.cached_property
    def parts_pool(self) -> ThreadPoolExecutor:
        """Parts of multipart copies, shared by every key of this process (bounded)."""
        return ThreadPoolExecutor(self.settings.part_concurrency, thread_name_prefix="part")

    def copier(self, job: CopyJob) -> ObjectCopier:
        clients = CopyClients.for_job(job, self.clients)
        return ObjectCopier(clients, job, self.parts_pool, self.buffers)

    @functools.cached_property
    def splits(self) -> SplitStore:
        return SplitStore(self.store.client, self.settings.run_ttl_s)

    def split_starter(self, copier: ObjectCopier) -> SplitStarter:
        """Starts the splits of a chunk's very large objects (their parts go to the pool)."""
        return SplitStarter(self.splits, self._send_parts, copier)

    def batch_copier(
        self, message: PartsMessage, on_recorded: Callable[[Recorded], None]
    ) -> BatchCopier:
        copier = self.copier(message.job)
        return BatchCopier(self.splits, self.store, copier, self.parts_pool, on_recorded)

    def lane(self, message: ChunkMessage) -> FastLane | None:
        """The CRT request path for the job's signer, or None where only botocore can go."""
        if not self.settings.fast_lane:
            return None
        return self._lane(signer_identity(message.job))

    @functools.lru_cache(maxsize=32)  # noqa: B019 - one per process, lives as long as it
    def _lane(self, identity: Identity) -> FastLane | None:
        client = self.clients.s3(identity)
        located = Addressing.for_client(client)
        if located is None:
            return None
        endpoint, addressing = located
        transport = Transport(
            endpoint,
            client.meta.region_name or "us-east-1",
            self.clients.frozen_credentials(identity),
            self.settings.max_pool_connections,
        )
        return FastLane(
            transport,
            addressing,
            s3_headers(client),
            self.clients.principal(identity),
            self.limit,
            self.settings.key_retry_policy(),
        )
