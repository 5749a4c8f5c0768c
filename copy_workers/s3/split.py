"""Very large objects split across workers: one multipart upload, its parts copied everywhere.

One worker copying a multi-TiB object part by part is bounded by the requests one process
keeps in flight; the pool is not. The worker that meets such an object in its chunk creates
the multipart upload and sends batches of parts to the queue as tasks of their own. Any
worker copies a batch (UploadPartCopy pinned to the source's ETag) and notes the parts in
Redis; the one that finishes the last batch completes the upload, verifies it and records the
key's outcome in the run, where the key counts once like any other. A permanent failure in
any batch aborts the upload and records the key as failed, once.

Every step is safe to repeat, because Celery may deliver a task twice: a claim guards the
start (a chunk delivered again does not start a second upload), batches are a set, and the
completion is claimed by one batch, which a retry of that same batch may finish.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import redis

from copy_core.aws.request_log import RequestLog
from copy_core.classify import classify
from copy_core.contract import (
    ChunkMessage,
    CopyItem,
    CopyJob,
    KeyOutcome,
    KeyStatus,
    PartsMessage,
    outcome_slots,
)
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import Recorded, RunStore
from copy_core.s3.part_plan import plan_parts
from copy_workers.s3.copier import CopyReport, ObjectCopier
from copy_workers.s3.multipart import (
    CopiedPart,
    abort_upload,
    combined_crc,
    complete_upload,
    copy_parts,
    create_upload,
)

log = logging.getLogger(__name__)

STALE_START_S = 600  # a start claimed this long ago without a dispatch was lost: retake it

# KEYS: split. ARGV: ttl, now, stale seconds. 1 if this caller may start the split.
_CLAIM = """
local state = redis.call('HMGET', KEYS[1], 'status', 'claimed_at')
local stale = state[1] == 'starting' and tonumber(ARGV[2]) - tonumber(state[2]) > tonumber(ARGV[3])
if state[1] and not stale then return 0 end
redis.call('HSET', KEYS[1], 'status', 'starting', 'claimed_at', ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""

# KEYS: split, batches. ARGV: ttl, batch. 1 if this batch completes the upload: the last of
# the batches to finish, or a retry of the batch that claimed the completion before.
_BATCH_DONE = """
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[1]))
local total = tonumber(redis.call('HGET', KEYS[1], 'batches'))
if redis.call('SCARD', KEYS[2]) < total then return 0 end
if redis.call('HSETNX', KEYS[1], 'completing', ARGV[2]) == 1 then return 1 end
if redis.call('HGET', KEYS[1], 'completing') == ARGV[2] then return 1 end
return 0
"""


@dataclass(frozen=True)
class SplitState:
    """What the starter recorded for the batches."""

    upload_id: str
    batches: int
    source_etag: str
    source_sums: dict[str, str]
    algorithm: str | None
    failed: bool


class SplitStore:
    """The Redis state of split objects, next to the run's other keys."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._claim = client.register_script(_CLAIM)
        self._batch_done = client.register_script(_BATCH_DONE)

    def claim(self, run_id: str, chunk_id: str, index: int) -> bool:
        key = RunKeys(run_id).split(chunk_id, index)
        return bool(self._claim(keys=[key], args=[self._ttl, time.time(), STALE_START_S]))

    def dispatched(self, run_id: str, chunk_id: str, index: int, fields: dict[str, str]) -> None:
        key = RunKeys(run_id).split(chunk_id, index)
        mapping = {**fields, "status": "dispatched"}
        self._redis.hset(key, mapping=mapping)  # type: ignore[arg-type]
        self._redis.expire(key, self._ttl)

    def state(self, run_id: str, chunk_id: str, index: int) -> SplitState | None:
        raw: dict[str, str] = self._redis.hgetall(  # type: ignore[assignment]
            RunKeys(run_id).split(chunk_id, index)
        )
        if not raw or raw.get("status") != "dispatched":
            return None
        return SplitState(
            upload_id=raw["upload_id"],
            batches=int(raw["batches"]),
            source_etag=raw["source_etag"],
            source_sums=json.loads(raw["source_sums"]),
            algorithm=raw.get("algorithm") or None,
            failed="failed" in raw,
        )

    def save_parts(self, message: PartsMessage, parts: list[CopiedPart], retries: int) -> None:
        keys = RunKeys(message.run_id)
        fields = {str(p.number): json.dumps([p.etag, p.checksum, p.size]) for p in parts}
        pipe = self._redis.pipeline(transaction=True)
        parts_key = keys.split_parts(message.chunk_id, message.index)
        pipe.hset(parts_key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(parts_key, self._ttl)
        if retries:
            pipe.hincrby(keys.split(message.chunk_id, message.index), "retries", retries)
        pipe.execute()

    def batch_done(self, message: PartsMessage) -> bool:
        keys = RunKeys(message.run_id)
        split = keys.split(message.chunk_id, message.index)
        batches = keys.split_batches(message.chunk_id, message.index)
        return bool(self._batch_done(keys=[split, batches], args=[self._ttl, message.batch]))

    def all_parts(self, message: PartsMessage) -> tuple[list[CopiedPart], int]:
        keys = RunKeys(message.run_id)
        raw = self._redis.hgetall(keys.split_parts(message.chunk_id, message.index))
        parts = [
            CopiedPart(int(n), size, etag, checksum)
            for n, (etag, checksum, size) in ((n, json.loads(v)) for n, v in raw.items())
        ]
        retries = self._redis.hget(keys.split(message.chunk_id, message.index), "retries")
        return sorted(parts, key=lambda p: p.number), int(retries or 0)

    def fail_first(self, message: PartsMessage) -> bool:
        """Mark the split failed; True for the one caller that should abort and record."""
        key = RunKeys(message.run_id).split(message.chunk_id, message.index)
        return bool(self._redis.hsetnx(key, "failed", "1"))


class SplitStarter:
    """Starts splits: the worker that meets a very large object in its chunk."""

    def __init__(
        self, store: SplitStore, send: Callable[[PartsMessage], None], copier: ObjectCopier
    ) -> None:
        self._store = store
        self._send = send
        self._copier = copier

    @staticmethod
    def wants(job: CopyJob, item: CopyItem) -> bool:
        return job.copy_mode in ("server_side", "auto") and item.size > job.options.split_threshold

    def starter(self, message: ChunkMessage) -> Callable[[CopyItem, RequestLog], CopyReport]:
        """A copy function for the chunk's large keys: it starts them, and defers them."""
        positions = {id(item): i for i, item in enumerate(message.items)}

        def start(item: CopyItem, requests: RequestLog) -> CopyReport:
            self._start(message, positions[id(item)], item, requests)
            return CopyReport(KeyStatus.DEFERRED)

        return start

    def _start(
        self, message: ChunkMessage, index: int, item: CopyItem, requests: RequestLog
    ) -> None:
        if not self._store.claim(message.run_id, message.chunk_id, index):
            return  # an earlier delivery of this chunk started it
        plan = self._copier.prepare_multipart(item, requests)
        job = message.job
        upload_id = create_upload(plan.side, job, item, plan.create_params, requests)
        try:
            parts = plan_parts(item.size, job.options.part_size)
            per_task = job.options.parts_per_task
            batches = [
                (n, min(n + per_task - 1, len(parts))) for n in range(1, len(parts) + 1, per_task)
            ]
            self._store.dispatched(
                message.run_id,
                message.chunk_id,
                index,
                {
                    "upload_id": upload_id,
                    "batches": str(len(batches)),
                    "source_etag": plan.source_etag,
                    "source_sums": json.dumps(dict(plan.source_sums)),
                    "algorithm": plan.algorithm or "",
                },
            )
            for number, (first, last) in enumerate(batches):
                self._send(
                    PartsMessage(
                        message.run_id,
                        message.chunk_id,
                        index,
                        len(message.items),
                        job,
                        item,
                        upload_id,
                        number,
                        first,
                        last,
                    )
                )
        except BaseException:
            abort_upload(plan.side.client, job, item, upload_id)
            raise
        log.info(
            "split across workers",
            extra={"key": item.source_key, "parts": len(parts), "batches": len(batches)},
        )


class BatchIncomplete(Exception):
    """A batch hit a transient error after every retry; Celery retries the batch later."""


@dataclass
class BatchCopier:
    """Copies one batch of a split object's parts, and completes the object if it is last."""

    store: SplitStore
    runs: RunStore
    copier: ObjectCopier
    pool: Executor
    on_recorded: Callable[[Recorded], None]

    def run(self, message: PartsMessage, final_attempt: bool) -> str:
        state = self.store.state(message.run_id, message.chunk_id, message.index)
        if state is None or state.failed:
            return "dropped"
        if not self.runs.chunk_state(message.run_id, message.chunk_id).accepts_work:
            self._fail(message, state, KeyStatus.CANCELLED, None, 0)
            return "cancelled"
        requests = RequestLog()
        parts = plan_parts(message.item.size, message.job.options.part_size)
        batch = parts[message.first_part - 1 : message.last_part]
        try:
            copied = copy_parts(
                self.copier.signer,
                message.job,
                message.item,
                state.upload_id,
                batch,
                state.source_etag,
                self.pool,
                requests,
            )
            self.store.save_parts(message, copied, requests.retries)
            if not self.store.batch_done(message):
                return "copied"
            self._complete(message, state)
        except Exception as exc:
            error = classify(exc)
            if error.retryable and not final_attempt:
                raise BatchIncomplete(str(exc)) from exc
            self._fail(message, state, KeyStatus.FAILED, exc, requests.retries)
            return "failed"
        return "completed"

    def _complete(self, message: PartsMessage, state: SplitState) -> None:
        parts, retries = self.store.all_parts(message)
        requests = RequestLog()
        side = self.copier.signer
        complete_upload(
            side, message.job, message.item, state.upload_id, parts, state.algorithm, requests
        )
        crc = combined_crc(state.algorithm, parts)
        verdict = self.copier.verify(
            side, message.item, state.source_sums, crc, state.algorithm, requests
        )
        total = retries + requests.retries
        outcome = KeyOutcome(
            message.index,
            message.item.source_key,
            KeyStatus.COPIED,
            message.item.size,
            retries=total,
            attempts=1,
            verified=verdict is not None and verdict.verified,
            version_id=message.item.version_id,
        )
        self.on_recorded(
            self.runs.record(message.run_id, message.chunk_id, _slots(message), [outcome])
        )

    def _fail(
        self,
        message: PartsMessage,
        state: SplitState,
        status: KeyStatus,
        exc: BaseException | None,
        retries: int,
    ) -> None:
        if not self.store.fail_first(message):
            return
        abort_upload(self.copier.signer.client, message.job, message.item, state.upload_id)
        error = classify(exc) if exc is not None else None
        outcome = KeyOutcome(
            message.index,
            message.item.source_key,
            status,
            message.item.size,
            retries=retries,
            attempts=1,
            error_code=error.code if error else None,
            message=error.message if error else None,
            version_id=message.item.version_id,
            http_status=error.status if error else None,
        )
        self.on_recorded(
            self.runs.record(message.run_id, message.chunk_id, _slots(message), [outcome])
        )


def _slots(message: PartsMessage) -> int:
    return outcome_slots(message.job, message.n_items)
