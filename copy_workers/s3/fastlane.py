"""The fast lane: simple server-side copies, one CopyObject each, driven from one thread.

Most objects of a bulk copy need exactly one request: CopyObject, pinned to the listed ETag,
whose returned ETag proves the copy. For those the lane sends signed requests over the CRT
(``crt_http``) and handles completions on one thread per worker process (``LaneDriver``): no
thread per key, no botocore per request, and as many copies in flight as the process's
adaptive window allows, across every chunk the process holds (the next chunk's keys start
while the last ones of the previous are still in flight). A ``FastLane`` sends for one
signing identity; the driver serves them all. Every decision is the same as on the
threaded path because it is made by the same code: parameters from ``properties``, errors
from ``classify.classify``, verification from ``verify.compare``, backoff from ``retry``,
denial messages from ``denials``. What the lane does not handle (multipart sizes, overwrite
checks, metadata replacement, streamed modes, a denied copy in ``auto`` mode) goes back to
the threaded path untouched.
"""

from __future__ import annotations

import heapq
import html
import logging
import os
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree import ElementTree

from botocore.exceptions import ClientError
from botocore.utils import SAFE_CHARS, percent_encode

from copy_core.aws.denials import COPY_ACTION, Denied, explain
from copy_core.classify import (
    DENIED_CODES,
    WRONG_REGION_CODES,
    ClassifiedError,
    CopyFailed,
    ErrorKind,
    classify,
)
from copy_core.contract import CopyItem, CopyJob, KeyOutcome, KeyStatus
from copy_core.s3.properties import single_copy_needs_head, single_copy_params
from copy_core.s3.verify import Verdict, compare, full_object_checksums, is_plain_md5
from copy_workers.retry import CauseBreaker, KeyRetryPolicy
from copy_workers.s3.crt_http import Endpoint, Response, Transport
from copy_workers.window import AdaptiveWindow

if TYPE_CHECKING:
    from copy_workers.pacing import RateGate

log = logging.getLogger(__name__)

_TAG = re.compile(r"^\{[^}]*\}")
# What percent-encoding leaves as it is in a path or a copy source: most keys are only this.
_UNENCODED = re.compile(r"[A-Za-z0-9_.~/-]*")
_COPY_ETAG = re.compile(rb"<ETag>([^<]*)</ETag>")


def s3_headers(client: Any) -> tuple[dict[str, str], dict[str, str]]:
    """CopyObject's and HeadObject's parameter -> header names, read from botocore's model."""
    model = client.meta.service_model

    def names(operation: str) -> dict[str, str]:
        members = model.operation_model(operation).input_shape.members
        return {
            name: shape.serialization["name"]
            for name, shape in members.items()
            if shape.serialization.get("location") in ("header", "headers")
        }

    return names("CopyObject"), names("HeadObject")


@dataclass(frozen=True)
class Addressing:
    """How a bucket and key become a Host header and a path (path- or virtual-hosted style)."""

    host: str
    virtual_hosted: bool

    def locate(self, bucket: str, key: str) -> tuple[str, str]:
        path_key = encode_path(key)
        if self.virtual_hosted:
            return f"{bucket}.{self.host}", f"/{path_key}"
        return self.host, f"/{bucket}/{path_key}"

    @classmethod
    def for_client(cls, client: Any) -> tuple[Endpoint, Addressing] | None:
        """Where the boto3 client sends requests, if the lane can send them the same way.

        AWS endpoints take virtual-hosted requests (path-style is deprecated); any other
        endpoint (MinIO, Ceph, SeaweedFS, LocalStack...) path-style ones. Accelerate,
        dual-stack and FIPS endpoints, and proxies, stay with botocore.
        """
        s3_config = client.meta.config.s3 or {}
        special = ("use_accelerate_endpoint", "use_dualstack_endpoint")
        if any(s3_config.get(name) for name in special) or client.meta.config.proxies:
            return None
        if client.meta.config.use_fips_endpoint or _proxy_in_environment():
            return None
        endpoint = Endpoint.from_url(client.meta.endpoint_url)
        netloc = endpoint.host_header()
        if endpoint.host.endswith(".amazonaws.com") and s3_config.get("addressing_style") != "path":
            return endpoint, cls(netloc, virtual_hosted=True)
        return endpoint, cls(netloc, virtual_hosted=False)


def encode_path(text: str) -> str:
    """``text`` percent-encoded as botocore writes a key in a path or a copy source.

    A key of letters, digits and ``_.~/-`` is its own encoding: the pattern answers for it in
    a fraction of ``quote``'s time, which the lane pays twice per copy.
    """
    if _UNENCODED.fullmatch(text):
        return text
    return str(percent_encode(text, safe=SAFE_CHARS + "/"))


