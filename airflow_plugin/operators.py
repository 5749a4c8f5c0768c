"""S3CrossAccountCopyOperator: copy one key or a whole prefix through the copy worker pool.

The operator holds no copy logic. It validates its arguments, lists the source and sends
chunks by task name through ``copy_control`` (the same code as the CLI), then waits for the
run: in the task (non-deferrable), or in the triggerer (``deferrable=True``, see
``airflow_plugin.triggers``). Worker code is never imported here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_plugin.compat import (
    AirflowException,
    AirflowFailException,
    BaseOperator,
    conf,
    s3_hook,
)
from airflow_plugin.connections import RedisConnectionError, resolve_redis_url, url_has_secret
from airflow_plugin.lineage import operator_lineage
from airflow_plugin.locations import Locations, resolve_locations
from airflow_plugin.progress import DEFAULT_PROGRESS_INTERVAL_S, ProgressLog
from airflow_plugin.runs import attach, cancel_run, close_run, run_id_for
from airflow_plugin.triggers import RunEvent, S3FanoutRunTrigger, listing_stopped
from copy_control.dispatch.pool_listing import submit
from copy_control.dispatch.producer import producer_app
from copy_control.dispatch.runner import control_clients, dry_run, start_run
from copy_control.errors import InvalidRequest
from copy_control.option_spec import (
    BY_NAME,
    OPTIONS,
    PreparedCopy,
    operator_params_doc,
    prepare,
    templated,
    with_options_signature,
)
from copy_control.request import CopyRequest, check_same_request
from copy_control.runs.batch_report import ReportWritten, end_report
from copy_control.runs.waiting import ListingFailed, RunLost, RunTimeout, wait_for_run
from copy_core.aws.clients import ClientFactory
from copy_core.broker import DEFAULT_REDIS_URL
from copy_core.contract import RunStatus, RunSummary
from copy_core.runs.store import RunGone, RunStore, connect

if TYPE_CHECKING:
    import redis

__all__ = ["S3CrossAccountCopyOperator", "run_id_for"]

# Airflow's own deferral timeout is a safety net behind the trigger's deadline (which ends
# the wait with a "timeout" event and a clear message); it fires only if no triggerer ran.
DEFER_GRACE_S = 300


class S3CrossAccountCopyOperator(BaseOperator):  # type: ignore[misc,unused-ignore]
    """Copy ``source_key`` or every key under ``source_prefix`` to the destination bucket.

    Returns the run summary (``RunSummary.to_dict()``) as its XCom value. Guide and examples:
    docs/airflow.md; every copy option: docs/options.md.

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
    :param redis_conn_id: Airflow connection of the worker pool's Redis (broker and run
        store): host, port, login, password, extra ``{"db": 0, "ssl": true, ...}``
    :param redis_url: or its URL (default ``redis://127.0.0.1:6379/0``); with
        ``deferrable=True`` only a URL without a password (use ``redis_conn_id``)
    :param aws_conn_id: Airflow AWS connection used to list the source
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``)
    :param poll_interval: seconds between two readings of the run's progress
    :param progress_interval: seconds between two progress lines in the log
    :param cancel_on_kill: cancel the run when the task is killed (``on_kill``)

    The copy options (``copy_control.option_spec``), as keyword arguments:
    """

    __doc__ = (__doc__ or "") + operator_params_doc()
    template_fields: Sequence[str] = (
        # where from and to
        *("source_bucket", "source_key", "source_prefix", "source_s3_url"),
        *("dest_bucket", "dest_key", "dest_prefix", "dest_s3_url"),
        # connections
        *("redis_conn_id", "redis_url", "aws_conn_id"),
        # the copy options that are templated
        *templated(),
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
        redis_conn_id: str | None = None,
        redis_url: str | None = None,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL_S,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        # The copy options: one attribute each (template fields are rendered on attributes).
        for option in OPTIONS:
            setattr(self, option.operator_attribute, kwargs.pop(option.name, option.default))
        super().__init__(**kwargs)
        self.source_bucket = source_bucket
        self.source_key = source_key
        self.source_prefix = source_prefix
        self.source_s3_url = source_s3_url
        self.dest_bucket = dest_bucket
        self.dest_key = dest_key
        self.dest_prefix = dest_prefix
        self.dest_s3_url = dest_s3_url
        self.redis_conn_id = redis_conn_id
        self.redis_url = redis_url
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval
        self.cancel_on_kill = cancel_on_kill
        # (redis URL, run id) of the run this task drives, and the try, for on_kill.
        self._attached: tuple[str, str] | None = None
        self._try = 1

    # Airflow reads the signature (default_args, partial/expand, the UI's docs): it shows the
    # copy options as keyword-only arguments, though __init__ takes them through **kwargs.
    __init__.__signature__ = with_options_signature(__init__)  # type: ignore[attr-defined]

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

    def prepared(self, owner: str = "") -> PreparedCopy:
        """The validated copy and how to run it; raises InvalidRequest with what to fix."""
        loc = self.locations()
        values = {option.name: self.option(option.name) for option in OPTIONS}
        if values["list_in_pool"] is None:  # deferred, the slot is not held while listing
            values["list_in_pool"] = self.deferrable
        return prepare(values, vars(loc), owner=owner)

    def option(self, name: str) -> Any:
        """The value given for copy option ``name`` (rendered, if it is a template field)."""
        return getattr(self, BY_NAME[name].operator_attribute)

    def build_request(self) -> CopyRequest:
        """The validated copy request; raises InvalidRequest with what to fix."""
        return self.prepared().request

    # --- running -----------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        try:
            ti = context["ti"]
            prepared = self.prepared(owner=f"airflow:{ti.dag_id}.{ti.task_id}")
        except InvalidRequest as exc:  # bad input does not get better with a retry
            raise AirflowFailException(str(exc)) from exc
        request = prepared.request
        if prepared.dry_run:
            return self._plan(request, run_id_for(context))
        url = self._redis_url()
        client = connect(url)
        try:
            store = RunStore(client)
            self._try = int(getattr(ti, "try_number", 1) or 1)
            run_id = self._run_for(client, store, run_id_for(context), request)
            self._attached = (url, run_id)
            found = store.summary(run_id)
            if found is not None and found.is_final:
                self.log.info("Run %s ended (%s): re-attaching to it", run_id, found.status)
                return self._finish(client, found)
            if prepared.list_in_pool:
                self._submit(prepared, run_id, store, url)
            else:
                self._dispatch(prepared, run_id, store, url, resuming=found is not None)
            if self.deferrable:
                self._defer(run_id, prepared)
            return self._finish(client, self._wait(store, run_id, prepared))
        finally:
            client.close()

    def _run_for(
        self, client: redis.Redis, store: RunStore, base: str, request: CopyRequest
    ) -> str:
        """The run this try drives: its task instance's current one, checked to be this copy.

        A run under that id holding another request (the task's arguments changed since it
        started) is never re-attached to, and its summary never reported as this copy's: an
        ended one is closed and the next generation starts; one still going fails the task.
        """
        run_id = attach(client, base, self._try)
        existing = store.run_hash(run_id)
        try:
            check_same_request(existing, request, run_id)
        except InvalidRequest:
            if not RunStatus(existing.get("status", RunStatus.RUNNING)).is_final:
                raise AirflowFailException(
                    f"Run {run_id} of this task instance is still copying another request "
                    "(the task's arguments changed since it started): cancel it "
                    f"(s3fanout cancel {run_id}) or let it end, then clear the task"
                ) from None
            self.log.info("Run %s ended and was another request: starting a new run", run_id)
            close_run(client, run_id)
            run_id = attach(client, base, self._try)
        return run_id

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
        status = cancel_run(url, run_id, self._try)
        self.log.info("Run %s: cancellation requested (status %s)", run_id, status)

    def conclude(self, summary: RunSummary) -> dict[str, Any]:
        """Log the metrics line, fail the task if the run failed, return the XCom summary.

        A failed or cancelled run fails the task with AirflowFailException: a retry would
        re-attach to the same finished run, so it cannot help.
        """
        self.log.info("%s", json.dumps({"event": "s3fanout.metrics", **summary.to_dict()}))
        limit = self.option("max_failures")
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
        # The completion report is written first: a failed run's report matters most.
        written = self._write_report(RunStore(client), summary.run_id)
        # The outcome is reported now: the next execution of this task instance (a clear)
        # starts a new run instead of replaying this one.
        close_run(client, summary.run_id)
        result = self.conclude(summary)
        if written is not None:
            result["report"] = dataclasses.asdict(written)
        return result

    def _write_report(self, store: RunStore, run_id: str) -> ReportWritten | None:
        """The run's completion report (``report=``), finished with the destination's
        identity: the manifest and the failed keys' shards."""
        if self.option("report") is None:
            return None
        request = self.build_request()
        _, dest_s3 = control_clients(request, run_id, self._client_factory())
        ended = end_report(store, run_id, dest_s3, request.report)
        if ended.line is not None:
            (self.log.error if ended.failed else self.log.info)("Run %s: %s", run_id, ended.line)
        return ended.written

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
        self, prepared: PreparedCopy, run_id: str, store: RunStore, url: str, *, resuming: bool
    ) -> None:
        request = prepared.request
        try:
            s3, dest_s3 = control_clients(request, run_id, self._client_factory())
            app = producer_app(url)
            report = start_run(request, run_id, s3, store, app, prepared.controls, dest_s3=dest_s3)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        except RunGone as exc:  # lost while listing: a retry starts the copy again
            raise AirflowException(str(RunLost(run_id))) from exc
        what = "re-attached to the run in progress" if resuming else "started"
        self.log.info("Run %s %s: %d chunks dispatched", run_id, what, report.chunks_sent)

    def _submit(self, prepared: PreparedCopy, run_id: str, store: RunStore, url: str) -> None:
        try:
            submit(prepared.request, run_id, store, producer_app(url), prepared.controls)
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("Run %s handed to the pool: a worker lists and dispatches it", run_id)

    def _defer(self, run_id: str, prepared: PreparedCopy) -> None:
        timeout = prepared.timeout_s
        trigger = S3FanoutRunTrigger(
            run_id=run_id,
            redis_conn_id=self.redis_conn_id or None,
            redis_url=None if self.redis_conn_id else (self.redis_url or DEFAULT_REDIS_URL),
            poll_interval=self.poll_interval,
            progress_interval=self.progress_interval,
            deadline=None if timeout is None else time.time() + timeout,
            cancel_on_kill=self.cancel_on_kill,
            listed_by_worker=prepared.list_in_pool,
            try_number=self._try,
        )
        self.log.info(
            "Run %s: deferring until it ends (`s3fanout cancel %s` stops it)", run_id, run_id
        )
        limit = None if timeout is None else timedelta(seconds=timeout + DEFER_GRACE_S)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=limit)

    def _wait(self, store: RunStore, run_id: str, prepared: PreparedCopy) -> RunSummary:
        try:
            return wait_for_run(
                store,
                run_id,
                poll_s=self.poll_interval,
                timeout_s=prepared.timeout_s,
                on_progress=ProgressLog(self.log, self.progress_interval),
                listed_by_worker=prepared.list_in_pool,
                started_here=True,
            )
        except RunTimeout as exc:
            raise AirflowException(self._timeout_message(run_id)) from exc
        except RunLost as exc:  # a retry starts the copy again
            raise AirflowException(str(exc)) from exc
        except ListingFailed as exc:  # worded as the deferred wait words it: a retry resumes
            raise AirflowException(f"Run {run_id}: {listing_stopped(exc.reason)}") from exc
        except InvalidRequest as exc:
            if prepared.list_in_pool:  # bad input the listing worker found
                raise AirflowFailException(str(exc)) from exc
            raise AirflowException(str(exc)) from exc  # the run vanished from Redis

    def _timeout_message(self, run_id: str) -> str:
        return (
            f"Run {run_id} had not ended after timeout={self.option('timeout')} s. It goes on: "
            f"a retry of this task re-attaches to it, and `s3fanout cancel {run_id}` stops it."
        )

    def _plan(self, request: CopyRequest, run_id: str) -> dict[str, Any]:
        """Count what the copy would do; nothing is dispatched, recorded or copied."""
        try:
            report = dry_run(request, *control_clients(request, run_id, self._client_factory()))
        except InvalidRequest as exc:
            raise AirflowFailException(str(exc)) from exc
        result = report.to_dict()
        self.log.info("%s", json.dumps({"event": "s3fanout.dry_run", **result}))
        return result

    def _client_factory(self) -> ClientFactory:
        """S3 clients for listing: the connection's credentials, or roles assumed from them.

        Every client (S3, and STS for the roles) is built as the connection says: its
        endpoint per service (``service_config``, else ``endpoint_url``), region, botocore
        config (proxies included) and TLS verification, like the clients of AwsBaseHook.
        Listing threads and HeadObject threads share a client, hence a pool larger than
        boto3's 10.
        """
        hook = s3_hook(self.aws_conn_id)
        connection = hook.conn_config

        def service_options(service: str) -> dict[str, Any]:
            options: dict[str, Any] = {
                "endpoint_url": connection.get_service_endpoint_url(service),
                "config": hook.config,
            }
            if hook.verify is not None:
                options["verify"] = hook.verify
            return options

        return ClientFactory(
            base_session=hook.get_session(),
            region_name=hook.conn_region_name,
            max_pool_connections=64,
            service_options=service_options,
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
