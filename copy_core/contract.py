"""The wire contract between the control plane (CLI, Airflow operator) and the copy workers.

Everything that crosses a process boundary as a message is defined here: the chunk message
sent through Celery, the per-key outcome, the chunk result, the run summary, the task names and
the queue (the Redis key layout is ``copy_core.runs.keys``). Standard library only, so that
both sides can import it without pulling in the other side's dependencies. JSON-compatible
dicts on the wire, never pickle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from copy_core.options import CopyOptions, InvalidOption

SCHEMA_VERSION = 1  # a chunk message that carries its job and items
REF_SCHEMA_VERSION = 2  # a chunk message that names a chunk kept in the run store
TASK_NAME = "s3fanout.copy_chunk"
PARTS_TASK_NAME = "s3fanout.copy_parts"  # a batch of parts of one split object
LIST_TASK_NAME = "s3fanout.list_run"  # a whole run, listed and dispatched by a worker
QUEUE = "s3copy"
FAILURES_IN_SUMMARY = 100
ERROR_COUNTER = "errors:"  # run hash fields counting failed keys per error code
# The delete phase of a sync is the listing partition of this id: its chunks ("delete-<n>")
# hold destination keys to delete (each item's source_key and dest_key are that key).
DELETE_PARTITION = "delete"


def outcome_slots(job: CopyJob, n_items: int) -> int:
    """How many outcomes a chunk of ``n_items`` keys records before it is done: one per key,
    and in a move a second one per key, at ``n_items + index``, once its source is settled."""
    return 2 * n_items if job.delete_source else n_items


def is_delete_chunk(chunk_id: str) -> bool:
    """Whether the chunk deletes destination keys (a sync's delete phase) or copies."""
    return chunk_id.startswith(DELETE_PARTITION + "-")


class ContractError(ValueError):
    """A message or stored record does not follow this contract."""


class KeyStatus(StrEnum):
    """The final state of one key in a run; recorded once per key."""

    COPIED = "copied"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"  # a destination key the source does not have, deleted by a sync
    # A move's second outcome of each key (``outcome_slots``): its source deleted after the
    # copy was recorded and verified; kept although copied (unverified, the delete failed, or
    # the worker that copied it stopped first); untouched, as the key was not copied.
    SOURCE_DELETED = "source_deleted"
    SOURCE_KEPT = "source_kept"
    SOURCE_UNTOUCHED = "source_untouched"
    # Not recorded: the key was split across workers, and whoever finishes it records it.
    DEFERRED = "deferred"


class RunStatus(StrEnum):
    """Run lifecycle: created -> dispatching -> running -> a final state."""

    CREATED = "created"
    DISPATCHING = "dispatching"
    RUNNING = "running"
    CANCELLING = "cancelling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class CopyItem:
    """One object to copy: where it is, where it goes, and what the listing saw."""

    source_key: str
    dest_key: str
    size: int
    etag: str | None = None
    storage_class: str | None = None
    # The source version to copy (None: the current one). A pinned version is what is copied
    # and read, whatever is current when the copy runs.
    version_id: str | None = None
    # An --all-versions copy with --delete-markers: this entry of the key's history is a
    # delete marker, which the copy writes as one (a DeleteObject of the destination key).
    delete_marker: bool = False

    def to_wire(self) -> list[Any]:
        # A list rather than a dict: chunks carry up to thousands of items. The version id is
        # a sixth element only when there is one, so chunks without versions are still read
        # by workers of an earlier version, and a chunk with versions is refused by them
        # (their contract takes five elements) rather than copied as the current version. A
        # delete marker is a seventh, ``true``, refused alike by workers that do not know it.
        wire = [self.source_key, self.dest_key, self.size, self.etag, self.storage_class]
        if self.delete_marker:
            return [*wire, self.version_id, True]
        return wire if self.version_id is None else [*wire, self.version_id]

    @classmethod
    def from_wire(cls, raw: Sequence[Any]) -> CopyItem:
        if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) not in (5, 6, 7):
            raise ContractError(
                "a copy item is [source_key, dest_key, size, etag, storage_class"
                f"[, version_id[, delete_marker]]], got {raw!r}"
            )
        source_key, dest_key, size, etag, storage_class = raw[:5]
        version_id = raw[5] if len(raw) >= 6 else None
        marker = raw[6] if len(raw) == 7 else False
        _expect(isinstance(source_key, str) and isinstance(dest_key, str), "keys must be strings")
        _expect(isinstance(size, int) and size >= 0, f"size must be a non-negative int: {size!r}")
        _expect(etag is None or isinstance(etag, str), f"etag must be a string: {etag!r}")
        _expect(storage_class is None or isinstance(storage_class, str), "bad storage class")
        _expect(
            version_id is None or (isinstance(version_id, str) and version_id != ""),
            f"version_id must be a non-empty string: {version_id!r}",
        )
        _expect(marker is True or len(raw) < 7, f"delete_marker must be true: {marker!r}")
        return cls(source_key, dest_key, size, etag, storage_class, version_id, marker)


