"""How the CRT request path signs: with the current time and the current credentials."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from awscrt.auth import aws_sign_request
from awscrt.http import HttpHeaders, HttpRequest

from copy_workers.s3.crt_http import Endpoint, S3Http


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


def test_renewed_credentials_sign_the_next_request() -> None:
    current = ["AKIAFIRST", "secret-1", "token-1"]
    http = S3Http(Endpoint("http", "s3.example.test", 80), "eu-west-1", lambda: tuple(current), 4)  # type: ignore[arg-type,return-value]
    first = _signed_headers(http)
    current[:] = ["AKIASECOND", "secret-2", "token-2"]
    second = _signed_headers(http)
    assert "Credential=AKIAFIRST/" in first["authorization"]
    assert first["x-amz-security-token"] == "token-1"
    assert "Credential=AKIASECOND/" in second["authorization"]
    assert second["x-amz-security-token"] == "token-2"
    assert "/eu-west-1/s3/aws4_request" in second["authorization"]
