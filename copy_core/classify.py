"""Retry classification: the one place that decides whether an error is worth another try.

botocore already retries each request (standard or adaptive mode) on throttling and transient
errors, with backoff and jitter. What reaches us has exhausted those attempts, or is something
botocore does not retry. The tables below start from botocore's own (so they follow botocore
when it learns a new code) and add the S3 codes it leaves to the caller.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypeGuard

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

from copy_core.logs import redact

if TYPE_CHECKING:
    from awscrt.exceptions import AwsCrtError


class ErrorKind(StrEnum):
    """How an error should be handled."""

    THROTTLING = "throttling"  # slow down, then retry
    TRANSIENT = "transient"  # retry with backoff
    PERMANENT = "permanent"  # record the key as failed; retrying cannot help


# botocore keeps its tables as private class attributes; read them defensively so that a
# botocore release that renames them degrades to our additions instead of failing to import.
_BOTOCORE_THROTTLING = getattr(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES", [])
_BOTOCORE_TRANSIENT = getattr(TransientRetryableChecker, "_TRANSIENT_ERROR_CODES", [])
_BOTOCORE_STATUS = getattr(
    TransientRetryableChecker, "_TRANSIENT_STATUS_CODES", [500, 502, 503, 504]
)

THROTTLING_CODES = frozenset(_BOTOCORE_THROTTLING) | {"SlowDown", "RequestLimitExceeded"}
TRANSIENT_CODES = frozenset(_BOTOCORE_TRANSIENT) | {
    "InternalError",
    "ServiceUnavailable",
    "RequestTimeout",
    "OperationAborted",
    "IncompleteBody",
    "ExpiredToken",  # the next call refreshes credentials first
    "RequestTimeTooSkewed",
}
TRANSIENT_STATUS = frozenset(_BOTOCORE_STATUS) | {429}
# Denied: S3's AccessDenied, or a status-only 403 (HEAD), or a disabled or unknown account key.
DENIED_CODES = ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId")
# No such object: GetObject says NoSuchKey, HeadObject (no body) just 404 / NotFound.
MISSING_CODES = ("NoSuchKey", "404", "NotFound")
# S3's answers to a request signed for, or sent to, another region than its bucket's (a HEAD
# gets a bare 301); the answer names the bucket's region (x-amz-bucket-region, <Region>).
WRONG_REGION_CODES = frozenset(
    {
        "AuthorizationHeaderMalformed",
        "PermanentRedirect",
        "301",
        "IllegalLocationConstraintException",
    }
)


# What a user can do about the commonest permanent errors, appended to S3's own message.
HINTS = {
    "PreconditionFailed": "the source object changed after it was listed (its ETag no longer "
    "matches); nothing was written for it — run the copy again to copy the new version",
    "NoSuchKey": "the source object was deleted after it was listed",
    "InvalidObjectState": "the source is archived (Glacier/Deep Archive): restore it first",
    "EntityTooLarge": "the object is larger than S3 allows for this operation",
}


class CopyFailed(Exception):
    """A failure found by the copier itself (a checksum mismatch, a denied tag read, ...)."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status  # S3's HTTP status, where S3 answered (a denial: 403)


@dataclass(frozen=True)
class ClassifiedError:
    """An error reduced to what the engine and the failure report need."""

    kind: ErrorKind
    code: str
    message: str
    status: int | None = None

    @property
    def retryable(self) -> bool:
        return self.kind is not ErrorKind.PERMANENT


def classify(exc: BaseException) -> ClassifiedError:  # noqa: PLR0911 - one branch per kind
    """Classify any exception raised while copying a key."""
    if isinstance(exc, CopyFailed):
        return ClassifiedError(ErrorKind.PERMANENT, exc.code, _message(exc), exc.status)
    if isinstance(exc, ClientError):
        return _classify_client_error(exc)
    if _is_crt_error(exc):
        return _classify_crt_error(exc)
    if isinstance(exc, ConnectionError | HTTPClientError):
        return ClassifiedError(ErrorKind.TRANSIENT, type(exc).__name__, _message(exc))
    if isinstance(exc, NoCredentialsError | CredentialRetrievalError):
        return ClassifiedError(ErrorKind.PERMANENT, type(exc).__name__, _message(exc))
    if isinstance(exc, BotoCoreError):
        return ClassifiedError(ErrorKind.PERMANENT, type(exc).__name__, _message(exc))
    if isinstance(exc, TimeoutError | OSError):
        return ClassifiedError(ErrorKind.TRANSIENT, type(exc).__name__, _message(exc))
    return ClassifiedError(ErrorKind.PERMANENT, type(exc).__name__, _message(exc))


def _classify_client_error(exc: ClientError) -> ClassifiedError:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "Unknown")
    return classify_answer(code, str(error.get("Message") or exc), status)


def classify_answer(code: str, message: str, status: int | None = None) -> ClassifiedError:
    """An error S3 answered with (a ClientError's, or one key's in a DeleteObjects reply)."""
    message = redact(message)
    if code in THROTTLING_CODES:
        kind = ErrorKind.THROTTLING
    elif code in TRANSIENT_CODES or status in TRANSIENT_STATUS:
        kind = ErrorKind.TRANSIENT
    else:
        kind = ErrorKind.PERMANENT
    if code in HINTS:
        message = f"{message} ({HINTS[code]})"
    return ClassifiedError(kind, code, message, status)


def _is_crt_error(exc: BaseException) -> TypeGuard[AwsCrtError]:
    # Not imported here: loading the CRT's native library costs ~0.1 s of CPU, which the
    # control plane (which never sends a request over the CRT) should not pay. No CRT error
    # can exist before something has imported it.
    crt = sys.modules.get("awscrt.exceptions")
    return crt is not None and isinstance(exc, crt.AwsCrtError)


def _classify_crt_error(exc: AwsCrtError) -> ClassifiedError:
    """Errors of the CRT request path: the network's are transient, signing's are not."""
    kind = ErrorKind.PERMANENT if exc.name.startswith("AWS_AUTH") else ErrorKind.TRANSIENT
    return ClassifiedError(kind, exc.name, _message(exc))


def _message(exc: BaseException) -> str:
    return redact(str(exc) or type(exc).__name__)


def error_code(exc: ClientError) -> str:
    """S3's error code of a ClientError (a status for bodiless answers such as HEAD's)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """S3's message of a ClientError, or its code where S3 gave none."""
    return str(exc.response.get("Error", {}).get("Message", "") or error_code(exc))
