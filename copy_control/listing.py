"""Listing the source: one key (HeadObject) or every key under a prefix (ListObjectsV2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from copy_control.request import InvalidRequest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PAGE_SIZE = 1000


@dataclass(frozen=True)
class ListedObject:
    """An object as the listing saw it."""

    key: str
    size: int
    etag: str | None
    storage_class: str | None = None


def list_pages(
    client: S3Client, bucket: str, prefix: str, start_after: str | None = None
) -> Iterator[list[ListedObject]]:
    """Yield the objects under ``prefix`` page by page, in key order, after ``start_after``."""
    kwargs = {"Bucket": bucket, "Prefix": prefix, "PaginationConfig": {"PageSize": PAGE_SIZE}}
    if start_after:
        kwargs["StartAfter"] = start_after
    pages = client.get_paginator("list_objects_v2").paginate(**kwargs)  # type: ignore[arg-type]
    try:
        for page in pages:
            yield [
                ListedObject(obj["Key"], obj["Size"], obj.get("ETag"), obj.get("StorageClass"))
                for obj in page.get("Contents", [])
            ]
    except ClientError as exc:
        raise _explain(exc, bucket, prefix) from exc


def head_object(client: S3Client, bucket: str, key: str) -> ListedObject:
    """The one object a single-key copy names; a clear error if it is not there."""
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        raise _explain(exc, bucket, key) from exc
    return ListedObject(key, head["ContentLength"], head.get("ETag"), head.get("StorageClass"))


def _explain(exc: ClientError, bucket: str, key: str) -> Exception:
    """Turn the errors a user can fix into InvalidRequest; keep the rest as they are."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if exc.operation_name == "AssumeRole":
        return InvalidRequest(f"could not assume the source role to list the source: {exc}")
    if code in ("NoSuchBucket",):
        return InvalidRequest(f"source bucket {bucket!r} does not exist (or is in another region)")
    if code in ("NoSuchKey", "404", "NotFound"):
        return InvalidRequest(
            f"source object s3://{bucket}/{key} does not exist (check the bucket and the key); "
            "to copy every object under a prefix, use source_prefix (or --recursive)"
        )
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return InvalidRequest(
            f"access denied listing s3://{bucket}/{key}: the listing identity needs "
            f"s3:ListBucket on arn:aws:s3:::{bucket} (and s3:GetObject for a single key)"
        )
    return exc
