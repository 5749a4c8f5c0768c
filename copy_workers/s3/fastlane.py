"""The fast lane: simple server-side copies, one CopyObject each, driven from one thread.

Most objects of a bulk copy need exactly one request: CopyObject, pinned to the listed ETag,
whose returned ETag proves the copy. For those the lane sends signed requests over the CRT
(``crt_http``) with up to the adaptive limit in flight, and handles completions on this one
thread: no thread per key, no botocore per request. Every decision is the same as on the
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
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any
from xml.etree import ElementTree

from botocore.exceptions import ClientError
from botocore.utils import SAFE_CHARS, percent_encode

from copy_core.aws.denials import COPY_ACTION, Denied, explain
from copy_core.classify import DENIED_CODES, CopyFailed, ErrorKind, classify
from copy_core.contract import ChunkMessage, CopyItem, CopyJob, KeyOutcome, KeyStatus
from copy_core.s3.properties import single_copy_params
from copy_core.s3.verify import Verdict, compare, full_object_checksums, is_plain_md5
from copy_workers.retry import KeyRetryPolicy
from copy_workers.s3.crt_http import Endpoint, Response, Transport
from copy_workers.throttle import AdaptiveLimit

log = logging.getLogger(__name__)

_TAG = re.compile(r"^\{[^}]*\}")
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
        path_key = percent_encode(key, safe="/~")
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


def eligible(job: CopyJob, item: CopyItem) -> bool:
    """Can this key take the fast lane (one CopyObject, proven by its ETag)?"""
    options = job.options
    return (
        job.copy_mode in ("server_side", "auto")
        and options.overwrite == "always"
        and options.metadata_directive == "COPY"
        and item.size <= options.multipart_threshold
        and (is_plain_md5(item.etag) or not options.verify)
        and "." not in job.dest_bucket
    )


@dataclass
class _Key:
    """A key on its way through the lane."""

    index: int
    item: CopyItem
    started: float
    retries: int = 0
    heads: dict[str, Response] = field(default_factory=dict)


class FastLane:
    """Copies eligible keys of a chunk; returns the ones the threaded path must take."""

    def __init__(
        self,
        http: Transport,
        addressing: Addressing,
        headers: tuple[dict[str, str], dict[str, str]],
        principal: str,
        limit: AdaptiveLimit,
        policy: KeyRetryPolicy,
    ) -> None:
        self._http = http
        self._addressing = addressing
        self._copy_headers, self._head_headers = headers
        self._principal = principal
        self._limit = limit
        self._policy = policy

    def run(
        self,
        message: ChunkMessage,
        indexes: list[int],
        emit: Callable[[KeyOutcome, float], None],
        cancelled: Callable[[], bool],
        final_attempt: bool,
    ) -> tuple[list[int], int]:
        """Copy ``indexes`` of ``message``; ``emit`` gets every outcome and its duration.

        Returns the indexes handed back to the threaded path, and how many keys were left
        for a chunk retry (transient failures on a non-final attempt).
        """
        run = _LaneRun(self, message, emit, cancelled, final_attempt)
        return run.go(indexes)

    # --- requests ------------------------------------------------------------------------
    def send_copy(self, job: CopyJob, key: _Key, done: Callable[..., None]) -> None:
        params = single_copy_params(job, key.item, job.options, None)
        host, path = self._addressing.locate(params.pop("Bucket"), params.pop("Key"))
        headers = self._render(params, self._copy_headers)
        self._http.send("PUT", host, path, headers, done)

    def send_head(
        self, bucket: str, key: str, if_match: str | None, done: Callable[..., None]
    ) -> None:
        params: dict[str, Any] = {"ChecksumMode": "ENABLED"}
        if if_match:
            params["IfMatch"] = if_match
        host, path = self._addressing.locate(bucket, key)
        self._http.send("HEAD", host, path, self._render(params, self._head_headers), done)

    @staticmethod
    def _render(params: Mapping[str, Any], names: Mapping[str, str]) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        for name, value in params.items():
            header = names[name]
            if name == "Metadata":
                headers += [(header + k, v) for k, v in value.items()]
            elif name == "CopySource":
                source = f"{value['Bucket']}/{value['Key']}"
                headers.append((header, percent_encode(source, safe=SAFE_CHARS + "/")))
            elif hasattr(value, "tzinfo"):
                headers.append((header, format_datetime(value, usegmt=True)))
            else:
                headers.append((header, str(value)))
        return headers

    def denied(self, job: CopyJob, item: CopyItem, s3_message: str) -> CopyFailed:
        denial = Denied(
            self._principal, COPY_ACTION, job.source_bucket, item.source_key, "both", s3_message
        )
        return CopyFailed("AccessDenied", explain(denial))

    @property
    def limit(self) -> AdaptiveLimit:
        return self._limit

    @property
    def policy(self) -> KeyRetryPolicy:
        return self._policy


_Event = tuple[str, "_Key", Response | None, BaseException | None]


class _LaneRun:
    """The state of one chunk in the lane: what is in flight, due for retry, or done."""

    def __init__(
        self,
        lane: FastLane,
        message: ChunkMessage,
        emit: Callable[[KeyOutcome, float], None],
        cancelled: Callable[[], bool],
        final_attempt: bool,
    ) -> None:
        self.lane = lane
        self.job = message.job
        self.items = message.items
        self.emit = emit
        self.cancelled = cancelled
        self.final = final_attempt
        self.events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        self.ready: deque[_Key] = deque()
        self.waiting: list[tuple[float, int, _Key]] = []  # (due, index, key): retries
        self.in_flight = 0
        self.handoff: list[int] = []
        self.left = 0

    def go(self, indexes: list[int]) -> tuple[list[int], int]:
        now = time.monotonic()
        self.ready.extend(_Key(i, self.items[i], now) for i in indexes)
        while self.ready or self.waiting or self.in_flight:
            self._release_due()
            if self.cancelled():
                self._cancel_rest()
            self._start_ready()
            self._handle(self._next_event())
        return self.handoff, self.left

    def _release_due(self) -> None:
        now = time.monotonic()
        while self.waiting and self.waiting[0][0] <= now:
            self.ready.append(heapq.heappop(self.waiting)[2])

    def _cancel_rest(self) -> None:
        rest = list(self.ready) + [entry[2] for entry in self.waiting]
        self.ready.clear()
        self.waiting.clear()
        for key in rest:
            self.emit(
                KeyOutcome(key.index, key.item.source_key, KeyStatus.CANCELLED, attempts=0), 0.0
            )

    def _start_ready(self) -> None:
        while self.ready and self.lane.limit.try_acquire():
            key = self.ready.popleft()
            key.heads = {}
            self.in_flight += 1
            self.lane.send_copy(self.job, key, self._reply("copy", key))

    def _reply(
        self, kind: str, key: _Key
    ) -> Callable[[Response | None, BaseException | None], None]:
        def done(response: Response | None, error: BaseException | None) -> None:
            self.events.put((kind, key, response, error))

        return done

    def _next_event(self) -> _Event | None:
        if not self.in_flight:
            if not self.waiting:
                return None
            timeout = max(self.waiting[0][0] - time.monotonic(), 0.0)
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
        if kind == "copy":
            self._copied(key, response, error)
        else:
            self._headed(kind, key, response, error)

    # --- the copy request ----------------------------------------------------------------
    def _copied(self, key: _Key, response: Response | None, error: BaseException | None) -> None:
        failure = error or _error_of(response, "CopyObject")
        if failure is not None:
            self.lane.limit.release(succeeded=False)
            self.in_flight -= 1
            self._failed(key, failure)
            return
        assert response is not None
        self.lane.limit.release(succeeded=True)
        if not self.job.options.verify:
            self._done(key, KeyStatus.COPIED, None)
            return
        kms = response.headers.get("x-amz-server-side-encryption", "").startswith("aws:kms")
        verdict = compare(key.item.etag, {}, copy_result_etag(response.body), {}, kms)
        if verdict.method != "none":
            self._verified(key, verdict)
            return
        # The ETag cannot tell (a KMS-encrypted copy): compare the stored checksums.
        self.lane.send_head(
            self.job.source_bucket,
            key.item.source_key,
            key.item.etag,
            self._reply("head-source", key),
        )
        self.lane.send_head(
            self.job.dest_bucket, key.item.dest_key, None, self._reply("head-dest", key)
        )

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
        self.handoff.append(key.index)

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
        )
        self.emit(outcome, time.monotonic() - key.started)

    # --- failures ----------------------------------------------------------------------------
    def _failed(self, key: _Key, failure: BaseException) -> None:
        error = classify(failure)
        if error.code in DENIED_CODES:
            if self.job.copy_mode == "auto":
                self.handoff.append(key.index)  # the threaded path streams it instead
                return
            error = classify(self.lane.denied(self.job, key.item, error.message))
        if error.kind is ErrorKind.THROTTLING:
            self.lane.limit.throttled()
        if error.retryable and self._retry_later(key):
            return
        if error.retryable and not self.final:
            self.left += 1
            return
        if not error.retryable:
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
        )
        self.emit(outcome, time.monotonic() - key.started)

    def _retry_later(self, key: _Key) -> bool:
        now = time.monotonic()
        pause = self.lane.policy.pause_before_retry(key.retries, key.started, now)
        if pause is None:
            return False
        key.retries += 1
        heapq.heappush(self.waiting, (now + pause, key.index, key))
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
