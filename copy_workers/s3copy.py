"""The S3 copy itself: one object, server-side, the same object at the destination.

Objects up to the multipart threshold take one CopyObject (and no other request in the common
case); larger ones a multipart copy. The overwrite policy, verification and the failure
messages for denied permissions live here too, so that every path treats them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from copy_workers.contract import CopyItem, CopyJob, KeyStatus
from copy_workers.errors import CopyFailed
from copy_workers.multipart import MultipartResult, copy_multipart
from copy_workers.properties import (
    SOURCE_ETAG_META,
    multipart_create_params,
    single_copy_params,
    tag_dict,
)
from copy_workers.requests import RequestLog
from copy_workers.verify import (
    CRC_ALGORITHMS,
    Verdict,
    combine_part_crcs,
    compare,
    full_object_checksums,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

Head = Mapping[str, Any]


@dataclass(frozen=True)
class CopyReport:
    """What happened to one key that did not fail."""

    status: KeyStatus
    verdict: Verdict | None = None

    @property
    def verified(self) -> bool:
        return self.verdict is not None and self.verdict.verified


class ObjectCopier:
    """Copies the objects of one job with one S3 client (server-side: it reads and writes)."""

    def __init__(self, client: S3Client, job: CopyJob, parts_pool: Executor) -> None:
        self._s3 = client
        self._job = job
        self._options = job.options
        self._pool = parts_pool

    def copy(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        """Copy ``item`` (or skip it, as the overwrite policy says)."""
        if self._options.overwrite != "always" and self._skip(item, requests):
            return CopyReport(KeyStatus.SKIPPED)
        if item.size > self._options.multipart_threshold:
            return self._copy_multipart(item, requests)
        return self._copy_single(item, requests)

    # --- overwrite policy ----------------------------------------------------------------
    def _skip(self, item: CopyItem, requests: RequestLog) -> bool:
        dest = self._head(self._job.dest_bucket, item.dest_key, requests, missing_ok=True)
        if dest is None:
            return False
        if self._options.overwrite == "never":
            return True
        return self._same_object(item, dest, requests)

    def _same_object(self, item: CopyItem, dest: Head, requests: RequestLog) -> bool:
        """Same size, and the same source identity, ETag or full-object checksum."""
        if dest.get("ContentLength") != item.size:
            return False
        recorded = (dest.get("Metadata") or {}).get(SOURCE_ETAG_META)
        if recorded and item.etag and recorded == item.etag.strip('"'):
            return True
        verdict = compare(item.etag, {}, dest.get("ETag"), {}, _is_kms(dest))
        if verdict.method == "etag":
            return verdict.matches
        dest_sums = full_object_checksums(dest)
        if not dest_sums:
            return False
        source = self._source_head(item, requests)
        return compare(None, full_object_checksums(source), None, dest_sums).verified

    # --- single CopyObject -----------------------------------------------------------------
    def _copy_single(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        head = None
        if self._options.metadata_directive == "REPLACE":
            head = self._source_head(item, requests)
        params = single_copy_params(self._job, item, self._options, head)
        if self._options.checksum_algorithm not in ("auto", "none"):
            params["ChecksumAlgorithm"] = self._options.checksum_algorithm
        response = self._call_copy(item, requests, params)
        verdict = self._verify_single(item, response, head, requests)
        return CopyReport(KeyStatus.COPIED, verdict)

    def _call_copy(self, item: CopyItem, requests: RequestLog, params: dict[str, Any]) -> Any:
        try:
            return requests.call(self._s3.copy_object, **params)
        except ClientError as exc:
            if _code(exc) in ("AccessDenied", "403"):
                raise CopyFailed("AccessDenied", self._denied_copy_message(item, exc)) from exc
            raise

    def _verify_single(
        self, item: CopyItem, response: Any, head: Head | None, requests: RequestLog
    ) -> Verdict | None:
        if not self._options.verify:
            return None
        result = response.get("CopyObjectResult", {})
        dest_sums = full_object_checksums(result)
        verdict = compare(item.etag, {}, result.get("ETag"), {}, _is_kms(response))
        if verdict.method == "none":
            # The ETags cannot tell (multipart-uploaded or KMS-encrypted source): compare the
            # stored checksums, reading them only now that they are needed.
            source = head or self._source_head(item, requests)
            if not dest_sums:
                dest_sums = full_object_checksums(
                    self._head(self._job.dest_bucket, item.dest_key, requests) or {}
                )
            verdict = compare(None, full_object_checksums(source), None, dest_sums)
        self._reject_mismatch(item, verdict, requests)
        return verdict

    # --- multipart -------------------------------------------------------------------------
    def _copy_multipart(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        head = self._source_head(item, requests)
        tags = self._source_tags(item, head, requests)
        params = multipart_create_params(self._job, item, self._options, head, tags)
        source_sums = full_object_checksums(head)
        algorithm = self._multipart_algorithm(source_sums)
        if algorithm:
            params["ChecksumAlgorithm"] = algorithm
        source_etag = item.etag or str(head["ETag"])
        result = copy_multipart(
            self._s3,
            self._job,
            item,
            create_params=params,
            source_etag=source_etag,
            pool=self._pool,
            requests=requests,
        )
        verdict = self._verify_multipart(item, source_sums, result, requests)
        return CopyReport(KeyStatus.COPIED, verdict)

    def _multipart_algorithm(self, source_sums: Mapping[str, str]) -> str | None:
        """The checksum S3 computes per part: the source's CRC when it has one, to compare."""
        chosen = self._options.checksum_algorithm
        if chosen == "none":
            return None
        if chosen != "auto":
            return chosen
        return next((a for a in CRC_ALGORITHMS if a in source_sums), "CRC64NVME")

    def _verify_multipart(
        self,
        item: CopyItem,
        source_sums: Mapping[str, str],
        result: MultipartResult,
        requests: RequestLog,
    ) -> Verdict | None:
        if not self._options.verify:
            return None
        algorithm = result.algorithm
        combined = None
        if algorithm and all(p.checksum for p in result.parts):
            combined = combine_part_crcs(
                algorithm, [(p.checksum or "", p.size) for p in result.parts]
            )
        dest_sums = {algorithm: combined} if algorithm and combined else {}
        verdict = compare(None, source_sums, None, dest_sums)
        self._reject_mismatch(item, verdict, requests)
        return verdict

    # --- shared ----------------------------------------------------------------------------
    def _reject_mismatch(self, item: CopyItem, verdict: Verdict, requests: RequestLog) -> None:
        """A copy that is not the source is removed and reported, never left looking good."""
        if verdict.matches:
            return
        requests.call(self._s3.delete_object, Bucket=self._job.dest_bucket, Key=item.dest_key)
        raise CopyFailed(
            "ChecksumMismatch" if verdict.method.startswith("checksum") else "ETagMismatch",
            f"the copy differs from the source ({verdict.detail}); the bad copy was deleted",
        )

    def _source_head(self, item: CopyItem, requests: RequestLog) -> Head:
        head = self._head(self._job.source_bucket, item.source_key, requests, if_match=item.etag)
        assert head is not None
        return head

    def _head(
        self,
        bucket: str,
        key: str,
        requests: RequestLog,
        missing_ok: bool = False,
        if_match: str | None = None,
    ) -> Head | None:
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if if_match:
            params["IfMatch"] = if_match
        try:
            return dict(requests.call(self._s3.head_object, **params))
        except ClientError as exc:
            if missing_ok and _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            if if_match and _code(exc) in ("412", "PreconditionFailed"):
                raise CopyFailed("PreconditionFailed", _CHANGED) from exc
            raise

    def _source_tags(self, item: CopyItem, head: Head, requests: RequestLog) -> dict[str, str]:
        if self._options.tagging != "copy" or not head.get("TagCount"):
            return {}
        try:
            response = requests.call(
                self._s3.get_object_tagging, Bucket=self._job.source_bucket, Key=item.source_key
            )
        except ClientError as exc:
            if _code(exc) in ("AccessDenied", "403"):
                raise CopyFailed("AccessDenied", self._denied_tags_message()) from exc
            raise
        return tag_dict(response.get("TagSet", []))

    def _denied_tags_message(self) -> str:
        return (
            f"reading the source object's tags was denied: grant s3:GetObjectTagging on "
            f"arn:aws:s3:::{self._job.source_bucket}/* to the copying role (source bucket "
            f"policy), or turn tag copying off with tagging='none' (--tagging none)"
        )

    def _denied_copy_message(self, item: CopyItem, exc: ClientError) -> str:
        src, dst = self._job.source_bucket, self._job.dest_bucket
        needs = [
            f"s3:GetObject on arn:aws:s3:::{src}/* (source bucket policy)",
            f"s3:PutObject on arn:aws:s3:::{dst}/* (copying role's policy)",
        ]
        if self._options.tagging == "copy":
            needs.append(
                f"s3:GetObjectTagging on arn:aws:s3:::{src}/* (or --tagging none) and "
                f"s3:PutObjectTagging on arn:aws:s3:::{dst}/*"
            )
        return f"CopyObject was denied ({_message(exc)}); the copying role needs " + "; ".join(
            needs
        )


_CHANGED = (
    "the source object changed after it was listed (its ETag no longer matches); "
    "nothing was written for it — run the copy again to copy the new version"
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", "") or _code(exc))


def _is_kms(response: Mapping[str, Any]) -> bool:
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(
        response.get("SSECustomerAlgorithm")
    )
