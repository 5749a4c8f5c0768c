"""A fault-injecting reverse proxy in front of an S3 server, for tests and benchmarks.

Clients point ``endpoint_url`` at the proxy; it relays every request to the upstream S3 server
(moto, SeaweedFS) and, by rule and probability, answers ``503 SlowDown`` or ``500 InternalError``
itself, resets the connection, or delays the request: the failures real S3 and real networks
produce, on demand. A fixed latency on every request stands in for real S3's tens of
milliseconds in the benchmarks.

Why raw HTTP/1.1 relaying rather than ``http.server`` + ``http.client``: SigV4 signs the Host
header and the other headers, so the upstream must receive them as the client sent them.
``http.client`` adds Host and Accept-Encoding and de-chunks responses; ``http.server`` adds
Server and Date and answers ``Expect: 100-continue`` by itself, before the upstream has accepted
the request. Working around both is more code than HTTP/1.1's framing, which is all a relay needs
to parse: a head ending in an empty line, then a body delimited by Content-Length, chunked coding
or (responses only) the end of the connection. So each client connection gets one thread
(``socketserver.ThreadingTCPServer``) and one upstream connection of its own, and head and body
bytes are copied unchanged, 64 KiB at a time: keep-alive, chunked and Content-Length bodies,
HEAD, 1xx and ``100-continue`` pass through as they are. asyncio would scale further, but the
tests' API is synchronous, and a few hundred threads are cheap at this scale.

Faults happen before the request is forwarded (the upstream never sees it), unless a rule says
``after_upstream=True``: then the upstream performs the request, its answer is discarded, and the
client gets the fault instead (a copy that happened although the client saw it fail). An
injected error reads the request's body first (sending ``100 Continue`` if the client waits for
it), so the connection stays usable, as after any other error response.

Two optional hooks let a caller emulate server behaviour on top of the relay (devstack's
s3_semantics does S3's regions and requester pays with them): a ``responder`` sees each request
that no fault took and may answer it itself (an ``Answer``, sent the way an injected error is),
and ``response_headers`` names fields to set on the upstream's response head before it is
relayed. Neither touches the request, so signatures still hold.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import random
import secrets
import select
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

_BUFFER = 64 * 1024
_MAX_LINE = 64 * 1024
_MAX_HEAD = 1024 * 1024
_CHUNKED = -1  # body framings besides a byte count
_UNTIL_CLOSE = -2
_CONTINUE_WAIT_S = 1.0  # botocore sends its body anyway after waiting 1 s for "100 Continue"
_END = (b"\r\n", b"\n")

Send = Callable[[bytes], object]


class Fault(StrEnum):
    """What a rule does to a request it selects."""

    SLOW_DOWN = "slow_down"  # 503 SlowDown
    INTERNAL_ERROR = "internal_error"  # 500 InternalError
    RESET = "reset"  # a TCP reset (SO_LINGER 0, close) instead of a response
    DELAY = "delay"  # wait, then carry on


_ERRORS = {
    Fault.SLOW_DOWN: ("503 Service Unavailable", "SlowDown", "Please reduce your request rate."),
    Fault.INTERNAL_ERROR: (
        "500 Internal Server Error",
        "InternalError",
        "We encountered an internal error. Please try again.",
    ),
}


@dataclass(frozen=True)
class Request:
    """What a rule's ``match`` sees: the request line and headers, before any body byte."""

    method: str
    target: str  # as sent, e.g. "/bucket/key?uploadId=1&partNumber=2"
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def path(self) -> str:
        """The decoded path, e.g. ``/bucket/key``."""
        return unquote(urlsplit(self.target).path)

    @property
    def query(self) -> dict[str, list[str]]:
        """The query parameters; valueless ones (``?uploads``) map to ``[""]``."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @property
    def bucket(self) -> str:
        """The bucket of a path-style request (what botocore sends to an ``endpoint_url``)."""
        return self.path.lstrip("/").split("/", 1)[0]


@dataclass(frozen=True)
class Answer:
    """A response the proxy sends itself instead of forwarding the request.

    The proxy adds Content-Length, Date and (if the client asked to close) Connection, and
    sends no body to a HEAD.
    """

    status: str  # the status line's code and reason, e.g. "403 Forbidden"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


Responder = Callable[[Request], Answer | None]
"""Given a request no fault took: an Answer to send instead of forwarding it, or None."""

ResponseHeaders = Callable[[Request, int], Iterable[tuple[str, str]]]
"""Given a forwarded request and the upstream's final status: fields to set on the response
(each replaces the upstream's fields of that name, if it sent any)."""


def error_answer(
    status: str,
    code: str,
    message: str,
    *,
    details: Iterable[tuple[str, str]] = (),
    headers: Iterable[tuple[str, str]] = (),
) -> Answer:
    """An S3 error response: ``<Error>`` with Code, Message, ``details``, RequestId and HostId."""
    request_id = secrets.token_hex(8).upper()
    host_id = secrets.token_urlsafe(48)
    elements = [("Code", code), ("Message", message), *details]
    elements += [("RequestId", request_id), ("HostId", host_id)]
    xml = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements)
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{xml}</Error>'.encode()
    fields = [
        ("Content-Type", "application/xml"),
        ("x-amz-request-id", request_id),
        ("x-amz-id-2", host_id),
        *headers,
    ]
    return Answer(status, tuple(fields), body)


