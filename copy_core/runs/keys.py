"""The Redis key layout: every key this project writes, named in one place.

Keys of a run carry the run id as a Redis Cluster hash tag (``s3fanout:{run_id}:...``), so all
of them live in one slot and one Lua script may touch them together.
"""

from __future__ import annotations

from dataclasses import dataclass

REDIS_PREFIX = "s3fanout"


@dataclass(frozen=True)
class RunKeys:
    """The Redis key layout of one run.

    Every key carries the run id as a hash tag (``{run_id}``) so that all keys of a run live
    in one Redis Cluster slot and a Lua script may touch them together.
    """

    run_id: str
    prefix: str = REDIS_PREFIX

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.run_id}}}"

    @property
    def run(self) -> str:
        """Hash: status, timestamps, counters."""
        return f"{self.base}:run"

    @property
    def ended_channel(self) -> str:
        """Pub/sub channel on which the run's final status is published when it ends.

        Named like the run hash: the Lua scripts that end a run hold only that key's name. A
        worker that could not list the run publishes here too (``listing_error``).
        """
        return self.run

    @property
    def cancel_requested(self) -> str:
        """String: the run was cancelled before a worker had created it by listing it."""
        return f"{self.base}:cancel-requested"

    @property
    def lister(self) -> str:
        """String: the token of the worker listing the run, while it lists (a lease)."""
        return f"{self.base}:lister"

    @property
    def listing_error(self) -> str:
        """String: why a worker could not list the run (JSON: message, bad_input)."""
        return f"{self.base}:listing-error"

    @property
    def dispatched(self) -> str:
        """Set of chunk ids handed to the broker."""
        return f"{self.base}:dispatched"

    @property
    def done(self) -> str:
        """Set of chunk ids whose every key has a recorded outcome."""
        return f"{self.base}:done"

    @property
    def progress(self) -> str:
        """Hash: chunk id -> number of keys of that chunk with a recorded outcome."""
        return f"{self.base}:progress"

    @property
    def listing(self) -> str:
        """Hash: the listing's partitions (key ranges, manifest files) and their cursors."""
        return f"{self.base}:listing"

    @property
    def failures(self) -> str:
        """List of JSON failure records, one per failed key."""
        return f"{self.base}:failures"

    @property
    def chunk_done_channel(self) -> str:
        """Pub/sub channel: a chunk id, published when every key of that chunk has an outcome.

        The dispatcher of a run at its bound of chunks in the pool waits on it (back-pressure).
        """
        return f"{self.base}:chunk-done"

    @property
    def held_deletes(self) -> str:
        """Set of a sync's delete chunks registered while its copies run, sent once they are
        all done (or dropped, if the run may not delete: see ``finalize.lua``)."""
        return f"{self.base}:held-deletes"

    def delete_phase(self) -> list[str]:
        """The keys a script that may release or withhold the held deletes touches."""
        return [self.held_deletes, self.chunk_items, self.leases, self.holders]

    @property
    def chunk_items(self) -> str:
        """Hash: chunk id -> its items as wire JSON, while the chunk is in the pool.

        Written when the chunk is registered, deleted when it is done: what a chunk message
        refers to, and what a chunk returned to the queue is sent again from.
        """
        return f"{self.base}:chunk-items"

    @property
    def leases(self) -> str:
        """Sorted set: work of the run in the pool -> when its lease expires (server ms).

        Members: ``c:<chunk id>`` (a chunk), ``b:<chunk id>:<index>:<batch>`` (a batch of a
        split object's parts), ``l`` (the listing). A member is in the set from when it is sent
        until it is done; its holder (``holders``) says who has it: ``queued`` (sent, not yet
        taken), ``retry`` (returned, to be sent again at the score), or a worker process.
        """
        return f"{self.base}:leases"

    @property
    def holders(self) -> str:
        """Hash: lease member -> holder token (see ``leases``)."""
        return f"{self.base}:holders"

    @property
    def deliveries(self) -> str:
        """Hash: lease member -> how many times a worker took it."""
        return f"{self.base}:deliveries"

    @property
    def resend(self) -> str:
        """Hash: lease member -> the task message (JSON) that sends that work again.

        For part batches and the listing; a chunk is sent again by reference.
        """
        return f"{self.base}:resend"

    @property
    def rate(self) -> str:
        """Hash: the run's rate caps and token buckets (requests/s, bytes/s)."""
        return f"{self.base}:rate"

    @property
    def airflow_generation(self) -> str:
        """String: the generation of the runs of one Airflow task instance (airflow_plugin.runs).

        Its ``run_id`` is the task instance's base run id.
        """
        return f"{self.base}:airflow-generation"

    @property
    def airflow_driver(self) -> str:
        """String: the latest try of an Airflow task instance that attached to this run
        (airflow_plugin.runs); a kill of an earlier try leaves the run alone."""
        return f"{self.base}:airflow-driver"

    def split(self, chunk_id: str, index: int) -> str:
        """Hash: the state of a large object split across workers (upload id, plan, flags)."""
        return f"{self.base}:split:{chunk_id}:{index}"

    def split_parts(self, chunk_id: str, index: int) -> str:
        """Hash: part number -> the copied part (ETag, checksum, size) as JSON."""
        return f"{self.base}:split:{chunk_id}:{index}:parts"

    def split_batches(self, chunk_id: str, index: int) -> str:
        """Set: batch numbers whose parts are all copied."""
        return f"{self.base}:split:{chunk_id}:{index}:batches"

    def recorded(self, chunk_id: str) -> str:
        """Bitmap: bit i is set once item i of the chunk has a recorded outcome."""
        return f"{self.base}:recorded:{chunk_id}"


@dataclass(frozen=True)
class PoolKeys:
    """The Redis keys of the pool as a whole: its worker processes and its runs.

    They share one hash tag of their own (``{pool}``); no script touches them together with a
    run's keys, so the layout also works on Redis Cluster.
    """

    prefix: str = REDIS_PREFIX

    @property
    def base(self) -> str:
        return f"{self.prefix}:{{pool}}"

    @property
    def processes(self) -> str:
        """Sorted set: worker process token -> its last heartbeat (ms since the epoch)."""
        return f"{self.base}:processes"

    @property
    def process_info(self) -> str:
        """Hash: worker process token -> JSON (host, pid, slots: chunks it takes at once)."""
        return f"{self.base}:process-info"

    @property
    def runs(self) -> str:
        """Sorted set: run id -> its creation time (ms): every run of the pool, for ``runs``."""
        return f"{self.base}:runs"

    @property
    def active(self) -> str:
        """Set: the runs that may still have work in the pool (for fair shares and reaping)."""
        return f"{self.base}:active"

    @property
    def reaper(self) -> str:
        """String: the worker process that returns expired leases this round (a short lock)."""
        return f"{self.base}:reaper"
