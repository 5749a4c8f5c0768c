"""Starting a copy: list, plan and dispatch a run. Shared by the CLI, the operator and workers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from copy_control.dispatch.admission import Admission
from copy_control.dispatch.deletes import DeletePhase, plan_deletes
from copy_control.dispatch.dry_run import DestState, DryRunReport, DryRunSink, count_deletes
from copy_control.dispatch.fanout import Fanout, PartitionLog, Sink
from copy_control.dispatch.listing_log import ListingLog, MemoryLog
from copy_control.dispatch.planning import Plan
from copy_control.dispatch.sender import ChunkSender
from copy_control.errors import InvalidRequest
from copy_control.listing.bucket_settings import check_run, settle_run
from copy_control.listing.fastlist import speed_up_listing
from copy_control.listing.manifest import ManifestError
from copy_control.listing.partitions import Partition
from copy_control.listing.sources import (
    KeySource,
    ListingOrderError,
    ManifestSource,
    PrefixSource,
    Source,
    VersionSource,
)
from copy_control.request import CopyRequest, check_same_request
from copy_control.selection import Selection, Selector
from copy_core.contract import DELETE_PARTITION, RunStatus, canonical_json
from copy_core.pool import PoolRegistry
from copy_core.runs.controls import RunControls
from copy_core.runs.store import RunStore

if TYPE_CHECKING:
    from celery import Celery
    from mypy_boto3_s3 import S3Client

    from copy_core.aws.clients import ClientFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchReport:
    """What ``start_run`` did."""

    run_id: str
    status: str
    chunks_sent: int
    resumed: bool


def control_clients(
    request: CopyRequest, run_id: str, factory: ClientFactory
) -> tuple[S3Client, S3Client]:
    """The control plane's clients: the source's (listing identity) and the destination's.

    Both send the run's request payer, as its workers' do.
    """
    payer = request.options.request_payer
    return (
        factory.s3(request.listing_identity(run_id), request_payer=payer),
        factory.s3(request.dest_identity(run_id), request_payer=payer),
    )


def start_run(
    request: CopyRequest,
    run_id: str,
    s3: S3Client,
    store: RunStore,
    app: Celery,
    controls: RunControls | None = None,
    on_created: Callable[[], None] = lambda: None,
    dest_s3: S3Client | None = None,
) -> DispatchReport:
    """Create (or resume) run ``run_id``: list the source and dispatch its chunks.

    The source is read before the run is created, so a missing bucket, key or manifest fails
    here with InvalidRequest and nothing is recorded or dispatched. A run that already exists
    is resumed from its partitions' cursors; a finished one is left as it is. ``controls``:
    the run's priority, rate caps and owner (set when it is created); ``on_created`` is
    called once the run is recorded, before its listing begins. ``dest_s3`` reads the
    destination bucket's settings (default: ``s3``).
    """
    controls = controls or RunControls()
    existing = store.run_hash(run_id)
    check_same_request(existing, request, run_id)
    source = open_source(request, s3)
    try:
        job = existing.get("job", "")  # a run that exists keeps the job it was created with
        if existing:
            source.check()  # raises InvalidRequest for bad input, before any write
        else:  # the source's check and both buckets' reads, at once
            settled = settle_run(request, request.job(run_id), s3, dest_s3 or s3, source.check)
            job = canonical_json(settled.to_wire())
        status = store.create_run(
            run_id, request.describe(), request.max_failures, job=job, controls=controls
        )
        PoolRegistry(store.client).add_run(run_id)
        on_created()
        if RunStatus(status).is_final or existing.get("listing_done") == "1":
            return DispatchReport(run_id, status, 0, resumed=bool(existing))
        partition_log = ListingLog(store, run_id)
        recorded = [p for p in partition_log.load() if p.pid != DELETE_PARTITION]
        partitions = recorded or _first_partitions(source, partition_log)
        with Admission(store, run_id, controls.weight) as admission:
            sender = ChunkSender(app, store, run_id, partition_log, admission)
            listed = _dispatch_partitions(
                request, source, partitions, sender, partition_log, store, run_id, bool(recorded)
            )
        if listed and request.delete_extraneous:
            phase = DeletePhase(store, run_id, partition_log, request.max_delete)
            phase.run(request, s3, dest_s3 or s3)
    finally:
        source.close()
    final = store.finish_listing(run_id) or status
    log.info("dispatched %d chunks of run %s", sender.sent, run_id)
    return DispatchReport(run_id, final, sender.sent, resumed=bool(existing))


def dry_run(request: CopyRequest, s3: S3Client, dest_s3: S3Client) -> DryRunReport:
    """List, filter and plan like ``start_run``, and count what the copy would do.

    Copies, dispatches and records nothing. ``dest_s3`` reads the destination (a listing per
    chunk, HeadObject where the overwrite policy needs it).
    """
    source = open_source(request, s3)
    speed_up_listing(dest_s3)
    dest = DestState(
        dest_s3, request.dest_bucket, request.options.overwrite, s3, request.source_bucket
    )
    sink = DryRunSink(dest)
    try:
        check_run(request, request.job("dry-run"), s3, dest_s3, source.check)  # as a run would
        fanout = _build_fanout(request, source, sink, MemoryLog())
        fanout.run(source.initial())
        report = sink.finish()
        if request.delete_extraneous:
            count_deletes(report, plan_deletes(request, s3, dest_s3), request.max_delete)
        return report
    finally:
        sink.close()
        source.close()


def open_source(request: CopyRequest, s3: S3Client) -> Source:
    """The partitions the request's keys come from (nothing is read yet)."""
    speed_up_listing(s3)
    location = request.manifest_location
    if location is not None:
        return ManifestSource(s3, location, request.source_bucket)
    if request.source_prefix is not None and (request.all_versions or request.as_of):
        return VersionSource(
            s3, request.source_bucket, request.source_prefix, request.as_of, request.delete_markers
        )
    if request.source_prefix is not None:
        return PrefixSource(s3, request.source_bucket, request.source_prefix)
    assert request.source_key is not None
    return KeySource(s3, request.source_bucket, request.source_key, request.version_id)


def _first_partitions(source: Source, partition_log: ListingLog) -> list[Partition]:
    partitions = source.initial()
    partition_log.save_partitions(partitions)
    return partitions


def _dispatch_partitions(
    request: CopyRequest,
    source: Source,
    partitions: list[Partition],
    sender: ChunkSender,
    partition_log: ListingLog,
    store: RunStore,
    run_id: str,
    resumed: bool,
) -> bool:
    """Dispatch the copy chunks; False if the run was cancelled meanwhile."""
    try:
        if not _build_fanout(request, source, sender, partition_log).run(partitions, resumed):
            log.info("dispatch stopped: run %s was cancelled", run_id)
            return False
        return True
    except (ManifestError, ListingOrderError) as exc:
        # Found after dispatch began (a bad manifest row, an endpoint that lists out of S3's
        # order): the run cannot be completed as asked, so it is cancelled, not left hanging.
        store.request_cancel(run_id)
        raise InvalidRequest(f"{exc} (run {run_id} was cancelled)") from exc


def _build_fanout(
    request: CopyRequest, source: Source, sink: Sink, partition_log: PartitionLog
) -> Fanout:
    prefix = request.source_prefix if request.source_prefix is not None else ""
    selector = Selector(request.selection or Selection(), prefix)
    plan = Plan(selector.accepts, request.dest_for, request.chunk_size)
    return Fanout(source, plan, sink, partition_log, request.listing_concurrency)
