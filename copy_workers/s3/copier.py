"""The S3 copy itself: one object, the same object at the destination.

Copy modes: ``server_side`` (one principal signs CopyObject / UploadPartCopy: no bytes through
the worker), ``stream`` (the source role reads, the destination role writes), and ``auto``
(server-side, falling back to stream for a key whose server-side copy is denied). The
overwrite policy, the choice of path and verification live here, so every path treats them
alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from copy_core.aws.denials import COPY_ACTION
from copy_core.aws.request_log import RequestLog
from copy_core.classify import MISSING_CODES, CopyFailed, error_code
from copy_core.contract import CopyItem, CopyJob, KeyStatus
from copy_core.s3.overwrite import is_kms, skip_existing
from copy_core.s3.properties import (
    checksum_params,
    explicit_params,
    needs_source_etag_marker,
    single_copy_needs_head,
    single_copy_params,
    source_version,
    tag_dict,
)
from copy_core.s3.verify import (
    CRC_ALGORITHMS,
    Verdict,
    compare,
    full_object_checksums,
    is_plain_md5,
)
from copy_workers.retry import KeyRetryPolicy
from copy_workers.s3.clients import CopyClients, Side
from copy_workers.s3.deletes import (
    Deleted,
    delete_source_object,
    delete_with_retries,
    write_delete_marker,
)
from copy_workers.s3.multipart import copy_multipart
from copy_workers.s3.stream import STREAM_PART_SIZE, BufferBudget, StreamCopy

Head = Mapping[str, Any]


@dataclass(frozen=True)
class CopyReport:
    """What happened to one key that did not fail."""

    status: KeyStatus
    verdict: Verdict | None = None
    streamed: bool = False

    @property
    def verified(self) -> bool:
        return self.verdict is not None and self.verdict.verified


@dataclass(frozen=True)
class MultipartPlan:
    """Everything a server-side multipart copy needs before its first part."""

    side: Side
    create_params: dict[str, Any]
    source_etag: str
    source_sums: Mapping[str, str]
    algorithm: str | None


class ObjectCopier:
    """Copies the objects of one job."""

    def __init__(
        self,
        clients: CopyClients,
        job: CopyJob,
        parts_pool: Executor,
        buffers: BufferBudget | None = None,
    ) -> None:
        self._clients = clients
        self._job = job
        self._options = job.options
        self._pool = parts_pool
        self._buffers = buffers or BufferBudget(16)

    @property
    def signer(self) -> Side:
        """The client that signs this job's server-side copies."""
        return self._clients.copy

    def copy(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        """Copy ``item`` (or skip it, as the overwrite policy says)."""
        streaming = self._job.copy_mode == "stream"
        reader = self._clients.source if streaming else self._clients.copy_reader
        writer = self._clients.dest if streaming else self._clients.copy
        if item.delete_marker:  # its place in the key's history, written as a marker
            wrote = write_delete_marker(writer, self._job, item, requests)
            return CopyReport(KeyStatus.COPIED, Verdict("delete-marker", wrote) if wrote else None)
        if self._options.overwrite != "always" and self._skip(item, reader, writer, requests):
            return CopyReport(KeyStatus.SKIPPED)
        if streaming:
            return self._stream(item, requests)
        try:
            return self._server_side(item, requests)
        except CopyFailed as failed:
            if self._job.copy_mode != "auto" or failed.code != "AccessDenied":
                raise
        return self._stream(item, requests)

    # --- deletes ---------------------------------------------------------------------------
    def delete_extraneous(
        self,
        items: Sequence[tuple[int, CopyItem]],
        requests: RequestLog,
        policy: KeyRetryPolicy,
    ) -> list[Deleted]:
        """A sync's delete chunk: destination keys, deleted by whoever writes the copies."""
        writer = self._clients.dest if self._job.copy_mode == "stream" else self._clients.copy
        return delete_with_retries(writer, self._job, items, requests, policy)

    def delete_source(self, item: CopyItem, requests: RequestLog) -> None:
        """A move: delete the source of a verified copy, with the source role where one is
        given (the identity that reads the source), else the one that signs the copies."""
        owner = self._clients.source if self._job.source_role_arn else self._clients.copy_reader
        delete_source_object(owner, self._job, item, requests)

    # --- overwrite policy ----------------------------------------------------------------
    def _skip(self, item: CopyItem, reader: Side, writer: Side, requests: RequestLog) -> bool:
        dest = self._head(writer, "destination", item, requests, missing_ok=True)
        skip = skip_existing(self._options.overwrite, item, dest)
        if skip is None:  # only the source's checksums can tell
            source = self._head(reader, "source", item, requests) or {}
            skip = skip_existing(self._options.overwrite, item, dest, source)
        return bool(skip)

    # --- server-side ---------------------------------------------------------------------
    def _server_side(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        if item.size > self._options.multipart_threshold:
            return self._server_side_multipart(item, requests)
        side = self.signer
        head = None
        if single_copy_needs_head(self._options):
            head = self._head(self._clients.copy_reader, "source", item, requests)
        params = single_copy_params(self._job, item, self._options, head)
        response = side.call(requests, side.client.copy_object, **self._copy_call(item), **params)
        result = response.get("CopyObjectResult", {})
        dest_sums = full_object_checksums(result)
        verdict = None
        if self._options.verify:
            verdict = compare(item.etag, {}, result.get("ETag"), {}, is_kms(response))
            if verdict.method == "none":
                # The ETags cannot tell (a multipart-uploaded or KMS-encrypted source): compare
                # the stored checksums, read only now that they are needed.
                reader = self._clients.copy_reader
                source = head or self._head(reader, "source", item, requests) or {}
                if not dest_sums:
                    dest_head = self._head(side, "destination", item, requests) or {}
                    dest_sums = full_object_checksums(dest_head)
                verdict = compare(None, full_object_checksums(source), None, dest_sums)
            self._reject_mismatch(side, item, verdict, requests)
        return CopyReport(KeyStatus.COPIED, verdict)

    def prepare_multipart(self, item: CopyItem, requests: RequestLog) -> MultipartPlan:
        """Read what a server-side multipart copy must pass explicitly (HEAD, tags)."""
        side, reader = self.signer, self._clients.copy_reader
        head = self._head(reader, "source", item, requests) or {}
        tags = self._source_tags(reader, item, head, requests)
        source_sums = full_object_checksums(head)
        algorithm = self._crc_algorithm(source_sums)
        marker = needs_source_etag_marker(self._options, source_sums, algorithm)
        params = explicit_params(
            self._job, item, self._options, head, tags, record_source_etag=marker
        )
        params.update(checksum_params(algorithm))
        return MultipartPlan(side, params, item.etag or str(head["ETag"]), source_sums, algorithm)

    def _server_side_multipart(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        plan = self.prepare_multipart(item, requests)
        result = copy_multipart(
            plan.side,
            self._job,
            item,
            create_params=plan.create_params,
            source_etag=plan.source_etag,
            pool=self._pool,
            requests=requests,
        )
        verdict = self.verify(
            plan.side, item, plan.source_sums, result.crc, plan.algorithm, requests
        )
        return CopyReport(KeyStatus.COPIED, verdict)

    def _copy_call(self, item: CopyItem) -> dict[str, Any]:
        return {
            "action": COPY_ACTION,
            "side": "both",
            "bucket": self._job.source_bucket,
            "key": item.source_key,
        }

    # --- stream ----------------------------------------------------------------------------
    def _stream(self, item: CopyItem, requests: RequestLog) -> CopyReport:
        reader, writer = self._clients.source, self._clients.dest
        head = self._head(reader, "source", item, requests) or {}
        tags = self._source_tags(reader, item, head, requests)
        source_etag = item.etag or str(head["ETag"])
        # A streamed single-part copy of a plain-MD5 object keeps its ETag; record it otherwise.
        keeps_etag = is_plain_md5(source_etag) and item.size <= self._stream_part_limit()
        source_sums = full_object_checksums(head)
        algorithm = self._crc_algorithm(source_sums)
        marker = not keeps_etag and needs_source_etag_marker(self._options, source_sums, algorithm)
        params = explicit_params(
            self._job, item, self._options, head, tags, record_source_etag=marker
        )
        result = StreamCopy(
            reader, writer, self._job, item, source_etag, params, algorithm, requests
        ).run(self._pool, self._buffers)
        if not (keeps_etag and self._options.verify):
            verdict = self.verify(writer, item, source_sums, result.crc, algorithm, requests)
            return CopyReport(KeyStatus.COPIED, verdict, streamed=True)
        dest_sums = {algorithm: result.crc} if algorithm and result.crc else {}
        kms = self._options.sse is not None and self._options.sse != "AES256"
        same = compare(source_etag, source_sums, result.etag, dest_sums, kms)
        self._reject_mismatch(writer, item, same, requests)
        return CopyReport(KeyStatus.COPIED, same, streamed=True)

    def _stream_part_limit(self) -> int:
        return self._options.part_size or STREAM_PART_SIZE

    # --- shared ----------------------------------------------------------------------------
    def _crc_algorithm(self, source_sums: Mapping[str, str]) -> str | None:
        """The checksum S3 computes per part: the source's CRC when it has one, to compare."""
        chosen = self._options.checksum_algorithm
        if chosen == "none":
            return None
        if chosen != "auto":
            return chosen
        return next((a for a in CRC_ALGORITHMS if a in source_sums), "CRC64NVME")

    def verify(
        self,
        writer: Side,
        item: CopyItem,
        source_sums: Mapping[str, str],
        crc: str | None,
        algorithm: str | None,
        requests: RequestLog,
    ) -> Verdict | None:
        """Compare the copy's CRC with the source's checksums; a mismatch deletes the copy."""
        if not self._options.verify:
            return None
        dest_sums = {algorithm: crc} if algorithm and crc else {}
        verdict = compare(None, source_sums, None, dest_sums)
        self._reject_mismatch(writer, item, verdict, requests)
        return verdict

    def _reject_mismatch(
        self, writer: Side, item: CopyItem, verdict: Verdict, requests: RequestLog
    ) -> None:
        """A copy that is not the source is removed and reported, never left looking good."""
        if verdict.matches:
            return
        requests.call(writer.client.delete_object, Bucket=self._job.dest_bucket, Key=item.dest_key)
        raise CopyFailed(
            "ChecksumMismatch" if verdict.method.startswith("checksum") else "ETagMismatch",
            f"the copy differs from the source ({verdict.detail}); the bad copy was deleted",
        )

    def _head(
        self,
        side: Side,
        which: str,
        item: CopyItem,
        requests: RequestLog,
        missing_ok: bool = False,
    ) -> Head | None:
        source = which == "source"
        bucket = self._job.source_bucket if source else self._job.dest_bucket
        key = item.source_key if source else item.dest_key
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "ChecksumMode": "ENABLED"}
        if source:
            params.update(source_version(item))
            if item.etag:
                params["IfMatch"] = item.etag
        try:
            head = side.call(
                requests,
                side.client.head_object,
                action="s3:GetObject",
                side=which,
                bucket=bucket,
                key=key,
                **params,
            )
        except ClientError as exc:
            code = error_code(exc)
            if missing_ok and code in MISSING_CODES:
                return None
            if source and code in ("412", "PreconditionFailed"):
                raise CopyFailed("PreconditionFailed", _CHANGED) from exc
            raise
        return dict(head)

    def _source_tags(
        self, side: Side, item: CopyItem, head: Head, requests: RequestLog
    ) -> dict[str, str]:
        if self._options.tagging != "copy" or not head.get("TagCount"):
            return {}
        try:
            response = side.call(
                requests,
                side.client.get_object_tagging,
                action="s3:GetObjectTagging",
                side="source",
                bucket=self._job.source_bucket,
                key=item.source_key,
                Bucket=self._job.source_bucket,
                Key=item.source_key,
                **source_version(item),
            )
        except CopyFailed as denied:
            raise CopyFailed(
                "AccessDenied",
                f"{denied} To copy without tags, pass tagging='none' (--tagging none).",
            ) from denied
        return tag_dict(response.get("TagSet", []))


_CHANGED = (
    "the source object changed after it was listed (its ETag no longer matches); "
    "nothing was written for it — run the copy again to copy the new version"
)
