"""Signed S3 requests over the AWS Common Runtime's HTTP client: the lean request path.

boto3 spends milliseconds of CPU per CopyObject (event hooks, endpoint rules, urllib3, signing
and XML parsing in Python); the CRT signs and speaks HTTP in C, for several times less
(docs/performance.md). The CRT's S3Client would be the library choice, but it
retries inside C and does not say how often, so the summary's retry count could not be exact;
this module keeps a small connection pool of its own, signs each request with
``aws_sign_request`` and leaves every retry to the caller.

Requests are asynchronous: ``send`` returns at once and the callback runs on a CRT thread.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from awscrt.auth import (
    AwsCredentialsProvider,
    AwsSignedBodyHeaderType,
    AwsSignedBodyValue,
    AwsSigningConfig,
    aws_sign_request,
)
from awscrt.http import HttpClientConnection, HttpHeaders, HttpRequest
from awscrt.io import (
    ClientBootstrap,
    ClientTlsContext,
    DefaultHostResolver,
    EventLoopGroup,
    SocketOptions,
    TlsConnectionOptions,
    TlsContextOptions,
)

CredentialsFn = Callable[[], tuple[str, str, str | None]]
SIGNING_CONFIG_S = 1.0  # a signing config (its date, its credentials) serves this long


@dataclass(frozen=True)
class Response:
    """A complete HTTP response (S3 copy responses are small)."""

    status: int
    headers: dict[str, str]
    body: bytes


Callback = Callable[[Response | None, BaseException | None], None]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, host, port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port)

    def host_header(self, host: str | None = None) -> str:
        name = host or self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


_pinned_threads: set[int] = set()


def keep_thread_state() -> None:
    """Give the calling CRT thread a Python thread state for good (called from its callbacks).

    The CRT calls into Python from its own threads with ``PyGILState_Ensure``. On a thread
    Python did not start, that creates a thread state whose frame stack is a fresh mmap, and
    the matching ``PyGILState_Release`` deletes it again: an mmap, page faults and an munmap
    (a TLB shootdown on every CPU) for each of the four callbacks of a request. Measured on
    the lane, that was a third of the event loop's CPU. One unmatched ``PyGILState_Ensure``
    from inside a callback keeps the count above zero, so the state lives as long as the
    thread: each later callback only takes and drops the GIL. awscrt offers no setting for
    this. At interpreter exit Python deletes the state with the others; awscrt calls no
    Python callback once ``Py_IsInitialized()`` is false, which Python sets first.
    """
    ident = threading.get_ident()
    if ident not in _pinned_threads:
        ctypes.pythonapi.PyGILState_Ensure()
        _pinned_threads.add(ident)


class _Runtime:
    """One CRT event loop and resolver per process, shared by every pool."""

    _lock = threading.Lock()
    _bootstrap: ClientBootstrap | None = None

    @classmethod
    def bootstrap(cls) -> ClientBootstrap:
        with cls._lock:
            if cls._bootstrap is None:
                loop = EventLoopGroup(1)
                cls._bootstrap = ClientBootstrap(loop, DefaultHostResolver(loop))
            return cls._bootstrap


class S3Http:
    """Signed requests to one host, over at most ``max_connections`` kept-alive connections."""

    def __init__(
        self,
        endpoint: Endpoint,
        region: str,
        credentials: CredentialsFn,
        max_connections: int,
        connect_timeout_ms: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self._clock = clock
        self._region = region
        self._max = max_connections
        self._lock = threading.Lock()
        self._idle: list[HttpClientConnection] = []
        self._open = 0
        self._waiting: list[Callable[[HttpClientConnection | None, BaseException | None], None]]
        self._waiting = []
        self._socket = SocketOptions()
        self._socket.connect_timeout_ms = connect_timeout_ms
        self._tls = self._tls_options(endpoint)
        self._credentials = credentials
        self._provider: tuple[tuple[str, str, str | None], AwsCredentialsProvider] | None = None
        self._config: tuple[float, AwsSigningConfig] | None = None

    def signing_config(self) -> AwsSigningConfig:
        """The config to sign a request with: dated within the last second, with the current
        credentials.

        The CRT dates a config when it is made, and S3 refuses a request signed more than 15
        minutes before it arrives (RequestTimeTooSkewed), so a config serves for one second
        (``SIGNING_CONFIG_S``) and is then made again, with the credentials read again (making
        one, and reading botocore's refreshing credentials, cost more than the signature
        itself when done per request). The static credentials provider is kept until
        botocore renews the credentials: a delegate provider would call back into Python for
        every signature.
        """
        now = self._clock()
        cached = self._config
        if cached is not None and now - cached[0] < SIGNING_CONFIG_S:
            return cached[1]
        current = self._credentials()
        provider = self._provider
        if provider is None or provider[0] != current:
            access, secret, token = current
            provider = (current, AwsCredentialsProvider.new_static(access, secret, token))
            self._provider = provider
        config = AwsSigningConfig(
            credentials_provider=provider[1],
            region=self._region,
            service="s3",
            use_double_uri_encode=False,
            should_normalize_uri_path=False,
            signed_body_value=AwsSignedBodyValue.EMPTY_SHA256,
            signed_body_header_type=AwsSignedBodyHeaderType.X_AMZ_CONTENT_SHA_256,
        )
        self._config = (now, config)
        return config

    @staticmethod
    def _tls_options(endpoint: Endpoint) -> TlsConnectionOptions | None:
        if endpoint.scheme != "https":
            return None
        options = ClientTlsContext(TlsContextOptions()).new_connection_options()
        options.set_server_name(endpoint.host)
        return options

    def send(
        self, method: str, path: str, headers: list[tuple[str, str]], host: str, done: Callback
    ) -> None:
        """Sign and send a body-less request; ``done`` gets the response or the error."""
        request = HttpRequest(method, path, HttpHeaders([("Host", host), *headers]))

        def with_connection(conn: HttpClientConnection | None, error: BaseException | None) -> None:
            if conn is None:
                done(None, error)
                return
            self._sign_and_send(conn, request, done)

        self._acquire(with_connection)

    def _sign_and_send(
        self, conn: HttpClientConnection, request: HttpRequest, done: Callback
    ) -> None:
        status: list[int] = [0]
        response_headers: dict[str, str] = {}
        body: list[bytes] = []

        def on_response(status_code: int, headers: list[tuple[str, str]], **_: Any) -> None:
            keep_thread_state()
            status[0] = status_code
            response_headers.update((k.lower(), v) for k, v in headers)

        def on_body(chunk: bytes, **_: Any) -> None:
            body.append(chunk)

        def finished(future: Any) -> None:
            error = future.exception()
            self._release(conn)
            if error is not None:
                done(None, error)
            else:
                done(Response(status[0], response_headers, b"".join(body)), None)

        def signed(future: Any) -> None:
            if (error := future.exception()) is not None:
                self._release(conn)
                done(None, error)
                return
            try:
                stream = conn.request(request, on_response=on_response, on_body=on_body)
                stream.activate()
            except Exception as exc:  # a connection closed under us: drop it, report
                self._release(conn)
                done(None, exc)
                return
            stream.completion_future.add_done_callback(finished)

        aws_sign_request(request, self.signing_config()).add_done_callback(signed)

    def _acquire(
        self, use: Callable[[HttpClientConnection | None, BaseException | None], None]
    ) -> None:
        """Hand ``use`` an idle open connection, a new one, or queue it until one is free."""
        conn = None
        with self._lock:
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if candidate.is_open():
                    conn = candidate
                else:
                    self._open -= 1
            if conn is None:
                if self._open >= self._max:
                    self._waiting.append(use)
                    return
                self._open += 1
        if conn is not None:
            use(conn, None)
        else:
            self._connect(use)

    def _connect(
        self, use: Callable[[HttpClientConnection | None, BaseException | None], None]
    ) -> None:
        def connected(future: Any) -> None:
            keep_thread_state()
            if (error := future.exception()) is not None:
                with self._lock:
                    self._open -= 1
                use(None, error)
            else:
                use(future.result(), None)

        HttpClientConnection.new(
            host_name=self.endpoint.host,
            port=self.endpoint.port,
            bootstrap=_Runtime.bootstrap(),
            socket_options=self._socket,
            tls_connection_options=self._tls,
        ).add_done_callback(connected)

    def _release(self, conn: HttpClientConnection) -> None:
        with self._lock:
            if not conn.is_open():
                self._open -= 1
                if not self._waiting:
                    return
                waiter = self._waiting.pop(0)
                self._open += 1
                reuse = None
            elif self._waiting:
                waiter, reuse = self._waiting.pop(0), conn
            else:
                self._idle.append(conn)
                return
        if reuse is not None:
            waiter(reuse, None)
        else:
            self._connect(waiter)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Transport:
    """Pools of signed connections, one per host (virtual-hosted buckets have a host each)."""

    def __init__(
        self, endpoint: Endpoint, region: str, credentials: CredentialsFn, max_connections: int
    ) -> None:
        self._endpoint = endpoint
        self._region = region
        self._credentials = credentials
        self._max = max_connections
        self._lock = threading.Lock()
        self._pools: dict[str, S3Http] = {}

    def send(
        self, method: str, host: str, path: str, headers: list[tuple[str, str]], done: Callback
    ) -> None:
        """Send to ``host`` (a bucket's virtual host, or the endpoint's own)."""
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                endpoint = Endpoint(self._endpoint.scheme, name, self._endpoint.port)
                pool = S3Http(endpoint, self._region, self._credentials, self._max)
                self._pools[name] = pool
        pool.send(method, path, headers, host, done)
