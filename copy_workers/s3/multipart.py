"""Multipart copy: UploadPartCopy for objects above the multipart threshold.

Each part is one UploadPartCopy with ``CopySourceIfMatch`` set to the source's ETag, so a
source replaced mid-copy fails that part (PreconditionFailed) instead of yielding an object
made of two versions. The upload is aborted on any failure, after the parts still in flight
have finished, so no billable orphan is left behind. (A worker killed outright cannot abort:
a bucket lifecycle rule AbortIncompleteMultipartUpload is the safety net; see deploy/iam.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from copy_core.aws.denials import COPY_ACTION
from copy_core.aws.request_log import RequestLog
from copy_core.contract import CopyItem, CopyJob
from copy_core.s3.part_plan import Part, plan_parts
from copy_core.s3.properties import copy_source
from copy_core.s3.verify import CRC_ALGORITHMS, combine_part_crcs
from copy_workers.s3.clients import Side

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class CopiedPart:
    """What UploadPartCopy returned for one part."""

    number: int
    size: int
    etag: str
    checksum: str | None

    def for_complete(self, algorithm: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {"PartNumber": self.number, "ETag": self.etag}
        if algorithm and self.checksum:
            entry[f"Checksum{algorithm}"] = self.checksum
        return entry


@dataclass(frozen=True)
class MultipartResult:
    """The completed upload: its ETag and the parts' checksums (for verification)."""

    etag: str
    parts: tuple[CopiedPart, ...]
    algorithm: str | None

    @property
    def crc(self) -> str | None:
        return combined_crc(self.algorithm, self.parts)


def combined_crc(algorithm: str | None, parts: Sequence[CopiedPart]) -> str | None:
    """The full-object CRC combined from the part CRCs S3 returned, if it returned them."""
    return combine_part_crcs(algorithm, [(p.checksum or "", p.size) for p in parts])


def copy_multipart(
    side: Side,
    job: CopyJob,
    item: CopyItem,
    *,
    create_params: Mapping[str, Any],
    source_etag: str,
    pool: Executor,
    requests: RequestLog,
) -> MultipartResult:
    """Copy ``item`` in parts on ``pool``; abort the upload if anything fails."""
    algorithm = create_params.get("ChecksumAlgorithm")
    upload_id = create_upload(side, job, item, create_params, requests)
    try:
        parts = plan_parts(item.size, job.options.part_size)
        copied = copy_parts(side, job, item, upload_id, parts, source_etag, pool, requests)
        etag = complete_upload(side, job, item, upload_id, copied, algorithm, requests)
    except BaseException:
        abort_upload(side.client, job, item, upload_id)
        raise
    return MultipartResult(etag, tuple(copied), algorithm)


def create_upload(
    side: Side,
    job: CopyJob,
    item: CopyItem,
    create_params: Mapping[str, Any],
    requests: RequestLog,
) -> str:
    """CreateMultipartUpload with every property of the copy; returns the upload id."""
    upload = side.call(
        requests,
        side.client.create_multipart_upload,
        action="s3:PutObject",
        side="destination",
        bucket=job.dest_bucket,
        key=item.dest_key,
        **create_params,
    )
    return str(upload["UploadId"])


def copy_parts(
    side: Side,
    job: CopyJob,
    item: CopyItem,
    upload_id: str,
    parts: Sequence[Part],
    source_etag: str,
    pool: Executor,
    requests: RequestLog,
) -> list[CopiedPart]:
    """UploadPartCopy every part on ``pool``; the copied parts in part order."""
    futures: list[Future[CopiedPart]] = [
        pool.submit(
            copy_part,
            side,
            job,
            item,
            upload_id=upload_id,
            part=part,
            source_etag=source_etag,
            requests=requests,
        )
        for part in parts
    ]
    return results_in_order(futures)


def results_in_order(futures: Sequence[Future[T]]) -> list[T]:
    """The results of the parts' futures, in order.

    On the first failure the parts not started are cancelled and the ones in flight are waited
    for (they would otherwise land after an abort), then the error is raised.
    """
    try:
        done, _ = wait(futures, return_when="FIRST_EXCEPTION")
        for future in done:
            if (error := future.exception()) is not None:
                raise error
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        wait(futures)
        raise


def complete_upload(
    side: Side,
    job: CopyJob,
    item: CopyItem,
    upload_id: str,
    parts: Sequence[CopiedPart],
    algorithm: str | None,
    requests: RequestLog,
) -> str:
    """CompleteMultipartUpload; returns the new object's ETag.

    A CRC is a full-object one (``checksum_params``): the upload is completed as such, with
    the CRC combined from the parts' where S3 returned them, which S3 checks against its own.
    """
    params: dict[str, Any] = {}
    if algorithm in CRC_ALGORITHMS:
        params["ChecksumType"] = "FULL_OBJECT"
        crc = combined_crc(algorithm, parts)
        if crc:
            params[f"Checksum{algorithm}"] = crc
    done = requests.call(
        side.client.complete_multipart_upload,
        Bucket=job.dest_bucket,
        Key=item.dest_key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [p.for_complete(algorithm) for p in parts]},
        **params,
    )
    return str(done["ETag"])


def abort_upload(client: S3Client, job: CopyJob, item: CopyItem, upload_id: str) -> None:
    """Abort an upload; a failure to abort is logged (the lifecycle rule is the safety net)."""
    try:
        client.abort_multipart_upload(Bucket=job.dest_bucket, Key=item.dest_key, UploadId=upload_id)
    except Exception:  # the original error matters more
        log.exception("could not abort multipart upload", extra={"key": item.dest_key})


def copy_part(
    side: Side,
    job: CopyJob,
    item: CopyItem,
    *,
    upload_id: str,
    part: Part,
    source_etag: str,
    requests: RequestLog,
) -> CopiedPart:
    """One UploadPartCopy, pinned to the source's ETag."""
    response = side.call(
        requests,
        side.client.upload_part_copy,
        action=COPY_ACTION,
        side="both",
        bucket=job.source_bucket,
        key=item.source_key,
        Bucket=job.dest_bucket,
        Key=item.dest_key,
        UploadId=upload_id,
        PartNumber=part.number,
        CopySource=copy_source(job, item),
        CopySourceRange=part.copy_source_range,
        CopySourceIfMatch=source_etag,
    )
    result = response["CopyPartResult"]
    checksum = next((v for k, v in result.items() if k.startswith("Checksum")), None)
    return CopiedPart(part.number, part.size, result["ETag"], checksum)