def is_copy_object(request: Request) -> bool:
    """CopyObject: a PUT naming a copy source that is not a part of a multipart upload."""
    return (
        request.method == "PUT"
        and request.header("x-amz-copy-source") is not None
        and "partNumber" not in request.query
    )


def in_bucket(bucket: str) -> Callable[[Request], bool]:
    """A ``match`` selecting the requests to one bucket."""
    return lambda request: request.bucket == bucket


@dataclass(frozen=True)
class FaultRule:
    """Inject ``fault`` into each request it selects, with ``probability``.

    Selected: ``methods`` (empty: any) and ``match`` (None: any) both accept the request. A DELAY
    waits ``delay_s``, or a uniformly random time in [``delay_s``, ``max_delay_s``].
    """

    fault: Fault
    probability: float = 1.0
    methods: Collection[str] = ()
    match: Callable[[Request], bool] | None = None
    after_upstream: bool = False
    delay_s: float = 0.0
    max_delay_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], not {self.probability}")
        top = self.delay_s if self.max_delay_s is None else self.max_delay_s
        if not 0.0 <= self.delay_s <= top:
            raise ValueError("delays must satisfy 0 <= delay_s <= max_delay_s")
        if (self.fault is Fault.DELAY) != (top > 0):
            raise ValueError("Fault.DELAY needs delay_s or max_delay_s > 0; other faults neither")
        methods = (self.methods,) if isinstance(self.methods, str) else self.methods
        object.__setattr__(self, "methods", frozenset(m.upper() for m in methods))

    def selects(self, request: Request) -> bool:
        """Whether the rule applies to ``request``, before its probability is drawn."""
        if self.methods and request.method not in self.methods:
            return False
        return self.match is None or self.match(request)

    def draw_delay(self, rng: random.Random) -> float:
        """This DELAY's wait for one request."""
        if self.max_delay_s is None:
            return self.delay_s
        return rng.uniform(self.delay_s, self.max_delay_s)


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of the proxy's counters; each fault is counted when it is carried out."""

    connections: int = 0  # client connections accepted
    requests: int = 0  # request heads received
    forwarded: int = 0  # requests sent to the upstream
    slow_down: int = 0
    internal_error: int = 0
    reset: int = 0
    delay: int = 0  # DELAY rules fired (the fixed latency is not counted)
    answered: int = 0  # requests the responder answered itself


