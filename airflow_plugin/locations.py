"""Where to copy from and to: bucket + key/prefix arguments, or ``s3://`` URLs."""

from __future__ import annotations

from dataclasses import dataclass

from copy_control.errors import InvalidRequest
from copy_control.s3url import parse_s3_url


@dataclass(frozen=True)
class Locations:
    """The source and destination of a copy, as CopyRequest takes them."""

    source_bucket: str
    dest_bucket: str
    source_key: str | None = None
    source_prefix: str | None = None
    dest_key: str | None = None
    dest_prefix: str | None = None

    @property
    def source_name(self) -> str:
        """The source key or prefix ("/" for a whole bucket)."""
        return self.source_key or self.source_prefix or "/"


def resolve_locations(
    *,
    source_bucket: str | None,
    source_key: str | None,
    source_prefix: str | None,
    source_s3_url: str | None,
    dest_bucket: str | None,
    dest_key: str | None,
    dest_prefix: str | None,
    dest_s3_url: str | None,
) -> Locations:
    """Combine the operator's location arguments; InvalidRequest if they conflict.

    A source URL ending in "/" (or naming only a bucket) is a prefix, copied recursively;
    otherwise it names one object. A destination URL is the prefix of a prefix copy; for a
    single object it is the new key, or a prefix if it ends in "/" (as in the CLI).
    """
    if source_s3_url is not None:
        if source_bucket or source_key is not None or source_prefix is not None:
            raise InvalidRequest(
                "give source_s3_url, or source_bucket with source_key or source_prefix, not both"
            )
        source_bucket, key = parse_s3_url(source_s3_url, "source_s3_url")
        is_prefix = key == "" or key.endswith("/")
        source_key, source_prefix = (None, key) if is_prefix else (key, None)
    if dest_s3_url is not None:
        if dest_bucket or dest_key is not None or dest_prefix is not None:
            raise InvalidRequest(
                "give dest_s3_url, or dest_bucket with dest_key or dest_prefix, not both"
            )
        dest_bucket, key = parse_s3_url(dest_s3_url, "dest_s3_url")
        to_prefix = source_prefix is not None or key == "" or key.endswith("/")
        dest_key, dest_prefix = (None, key) if to_prefix else (key, None)
    if not source_bucket:
        raise InvalidRequest(
            "give source_bucket (with source_key or source_prefix) or source_s3_url"
        )
    if not dest_bucket:
        raise InvalidRequest("give dest_bucket (with dest_key or dest_prefix) or dest_s3_url")
    return Locations(source_bucket, dest_bucket, source_key, source_prefix, dest_key, dest_prefix)
