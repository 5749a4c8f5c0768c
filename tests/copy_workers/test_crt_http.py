"""How the CRT request path signs: with the current time and the current credentials."""

from __future__ import annotations

import http.server
import threading
import time
from datetime import UTC, datetime

from awscrt.auth import aws_sign_request
from awscrt.http import HttpHeaders, HttpRequest

from copy_workers.s3.crt_http import SIGNING_CONFIG_S, Endpoint, Response, S3Http


def _signed_headers(http: S3Http) -> dict[str, str]:
    request = HttpRequest("PUT", "/bucket/key", HttpHeaders([("Host", "s3.example.test")]))
    aws_sign_request(request, http.signing_config()).result(timeout=5)
    return {name.lower(): value for name, value in request.headers}


def test_each_request_is_signed_at_the_time_it_is_sent() -> None:
    # S3 refuses a signature more than 15 minutes old: a config made once would age.
    http = S3Http(
        Endpoint("http", "s3.example.test", 80), "eu-west-1", lambda: ("AK", "S", None), 4
    )
    time.sleep(1.1)
    before = datetime.now(UTC).replace(microsecond=0)
    stamped = datetime.strptime(_signed_headers(http)["x-amz-date"], "%Y%m%dT%H%M%SZ")
    assert stamped.replace(tzinfo=UTC) >= before


def test_renewed_credentials_sign_once_the_configs_second_is_over() -> None:
    current = ["AKIAFIRST", "secret-1", "token-1"]
    reads: list[str] = []
    now = [100.0]

    def credentials() -> tuple[str, str, str]:
        reads.append(current[0])
        return current[0], current[1], current[2]

    http = S3Http(
        Endpoint("http", "s3.example.test", 80), "eu-west-1", credentials, 4, clock=lambda: now[0]
    )
    first = _signed_headers(http)
    current[:] = ["AKIASECOND", "secret-2", "token-2"]
    now[0] += SIGNING_CONFIG_S / 2
    within = _signed_headers(http)  # the config of this second, credentials not read again
    now[0] += SIGNING_CONFIG_S / 2
    second = _signed_headers(http)
    assert reads == ["AKIAFIRST", "AKIASECOND"]
    assert "Credential=AKIAFIRST/" in first["authorization"]
    assert within["authorization"] == first["authorization"]
    assert first["x-amz-security-token"] == "token-1"
    assert "Credential=AKIASECOND/" in second["authorization"]
    assert second["x-amz-security-token"] == "token-2"
    assert "/eu-west-1/s3/aws4_request" in second["authorization"]


class _Answer(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as S3 does: an HTTP/1.0 answer closes the connection after it, and the CRT's
    # pool could hand the next request a connection the server is closing (SOCKET_CLOSED).
    protocol_version = "HTTP/1.1"

    def do_PUT(self) -> None:
        body = b"<CopyObjectResult><ETag>&quot;x&quot;</ETag></CopyObjectResult>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_the_event_loop_thread_keeps_its_python_state_between_callbacks() -> None:
    # Each callback of the CRT's thread would otherwise run in a thread state made for it and
    # deleted after it (an mmap and munmap each): a thread-local value would not survive.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        http_ = S3Http(
            Endpoint("http", "127.0.0.1", server.server_address[1]),
            "us-east-1",
            lambda: ("AK", "S", None),
            2,
        )
        local = threading.local()
        seen: list[tuple[int, int]] = []
        for _ in range(5):
            finished = threading.Event()
            answers: list[tuple[int | None, BaseException | None]] = []

            def done(response: Response | None, error: BaseException | None) -> None:
                # No assert here: one raised in the CRT's callback is logged, not reported.
                answers.append((response.status if response else None, error))  # noqa: B023
                seen.append((threading.get_ident(), getattr(local, "calls", 0)))
                local.calls = getattr(local, "calls", 0) + 1
                finished.set()  # noqa: B023 - each request waits for its own

            http_.send("PUT", "/bucket/key", [], "127.0.0.1", done)
            assert finished.wait(10)
            assert answers == [(200, None)]
        threads = {ident for ident, _ in seen}
        assert len(threads) == 1 and threads != {threading.get_ident()}
        assert [calls for _, calls in seen] == [0, 1, 2, 3, 4]
    finally:
        server.shutdown()
        server.server_close()
