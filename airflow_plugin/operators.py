"""S3CrossAccountCopyOperator: copy one key or a whole prefix through the copy worker pool.

The operator holds no copy logic. It validates its arguments, lists the source and sends
chunks by task name through ``copy_control`` (the same code as the CLI), then waits for the
run: in the task (non-deferrable), or in the triggerer (``deferrable=True``, see
``airflow_plugin.triggers``). Worker code is never imported here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_plugin.compat import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    S3Hook,
    conf,
)
from airflow_plugin.connections import RedisConnectionError, resolve_redis_url, url_has_secret
from airflow_plugin.lineage import operator_lineage
from airflow_plugin.locations import Locations, resolve_locations
from airflow_plugin.progress import DEFAULT_PROGRESS_INTERVAL_S, ProgressLog
from airflow_plugin.runs import cancel_run, close_run, current_run_id, run_id_for
from airflow_plugin.triggers import RunEvent, S3FanoutRunTrigger, listing_stopped
from copy_control.dispatch.pool_listing import submit
from copy_control.dispatch.producer import producer_app
from copy_control.dispatch.runner import dry_run, start_run
from copy_control.errors import InvalidRequest
from copy_control.request import DEFAULT_LISTING_CONCURRENCY, CopyRequest, build_options
from copy_control.runs.waiting import ListingFailed, RunTimeout, wait_for_run
from copy_control.selection import build_selection
from copy_control.units import parse_size
from copy_core.aws.clients import ClientFactory
from copy_core.broker import DEFAULT_REDIS_URL
from copy_core.contract import RunStatus, RunSummary
from copy_core.options import DEFAULT_PARTS_PER_TASK, DEFAULT_SPLIT_THRESHOLD
from copy_core.runs.store import RunStore, connect

if TYPE_CHECKING:
    import redis

__all__ = ["S3CrossAccountCopyOperator", "run_id_for"]

# Airflow's own deferral timeout is a safety net behind the trigger's deadline (which ends
# the wait with a "timeout" event and a clear message); it fires only if no triggerer ran.
DEFER_GRACE_S = 300


class S3CrossAccountCopyOperator(BaseOperator):  # type: ignore[misc,unused-ignore]
    """Copy ``source_key`` or every key under ``source_prefix`` to the destination bucket.

    Returns the run summary (``RunSummary.to_dict()``) as its XCom value. The parameters,
    with examples, are in docs/airflow.md.

    :param source_bucket: bucket to copy from (or give ``source_s3_url``)
    :param source_key: one object to copy (or give ``source_prefix``)
    :param source_prefix: copy every object under this prefix, recursively
    :param source_s3_url: ``s3://bucket/key``, or ``s3://bucket/prefix/`` (ends in "/")
    :param dest_bucket: bucket to copy to (or give ``dest_s3_url``)
    :param dest_key: destination key of a single-object copy
    :param dest_prefix: destination prefix; a prefix copy maps source_prefix + rest to
        dest_prefix + rest, a single key goes to dest_prefix + its basename
    :param dest_s3_url: ``s3://bucket/prefix`` (a single key: the new key, or a prefix if it
        ends in "/")
    :param chunk_size: keys per worker task
    :param max_failures: failed keys tolerated before the task fails (None: no limit)
    :param redis_conn_id: Airflow connection of the worker pool's Redis (broker and run
        store): host, port, login, password, extra ``{"db": 0, "ssl": true, ...}``
    :param redis_url: or its URL (default ``redis://127.0.0.1:6379/0``); with
        ``deferrable=True`` only a URL without a password (use ``redis_conn_id``)
    :param aws_conn_id: Airflow AWS connection used to list the source
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``)
    :param poll_interval: seconds between two readings of the run's progress
    :param progress_interval: seconds between two progress lines in the log
    :param timeout: seconds to wait for the run before the task fails (None: no limit); the
        run goes on, and a retry of the task re-attaches to it
    :param cancel_on_kill: cancel the run when the task is killed (``on_kill``)
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
    :param split_threshold: server-side copies above this size (bytes or "4GiB") are split:
        their parts go to several workers, and the one finishing last completes the object
    :param parts_per_task: parts per task of a split object
    :param manifest: ``s3://bucket/key`` of a CSV (``bucket,key``) or an S3 Inventory
        ``manifest.json`` naming the keys to copy, instead of listing the source prefix
    :param include: glob(s) on the key below the source prefix; only matching keys are copied
    :param exclude: glob(s) of keys left out (excludes win over includes)
    :param min_size: smallest object copied (bytes or "1MiB"); ``max_size``: the largest
    :param modified_after: copy objects last modified at or after this time (ISO 8601);
        ``modified_before``: before it
    :param dry_run: list, filter and plan, and return what would be copied; copies nothing
    :param list_in_pool: a worker lists the source and dispatches the chunks (as
        ``s3fanout copy --list-in-pool``): the task waits (or defers) at once instead of
        listing millions of keys in its slot, and needs no AWS connection; bad input the worker
        finds fails the task like bad input found here. A dry run still lists in the task.
    :param listing_concurrency: key ranges (or manifest files) listed at once
    :param source_role_arn: role the workers assume to read the source (the operator lists
        with it too, from the ``aws_conn_id`` connection's credentials)
    :param dest_role_arn: role the workers assume to write the destination
    :param external_id: sts:ExternalId the roles' trust policies require
    :param session_duration: seconds per STS session; renewed before they expire
    :param copy_mode: "server_side", "stream" or "auto"
    """

    template_fields: Sequence[str] = (
        # where from and to
        *("source_bucket", "source_key", "source_prefix", "source_s3_url"),
        *("dest_bucket", "dest_key", "dest_prefix", "dest_s3_url"),
        # connections and roles
        *("redis_conn_id", "redis_url", "aws_conn_id"),
        *("source_role_arn", "dest_role_arn", "external_id", "copy_mode"),
        # copy options
        *("overwrite", "multipart_threshold", "part_size", "metadata_directive", "metadata"),
        *("tagging", "tags", "storage_class", "acl", "sse", "sse_kms_key_id"),
        "checksum_algorithm",
        "split_threshold",
        "manifest",
        "include",
        "exclude",
        "min_size",
        "max_size",
        "modified_after",
        "modified_before",
    )
    ui_color = "#ff9900"

    def __init__(
        self,
        *,
        source_bucket: str | None = None,
        dest_bucket: str | None = None,
        source_key: str | None = None,
        source_prefix: str | None = None,
        dest_key: str | None = None,
        dest_prefix: str | None = None,
        source_s3_url: str | None = None,
        dest_s3_url: str | None = None,
        chunk_size: int = 500,
        max_failures: int | None = 0,
        redis_conn_id: str | None = None,
        redis_url: str | None = None,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL_S,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
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
        split_threshold: int | str = DEFAULT_SPLIT_THRESHOLD,
        parts_per_task: int = DEFAULT_PARTS_PER_TASK,
        manifest: str | None = None,
        include: list[str] | str | None = None,
        exclude: list[str] | str | None = None,
        min_size: int | str | None = None,
        max_size: int | str | None = None,
        modified_after: str | datetime | None = None,
        modified_before: str | datetime | None = None,
        dry_run: bool = False,
        list_in_pool: bool = False,
        listing_concurrency: int = DEFAULT_LISTING_CONCURRENCY,
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
        self.source_s3_url = source_s3_url
        self.dest_bucket = dest_bucket
        self.dest_key = dest_key
        self.dest_prefix = dest_prefix
        self.dest_s3_url = dest_s3_url
        self.chunk_size = chunk_size
        self.max_failures = max_failures
        self.redis_conn_id = redis_conn_id
        self.redis_url = redis_url
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.timeout = timeout
        self.cancel_on_kill = cancel_on_kill
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
        self.split_threshold = split_threshold
        self.parts_per_task = parts_per_task
        self.manifest = manifest
        self.include = include
        self.exclude = exclude
        self.min_size = min_size
        self.max_size = max_size
        self.modified_after = modified_after
        self.modified_before = modified_before
        # BaseOperator has a dry_run() method of its own: keep the flag under another name.
        self.plan_only = dry_run
        self.list_in_pool = list_in_pool
        self.listing_concurrency = listing_concurrency
        self.source_role_arn = source_role_arn
        self.dest_role_arn = dest_role_arn
        self.external_id = external_id
        self.session_duration = session_duration
        self.copy_mode = copy_mode
        # (redis URL, run id) of the run this task drives, for on_kill.
        self._attached: tuple[str, str] | None = None

    # --- the copy request ------------------------------------------------------------------
    def locations(self) -> Locations:
        """Source and destination from bucket/key/prefix or s3:// URL arguments."""
        return resolve_locations(
            source_bucket=self.source_bucket,
            source_key=self.source_key,
            source_prefix=self.source_prefix,
            source_s3_url=self.source_s3_url,
            dest_bucket=self.dest_bucket,
            dest_key=self.dest_key,
            dest_prefix=self.dest_prefix,
            dest_s3_url=self.dest_s3_url,
        )

    def build_request(self) -> CopyRequest:
        """The validated copy request; raises InvalidRequest with what to fix."""
        loc = self.locations()
        return CopyRequest(
            source_bucket=loc.source_bucket,
            dest_bucket=loc.dest_bucket,
            source_key=loc.source_key,
            source_prefix=loc.source_prefix,
            dest_key=loc.dest_key,
            dest_prefix=loc.dest_prefix,
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
                storage_class=self.storage_class or None,
                acl=self.acl or None,
                sse=self.sse or None,
                sse_kms_key_id=self.sse_kms_key_id or None,
                checksum_algorithm=self.checksum_algorithm,
                verify=self.verify,
                split_threshold=parse_size(self.split_threshold, "split_threshold"),
                parts_per_task=self.parts_per_task,
            ),
            source_role_arn=self.source_role_arn or None,
            dest_role_arn=self.dest_role_arn or None,
            external_id=self.external_id or None,
            session_duration_s=self.session_duration,
            copy_mode=self.copy_mode,
            manifest=self.manifest or None,
            selection=build_selection(
                include=self.include,
                exclude=self.exclude,
                min_size=self.min_size,
                max_size=self.max_size,
                modified_after=self.modified_after,
                modified_before=self.modified_before,
            ),
            listing_concurrency=self.listing_concurrency,
        )

    # --- running -----------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        try:
            request = self.build_request()
        except InvalidRequest as exc:  # bad input does not get better with a retry
            raise AirflowFailException(str(exc)) from exc
        if self.plan_only:
            return self._plan(request, run_id_for(context))
        url = self._redis_url()
        client = connect(url)
        try:
            store = RunStore(client)
            run_id = current_run_id(client, run_id_for(context))
            self._attached = (url, run_id)
            found = store.summary(run_id)
            if found is not None and found.is_final:
                self.log.info("Run %s ended (%s): re-attaching to it", run_id, found.status)
                return self._finish(client, found)
            if self.list_in_pool:
                self._submit(request, run_id, store, url)
            else:
                self._dispatch(request, run_id, store, url, resuming=found is not None)
            if self.deferrable:
                self._defer(run_id)
            return self._finish(client, self._wait(store, run_id))
        finally:
            client.close()

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: validate its event, then report like ``execute``."""
        try:
            result = RunEvent.from_payload(event)
        except ValueError as exc:
            raise AirflowException(f"unexpected event from the trigger: {exc}") from exc
        if result.status == "timeout":
            raise AirflowException(self._timeout_message(result.run_id))
        if result.status == "error":
            raise AirflowException(f"Run {result.run_id}: {result.message}")
        if result.status == "invalid":  # the listing worker found bad input: no retry helps
            raise AirflowFailException(f"Run {result.run_id}: {result.message}")
        assert result.summary is not None  # from_payload guarantees it for final statuses
        url = self._redis_url()
        self._attached = (url, result.run_id)
        client = connect(url)
        try:
            return self._finish(client, result.summary)
        finally:
            client.close()

    def on_kill(self) -> None:
        """Cancel the run this task drives: queued chunks are dropped, nothing new starts."""
        if self._attached is None or not self.cancel_on_kill:
            return
        url, run_id = self._attached
        status = cancel_run(url, run_id)
        self.log.info("Run %s: cancellation requested (status %s)", run_id, status)

    def report(self, summary: RunSummary) -> dict[str, Any]:
        """Log the metrics line, fail the task if the run failed, return the XCom summary.

        A failed or cancelled run fails the task with AirflowFailException: a retry would
        re-attach to the same finished run, so it cannot help.
        """
        self.log.info("%s", json.dumps({"event": "s3fanout.metrics", **summary.to_dict()}))
        limit = self.max_failures
        if summary.status == RunStatus.CANCELLED:
            raise AirflowFailException(
                f"Run {summary.run_id} was cancelled: {summary.objects_copied} copied, "
                f"{summary.objects_cancelled} not copied"
            )
        if summary.status == RunStatus.FAILED or (
            limit is not None and summary.objects_failed > limit
        ):
            shown = "; ".join(
                f"{f['key']}: {f['error_code']}: {f['message']}" for f in summary.failures[:10]
            )
            raise AirflowFailException(
                f"Run {summary.run_id}: {summary.objects_failed} keys failed "
                f"(max_failures={limit}): {shown}"
            )
        return summary.to_dict()

    def _finish(self, client: redis.Redis, summary: RunSummary) -> dict[str, Any]:
        # The outcome is reported now: the next execution of this task instance (a clear)
        # starts a new run instead of replaying this one.
        close_run(client, summary.run_id)
        return self.report(summary)

    def _redis_url(self) -> str:
        if self.redis_conn_id and self.redis_url:
            raise AirflowFailException("give redis_conn_id or redis_url, not both")
        if self.deferrable and self.redis_url and url_has_secret(self.redis_url):
            raise AirflowFailException(
                "redis_url holds a password, and a deferred task's trigger arguments are "
                "stored in Airflow's database: with deferrable=True use redis_conn_id"
            )
        try:
            return resolve_redis_url(self.redis_conn_id, self.redis_url)
        except RedisConnectionError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _dispatch(
        self, request: CopyRequest, run_id: str, store: RunStore, url: str, *, resuming: bool
    ) -> None:
        try:
            s3 = self._client_factory().s3(request.listing_identity(run_id))
            report = start_run(request, run_id, s3, store, producer_app(url))
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        what = "re-attached to the run in progress" if resuming else "started"
        self.log.info("Run %s %s: %d chunks dispatched", run_id, what, report.chunks_sent)

    def _submit(self, request: CopyRequest, run_id: str, store: RunStore, url: str) -> None:
        try:
            submit(request, run_id, store, producer_app(url))
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("Run %s handed to the pool: a worker lists and dispatches it", run_id)

    def _defer(self, run_id: str) -> None:
        trigger = S3FanoutRunTrigger(
            run_id=run_id,
            redis_conn_id=self.redis_conn_id or None,
            redis_url=None if self.redis_conn_id else (self.redis_url or DEFAULT_REDIS_URL),
            poll_interval=self.poll_interval,
            progress_interval=self.progress_interval,
            deadline=None if self.timeout is None else time.time() + self.timeout,
            cancel_on_kill=self.cancel_on_kill,
            listed_by_worker=self.list_in_pool,
        )
        self.log.info(
            "Run %s: deferring until it ends (`s3fanout cancel %s` stops it)", run_id, run_id
        )
        limit = None if self.timeout is None else timedelta(seconds=self.timeout + DEFER_GRACE_S)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=limit)

    def _wait(self, store: RunStore, run_id: str) -> RunSummary:
        try:
            return wait_for_run(
                store,
                run_id,
                poll_s=self.poll_interval,
                timeout_s=self.timeout,
                on_progress=ProgressLog(self.log, self.progress_interval),
                listed_by_worker=self.list_in_pool,
            )
        except RunTimeout as exc:
            raise AirflowException(self._timeout_message(run_id)) from exc
        except ListingFailed as exc:  # worded as the deferred wait words it: a retry resumes
            raise AirflowException(f"Run {run_id}: {listing_stopped(exc.reason)}") from exc
        except InvalidRequest as exc:
            if self.list_in_pool:  # bad input the listing worker found
                raise AirflowFailException(str(exc)) from exc
            raise AirflowException(str(exc)) from exc  # the run vanished from Redis

    def _timeout_message(self, run_id: str) -> str:
        return (
            f"Run {run_id} had not ended after timeout={self.timeout} s. It goes on: a retry "
            f"of this task re-attaches to it, and `s3fanout cancel {run_id}` stops it."
        )

    def _plan(self, request: CopyRequest, run_id: str) -> dict[str, Any]:
        """Count what the copy would do; nothing is dispatched, recorded or copied."""
        factory = self._client_factory()
        try:
            report = dry_run(
                request,
                factory.s3(request.listing_identity(run_id)),
                factory.s3(request.dest_identity(run_id)),
            )
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        result = report.to_dict()
        self.log.info("%s", json.dumps({"event": "s3fanout.dry_run", **result}))
        return result

    def _client_factory(self) -> ClientFactory:
        """S3 clients for listing: the connection's credentials, or roles assumed from them.

        Listing threads and HeadObject threads share a client, hence a pool larger than
        boto3's 10.
        """
        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        return ClientFactory(
            base_session=hook.get_session(),
            endpoint_url=hook.conn_config.endpoint_url,
            region_name=hook.conn_region_name,
            max_pool_connections=64,
        )

    # --- OpenLineage (used only when the OpenLineage provider is installed) ------------------
    def get_openlineage_facets_on_start(self) -> Any:
        """Input and output datasets: ``s3://bucket`` with the key or prefix as the name."""
        try:
            loc: Locations | None = self.locations()
        except InvalidRequest:
            loc = None
        return operator_lineage(loc)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The same datasets as on start: a copy reads and writes what it was given."""
        return self.get_openlineage_facets_on_start()