COPY_MODES = ("server_side", "stream", "auto")
REPORT_SCOPES = ("all", "failed")


@dataclass(frozen=True)
class ReportTarget:
    """Where a run's completion report goes (``copy_core.batch_report``), and what it holds:
    every key (``all``) or the failed ones. ``region``: the report bucket's, if known."""

    bucket: str
    prefix: str = ""
    scope: str = "all"
    region: str | None = None

    def __post_init__(self) -> None:
        _expect(isinstance(self.bucket, str) and self.bucket != "", "report bucket is empty")
        _expect(isinstance(self.prefix, str), "report prefix must be a string")
        _expect(self.scope in REPORT_SCOPES, f"report scope must be one of {REPORT_SCOPES}")
        _expect(self.region is None or isinstance(self.region, str), "bad report region")

    def to_wire(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_wire(cls, raw: Any) -> ReportTarget:
        _expect(isinstance(raw, Mapping), "a report target is an object")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ContractError(f"bad report target: {exc}") from exc


_REGIONS = ("source_region", "dest_region")


@dataclass(frozen=True)
class CopyJob:
    """What every chunk of a run shares: buckets, roles, copy mode and copy options.

    Only names and non-secret options travel here. Credentials never do: each worker assumes
    the roles itself. The S3 endpoint is not part of the job either: a worker talks to the
    endpoint its own configuration names, so a message can never send the worker's signed
    requests (and session token) to a host of the sender's choosing.
    """

    source_bucket: str
    dest_bucket: str
    options: CopyOptions = field(default_factory=CopyOptions)
    source_role_arn: str | None = None
    dest_role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str = "s3fanout"
    session_duration_s: int = 3600
    copy_mode: str = "server_side"
    # Each bucket's region, resolved once per run by the control plane (None: the worker's
    # own). Every request is signed for its bucket's region; a copy goes to the destination's.
    source_region: str | None = None
    dest_region: str | None = None
    # A move: each source object is deleted once its copy is recorded and verified. Left off
    # the wire when False, so a worker of an earlier version refuses a move's chunks rather
    # than copying them without deleting.
    delete_source: bool = False
    # The run's completion report: workers stream the outcomes they record to it.
    report: ReportTarget | None = None

    def __post_init__(self) -> None:
        for name in ("source_bucket", "dest_bucket", "role_session_name"):
            value = getattr(self, name)
            _expect(isinstance(value, str) and value != "", f"{name} must be a non-empty string")
        for name in ("source_role_arn", "dest_role_arn", "external_id", *_REGIONS):
            value = getattr(self, name)
            _expect(value is None or isinstance(value, str), f"{name} must be a string")
        _expect(isinstance(self.session_duration_s, int), "session_duration_s must be an int")
        _expect(isinstance(self.delete_source, bool), "delete_source must be a boolean")
        _expect(self.copy_mode in COPY_MODES, f"copy_mode must be one of {COPY_MODES}")
        if self.copy_mode != "server_side":
            _expect(
                bool(self.source_role_arn and self.dest_role_arn),
                f"copy_mode {self.copy_mode!r} reads with the source role and writes with the "
                "destination role: give both source_role_arn and dest_role_arn",
            )

    def to_wire(self) -> dict[str, Any]:
        wire = dataclasses.asdict(self)
        wire["options"] = self.options.to_wire()
        for name in _REGIONS:  # absent when unknown: workers of an earlier version read it
            if wire[name] is None:
                del wire[name]
        if not self.delete_source:
            del wire["delete_source"]
        if self.report is None:
            del wire["report"]
        else:
            wire["report"] = self.report.to_wire()
        return wire

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> CopyJob:
        _expect(isinstance(raw, Mapping), "a copy job is an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - known
        _expect(not unknown, f"unknown copy job fields {sorted(unknown)}")
        try:
            options = CopyOptions.from_wire(raw.get("options", {}))
            report = raw.get("report")
            target = None if report is None else ReportTarget.from_wire(report)
            return cls(**{**raw, "options": options, "report": target})
        except (InvalidOption, TypeError) as exc:
            raise ContractError(f"bad copy job: {exc}") from exc


@dataclass(frozen=True)
class ChunkMessage:
    """The Celery task payload: one chunk of keys of one run."""

    run_id: str
    chunk_id: str
    job: CopyJob
    items: tuple[CopyItem, ...]

    @property
    def label(self) -> str:
        """What Celery's logs and events show for the task, instead of a repr of every key."""
        return f"run {self.run_id} chunk {self.chunk_id}: {len(self.items)} keys"

    def to_wire(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "chunk_id": self.chunk_id,
            "job": self.job.to_wire(),
            "items": [item.to_wire() for item in self.items],
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> ChunkMessage:
        _expect(isinstance(raw, Mapping), "a chunk message is an object")
        schema = raw.get("schema")
        _expect(schema == SCHEMA_VERSION, f"unsupported chunk schema {schema!r}")
        items = raw.get("items")
        if not isinstance(items, list):
            raise ContractError("chunk items must be a list")
        return cls(
            run_id=_str(raw, "run_id"),
            chunk_id=_str(raw, "chunk_id"),
            job=CopyJob.from_wire(raw.get("job", {})),
            items=tuple(CopyItem.from_wire(item) for item in items),
        )


@dataclass(frozen=True)
class ChunkRef:
    """The Celery payload of a chunk kept in the run store: its run and its id, nothing else.

    The dispatcher keeps a chunk's items in Redis while it is in the pool (and the run's job
    once), so the broker's queue holds a few dozen bytes per chunk, and a worker copies only
    what the run itself dispatched. Workers of an earlier version reject it (unknown schema).
    """

    run_id: str
    chunk_id: str

    @property
    def label(self) -> str:
        return f"run {self.run_id} chunk {self.chunk_id}"

    def to_wire(self) -> dict[str, Any]:
        return {"schema": REF_SCHEMA_VERSION, "run_id": self.run_id, "chunk_id": self.chunk_id}

    def resolve(self, job_wire: str, items_wire: str) -> ChunkMessage:
        """The chunk, from the job and items the run store keeps (their wire JSON)."""
        try:
            job, items = json.loads(job_wire), json.loads(items_wire)
        except ValueError as exc:
            raise ContractError(f"stored chunk {self.chunk_id} is not JSON: {exc}") from exc
        if not isinstance(items, list):
            raise ContractError("stored chunk items must be a list")
        return ChunkMessage(
            self.run_id,
            self.chunk_id,
            CopyJob.from_wire(job),
            tuple(CopyItem.from_wire(item) for item in items),
        )


def decode_chunk(raw: Mapping[str, Any]) -> ChunkMessage | ChunkRef:
    """A chunk task's payload: a reference (schema 2) or a whole chunk (schema 1)."""
    _expect(isinstance(raw, Mapping), "a chunk message is an object")
    if raw.get("schema") == REF_SCHEMA_VERSION:
        _expect(
            set(raw) == {"schema", "run_id", "chunk_id"},
            "a chunk reference has run_id and chunk_id only",
        )
        return ChunkRef(_str(raw, "run_id"), _str(raw, "chunk_id"))
    return ChunkMessage.from_wire(raw)


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` this project stores and digests (compact, sorted keys)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def digest(text: str) -> str:
    """SHA-1 of ``text`` as UTF-8, hex: what Redis's ``redis.sha1hex`` computes in a script."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def items_wire(items: Sequence[CopyItem]) -> str:
    """The canonical JSON of a chunk's items, as the run store keeps them."""
    return canonical_json([item.to_wire() for item in items])


@dataclass(frozen=True)
class PartsMessage:
    """The Celery payload for a batch of parts of one large object split across workers.

    The object stays one key of its chunk (``chunk_id``, ``index``): the worker that finishes
    the last batch completes the upload and records the key's outcome, exactly once.
    """

    run_id: str
    chunk_id: str
    index: int
    n_items: int
    job: CopyJob
    item: CopyItem
    upload_id: str
    batch: int
    first_part: int
    last_part: int

    @property
    def label(self) -> str:
        """What Celery's logs and events show for the task."""
        return (
            f"run {self.run_id} chunk {self.chunk_id} key {self.index}: "
            f"parts {self.first_part}-{self.last_part}"
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "run_id": self.run_id,
            "chunk_id": self.chunk_id,
            "index": self.index,
            "n_items": self.n_items,
            "job": self.job.to_wire(),
            "item": self.item.to_wire(),
            "upload_id": self.upload_id,
            "batch": self.batch,
            "parts": [self.first_part, self.last_part],
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> PartsMessage:
        _expect(isinstance(raw, Mapping), "a parts message is an object")
        _expect(raw.get("schema") == SCHEMA_VERSION, f"unsupported schema {raw.get('schema')!r}")
        parts = raw.get("parts")
        numbers = (raw.get("index"), raw.get("n_items"), raw.get("batch"))
        _expect(all(isinstance(n, int) and n >= 0 for n in numbers), "bad part numbers")
        _expect(isinstance(parts, list) and len(parts) == 2, "parts is [first, last]")
        assert isinstance(parts, list)
        _expect(all(isinstance(p, int) and p >= 1 for p in parts), "part numbers start at 1")
        return cls(
            run_id=_str(raw, "run_id"),
            chunk_id=_str(raw, "chunk_id"),
            index=int(raw["index"]),
            n_items=int(raw["n_items"]),
            job=CopyJob.from_wire(raw.get("job", {})),
            item=CopyItem.from_wire(raw.get("item", [])),
            upload_id=_str(raw, "upload_id"),
            batch=int(raw["batch"]),
            first_part=int(parts[0]),
            last_part=int(parts[1]),
        )


@dataclass(frozen=True)
class KeyOutcome:
    """What happened to one key: recorded in Redis the first time only."""

    index: int
    source_key: str
    status: KeyStatus
    size: int = 0
    retries: int = 0
    attempts: int = 1
    error_code: str | None = None
    message: str | None = None
    retryable: bool = False
    verified: bool = False
    streamed: bool = False
    version_id: str | None = None  # the source version, when the item pins one
    http_status: int | None = None  # of a failure, where S3 answered one
    deleting: bool = False  # an outcome of a sync's delete phase (a destination key)

    @property
    def extra_counters(self) -> tuple[str, ...]:
        """Run counters this outcome adds to, besides its status."""
        names = ("objects_verified",) if self.verified else ()
        return names + (("objects_streamed",) if self.streamed else ())

    def failure_record(self) -> dict[str, Any]:
        """The line this key contributes to the failure report."""
        record = {
            "key": self.source_key,
            "size": self.size,
            "error_code": self.error_code,
            "message": self.message,
            "attempts": self.attempts,
        }
        if self.version_id is not None:
            record["version_id"] = self.version_id
        if self.http_status is not None:
            record["http_status"] = self.http_status
        if self.deleting:
            record["deleting"] = True
        return record


@dataclass(frozen=True)
class ChunkResult:
    """What one delivery of a chunk recorded (a redelivery records only what was left)."""

    run_id: str
    chunk_id: str
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    already_recorded: int = 0
    bytes_copied: int = 0
    retries: int = 0

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSummary:
    """The final (or current) metrics of a run, as reported to users and XCom."""

    run_id: str
    status: str
    objects_listed: int
    objects_copied: int
    objects_skipped: int
    objects_failed: int
    bytes_copied: int
    retries: int
    objects_verified: int
    objects_streamed: int
    duration_s: float
    objects_per_second: float
    bytes_per_second: float
    failures: list[dict[str, Any]]
    failures_omitted: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    objects_cancelled: int = 0
    objects_filtered: int = 0  # seen by the listing or manifest, left out by the selection
    rate_limited_s: float = 0.0  # wall time the run wanted more than its rate caps allowed
    # A sync (--delete): destination keys planned for deletion and deleted; how many it would
    # have deleted when that was over its max_delete; whether its deletes were withheld (the
    # run was cancelled, failed or refused them: nothing more was deleted).
    objects_to_delete: int = 0
    objects_deleted: int = 0
    deletes_refused: int = 0
    deletes_withheld: bool = False
    # A move (--delete-source): sources deleted after their copies were verified, and sources
    # kept although copied (the copy could not be verified, or the delete failed: see logs).
    objects_source_deleted: int = 0
    objects_source_kept: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RunSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        optional = {
            "failures_omitted",
            "errors",
            "objects_cancelled",
            "objects_filtered",
            "rate_limited_s",
            "objects_to_delete",
            "objects_deleted",
            "deletes_refused",
            "deletes_withheld",
            "objects_source_deleted",
            "objects_source_kept",
        }
        missing = names - set(raw) - optional
        _expect(not missing, f"summary is missing {sorted(missing)}")
        return cls(**{k: v for k, v in raw.items() if k in names})

    @property
    def is_final(self) -> bool:
        return RunStatus(self.status).is_final


def summarize(
    run_id: str,
    run_hash: Mapping[str, str],
    failures: Sequence[str | Mapping[str, Any]],
    now: float,
    rate_limited_ms: float = 0.0,
) -> RunSummary:
    """Build a summary from the run hash and the first failure records (pure)."""
    counts = {name: int(run_hash.get(name, 0) or 0) for name in _COUNTERS}
    started = float(run_hash.get("created_at", now) or now)
    finished = float(run_hash.get("finished_at", 0) or 0) or now
    duration = max(finished - started, 0.0)
    shown = [_failure_entry(f) for f in failures[:FAILURES_IN_SUMMARY]]
    return RunSummary(
        run_id=run_id,
        status=run_hash.get("status", RunStatus.CREATED.value),
        objects_listed=counts["objects_listed"],
        objects_copied=counts["objects_copied"],
        objects_skipped=counts["objects_skipped"],
        objects_failed=counts["objects_failed"],
        bytes_copied=counts["bytes_copied"],
        retries=counts["retries"],
        objects_verified=counts["objects_verified"],
        objects_streamed=counts["objects_streamed"],
        duration_s=round(duration, 3),
        objects_per_second=_rate(counts["objects_copied"], duration),
        bytes_per_second=_rate(counts["bytes_copied"], duration),
        failures=shown,
        failures_omitted=max(counts["objects_failed"] - len(shown), 0),
        errors={
            name[len(ERROR_COUNTER) :]: int(value)
            for name, value in run_hash.items()
            if name.startswith(ERROR_COUNTER)
        },
        objects_cancelled=counts["objects_cancelled"],
        objects_filtered=counts["objects_filtered"],
        rate_limited_s=round(rate_limited_ms / 1000, 3),
        objects_to_delete=counts["objects_to_delete"],
        objects_deleted=counts["objects_deleted"],
        deletes_refused=counts["deletes_refused"],
        deletes_withheld=run_hash.get("deletes_withheld") == "1",
        objects_source_deleted=counts["objects_source_deleted"],
        objects_source_kept=counts["objects_source_kept"],
    )


_COUNTERS = (
    "objects_listed",
    "objects_copied",
    "objects_skipped",
    "objects_failed",
    "objects_cancelled",
    "bytes_copied",
    "retries",
    "objects_verified",
    "objects_streamed",
    "objects_filtered",
    "objects_to_delete",
    "objects_deleted",
    "deletes_refused",
    "objects_source_deleted",
    "objects_source_kept",
)


def _failure_entry(raw: str | Mapping[str, Any]) -> dict[str, Any]:
    record = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return {k: record.get(k) for k in ("key", "error_code", "message")}


def _rate(amount: int, seconds: float) -> float:
    return round(amount / seconds, 3) if seconds > 0 and math.isfinite(seconds) else 0.0


def _str(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    _expect(isinstance(value, str) and value != "", f"{name} must be a non-empty string")
    return str(value)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)
