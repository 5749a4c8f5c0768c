"""A sync's delete phase (``--delete``): plan the extraneous destination keys into delete
chunks while the copies run, and hold them until every copy has ended.

The chunks are registered with the run as *held* (``register_chunk(held=True)``): counted in
``objects_to_delete``, kept in the run store, sent to no worker. The store releases them to the
pool only once the listing is finished and every copy chunk is done, and only if the run may
still succeed (``finalize.lua``'s ``settle_held``); a run that is cancelled, is over its
failure limit, or would delete more than its ``max_delete``, deletes nothing.

The phase is one listing partition (``delete``) with a cursor, like any other: a resumed
dispatcher plans from where the last one left off, registering the same chunks under the same
ids, counted once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from copy_control.dispatch.planning import PartitionEnd, Plan, PlannedChunk, plan_partition
from copy_control.listing.extraneous import delete_partition, extraneous_keys
from copy_control.listing.partitions import Cursor, Partition
from copy_control.request import CopyRequest
from copy_control.selection import Selection, Selector
from copy_core.contract import DELETE_PARTITION, items_wire

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from copy_control.dispatch.listing_log import ListingLog
    from copy_core.runs.store import RunStore

log = logging.getLogger(__name__)

DELETE_CHUNK_SIZE = 1000  # DeleteObjects takes up to 1,000 keys a request


def plan_deletes(
    request: CopyRequest, s3: S3Client, dest_s3: S3Client, cursor: Cursor = Cursor()
) -> Iterator[PlannedChunk | PartitionEnd]:
    """The delete chunks of a sync, after ``cursor``: destination keys the source lacks."""
    prefix = request.source_prefix or ""
    selector = Selector(request.selection or Selection(), prefix)
    after = cursor.position
    assert after is None or isinstance(after, str)
    entries = extraneous_keys(
        s3,
        request.source_bucket,
        prefix,
        dest_s3,
        request.dest_bucket,
        request.dest_prefix or "",
        selector.accepts,
        after,
    )
    plan = Plan(lambda _: True, lambda key: key, min(request.chunk_size, DELETE_CHUNK_SIZE))
    return plan_partition(entries, DELETE_PARTITION, plan, cursor)


@dataclass
class DeletePhase:
    """Registers a sync's delete chunks as held, within its ``max_delete``."""

    store: RunStore
    run_id: str
    partition_log: ListingLog
    max_delete: int | None
    planned: int = field(default=0)
    refused: bool = False

    def run(self, request: CopyRequest, s3: S3Client, dest_s3: S3Client) -> None:
        """Plan and hold the phase's chunks (resuming from its recorded cursor, if any)."""
        partition = self._partition()
        if partition.done:
            return
        self.planned = int(self.store.run_hash(self.run_id).get("objects_to_delete", 0) or 0)
        for item in plan_deletes(request, s3, dest_s3, partition.cursor):
            if isinstance(item, PartitionEnd):
                self.partition_log.save_cursor(item.partition, item.cursor, done=True)
            elif not self._hold(item):
                return
        log.info("sync: %d destination keys to delete once the copies end", self.planned)

    def _partition(self) -> Partition:
        for partition in self.partition_log.load():
            if partition.pid == DELETE_PARTITION:
                return partition
        fresh = delete_partition()
        self.partition_log.save_partitions([fresh])
        return fresh

    def _hold(self, chunk: PlannedChunk) -> bool:
        registered = self.store.register_chunk(
            self.run_id,
            chunk.chunk_id,
            len(chunk.items),
            chunk.total_bytes,
            items=items_wire(chunk.items),
            held=True,
        )
        if registered < 0:
            return False  # the run was cancelled: it deletes nothing
        if registered == 1:
            self.planned += len(chunk.items)
        if self.max_delete is not None and self.planned > self.max_delete:
            self.refused = True
            self.store.refuse_deletes(self.run_id, self.planned)
            log.warning(
                "sync: would delete %d keys or more, over max_delete %d: deleting none",
                self.planned,
                self.max_delete,
            )
            return False
        self.partition_log.save_cursor(chunk.partition, chunk.cursor, done=False)
        return True
