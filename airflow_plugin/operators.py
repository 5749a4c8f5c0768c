"""S3CrossAccountCopyOperator: copy one key or a whole prefix through the copy worker pool.

The operator holds no copy logic. It validates its arguments, lists the source and sends
chunks by task name through ``copy_control`` (the same code as the CLI), then waits for the
run by reading Redis. Worker code is never imported here.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

from airflow_plugin.compat import AirflowException, AirflowFailException, BaseOperator, S3Hook
from copy_control.dispatch import producer_app
from copy_control.request import CopyRequest, InvalidRequest, build_options
from copy_control.runner import start_run, wait_for_run
from copy_control.units import parse_size
from copy_workers.aws import ClientFactory
from copy_workers.contract import RunStatus, RunSummary
from copy_workers.runstate import RunStore, connect
from copy_workers.settings import DEFAULT_REDIS_URL

PROGRESS_EVERY_S = 30.0


def run_id_for(context: Any) -> str:
    """A run id that is the same for every try of one task instance.

    Derived from dag, task, Airflow run and map index, so a retried task finds its run
    again instead of starting another.
    """
    ti = context["ti"]
    ident = f"{ti.dag_id}\0{ti.task_id}\0{ti.run_id}\0{getattr(ti, 'map_index', -1)}"
    return f"af-{hashlib.sha256(ident.encode()).hexdigest()[:24]}"


class S3CrossAccountCopyOperator(BaseOperator):
    """Copy ``source_key`` or every key under ``source_prefix`` to the destination bucket.

    :param source_bucket: bucket to copy from
    :param source_key: one object to copy (or give ``source_prefix``)
    :param source_prefix: copy every object under this prefix, recursively
    :param dest_bucket: bucket to copy to
    :param dest_key: destination key of a single-object copy
    :param dest_prefix: destination prefix; a prefix copy maps source_prefix + rest to
        dest_prefix + rest, a single key goes to dest_prefix + its basename
    :param chunk_size: keys per worker task
    :param max_failures: failed keys tolerated before the task fails (None: no limit)
    :param redis_url: the Redis of the worker pool (broker and run store)
    :param aws_conn_id: Airflow AWS connection used to list the source
    :param poll_interval: seconds between two readings of the run's progress
    :param timeout: seconds to wait for the run before the task fails (None: no limit)
    :param overwrite: "always", "if-different" (skip objects already copied) or "never"
    :param multipart_threshold: objects above this size (bytes or "256MiB") are copied in parts
    :param part_size: part size for multipart copies (default: chosen by object size)
    :param metadata_directive: "COPY" (keep the source's) or "REPLACE" (use ``metadata``)
    :param metadata: user metadata for REPLACE
    :param tagging: "copy", "none" or "replace" (use ``tags``)
    :param tags: tags for "replace"
    :param storage_class: destination storage class (default: the source's)
    :param acl: canned ACL such as "bucket-owner-full-control" (default: none)
    :param sse: "AES256" or "aws:kms" (default: the destination bucket's encryption)
    :param sse_kms_key_id: the destination account's KMS key, with sse="aws:kms"
    :param checksum_algorithm: "auto" (the source's), "CRC64NVME", "CRC32C", ... or "none"
    :param verify: compare checksums or ETags of source and copy (default True)
    :param source_role_arn: role the workers assume to read the source (the operator lists
        with it too, from the ``aws_conn_id`` connection's credentials)
    :param dest_role_arn: role the workers assume to write the destination
    :param external_id: sts:ExternalId the roles' trust policies require
    :param session_duration: seconds per STS session; renewed before they expire
    :param copy_mode: "server_side", "stream" or "auto"
    """

    template_fields: Sequence[str] = (
        "source_bucket",
        "source_key",
        "source_prefix",
        "dest_bucket",
        "dest_key",
        "dest_prefix",
        "redis_url",
        "overwrite",
        "metadata",
        "tags",
        "storage_class",
        "sse_kms_key_id",
        "source_role_arn",
        "dest_role_arn",
        "external_id",
        "copy_mode",
    )
    ui_color = "#ff9900"

    def __init__(
        self,
        *,
        source_bucket: str,
        dest_bucket: str,
        source_key: str | None = None,
        source_prefix: str | None = None,
        dest_key: str | None = None,
        dest_prefix: str | None = None,
        chunk_size: int = 500,
        max_failures: int | None = 0,
        redis_url: str = DEFAULT_REDIS_URL,
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 2.0,
        timeout: float | None = None,
        overwrite: str = "always",
        multipart_threshold: int | str = "256MiB",
        part_size: int | str | None = None,
        metadata_directive: str = "COPY",
        metadata: dict[str, str] | None = None,
        tagging: str = "copy",
        tags: dict[str, str] | None = None,
        storage_class: str | None = None,
        acl: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        checksum_algorithm: str = "auto",
        verify: bool = True,
        source_role_arn: str | None = None,
        dest_role_arn: str | None = None,
        external_id: str | None = None,
        session_duration: int = 3600,
        copy_mode: str = "server_side",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.source_key = source_key
        self.source_prefix = source_prefix
        self.dest_bucket = dest_bucket
        self.dest_key = dest_key
        self.dest_prefix = dest_prefix
        self.chunk_size = chunk_size
        self.max_failures = max_failures
        self.redis_url = redis_url
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.overwrite = overwrite
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.metadata_directive = metadata_directive
        self.metadata = metadata or {}
        self.tagging = tagging
        self.tags = tags or {}
        self.storage_class = storage_class
        self.acl = acl
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id
        self.checksum_algorithm = checksum_algorithm
        self.verify = verify
        self.source_role_arn = source_role_arn
        self.dest_role_arn = dest_role_arn
        self.external_id = external_id
        self.session_duration = session_duration
        self.copy_mode = copy_mode

    def build_request(self) -> CopyRequest:
        """The validated copy request; raises InvalidRequest with what to fix."""
        return CopyRequest(
            source_bucket=self.source_bucket,
            dest_bucket=self.dest_bucket,
            source_key=self.source_key,
            source_prefix=self.source_prefix,
            dest_key=self.dest_key,
            dest_prefix=self.dest_prefix,
            chunk_size=self.chunk_size,
            max_failures=self.max_failures,
            options=build_options(
                overwrite=self.overwrite,
                multipart_threshold=parse_size(self.multipart_threshold, "multipart_threshold"),
                part_size=parse_size(self.part_size, "part_size") if self.part_size else None,
                metadata_directive=self.metadata_directive,
                metadata=self.metadata,
                tagging=self.tagging,
                tags=self.tags,
                storage_class=self.storage_class,
                acl=self.acl,
                sse=self.sse,
                sse_kms_key_id=self.sse_kms_key_id,
                checksum_algorithm=self.checksum_algorithm,
                verify=self.verify,
            ),
            source_role_arn=self.source_role_arn or None,
            dest_role_arn=self.dest_role_arn or None,
            external_id=self.external_id or None,
            session_duration_s=self.session_duration,
            copy_mode=self.copy_mode,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        run_id = run_id_for(context)
        store = RunStore(connect(self.redis_url))
        try:
            request = self.build_request()
            s3 = self._listing_client(request, run_id)
            report = start_run(request, run_id, s3, store, producer_app(self.redis_url))
        except InvalidRequest as exc:
            # Bad input does not get better with a retry.
            raise AirflowFailException(str(exc)) from exc
        self.log.info(
            "Run %s: %d chunks dispatched (resumed: %s)", run_id, report.chunks_sent, report.resumed
        )
        summary = wait_for_run(
            store,
            run_id,
            poll_s=self.poll_interval,
            timeout_s=self.timeout,
            on_progress=_ProgressLog(self.log),
        )
        return self.report(summary)

    def _listing_client(self, request: CopyRequest, run_id: str) -> Any:
        """S3 client for listing: the connection's, or the source role assumed from it."""
        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        if request.source_role_arn is None:
            return hook.get_conn()
        factory = ClientFactory(
            base_session=hook.get_session(),
            endpoint_url=hook.conn_config.endpoint_url,
            region_name=hook.conn_region_name,
        )
        return factory.s3(request.listing_identity(run_id))

    def report(self, summary: RunSummary) -> dict[str, Any]:
        """Log the metrics line, fail the task if the run failed, return the XCom summary."""
        self.log.info("%s", json.dumps({"event": "s3fanout.metrics", **summary.to_dict()}))
        limit = self.max_failures
        if summary.status == RunStatus.CANCELLED:
            raise AirflowException(f"Run {summary.run_id} was cancelled")
        if summary.status == RunStatus.FAILED or (
            limit is not None and summary.objects_failed > limit
        ):
            shown = "; ".join(
                f"{f['key']}: {f['error_code']}: {f['message']}" for f in summary.failures[:10]
            )
            raise AirflowException(
                f"Run {summary.run_id}: {summary.objects_failed} keys failed "
                f"(max_failures={limit}): {shown}"
            )
        return summary.to_dict()


class _ProgressLog:
    """Logs a progress line at most every PROGRESS_EVERY_S seconds."""

    def __init__(self, logger: Any) -> None:
        self._log = logger
        self._last = 0.0

    def __call__(self, summary: RunSummary) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_S and not summary.is_final:
            return
        self._last = now
        self._log.info(
            "Run %s %s: %d/%d objects done (%d failed), %d bytes copied",
            summary.run_id,
            summary.status,
            summary.objects_copied + summary.objects_skipped + summary.objects_failed,
            summary.objects_listed,
            summary.objects_failed,
            summary.bytes_copied,
        )
