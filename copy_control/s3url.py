"""``s3://bucket/key`` URLs and S3's bucket naming rules."""

from __future__ import annotations

import re

from copy_control.errors import InvalidRequest
from copy_core.options import DIRECTORY_BUCKETS

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
MAX_KEY_BYTES = 1024


def parse_s3_url(url: str, what: str = "S3 URL") -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key (the key may be empty)."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise InvalidRequest(f"{what} {url!r} is not an S3 URL: write it as s3://BUCKET/KEY")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidRequest(f"{what} {url!r} has no bucket: write it as s3://BUCKET/KEY")
    check_bucket_name(bucket, f"{what} bucket")
    return bucket, key


def check_bucket_name(name: str, what: str) -> None:
    """Raise InvalidRequest unless ``name`` follows the S3 bucket naming rules."""
    problem = None
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif not 3 <= len(name) <= 63:
        problem = f"is {len(name)} characters long; bucket names have 3 to 63"
    elif not _BUCKET.match(name):
        problem = (
            "may hold only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    elif ".." in name or _IP_ADDRESS.match(name):
        problem = "may not contain '..' or look like an IP address"
    elif name.endswith("--x-s3"):
        raise InvalidRequest(f"{what} {name!r} is a directory bucket: {DIRECTORY_BUCKETS}")
    if problem:
        raise InvalidRequest(f"{what} {name!r} is not a valid S3 bucket name: it {problem}")


def check_key(key: str, what: str) -> None:
    """Raise InvalidRequest unless ``key`` is UTF-8 of at most 1,024 bytes, as S3 keys are."""
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        # A command line or file holding bytes that are not UTF-8 arrives as surrogates.
        byte = key[exc.start].encode("utf-8", "surrogateescape").hex()
        raise InvalidRequest(
            f"{what} is not valid UTF-8 (byte 0x{byte} at character {exc.start + 1}); S3 keys "
            "are UTF-8: check the locale or encoding of the shell or file it came from"
        ) from None
    if size > MAX_KEY_BYTES:
        raise InvalidRequest(
            f"{what} is {size:,} bytes, longer than S3's limit of {MAX_KEY_BYTES} UTF-8 bytes"
        )
