"""A worker's memory and connections with its window at its largest, 100,000 keys queued.

```bash
.venv/bin/python -m bench.footprint --data-dir /tmp/pool-seaweed-100k     # ~5 minutes
```

SeaweedFS, a redis-server and one default worker (2 processes) start on loopback, as in
``bench.pool`` (whose seeded prefix ``--data-dir`` reuses); every request of the worker and of
the CLI goes through the latency proxy (``--latency-ms``, 250 by default), where the window of
copies in flight grows to its bound (``S3FANOUT_KEYS_IN_FLIGHT`` per process). The CLI lists
the whole prefix at once, so the run has its keys queued ahead of the workers from the start.
Every 0.5 s the worker's processes (main and pool children) are read from /proc: resident
memory (summed) and open sockets (summed), and Redis's ``used_memory``. The peak of each, the
throughput and the run's counts go to ``bench/results/footprint-<time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.listing import PREFIX
from bench.pool import (
    commit_of,
    redis_memory,
    results_dir,
    seeded_servers,
    start_copy,
    start_worker,
)
from bench.proxy import latency_proxy
from devstack.servers import REPO


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=250.0)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep SeaweedFS's data")
    args = parser.parse_args(argv)
    args.small, args.code = 20, REPO  # what bench.pool's seeding expects
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = results_dir("footprint")
    with ExitStack() as stack:
        work, url, server, _ = seeded_servers(stack, "footprint", args)
        proxy = stack.enter_context(latency_proxy(url, args.latency_ms / 1000))
        worker = stack.enter_context(start_worker(REPO, server.url, proxy.url, work))
        sampler = _Sampler(worker.pid)
        with redis_memory(server.url) as memory:
            sampler.start()
            started = time.monotonic()
            summary = start_copy(
                REPO, server.url, proxy.url, PREFIX, f"footprint-{time.time_ns()}"
            ).wait_summary()
            seconds = time.monotonic() - started
            sampler.stop()
        results: dict[str, Any] = {
            "commit": commit_of(REPO),
            "latency_ms": args.latency_ms,
            "objects_copied": summary["objects_copied"],
            "objects_failed": summary["objects_failed"],
            "seconds": round(seconds, 1),
            "objects_per_s": round(summary["objects_copied"] / seconds, 1),
            "worker_processes": sampler.processes,
            "worker_rss_peak_mib": round(sampler.rss_peak / 2**20, 1),
            "worker_rss_idle_mib": round(sampler.rss_first / 2**20, 1),
            "worker_sockets_peak": sampler.sockets_peak,
            "redis_peak_mib": memory.peak_mib(),
        }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"results in {out}")
    return 0


class _Sampler:
    """The worker's processes' resident memory and sockets, every 0.5 s, in a thread."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.rss_first = self.rss_peak = self.sockets_peak = self.processes = 0

    def start(self) -> None:
        self.rss_first = sum(_rss(pid) for pid in self._tree())
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(0.5):
            pids = self._tree()
            self.processes = max(self.processes, len(pids))
            self.rss_peak = max(self.rss_peak, sum(_rss(pid) for pid in pids))
            self.sockets_peak = max(self.sockets_peak, sum(_sockets(pid) for pid in pids))

    def _tree(self) -> list[int]:
        pids, todo = [], [self._pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(child) for child in children)
        return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _sockets(pid: int) -> int:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


if __name__ == "__main__":
    sys.exit(main())
