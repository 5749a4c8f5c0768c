"""What one worker process shares between its chunks: clients, the engine, leases, the keeper.

Everything is built lazily, in the process that uses it: with Celery's prefork pool that is the
child, after the fork, so no connection, thread or CRT event loop is ever shared across a fork.
The tasks (``tasks``) call ``take_chunk``, ``run_batch``; the listing task holds the listing
lease through ``hold_listing``.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from copy_core.aws.clients import ClientFactory, Identity
from copy_core.contract import (
    PARTS_TASK_NAME,
    TASK_NAME,
    ChunkMessage,
    ChunkRef,
    ContractError,
    CopyJob,
    KeyOutcome,
    KeyStatus,
    PartsMessage,
    canonical_json,
    digest,
    items_wire,
    outcome_slots,
)
from copy_core.pool import PoolRegistry
from copy_core.runs.leases import LISTING, LeaseStore, Returned, batch_member, chunk_of
from copy_core.runs.rates import RateStore
from copy_core.runs.store import QUEUE_PATIENCE_S, Recorded, RunStore, connect
from copy_workers.engine import ChunkObserver, CopyPaths, ProcessEngine, settle_source
from copy_workers.keeper import Keeper
from copy_workers.pacing import RateGates
from copy_workers.report_writer import ReportWriter
from copy_workers.s3.clients import CopyClients, signer_identity
from copy_workers.s3.copier import ObjectCopier
from copy_workers.s3.crt_http import Transport
from copy_workers.s3.fastlane import Addressing, FastLane, s3_headers
from copy_workers.s3.split import BatchCopier, BatchIncomplete, SplitStarter, SplitStore
from copy_workers.s3.stream import BufferBudget
from copy_workers.settings import WorkerSettings
from copy_workers.window import AdaptiveWindow

log = logging.getLogger(__name__)

# A Redis client of a worker rides out about five minutes of Redis being away or full.
REDIS_RETRIES = 60

Send = Callable[[str, dict[str, Any], str], None]  # task name, kwargs, label


class WorkerProcess:
    """The shared resources of a worker process, built on first use."""

    def __init__(
        self, settings: WorkerSettings, send: Send, observer: ChunkObserver | None = None
    ) -> None:
        self.settings = settings
        self._send = send
        self._observer = observer or ChunkObserver()
        self._heap_frozen = False

    # --- Redis -----------------------------------------------------------------------------
    @functools.cached_property
    def token(self) -> str:
        """Who this process is, as a lease holder and in the pool: host, pid and a nonce."""
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @functools.cached_property
    def store(self) -> RunStore:
        client = connect(self.settings.redis_url, retries=REDIS_RETRIES)
        return RunStore(client, ttl_s=self.settings.run_ttl_s)

    @functools.cached_property
    def leases(self) -> LeaseStore:
        return LeaseStore(self.store.client, self.settings.run_ttl_s)

    @functools.cached_property
    def pool(self) -> PoolRegistry:
        return PoolRegistry(self.store.client)

    @functools.cached_property
    def gates(self) -> RateGates:
        return RateGates(RateStore(self.store.client, self.settings.run_ttl_s))

    @functools.cached_property
    def keeper(self) -> Keeper:
        info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slots": self.settings.chunks_per_process,
        }
        keeper = Keeper(
            self.pool, self.leases, self.settings, self.token, info, self.resend, self.lost
        )
        keeper.start()
        return keeper

    # --- copying -----------------------------------------------------------------------------
    @functools.cached_property
    def window(self) -> AdaptiveWindow:
        """Copies in flight in this process, across its chunks (see window.py)."""
        return AdaptiveWindow(self.settings.keys_in_flight, self.settings.window_initial)

    @functools.cached_property
    def engine(self) -> ProcessEngine:
        keeper = self.keeper
        return ProcessEngine(
            self.store,
            self.leases,
            self.settings,
            self._observer,
            self.window,
            self.token,
            on_hold=keeper.hold,
            on_release=keeper.release,
            on_released=self.send_released,
            on_report=self.reports.write,
        )

    @functools.cached_property
    def clients(self) -> ClientFactory:
        return ClientFactory(
            max_pool_connections=self.settings.max_pool_connections,
            max_attempts=self.settings.max_attempts,
            retry_mode=self.settings.retry_mode,
            refresh_margin_s=self.settings.credential_refresh_margin_s,
            on_throttle=self.window.throttled,
        )

    @functools.cached_property
    def reports(self) -> ReportWriter:
        """Streams the completion report's rows of the batches this process records."""
        return ReportWriter(self.clients, self.settings.key_retry_policy())

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

    def paths(self, message: ChunkMessage) -> CopyPaths:
        """How the keys of ``message`` are copied: threaded, on the lane, split."""
        copier = self.copier(message.job)
        starter = SplitStarter(self.splits, self.send_parts, copier)
        return CopyPaths(
            copy=copier.copy,
            lane=self.lane(message.job),
            split=starter.starter(message),
            wants_split=lambda item: starter.wants(message.job, item),
            delete=copier.delete_extraneous,
            delete_source=copier.delete_source if message.job.delete_source else None,
        )

    def lane(self, job: CopyJob) -> FastLane | None:
        """The CRT request path for the job's signer, or None where only botocore can go."""
        if not self.settings.fast_lane:
            return None
        return self._lane(signer_identity(job), job.dest_region, job.options.request_payer)

    @functools.lru_cache(maxsize=32)  # noqa: B019 - one per process, lives as long as it
    def _lane(
        self, identity: Identity, region: str | None, request_payer: str | None
    ) -> FastLane | None:
        """One lane per signer and destination region: CopyObject is signed for, and sent
        to, the destination's region, wherever the source is."""
        client = self.clients.s3(identity, region=region, request_payer=request_payer)
        located = Addressing.for_client(client)
        if located is None:
            return None
        endpoint, addressing = located
        transport = Transport(
            endpoint,
            client.meta.region_name or "us-east-1",
            self.clients.frozen_credentials(identity),
            self.settings.keys_in_flight,
        )
        principal = self.clients.principal(identity)
        return FastLane(transport, addressing, s3_headers(client), principal, request_payer)

    # --- taking work -------------------------------------------------------------------------
    def take_chunk(self, received: ChunkMessage | ChunkRef) -> str:
        """Take a received chunk and admit it to the engine; returns the take's verdict.

        Waits until the process has room for another chunk before it returns, so that Celery
        hands this process its next chunk just in time.
        """
        digests = ("", "")
        if isinstance(received, ChunkMessage):
            job_text = canonical_json(received.job.to_wire())
            digests = (digest(items_wire(received.items)), digest(job_text))
        taken = self.store.take_chunk(
            received.run_id, received.chunk_id, self.token, self.settings.lease_s, digests
        )
        if not taken.taken:
            return taken.verdict
        if isinstance(received, ChunkRef):
            if taken.items is None or taken.job is None:
                raise ContractError(f"chunk {received.chunk_id} is not kept in the run store")
            message = received.resolve(taken.job, taken.items)
        else:
            message = received
        state = self.store.chunk_state(message.run_id, message.chunk_id)
        # Built before the freeze: the first chunk creates the clients and engine it keeps.
        paths, gate, engine = self.paths(message), self.gates.gate(message.run_id), self.engine
        self._freeze_heap()
        engine.admit(message, state.recorded, state.accepts_work, paths, gate)
        engine.wait_for_room()
        return taken.verdict

    def _freeze_heap(self) -> None:
        """Once the process has built what it keeps (Celery, botocore's models, its clients,
        the engine): take all of it out of the cyclic garbage collector's full passes.

        Each full pass walked those ~150,000 objects again (~60 ms, every few thousand
        copies): 15 % of a copy's CPU on the fast lane (bench.lane). Frozen objects are still
        freed by reference counting; only a cycle among them would outlive its use.
        """
        if not self._heap_frozen:
            gc.freeze()
            self._heap_frozen = True

    def run_batch(self, message: PartsMessage, on_recorded: Callable[[Recorded], None]) -> str:
        """Copy one batch of a split object's parts, under its lease."""
        member = batch_member(message.chunk_id, message.index, message.batch)
        deliveries = self.leases.take(message.run_id, member, self.token, self.settings.lease_s)
        if not deliveries:
            return "held"
        self.keeper.hold(message.run_id, member)
        copier = self.copier(message.job)

        def recorded(done: Recorded) -> None:
            on_recorded(done)
            if done.released:  # the split key was the last copy of a sync
                self.send_released(message.run_id, done.released)
            self.reports.write(message.job, message.run_id, message.chunk_id, list(done.added))
            if message.job.delete_source:
                for outcome in done.added:  # a move: settle the source, as the engine does
                    self._settle_split_source(message, outcome, copier)

        batch = BatchCopier(self.splits, self.store, copier, self.parts_pool, recorded)
        try:
            result = batch.run(message, final_attempt=deliveries > self.settings.chunk_retries)
        except BatchIncomplete:
            delay = _backoff(deliveries)
            self.leases.release(message.run_id, self.token, member, delay, retry=True)
            return "retry"
        finally:
            self.keeper.release(message.run_id, member)
        self.leases.drop(message.run_id, member, self.token)
        return result

    def _settle_split_source(
        self, message: PartsMessage, outcome: KeyOutcome, copier: ObjectCopier
    ) -> None:
        """A move's split key, just recorded: its source slot, recorded here."""
        status = KeyStatus.SOURCE_UNTOUCHED
        if outcome.status is KeyStatus.COPIED:
            policy = self.settings.key_retry_policy()
            status = settle_source(message.item, outcome, copier.delete_source, policy)
        slot = message.n_items + message.index
        settled = KeyOutcome(
            slot, message.item.source_key, status, attempts=0, version_id=message.item.version_id
        )
        slots = outcome_slots(message.job, message.n_items)
        self.store.record(message.run_id, message.chunk_id, slots, [settled])

    @contextmanager
    def hold_listing(self, run_id: str) -> Iterator[bool]:
        """The run's listing lease, renewed by the keeper while the block runs (or False)."""
        if not self.leases.take(run_id, LISTING, self.token, self.settings.lease_s):
            yield False
            return
        self.keeper.hold(run_id, LISTING)
        try:
            yield True
        finally:
            self.keeper.release(run_id, LISTING)
            self.leases.drop(run_id, LISTING, self.token)

    # --- sending -----------------------------------------------------------------------------
    def send_parts(self, message: PartsMessage) -> None:
        """Send a batch of parts, first putting it in the pool with the message to resend."""
        member = batch_member(message.chunk_id, message.index, message.batch)
        kwargs = {"parts": message.to_wire()}
        resend = canonical_json({"task": PARTS_TASK_NAME, "kwargs": kwargs})
        self.leases.offer(message.run_id, member, resend, QUEUE_PATIENCE_S)
        self._send(PARTS_TASK_NAME, kwargs, message.label)

    def send_released(self, run_id: str, chunk_ids: tuple[str, ...]) -> None:
        """Send a sync's delete chunks, released once its copies are done (should this
        process die first, the reaper sends them when their patience runs out)."""
        for chunk_id in chunk_ids:
            ref = ChunkRef(run_id, chunk_id)
            self._send(TASK_NAME, {"chunk": ref.to_wire()}, ref.label)

    def resend(self, returned: Returned) -> None:
        """Send expired work again: a chunk by reference, other work by its stored message."""
        chunk_id = chunk_of(returned.member)
        if chunk_id is not None:
            ref = ChunkRef(returned.run_id, chunk_id)
            self._send(TASK_NAME, {"chunk": ref.to_wire()}, ref.label)
        elif returned.message is not None:
            stored = _json_object(returned.message)
            self._send(str(stored["task"]), dict(stored["kwargs"]), returned.member)
        else:
            log.error("expired work has no message to send again", extra=vars(returned))

    def lost(self, run_id: str, member: str) -> None:
        """Another worker holds work of ours now (our lease lapsed): stop copying it."""
        log.warning("lease lost: another worker took the work", extra={"member": member})
        self.engine.lose(run_id, member)

    # --- stopping ----------------------------------------------------------------------------
    def shutdown(self) -> bool:
        """Drain what the engine holds (or give it back), leave the pool; True if drained."""
        if "engine" not in self.__dict__:
            if "keeper" in self.__dict__:
                self.keeper.stop()
            return True
        drained = self.engine.drain(self.settings.drain_s)
        self.keeper.stop()
        return drained


def _backoff(deliveries: int) -> float:
    """Full jitter, 5 s doubling to at most 300 s (Celery's own retry_backoff shape)."""
    return random.uniform(0, min(300.0, 5.0 * 2 ** max(deliveries - 1, 0)))  # noqa: S311


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict) or "task" not in value or "kwargs" not in value:
        raise ContractError(f"not a stored task message: {text[:200]!r}")
    return value
