"""The object copier against SeaweedFS over HTTP: it enforces CopySourceIfMatch, as S3 does."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest

from copy_core.aws.request_log import RequestLog
from copy_core.classify import CopyFailed, classify
from copy_core.contract import CopyItem, CopyJob
from copy_core.options import CopyOptions, MiB
from copy_workers.s3.clients import CopyClients
from copy_workers.s3.copier import ObjectCopier
from tests.fakes import client_error

SMALL_PARTS = CopyOptions(multipart_threshold=5 * MiB, part_size=5 * MiB)


@pytest.fixture
def buckets(sw_s3) -> tuple[str, str]:
    src, dst = f"cp-src-{uuid.uuid4().hex[:8]}", f"cp-dst-{uuid.uuid4().hex[:8]}"
    sw_s3.create_bucket(Bucket=src)
    sw_s3.create_bucket(Bucket=dst)
    return src, dst


def _listed(s3, bucket: str, key: str) -> CopyItem:
    obj = s3.head_object(Bucket=bucket, Key=key)
    return CopyItem(key, key, obj["ContentLength"], obj["ETag"], None)


def _copier(
    s3,
    src: str,
    dst: str,
    options: CopyOptions = SMALL_PARTS,
    workers: int = 4,
) -> ObjectCopier:
    return ObjectCopier(
        CopyClients.single(s3), CopyJob(src, dst, options), ThreadPoolExecutor(workers)
    )


def _nothing_left(s3, dst: str, key: str) -> None:
    assert s3.list_objects_v2(Bucket=dst).get("KeyCount", 0) == 0, "a partial object remained"
    assert not s3.list_multipart_uploads(Bucket=dst).get("Uploads"), "an upload remained open"


@pytest.mark.parametrize("size", [10, 12 * MiB], ids=["single", "multipart"])
def test_a_source_replaced_after_listing_fails_with_a_clear_reason(
    sw_s3,
    buckets: tuple[str, str],
    size: int,
) -> None:
    src, dst = buckets
    sw_s3.put_object(Bucket=src, Key="k", Body=b"a" * size)
    item = _listed(sw_s3, src, "k")
    sw_s3.put_object(Bucket=src, Key="k", Body=b"b" * size)
    with pytest.raises(Exception) as failed:
        _copier(sw_s3, src, dst).copy(item, RequestLog())
    error = classify(failed.value)
    assert (error.code, error.retryable) == ("PreconditionFailed", False)
    assert "changed after it was listed" in error.message
    _nothing_left(sw_s3, dst, "k")


class _ChangesSourceAfterFirstPart:
    """An S3 client that overwrites the source once the first part has been copied."""

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self._s3, self._bucket, self._key, self._parts = s3, bucket, key, 0

    def upload_part_copy(self, **params: Any) -> Any:
        response = self._s3.upload_part_copy(**params)
        self._parts += 1
        if self._parts == 1:
            self._s3.put_object(Bucket=self._bucket, Key=self._key, Body=b"new" * MiB * 4)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_a_source_replaced_mid_multipart_aborts_the_upload(sw_s3, buckets: tuple[str, str]) -> None:
    src, dst = buckets
    sw_s3.put_object(Bucket=src, Key="big", Body=b"x" * (16 * MiB))
    item = _listed(sw_s3, src, "big")
    client = _ChangesSourceAfterFirstPart(sw_s3, src, "big")
    copier = ObjectCopier(
        CopyClients.single(cast(Any, client)), CopyJob(src, dst, SMALL_PARTS), ThreadPoolExecutor(1)
    )
    with pytest.raises(Exception) as failed:
        copier.copy(item, RequestLog())
    assert classify(failed.value).code == "PreconditionFailed"
    _nothing_left(sw_s3, dst, "big")


class _TamperedCopy:
    """An S3 client whose CopyObject reports another ETag, as a corrupted copy would."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def copy_object(self, **params: Any) -> Any:
        response = self._s3.copy_object(**params)
        response["CopyObjectResult"]["ETag"] = '"00000000000000000000000000000000"'
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_a_copy_that_differs_from_its_source_is_deleted_and_failed(sw_s3, buckets) -> None:
    src, dst = buckets
    sw_s3.put_object(Bucket=src, Key="k", Body=b"data")
    copier = ObjectCopier(
        CopyClients.single(cast(Any, _TamperedCopy(sw_s3))),
        CopyJob(src, dst),
        ThreadPoolExecutor(1),
    )
    with pytest.raises(CopyFailed) as failed:
        copier.copy(_listed(sw_s3, src, "k"), RequestLog())
    assert failed.value.code == "ETagMismatch"
    assert "the bad copy was deleted" in str(failed.value)
    _nothing_left(sw_s3, dst, "k")


def test_multipart_copies_are_verified_by_combined_part_checksums(sw_s3, buckets) -> None:
    src, dst = buckets
    sw_s3.put_object(
        Bucket=src, Key="big", Body=bytes(range(256)) * (48 * 1024 + 3), ChecksumAlgorithm="CRC32C"
    )
    report = _copier(sw_s3, src, dst).copy(_listed(sw_s3, src, "big"), RequestLog())
    assert report.verdict is not None
    assert (report.verdict.method, report.verified) == ("checksum:CRC32C", True)


class _TagsDenied:
    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def get_object_tagging(self, **params: Any) -> Any:
        raise client_error("AccessDenied", 403, "GetObjectTagging")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_denied_tag_reads_name_the_permission_and_the_way_out(sw_s3, buckets) -> None:
    src, dst = buckets
    sw_s3.put_object(Bucket=src, Key="big", Body=b"x" * (6 * MiB), Tagging="a=b")
    copier = ObjectCopier(
        CopyClients.single(cast(Any, _TagsDenied(sw_s3))),
        CopyJob(src, dst, SMALL_PARTS),
        ThreadPoolExecutor(1),
    )
    with pytest.raises(CopyFailed) as failed:
        copier.copy(_listed(sw_s3, src, "big"), RequestLog())
    assert "s3:GetObjectTagging" in str(failed.value)
    assert "--tagging none" in str(failed.value)
    _nothing_left(sw_s3, dst, "big")


def test_retries_of_every_request_of_a_key_are_counted(sw_s3, buckets) -> None:
    src, dst = buckets
    sw_s3.put_object(Bucket=src, Key="big", Body=b"x" * (11 * MiB))
    requests = RequestLog()
    _copier(sw_s3, src, dst).copy(_listed(sw_s3, src, "big"), requests)
    assert requests.requests == 1 + 1 + 3 + 1  # HEAD, create, 3 parts, complete
    assert requests.retries == 0