def eligible(job: CopyJob, item: CopyItem) -> bool:
    """Can this key take the fast lane (one CopyObject, proven by its ETag)?"""
    options = job.options
    return (
        job.copy_mode in ("server_side", "auto")
        and options.overwrite == "always"
        and not single_copy_needs_head(options)
        and item.size <= options.multipart_threshold
        and (is_plain_md5(item.etag) or not options.verify)
        and "." not in job.dest_bucket
        and not item.delete_marker
    )


class LaneChunk(Protocol):
    """What the driver needs of a chunk it copies keys of (the engine's ``ChunkWork``)."""

    job: CopyJob
    items: tuple[CopyItem, ...]
    gate: RateGate | None

    def stopping(self) -> bool:
        """Start nothing new for this chunk (it is cancelled, or another worker has it)."""

    def drop(self, index: int) -> None:
        """A key not started because the chunk is stopping."""

    def emit(self, outcome: KeyOutcome, seconds: float) -> None:
        """The key's outcome, and how long it took."""

    def handoff(self, index: int) -> None:
        """The threaded path takes this key instead."""


@dataclass
class _Key:
    """A key on its way through the lane."""

    chunk: LaneChunk
    lane: FastLane
    index: int
    item: CopyItem
    started: float
    retries: int = 0
    heads: dict[str, Response] = field(default_factory=dict)
    last_error: ClassifiedError | None = None


class FastLane:
    """Sends one signing identity's requests over the CRT (the driver decides when)."""

    def __init__(
        self,
        http: Transport,
        addressing: Addressing,
        headers: tuple[dict[str, str], dict[str, str]],
        principal: str,
        request_payer: str | None = None,
    ) -> None:
        """``request_payer``: sent on every request, as the botocore clients send it."""
        self._http = http
        self._addressing = addressing
        self._copy_headers, self._head_headers = headers
        self._principal = principal
        self._payer = {"RequestPayer": request_payer} if request_payer else {}

    # --- requests ------------------------------------------------------------------------
    def send_copy(self, job: CopyJob, key: _Key, done: Callable[..., None]) -> None:
        params = single_copy_params(job, key.item, job.options, None) | self._payer
        host, path = self._addressing.locate(params.pop("Bucket"), params.pop("Key"))
        headers = self._render(params, self._copy_headers)
        self._http.send("PUT", host, path, headers, done)

    def send_head(
        self,
        bucket: str,
        key: str,
        if_match: str | None,
        done: Callable[..., None],
        version_id: str | None = None,
    ) -> None:
        params: dict[str, Any] = {"ChecksumMode": "ENABLED", **self._payer}
        if if_match:
            params["IfMatch"] = if_match
        host, path = self._addressing.locate(bucket, key)
        if version_id is not None:
            path += f"?versionId={percent_encode(version_id, safe='')}"
        self._http.send("HEAD", host, path, self._render(params, self._head_headers), done)

    @staticmethod
    def _render(params: Mapping[str, Any], names: Mapping[str, str]) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        for name, value in params.items():
            header = names[name]
            if name == "Metadata":
                headers += [(header + k, v) for k, v in value.items()]
            elif name == "CopySource":
                source = encode_path(f"{value['Bucket']}/{value['Key']}")
                if "VersionId" in value:  # as botocore writes it: the id is not encoded
                    source += f"?versionId={value['VersionId']}"
                headers.append((header, source))
            elif hasattr(value, "tzinfo"):
                headers.append((header, format_datetime(value, usegmt=True)))
            else:
                headers.append((header, str(value)))
        return headers

    def denied(
        self, job: CopyJob, item: CopyItem, s3_message: str, status: int | None = None
    ) -> CopyFailed:
        denial = Denied(
            self._principal, COPY_ACTION, job.source_bucket, item.source_key, "both", s3_message
        )
        return CopyFailed("AccessDenied", explain(denial), status)


_Event = tuple[str, _Key | None, Response | None, BaseException | None]
_BATCH = 256  # completions handled in one go at most
_WAKE = ("wake", None, None, None)


