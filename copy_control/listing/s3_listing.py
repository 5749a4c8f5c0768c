"""Listing the source: one key (HeadObject) or every key under a prefix (ListObjectsV2)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from copy_control.errors import InvalidRequest
from copy_control.listed import ListedObject
from copy_core.classify import MISSING_CODES, error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PAGE_SIZE = 1000
LIST_ACTION = "s3:ListBucket"
VERSIONS_ACTION = "s3:ListBucketVersions"  # ListObjectVersions (and GetObjectVersion to read)


def from_listing(obj: Mapping[str, Any]) -> ListedObject:
    """A ListObjectsV2 ``Contents`` entry as a ListedObject."""
    return ListedObject(
        obj["Key"], obj["Size"], obj.get("ETag"), obj.get("StorageClass"), obj.get("LastModified")
    )


def list_range_pages(
    client: S3Client,
    bucket: str,
    prefix: str,
    start_after: str | None,
    page_size: int = PAGE_SIZE,
    first_page: int | None = None,
) -> Iterator[tuple[list[ListedObject], bool]]:
    """Pages (and whether more follow) under ``prefix`` after ``start_after``, in key order.

    ``first_page`` keys are asked for first: a key range just split off may hold few keys,
    and a full first page would mostly bring keys of the ranges after it.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    size = first_page or page_size
    try:
        while True:
            page = client.list_objects_v2(**kwargs, MaxKeys=size)
            truncated = bool(page.get("IsTruncated"))
            yield [from_listing(obj) for obj in page.get("Contents", [])], truncated
            if not truncated:
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]
            size = page_size
    except ClientError as exc:
        raise explain_listing_error(exc, bucket, prefix) from exc


def check_prefix(client: S3Client, bucket: str, prefix: str) -> None:
    """Read one key under ``prefix``: a missing bucket or a denied listing fails here, clearly."""
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as exc:
        raise explain_listing_error(exc, bucket, prefix) from exc


def head_object(
    client: S3Client, bucket: str, key: str, version_id: str | None = None
) -> ListedObject:
    """The one object (or version) a single-key copy names; a clear error if it is not there."""
    try:
        head = client.head_object(Bucket=bucket, Key=key, **_version(version_id))
    except ClientError as exc:
        if version_id is not None and error_code(exc) in (*MISSING_CODES, "400"):
            raise InvalidRequest(
                f"s3://{bucket}/{key} has no version {version_id!r} (check the version id: "
                f"aws s3api list-object-versions --bucket {bucket} --prefix {key!r})"
            ) from exc
        raise explain_listing_error(exc, bucket, key) from exc
    return _from_head(key, head, version_id)


def resolve(client: S3Client, bucket: str, key: str, version_id: str | None = None) -> ListedObject:
    """Size, ETag and date of a manifest row's object; ``missing`` if it cannot be read."""
    try:
        head = client.head_object(Bucket=bucket, Key=key, **_version(version_id))
    except ClientError as exc:
        code = error_code(exc)
        if code in MISSING_CODES or code in ("AccessDenied", "403", "400"):
            return ListedObject(key, 0, None, missing=True, version_id=version_id)
        raise
    return _from_head(key, head, version_id)


def _version(version_id: str | None) -> dict[str, Any]:
    return {} if version_id is None else {"VersionId": version_id}


def _from_head(key: str, head: Mapping[str, Any], version_id: str | None) -> ListedObject:
    return ListedObject(
        key,
        head["ContentLength"],
        head.get("ETag"),
        head.get("StorageClass"),
        head.get("LastModified"),
        version_id=version_id,
    )


def explain_listing_error(
    exc: ClientError, bucket: str, key: str, action: str = LIST_ACTION
) -> Exception:
    """Turn the errors a user can fix into InvalidRequest; keep the rest as they are."""
    code = error_code(exc)
    if exc.operation_name == "AssumeRole":
        return InvalidRequest(f"could not assume the source role to list the source: {exc}")
    if code in ("NoSuchBucket",):
        return InvalidRequest(f"source bucket {bucket!r} does not exist (or is in another region)")
    if code in MISSING_CODES:
        return InvalidRequest(
            f"source object s3://{bucket}/{key} does not exist (check the bucket and the key); "
            "to copy every object under a prefix, use source_prefix (or --recursive)"
        )
    if code in ("AccessDenied", "403", "AllAccessDisabled"):
        return InvalidRequest(
            f"access denied listing s3://{bucket}/{key}: the listing identity needs "
            f"{action} on arn:aws:s3:::{bucket} (and s3:GetObject for a single key); "
            "if it is a requester-pays bucket, pass --request-payer requester "
            "(operator: request_payer='requester')"
        )
    return exc
