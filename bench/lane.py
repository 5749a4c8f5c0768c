"""The workers' per-object path alone: CPU per copy of ``copy_chunk`` with the fast lane.

    .venv/bin/python -m bench.lane                  # 2,000 objects of 1-64 KiB, 5 runs
    .venv/bin/python -m bench.lane --busy 1         # the same with a busy process beside it
    .venv/bin/python -m bench.lane --help           # every option

``python -m bench`` charges a copied object everything a user pays for it: the CLI's start-up,
Celery, and two pool processes competing with the server for two CPUs. This measures only what
a worker repeats for every object, so that a change to it can be compared without that noise:
SeaweedFS and redis-server start on loopback, the objects are seeded once, and each run copies
all of them to a fresh prefix chunk by chunk in this process, as a pool process does
(``copy_workers.engine.copy_chunk`` with the process's fast lane, run store and metrics), then
checks the run's counts and every destination object. Reported per run: this process's CPU
(all threads, the CRT's event loop included) per copy, and copies per second; and the median.

``--busy N`` keeps N other processes spinning meanwhile, to show what contention for the CPUs
does to the same work (the benchmark's workers share two CPUs with the CLI and the server).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from bench.config import SizeRange
from bench.dataset import Dataset, plan_sizes, seed_dataset, verify_copy
from bench.measure import self_cpu
from devstack.servers import AWS_TEST_ENV, redis_server, seaweed_server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SOURCE_BUCKET = "lane-source"
DEST_BUCKET = "lane-dest"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.lane", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--objects", type=int, default=2000, help="objects per run (2000)")
    parser.add_argument("--repeats", type=int, default=5, help="runs (5)")
    parser.add_argument("--sizes", type=SizeRange.parse, default=SizeRange(1024, 64 * 1024))
    parser.add_argument("--chunk-size", type=int, default=250, help="keys per chunk (250)")
    parser.add_argument(
        "--keys-in-flight", type=int, default=None, help="copies in flight (worker default)"
    )
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside it (0)")
    parser.add_argument("--seed", type=int, default=20261125)
    return parser.parse_args(argv)


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """``count`` processes that only spin, for as long as the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-lane-") as scratch:
        work = Path(scratch)
        with redis_server(work / "redis") as redis, seaweed_server(work / "seaweed") as url:
            # The worker's settings and clients read the environment, as in a worker process.
            os.environ.update({**AWS_TEST_ENV, "AWS_ENDPOINT_URL": url})
            os.environ["S3FANOUT_REDIS_URL"] = redis.url
            if args.keys_in_flight is not None:
                os.environ["S3FANOUT_KEYS_IN_FLIGHT"] = str(args.keys_in_flight)
            s3 = boto3.client("s3", endpoint_url=url, region_name=AWS_TEST_ENV["AWS_REGION"])
            for bucket in (SOURCE_BUCKET, DEST_BUCKET):
                s3.create_bucket(Bucket=bucket)
            sizes = plan_sizes(args.objects, args.sizes, args.seed)
            source = seed_dataset(s3, "lane", SOURCE_BUCKET, "src/", sizes, args.seed)
            print(f"seeded {source.count} objects of {args.sizes}")
            runs = measure(args, source, s3)
    cpu = statistics.median(run[0] for run in runs)
    rate = statistics.median(run[1] for run in runs)
    print(f"median of {len(runs)}: {cpu:.3f} ms of CPU per copy, {rate:.0f} copies/s")
    return 0


def measure(args: argparse.Namespace, source: Dataset, s3: S3Client) -> list[tuple[float, float]]:
    """Copy every object ``args.repeats`` times; (CPU ms per copy, copies/s) per run.

    The chunks are taken as a pool process takes them (``WorkerProcess.take_chunk``: the run
    store's take, the engine's admission and its wait for room), so the figure is what a
    worker spends per object, the lane, the window across chunks and the recording included.
    """
    # Imported here: the worker's settings and clients read the environment set above.
    from copy_core.contract import (  # noqa: PLC0415
        ChunkRef,
        CopyItem,
        CopyJob,
        canonical_json,
        items_wire,
    )
    from copy_workers.metrics import OBSERVER  # noqa: PLC0415
    from copy_workers.process import WorkerProcess  # noqa: PLC0415
    from copy_workers.settings import WorkerSettings  # noqa: PLC0415

    settings = WorkerSettings.from_env()
    process = WorkerProcess(settings, lambda name, kwargs, label: None, OBSERVER)
    job = CopyJob(SOURCE_BUCKET, DEST_BUCKET)
    runs = []
    for number in range(args.repeats + 1):  # the first run warms the process up: not counted
        run_id = f"lane-{uuid.uuid4().hex[:8]}"
        dest = f"runs/{run_id}/"
        items = [
            CopyItem(source.prefix + o.rel, dest + o.rel, o.size, f'"{o.etag}"')
            for o in source.objects
        ]
        chunks = [items[i : i + args.chunk_size] for i in range(0, len(items), args.chunk_size)]
        store = process.store
        store.create_run(run_id, {}, None, job=canonical_json(job.to_wire()))
        for n, chunk in enumerate(chunks):
            store.register_chunk(run_id, str(n), len(chunk), 0, items=items_wire(chunk))
        store.finish_listing(run_id)
        with busy_processes(args.busy):
            started, before = time.perf_counter(), self_cpu()
            for n in range(len(chunks)):  # as copy_workers.tasks takes a chunk
                process.take_chunk(ChunkRef(run_id, str(n)))
            while process.engine.chunks_held:
                time.sleep(0.001)
            cpu, wall = (self_cpu() - before).total, time.perf_counter() - started
        summary = store.summary(run_id)
        if summary is None or summary.status != "succeeded" or summary.objects_copied != len(items):
            raise RuntimeError(f"run {run_id} ended as {summary}")
        verify_copy(s3, source, DEST_BUCKET, dest)
        if number == 0:
            continue
        runs.append((1000 * cpu / len(items), len(items) / wall))
        print(f"run {number}: {runs[-1][0]:.3f} ms of CPU per copy, {runs[-1][1]:.0f} copies/s")
    return runs


if __name__ == "__main__":
    sys.exit(main())