class LaneDriver:
    """The process's one lane thread: every lane key of every chunk, in one window.

    ``submit`` (from any thread) queues keys; the driver starts them while the window and the
    run's rate cap allow, handles completions from the CRT's threads, retries what is
    transient with backoff, and hands each outcome to its chunk.
    """

    def __init__(
        self, window: AdaptiveWindow, policy: KeyRetryPolicy, breaker: CauseBreaker
    ) -> None:
        self.window = window
        self.policy = policy
        self.breaker = breaker
        # queue.Queue, not SimpleQueue: CPython 3.11's SimpleQueue.get(timeout=...) can turn
        # a deadline just passed into a negative wait, which blocks for ever (seen as a lane
        # stalled with keys ready and none in flight, under a rate cap's short waits).
        self.events: queue.Queue[_Event] = queue.Queue()
        self._submitted: queue.SimpleQueue[_Key] = queue.SimpleQueue()
        self.ready: deque[_Key] = deque()
        self.waiting: list[tuple[float, int, _Key]] = []  # (due, sequence, key): retries
        self._sequence = 0
        self.in_flight = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def queued(self) -> int:
        """Keys submitted and not yet started (the engine's measure of work in hand)."""
        return len(self.ready) + self._submitted.qsize()

    def submit(self, chunk: LaneChunk, lane: FastLane, indexes: list[int]) -> None:
        now = time.monotonic()
        for index in indexes:
            self._submitted.put(_Key(chunk, lane, index, chunk.items[index], now))
        self._start_thread()
        self.events.put(_WAKE)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="lane", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # a bug must not take every chunk of the process down with it
                log.exception("fast lane step failed")

    def _step(self) -> None:
        while not self._submitted.empty():
            self.ready.append(self._submitted.get_nowait())
        self._release_due()
        self._start_ready()
        self._handle(self._next_event())
        # Then every completion already waiting, before the next keys start: their slots
        # go back together, and the loop's own work is paid once per batch, not per copy.
        for _ in range(_BATCH):
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            self._handle(event)

    def _release_due(self) -> None:
        now = time.monotonic()
        while self.waiting and self.waiting[0][0] <= now:
            self.ready.append(heapq.heappop(self.waiting)[2])

    def _start_ready(self) -> None:
        while self.ready:
            key = self.ready[0]
            if key.chunk.stopping():
                self.ready.popleft()
                key.chunk.drop(key.index)
                continue
            if not self.window.try_acquire():
                break
            self.ready.popleft()
            wait = 0.0 if key.chunk.gate is None else key.chunk.gate.try_take(1, key.item.size)
            if wait > 0:  # the run is at its rate cap: this key waits, others may go
                self.window.release(succeeded=False)
                self._wait(key, wait)
                continue
            key.heads = {}
            self.in_flight += 1
            key.lane.send_copy(key.chunk.job, key, self._reply("copy", key))

    def _wait(self, key: _Key, seconds: float) -> None:
        self._sequence += 1
        heapq.heappush(self.waiting, (time.monotonic() + seconds, self._sequence, key))

    def _reply(
        self, kind: str, key: _Key
    ) -> Callable[[Response | None, BaseException | None], None]:
        def done(response: Response | None, error: BaseException | None) -> None:
            self.events.put((kind, key, response, error))

        return done

    def _next_event(self) -> _Event | None:
        if self.ready and self.window.in_flight < self.window.limit:
            timeout = 0.0
        elif self.waiting:
            timeout = max(min(self.waiting[0][0] - time.monotonic(), 1.0), 0.0)
        else:
            timeout = 1.0
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _handle(self, event: _Event | None) -> None:
        if event is None:
            return
        kind, key, response, error = event
        if key is None:  # a wake-up
            return
        if kind == "copy":
            self._copied(key, response, error)
        else:
            self._headed(kind, key, response, error)

    # --- the copy request ----------------------------------------------------------------
    def _copied(self, key: _Key, response: Response | None, error: BaseException | None) -> None:
        failure = error or _error_of(response, "CopyObject")
        if failure is not None:
            self.window.release(succeeded=False)
            self.in_flight -= 1
            self._failed(key, failure)
            return
        assert response is not None
        self.window.release(succeeded=True)
        self.breaker.succeeded(key.chunk.job)
        if not key.chunk.job.options.verify:
            self._done(key, KeyStatus.COPIED, None)
            return
        kms = response.headers.get("x-amz-server-side-encryption", "").startswith("aws:kms")
        verdict = compare(key.item.etag, {}, copy_result_etag(response.body), {}, kms)
        if verdict.method != "none":
            self._verified(key, verdict)
            return
        # The ETag cannot tell (a KMS-encrypted copy): compare the stored checksums.
        job = key.chunk.job
        if job.source_region != job.dest_region:  # the lane signs for the destination only
            self.in_flight -= 1
            key.chunk.handoff(key.index)
            return
        source_head = self._reply("head-source", key)
        key.lane.send_head(
            job.source_bucket,
            key.item.source_key,
            key.item.etag,
            source_head,
            key.item.version_id,
        )
        dest_head = self._reply("head-dest", key)
        key.lane.send_head(job.dest_bucket, key.item.dest_key, None, dest_head)

    def _headed(
        self, kind: str, key: _Key, response: Response | None, error: BaseException | None
    ) -> None:
        failure = error or _error_of(response, "HeadObject")
        if failure is not None:
            key.heads[kind] = Response(0, {}, b"")
            if len(key.heads) == 2:
                self.in_flight -= 1
                self._failed(key, failure)
            return
        assert response is not None
        key.heads[kind] = response
        if len(key.heads) < 2:
            return
        source = full_object_checksums(_checksum_headers(key.heads["head-source"]))
        dest = full_object_checksums(_checksum_headers(key.heads["head-dest"]))
        self._verified(key, compare(None, source, None, dest))

    def _verified(self, key: _Key, verdict: Verdict) -> None:
        if verdict.matches:
            self._done(key, KeyStatus.COPIED, verdict)
            return
        # Rare enough to hand back: the threaded path copies again and, if it still does not
        # match, deletes the bad copy and fails the key.
        self.in_flight -= 1
        key.chunk.handoff(key.index)

    def _done(self, key: _Key, status: KeyStatus, verdict: Verdict | None) -> None:
        self.in_flight -= 1
        outcome = KeyOutcome(
            key.index,
            key.item.source_key,
            status,
            key.item.size,
            retries=key.retries,
            attempts=key.retries + 1,
            verified=verdict is not None and verdict.verified,
            version_id=key.item.version_id,
        )
        key.chunk.emit(outcome, time.monotonic() - key.started)

    # --- failures ------------------------------------------------------------------------
    def _failed(self, key: _Key, failure: BaseException) -> None:
        error = classify(failure)
        job = key.chunk.job
        if error.code in WRONG_REGION_CODES:
            # The bucket answers in another region than the run resolved (recreated
            # elsewhere, say): botocore's region redirector follows S3's hint, so the
            # threaded path copies it in the right region.
            key.chunk.handoff(key.index)
            return
        if error.code in DENIED_CODES:
            if job.copy_mode == "auto":
                key.chunk.handoff(key.index)  # the threaded path streams it instead
                return
            error = classify(key.lane.denied(job, key.item, error.message, error.status))
        if error.kind is ErrorKind.THROTTLING:
            self.window.throttled()
        if error.retryable:
            self.breaker.failed(job, error)
            if self._retry_later(key):
                return
            error = self.breaker.explain(job, error)
        else:
            log.warning("copy failed", extra={"key": key.item.source_key, "error_code": error.code})
        outcome = KeyOutcome(
            key.index,
            key.item.source_key,
            KeyStatus.FAILED,
            size=key.item.size,
            retries=key.retries,
            attempts=key.retries + 1,
            error_code=error.code,
            message=error.message,
            retryable=error.retryable,
            version_id=key.item.version_id,
            http_status=error.status,
        )
        key.chunk.emit(outcome, time.monotonic() - key.started)

    def _retry_later(self, key: _Key) -> bool:
        now = time.monotonic()
        if self.breaker.given_up(key.chunk.job):
            return False
        pause = self.policy.pause_before_retry(key.retries, key.started, now)
        if pause is None:
            return False
        key.retries += 1
        self._wait(key, pause)
        return True


