"""The S3 copy itself: one object from the source bucket to the destination, server-side."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from copy_workers.contract import CopyItem, CopyJob

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def copy_item(client: S3Client, job: CopyJob, item: CopyItem) -> int:
    """Copy ``item`` with one CopyObject; return how many retries botocore needed.

    ``CopySourceIfMatch`` pins the copy to the version the listing saw: an object replaced
    since then fails with PreconditionFailed instead of being copied unseen. botocore turns a
    "200 OK" whose body is an error into a ClientError (and retries it), so a returned call
    is a real success.
    """
    params: dict[str, Any] = {
        "Bucket": job.dest_bucket,
        "Key": item.dest_key,
        "CopySource": {"Bucket": job.source_bucket, "Key": item.source_key},
    }
    if item.etag:
        params["CopySourceIfMatch"] = item.etag
    response = client.copy_object(**params)
    return int(response["ResponseMetadata"].get("RetryAttempts", 0))