@dataclass
class _Phase:
    """What was drawn for one request, before forwarding or after the upstream's answer."""

    wait_s: float = 0.0
    delays: int = 0
    fault: Fault | None = None


class _Faults:
    """The rules, their random draws and the counters, shared by all connections."""

    def __init__(self, rules: Iterable[FaultRule], seed: int | None, latency_s: float) -> None:
        self._lock = threading.Lock()
        self._rules = tuple(rules)
        self._rng = random.Random(seed)  # noqa: S311 - reproducible draws, not secrets
        self._latency_s = latency_s
        self._counts: Counter[str] = Counter()
        self.stopping = threading.Event()  # cuts injected waits short on stop

    def configure(self, rules: Iterable[FaultRule] | None, latency_s: float | None) -> None:
        with self._lock:
            self._rules = self._rules if rules is None else tuple(rules)
            self._latency_s = self._latency_s if latency_s is None else latency_s

    def plan(self, request: Request) -> tuple[_Phase, _Phase]:
        """Draw once per selecting rule, in order; the first terminal fault of a phase wins."""
        before, after = _Phase(), _Phase()
        with self._lock:
            self._counts["requests"] += 1
            before.wait_s = self._latency_s
            for rule in self._rules:
                if not rule.selects(request) or self._rng.random() >= rule.probability:
                    continue
                phase = after if rule.after_upstream else before
                if rule.fault is Fault.DELAY:
                    phase.wait_s += rule.draw_delay(self._rng)
                    phase.delays += 1
                elif phase.fault is None:
                    phase.fault = rule.fault
        return before, after

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def wait(self, phase: _Phase) -> None:
        if phase.delays:
            self.count(Fault.DELAY, phase.delays)
        if phase.wait_s > 0:
            self.stopping.wait(phase.wait_s)

    def snapshot(self, reset: bool = False) -> ProxyStats:
        with self._lock:
            stats = ProxyStats(**self._counts)
            if reset:
                self._counts.clear()
        return stats


@dataclass(frozen=True)
class _Head:
    """A request or response head: its bytes as received, and its parsed start line and fields."""

    raw: bytes
    start: list[str]
    fields: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str:
        return ", ".join(value for key, value in self.fields if key.lower() == name)

    @property
    def status(self) -> int:
        return int(self.start[1])

    @property
    def keep_alive(self) -> bool:
        tokens = {token.strip().lower() for token in self.get("connection").split(",")}
        version = self.start[0] if self.start[0].startswith("HTTP/") else self.start[-1]
        return "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens

    @property
    def expects_continue(self) -> bool:
        return "100-continue" in self.get("expect").lower()

    def framing(self, otherwise: int) -> int:
        """The body's byte count, or _CHUNKED, or ``otherwise`` when the head says neither."""
        coding = self.get("transfer-encoding").lower()
        if coding:
            return _CHUNKED if coding.rsplit(",", 1)[-1].strip() == "chunked" else otherwise
        length = self.get("content-length")
        if not length:
            return otherwise
        if not length.isdigit():
            raise ValueError(f"bad Content-Length: {length!r}")
        return int(length)

    def request(self) -> Request:
        if len(self.start) != 3:
            raise ValueError(f"bad request line: {self.raw[:200]!r}")
        return Request(self.start[0].upper(), self.start[1], self.fields)

    def with_fields(self, fields: Iterable[tuple[str, str]]) -> bytes:
        """The raw head with ``fields`` set: the received lines of those names are dropped."""
        new = [(name.strip(), value.strip()) for name, value in fields]
        if not new:
            return self.raw
        for name, value in new:
            if not name or ":" in name or any(c in name + value for c in "\r\n"):
                raise ValueError(f"bad header field: {name!r}: {value!r}")
        names = {name.lower() for name, _ in new}
        lines = io.BytesIO(self.raw).readlines()  # each ends with its own line break
        end = lines.pop()  # the empty line
        kept = lines[:1] + [
            line
            for line in lines[1:]
            if line.partition(b":")[0].strip().decode("latin-1").lower() not in names
        ]
        added = [f"{name}: {value}".encode("latin-1") + end for name, value in new]
        return b"".join([*kept, *added, end])