def _error_of(response: Response | None, operation: str) -> ClientError | None:
    """The S3 error in a response, as botocore would raise it (a 200 can carry one too)."""
    if response is None:
        return None
    if response.status < 300 and b"<Error>" not in response.body[:512]:
        return None
    fields = _fields(response.body)
    code = fields.get("Code") or str(response.status)
    parsed: Any = {
        "Error": {"Code": code, "Message": fields.get("Message", "")},
        "ResponseMetadata": {"HTTPStatusCode": response.status, "RetryAttempts": 0},
    }
    return ClientError(parsed, operation)


def copy_result_etag(body: bytes) -> str | None:
    """The ETag in a CopyObjectResult document, or None if it has none.

    Found by pattern, not by an XML parser: the document is a few hundred bytes of fixed
    shape (LastModified, ETag, checksums), and ElementTree spent ~20 us building a parser for
    it, 3-4 % of a fast-lane copy's CPU. An ETag not found this way is unknown, and the copy is
    then verified by HeadObject like a KMS-encrypted one; error documents go to ``_fields``.
    """
    found = _COPY_ETAG.search(body)
    return html.unescape(found.group(1).decode()) if found else None


def _fields(body: bytes) -> dict[str, str]:
    """The leaf elements of a small S3 XML document (CopyObjectResult or Error)."""
    if not body.strip():
        return {}
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - a response of the S3 endpoint
    except ElementTree.ParseError:
        return {}
    return {_TAG.sub("", child.tag): (child.text or "") for child in root}


def _proxy_in_environment() -> bool:
    return any(
        os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
    )


def _checksum_headers(response: Response) -> dict[str, str]:
    """HeadObject's checksum headers under the names botocore gives them."""
    found = {}
    for name, value in response.headers.items():
        if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type":
            found["Checksum" + name.removeprefix("x-amz-checksum-").upper()] = value
    if response.headers.get("x-amz-checksum-type"):
        found["ChecksumType"] = response.headers["x-amz-checksum-type"]
    return found
