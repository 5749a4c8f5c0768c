from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

from copy_core.classify import ErrorKind, classify
from tests.fakes import client_error


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("SlowDown", 503, ErrorKind.THROTTLING),
        ("RequestLimitExceeded", 503, ErrorKind.THROTTLING),
        ("InternalError", 500, ErrorKind.TRANSIENT),
        ("ServiceUnavailable", 503, ErrorKind.TRANSIENT),
        ("BadGateway", 502, ErrorKind.TRANSIENT),
        ("RequestTimeout", 400, ErrorKind.TRANSIENT),
        ("ExpiredToken", 400, ErrorKind.TRANSIENT),
        ("NoSuchKey", 404, ErrorKind.PERMANENT),
        ("AccessDenied", 403, ErrorKind.PERMANENT),
        ("InvalidObjectState", 403, ErrorKind.PERMANENT),
        ("PreconditionFailed", 412, ErrorKind.PERMANENT),
        ("EntityTooLarge", 400, ErrorKind.PERMANENT),
    ],
)
def test_client_errors_are_classified_like_botocore(
    code: str, status: int, kind: ErrorKind
) -> None:
    error = classify(client_error(code, status))
    assert (error.kind, error.code, error.status) == (kind, code, status)
    assert error.message.startswith(f"{code} happened")


def test_connection_failures_are_transient() -> None:
    assert classify(EndpointConnectionError(endpoint_url="http://x")).kind is ErrorKind.TRANSIENT
    assert classify(ReadTimeoutError(endpoint_url="http://x")).kind is ErrorKind.TRANSIENT
    assert classify(ConnectionResetError()).kind is ErrorKind.TRANSIENT


def test_unknown_exceptions_are_permanent_and_named() -> None:
    error = classify(ValueError("bad"))
    assert (error.kind, error.code, error.message) == (ErrorKind.PERMANENT, "ValueError", "bad")


def test_messages_never_carry_credentials() -> None:
    error = classify(ValueError("token ASIAABCDEFGHIJKLMNOP aws_secret_access_key=abc/def"))
    assert "ASIAABCDEFGHIJKLMNOP" not in error.message
    assert "abc/def" not in error.message


def test_a_source_changed_since_listing_says_so() -> None:
    error = classify(client_error("PreconditionFailed", 412))
    assert error.kind is ErrorKind.PERMANENT
    assert "changed after it was listed" in error.message


def test_crt_network_errors_are_transient_and_signing_errors_permanent() -> None:
    from awscrt.exceptions import AwsCrtError

    reset = AwsCrtError(code=1051, name="AWS_IO_SOCKET_CLOSED", message="socket closed")
    signing = AwsCrtError(code=6153, name="AWS_AUTH_SIGNING_NO_CREDENTIALS", message="none")
    assert (classify(reset).kind, classify(reset).code) == (
        ErrorKind.TRANSIENT,
        "AWS_IO_SOCKET_CLOSED",
    )
    assert classify(signing).kind is ErrorKind.PERMANENT