def _read_line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(_MAX_LINE)
    if not line.endswith(b"\n"):
        raise ConnectionError("connection closed, or a line too long, inside a message")
    return line


def _read_head(reader: io.BufferedReader) -> _Head | None:
    """The next message head, or None if the peer closed the connection between messages."""
    lines: list[bytes] = []
    size = 0
    while True:
        if not lines and not reader.peek(1):
            return None
        line = _read_line(reader)
        size += len(line)
        if size > _MAX_HEAD:
            raise ValueError("message head too large")
        if line not in _END:
            lines.append(line)
        elif lines:  # empty lines before a start line are ignored (RFC 9112, 2.2)
            break
    text = [raw.decode("latin-1").rstrip("\r\n") for raw in lines]
    pairs = (line.partition(":") for line in text[1:])
    fields = tuple((key.strip(), value.strip()) for key, _, value in pairs)
    return _Head(b"".join(lines) + line, text[0].split(None, 2), fields)


def _response_framing(response: _Head, request: _Head) -> int:
    if request.start[0].upper() == "HEAD" or response.status in (204, 304):
        return 0
    return response.framing(_UNTIL_CLOSE)


def _relay_body(src: io.BufferedReader, send: Send | None, framing: int) -> None:
    """Copy one body from ``src`` to ``send`` (None: discard it), framing bytes included."""
    out: Send = send or (lambda _data: None)
    if framing == _CHUNKED:
        while (size := _relay_chunk_size(src, out)) > 0:
            _relay_exact(src, out, size + 2)  # the data and its CRLF
        while (line := _read_line(src)) not in _END:  # trailer fields
            out(line)
        out(line)
    elif framing == _UNTIL_CLOSE:
        while data := src.read1(_BUFFER):
            out(data)
    else:
        _relay_exact(src, out, framing)


def _relay_chunk_size(src: io.BufferedReader, out: Send) -> int:
    line = _read_line(src)
    out(line)
    return int(line.split(b";", 1)[0].strip(), 16)


def _relay_exact(src: io.BufferedReader, out: Send, count: int) -> None:
    while count > 0:
        data = src.read1(min(count, _BUFFER))
        if not data:
            raise ConnectionError("connection closed inside a body")
        out(data)
        count -= len(data)


