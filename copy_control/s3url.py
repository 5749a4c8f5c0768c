"""``s3://bucket/key`` URLs."""

from __future__ import annotations

from copy_control.request import InvalidRequest, check_bucket_name


def parse_s3_url(url: str, what: str = "S3 URL") -> tuple[str, str]:
    """Split ``s3://bucket/key`` into bucket and key (the key may be empty)."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise InvalidRequest(f"{what} {url!r} is not an S3 URL: write it as s3://BUCKET/KEY")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise InvalidRequest(f"{what} {url!r} has no bucket: write it as s3://BUCKET/KEY")
    check_bucket_name(bucket, f"{what} bucket")
    return bucket, key
