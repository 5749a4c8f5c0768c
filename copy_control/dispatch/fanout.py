"""Read a run's partitions concurrently and hand their chunks, as they are planned, to a sink.

Listing threads (``concurrency`` of them) each read one partition at a time and plan its
chunks; the calling thread takes the chunks from a bounded queue and gives them to the sink
(which dispatches them, or counts them in a dry run). Memory is therefore bounded by the
chunks in flight (the queue, plus one partly filled chunk and one page per listing thread),
never by the number of keys.

Work stealing for key ranges: after each page a range lists, if listing threads are idle and
no partition waits for them, the rest of the range is split (``keyranges.split_points``): the
range keeps the first partition and the others become new partitions. The split is stored (the
``PartitionLog``) before the new partitions are queued, and a split boundary is always past every
key the range has listed, so chunks already planned stay in their partition and a resumed
run reads exactly the partitions the interrupted one had. A resumed partition is not split
before it has planned its first chunk again: that chunk may have been registered by the
interrupted run without its cursor being saved (the dispatcher died in between), and it must
come back with the same keys under the same id, which a split below its end would cut.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from copy_control.dispatch.planning import PartitionEnd, Plan, PlannedChunk, plan_partition
from copy_control.listing.partitions import Partition
from copy_control.listing.sources import Source

log = logging.getLogger(__name__)

_PUT_WAIT_S = 0.1
# A range splits only once it has listed this many full pages since it was created or last
# split: small ranges are not cut into smaller ones (each range costs at least one request,
# and its last page brings keys past its end).
PAGES_BEFORE_SPLIT = 2
_JOIN_WAIT_S = 10.0


class Sink(Protocol):
    """Where planned chunks go, one partition's chunks in order."""

    def chunk(self, chunk: PlannedChunk) -> bool:
        """Take a chunk; False stops the fan-out (the run was cancelled)."""

    def partition_end(self, end: PartitionEnd) -> None:
        """Every chunk of a partition was taken."""


class PartitionLog(Protocol):
    """Where partitions are recorded, so that a resumed run reads the same ones."""

    def save_partitions(self, partitions: Sequence[Partition]) -> None:
        """Record new partitions and changed ones (one atomic write)."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_FINISHED = object()


class Fanout:
    """One run's listing: partitions read by ``concurrency`` threads, chunks to ``sink``."""

    def __init__(
        self, source: Source, plan: Plan, sink: Sink, partition_log: PartitionLog, concurrency: int
    ) -> None:
        self._source, self._plan, self._sink, self._log = source, plan, sink, partition_log
        self._concurrency = concurrency
        self._ready: queue.Queue[Partition | None] = queue.Queue()
        self._out: queue.Queue[object] = queue.Queue(maxsize=2 * concurrency)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._idle = self._pending = self._next_id = 0
        self._unsettled: set[str] = set()  # resumed partitions yet to plan their first chunk
        self.splits = 0

    def run(self, partitions: Sequence[Partition], resumed: bool = False) -> bool:
        """Read every unfinished partition; False if the sink stopped early.

        ``resumed``: the partitions were recorded by an earlier dispatcher of the run.
        """
        todo = [partition for partition in partitions if not partition.done]
        if resumed:
            self._unsettled = {partition.pid for partition in todo}
        self._next_id = max((_number(partition.pid) for partition in partitions), default=0) + 1
        if not todo:
            return True
        self._pending = len(todo)
        for partition in todo:
            self._ready.put(partition)
        threads = [
            threading.Thread(target=self._work, name=f"s3fanout-list-{i}", daemon=True)
            for i in range(self._concurrency)
        ]
        for thread in threads:
            thread.start()
        try:
            return self._drain()
        finally:
            self._shutdown(threads)

    def after_page(self, partition: Partition, first_key: str, last_key: str) -> None:
        """Called by a range after each full page: split its rest if threads are idle."""
        partition.pages += 1
        if self._concurrency < 2 or partition.pages < PAGES_BEFORE_SPLIT:
            return
        with self._lock:
            if partition.pid in self._unsettled:
                return
            wanted = self._idle - self._ready.qsize()
            if wanted <= 0:
                return
            end = partition.spec.get("end")
            bounds = self._source.split_points(first_key, last_key, end, wanted + 1)
            if not bounds:
                return
            new = [
                Partition(f"p{self._next_id + i}", {"after": low, "end": high})
                for i, (low, high) in enumerate(zip(bounds, [*bounds[1:], end], strict=True))
            ]
            changed = Partition(
                partition.pid, {**partition.spec, "end": bounds[0]}, partition.cursor
            )
            self._log.save_partitions([changed, *new])  # recorded before anything of them is sent
            partition.spec, partition.pages = changed.spec, 0
            self._next_id += len(new)
            self._pending += len(new)
            self.splits += 1
        for piece in new:
            self._ready.put(piece)

    def _drain(self) -> bool:
        while True:
            item = self._out.get()
            if item is _FINISHED:
                return True
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, PlannedChunk):
                if not self._sink.chunk(item):
                    return False
            elif isinstance(item, PartitionEnd):
                self._sink.partition_end(item)

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._idle += 1
            partition = self._ready.get()
            with self._lock:
                self._idle -= 1
            if partition is None or not self._read(partition):
                return
            with self._lock:
                self._pending -= 1
                finished = self._pending == 0
            if finished:
                self._put(_FINISHED)

    def _read(self, partition: Partition) -> bool:
        """Plan one partition into the queue; False if the fan-out is stopping."""
        try:
            entries = self._source.entries(partition, self)
            for item in plan_partition(entries, partition.pid, self._plan, partition.cursor):
                if isinstance(item, PlannedChunk):
                    with self._lock:
                        self._unsettled.discard(partition.pid)
                if not self._put(item):
                    return False
        except BaseException as exc:
            self._put(_Failed(exc))
            return False
        return True

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=_PUT_WAIT_S)
                return True
            except queue.Full:
                continue
        return False

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        for _ in threads:
            self._ready.put(None)
        deadline = time.monotonic() + _JOIN_WAIT_S  # a thread may be inside a request
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))


def _number(pid: str) -> int:
    digits = pid[1:]
    return int(digits) if digits.isdigit() else 0