def _readable(sock: socket.socket, timeout_s: float) -> bool:
    """Whether ``sock`` has data, EOF or an error within the timeout (poll: no fd limit)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout_s * 1000))


def _answer_bytes(answer: Answer, request: _Head) -> bytes:
    fields = [
        *answer.headers,
        ("Content-Length", str(len(answer.body))),
        ("Date", email.utils.formatdate(usegmt=True)),
    ]
    if not request.keep_alive:
        fields.append(("Connection", "close"))
    lines = [f"HTTP/1.1 {answer.status}", *(f"{name}: {value}" for name, value in fields)]
    head = "\r\n".join([*lines, "", ""]).encode("latin-1")
    return head if request.start[0].upper() == "HEAD" else head + answer.body


class _Connection:
    """One client connection and its own upstream connection, serving requests in turn."""

    def __init__(self, server: _Server, client: socket.socket) -> None:
        self.server = server
        self.faults = server.faults
        self.client = client
        self.reader = cast(io.BufferedReader, client.makefile("rb", buffering=_BUFFER))
        self.upstream: tuple[socket.socket, io.BufferedReader] | None = None

    def serve(self) -> None:
        try:
            self.server.track(self.client)
            self.faults.count("connections")
            while (head := _read_head(self.reader)) is not None and self._exchange(head):
                pass
        except (OSError, ValueError) as exc:  # a peer went away, or spoke broken HTTP
            log.debug("fault proxy: connection ended: %r", exc)
        finally:
            self._close_upstream()
            self.reader.close()
            self.server.untrack(self.client)

    def _exchange(self, head: _Head) -> bool:
        """Serve one request; return whether the client connection can carry another."""
        request = head.request()
        before, after = self.faults.plan(request)
        self.faults.wait(before)
        if before.fault is not None:
            return self._inject(before.fault, head)
        responder = self.server.responder
        answer = None if responder is None else responder(request)
        if answer is not None:
            return self._answer(answer, head, "answered")
        response, body_sent, upstream = self._forward(head)
        framing = _response_framing(response, head)
        self.faults.wait(after)
        send = self.client.sendall if after.fault is None else None
        if send is not None:
            extra = self.server.response_headers
            fields = () if extra is None else extra(request, response.status)
            send(response.with_fields(fields))
        _relay_body(upstream, send, framing)
        reusable = body_sent and head.keep_alive and response.keep_alive
        reusable = reusable and framing != _UNTIL_CLOSE
        if not reusable:  # either side may now be out of step: start afresh
            self._close_upstream()
        if after.fault is not None:
            return self._inject(after.fault, head, body_read=body_sent)
        return reusable

    def _forward(self, head: _Head) -> tuple[_Head, bool, io.BufferedReader]:
        """Send the request upstream: its final response head, whether the body went too."""
        sock, reader = self._upstream()
        sock.sendall(head.raw)
        self.faults.count("forwarded")
        framing = head.framing(0)
        if head.expects_continue and framing != 0 and _readable(sock, _CONTINUE_WAIT_S):
            first = self._response_head(reader)
            if first.status != 100:  # the upstream answered without wanting the body
                return self._final(first, reader), False, reader
            self.client.sendall(first.raw)
        _relay_body(self.reader, sock.sendall, framing)
        return self._final(self._response_head(reader), reader), True, reader

    def _final(self, response: _Head, reader: io.BufferedReader) -> _Head:
        while 100 <= response.status < 200:  # interim responses go to the client as they are
            self.client.sendall(response.raw)
            response = self._response_head(reader)
        return response

    @staticmethod
    def _response_head(reader: io.BufferedReader) -> _Head:
        head = _read_head(reader)
        if head is None:
            raise ConnectionError("the upstream closed the connection without a response")
        return head

    def _inject(self, fault: Fault, head: _Head, body_read: bool = False) -> bool:
        if fault is Fault.RESET:
            self.faults.count(fault)
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.reader.close()  # the socket closes for real once its file is closed too
            self.client.close()
            return False
        status, code, message = _ERRORS[fault]
        return self._answer(error_answer(status, code, message), head, fault, body_read)

    def _answer(self, answer: Answer, head: _Head, counter: str, body_read: bool = False) -> bool:
        """Send ``answer``, counted as ``counter``, after reading (and dropping) the body."""
        framing = head.framing(0)
        if not body_read:  # so the connection stays in step
            if head.expects_continue and framing != 0:
                self.client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            _relay_body(self.reader, None, framing)
        self.faults.count(counter)
        self.client.sendall(_answer_bytes(answer, head))
        return head.keep_alive

    def _upstream(self) -> tuple[socket.socket, io.BufferedReader]:
        if self.upstream is not None and _readable(self.upstream[0], 0):
            self._close_upstream()  # closed by the upstream while idle
        if self.upstream is None:
            sock = socket.create_connection(self.server.upstream, timeout=self.server.timeout_s)
            try:
                self.server.track(sock)  # refused once the proxy is stopping
            except OSError:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.upstream = sock, cast(io.BufferedReader, sock.makefile("rb", buffering=_BUFFER))
        return self.upstream

    def _close_upstream(self) -> None:
        if self.upstream is not None:
            sock, reader = self.upstream
            self.upstream = None
            reader.close()
            sock.close()
            self.server.untrack(sock)


class _Server(socketserver.ThreadingTCPServer):
    """Accepts on 127.0.0.1, a thread per connection; tracks sockets so stop() can end them."""

    request_queue_size = 512  # boto3 opens dozens of connections at once; 5 would drop SYNs
    block_on_close = True  # server_close() joins the connection threads

    def __init__(
        self,
        faults: _Faults,
        upstream: tuple[str, int],
        timeout_s: float,
        responder: Responder | None = None,
        response_headers: ResponseHeaders | None = None,
    ) -> None:
        self.faults = faults
        self.upstream = upstream
        self.timeout_s = timeout_s
        self.responder = responder
        self.response_headers = response_headers
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), socketserver.BaseRequestHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.timeout_s)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _Connection(self, request).serve()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("fault proxy: unexpected error serving %s", client_address)

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            if self.faults.stopping.is_set():
                raise ConnectionAbortedError("the fault proxy is stopping")
            self._sockets.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def end_connections(self) -> None:
        """Shut every open socket down, so the threads blocked on them return."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class FaultProxy:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of ``upstream_url`` (plain HTTP).

    Each request waits ``latency_s``, then every rule that selects it draws one number from
    ``random.Random(seed)``, in order: DELAYs add up, the first error or reset wins. So
    sequential requests meet the same faults run after run::

        rules = [FaultRule(Fault.SLOW_DOWN, 0.3, match=is_copy_object)]
        with fault_proxy(moto_url, rules, seed=1) as proxy:
            s3 = boto3.client("s3", endpoint_url=proxy.url)
            ...
            assert proxy.stats.slow_down == ...

    ``responder`` and ``response_headers`` (see the module's docstring) are called from the
    connection threads, concurrently: they must be thread-safe.
    """

    def __init__(
        self,
        upstream_url: str,
        rules: Iterable[FaultRule] = (),
        *,
        seed: int | None = 0,
        latency_s: float = 0.0,
        timeout_s: float = 120.0,
        responder: Responder | None = None,
        response_headers: ResponseHeaders | None = None,
    ) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be an http:// URL, not {upstream_url!r}")
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {latency_s}")
        self.upstream_url = upstream_url
        self._upstream = (parts.hostname, parts.port or 80)
        self._timeout_s = timeout_s
        self._faults = _Faults(rules, seed, latency_s)
        self._responder = responder
        self._response_headers = response_headers
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL to give clients, e.g. ``http://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("the fault proxy is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def stats(self) -> ProxyStats:
        """The counters so far."""
        return self._faults.snapshot()

    def reset_stats(self) -> ProxyStats:
        """The counters so far, set back to zero."""
        return self._faults.snapshot(reset=True)

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        """Replace the rules for the requests that arrive from now on."""
        self._faults.configure(rules, None)

    def set_latency(self, latency_s: float) -> None:
        """Delay every request arriving from now on by ``latency_s`` before forwarding it."""
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, not {latency_s}")
        self._faults.configure(None, latency_s)

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the fault proxy is already running")
        self._faults.stopping.clear()
        self._server = _Server(
            self._faults, self._upstream, self._timeout_s, self._responder, self._response_headers
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="faultproxy", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, end every connection, and join every thread the proxy started."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None or thread is None:
            return
        self._faults.stopping.set()  # no new sockets are tracked, injected waits end
        server.shutdown()
        server.end_connections()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def fault_proxy(
    upstream_url: str,
    rules: Iterable[FaultRule] = (),
    *,
    seed: int | None = 0,
    latency_s: float = 0.0,
    timeout_s: float = 120.0,
    responder: Responder | None = None,
    response_headers: ResponseHeaders | None = None,
) -> Iterator[FaultProxy]:
    """A running FaultProxy; on exit its sockets are closed and its threads joined."""
    proxy = FaultProxy(
        upstream_url,
        rules,
        seed=seed,
        latency_s=latency_s,
        timeout_s=timeout_s,
        responder=responder,
        response_headers=response_headers,
    )
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
