"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def client_error(
    code: str, status: int, operation: str = "CopyObject", message: str | None = None
) -> ClientError:
    """A ClientError as botocore raises it for an S3 error response."""
    response: Any = {
        "Error": {"Code": code, "Message": message or f"{code} happened"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)
