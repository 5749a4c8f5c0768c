"""A shared pool: Redis's memory under a large run, and a small run's wait beside it.

```bash
.venv/bin/python -m bench.pool                                   # 100,000 keys, ~15 minutes
.venv/bin/python -m bench.pool --objects 20000 --data-dir /tmp/pool-seaweed   # a quick look
.venv/bin/python -m bench.pool --code /tmp/old-checkout          # the same on other code
```

SeaweedFS, a redis-server and one worker of 2 processes start on loopback (warmed up with three
small copies: each pool process builds its clients on its first chunk); the prefix is
seeded once (``bench.listing.seed``; ``--data-dir`` keeps it for the next invocation), with
``--small`` (20) more objects under another prefix. Three measurements, each with the CLI's
defaults, the worker and the CLI run from ``--code`` (a checkout; default this one, so that
the previous commit's code can be measured beside this one's in one invocation, with the same
servers and data):

- **small alone**: the small prefix copied on an idle pool: the CLI's wall time;
- **large alone**: the whole prefix: objects/s, and Redis's peak ``used_memory`` above what
  it used before (sampled every 0.1 s: the broker's queue and the run's state);
- **small beside large**: the large run again, and once it has copied ``--head-start`` keys,
  the small run: its wall time, how many keys the large run copied meanwhile, Redis's peak.
  The large run is then cancelled (``s3fanout cancel``): its end measures nothing new.

Results (the table, and JSON) go to ``bench/results/pool-<time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import redis

from bench import install
from bench.config import RESULTS_ROOT
from bench.listing import BUCKET, PREFIX, seed
from devstack.servers import (
    AWS_TEST_ENV,
    REPO,
    RedisServer,
    redis_server,
    seaweed_server,
    stop_process,
)

SMALL_PREFIX = "small/"
DEST = "bench-pool-dest"
MARKER = "pool-seed.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pool", description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20, help="keys of the small run (20)")
    parser.add_argument("--head-start", type=int, default=5000, help="large-run keys first")
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to run")
    parser.add_argument("--data-dir", type=Path, default=None, help="keep SeaweedFS's data")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = results_dir("pool")
    with ExitStack() as stack:
        work, url, server, seeded = seeded_servers(stack, "pool", args)
        stack.enter_context(start_worker(args.code, server.url, url, work))
        # Unmeasured: every pool process builds its clients on its first chunk.
        for _ in range(3):
            start_copy(
                args.code, server.url, url, SMALL_PREFIX, f"warm-up-{time.time_ns()}"
            ).wait_summary()
        results = {
            "seeded": seeded,
            "code": str(args.code),
            "commit": commit_of(args.code),
            "small alone": _small_alone(args, server.url, url),
            "large alone": _large_alone(args, server.url, url),
            "small beside large": _beside(args, server.url, url),
        }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = _table(results)
    (out / "results.md").write_text(table)
    print(table)
    print(f"results in {out}")
    return 0


def results_dir(name: str) -> Path:
    """``bench/results/<name>-<time>/``, created; the environment the harness runs in set up."""
    for key, value in AWS_TEST_ENV.items():
        os.environ.setdefault(key, value)
    install.ensure_bench_venv()
    out = RESULTS_ROOT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def seeded_servers(
    stack: ExitStack, name: str, args: argparse.Namespace
) -> tuple[Path, str, RedisServer, dict[str, Any]]:
    """SeaweedFS (``args.data_dir`` kept, seeded once) and a redis-server, until ``stack``
    closes: (work directory, S3 URL, Redis, what was seeded)."""
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-{name}-")))
    data = args.data_dir or work / "seaweed"
    url = stack.enter_context(seaweed_server(data))
    server = stack.enter_context(redis_server(work / "redis"))
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    return work, url, server, seed_source(url, s3, args, data, work)


# --- the three measurements -------------------------------------------------------------------
def _small_alone(args: argparse.Namespace, redis_url: str, url: str) -> dict[str, Any]:
    started = time.monotonic()
    summary = start_copy(
        args.code, redis_url, url, SMALL_PREFIX, f"small-{time.time_ns()}"
    ).wait_summary()
    return {"seconds": round(time.monotonic() - started, 2), "copied": summary["objects_copied"]}


def _large_alone(args: argparse.Namespace, redis_url: str, url: str) -> dict[str, Any]:
    with redis_memory(redis_url) as memory:
        started = time.monotonic()
        summary = start_copy(
            args.code, redis_url, url, PREFIX, f"large-{time.time_ns()}"
        ).wait_summary()
        seconds = time.monotonic() - started
    return {
        "seconds": round(seconds, 1),
        "copied": summary["objects_copied"],
        "objects_per_s": round(summary["objects_copied"] / seconds, 1),
        "redis_peak_mib": memory.peak_mib(),
    }


def _beside(args: argparse.Namespace, redis_url: str, url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    large_id = f"large-{time.time_ns()}"
    with redis_memory(redis_url) as memory:
        large = start_copy(args.code, redis_url, url, PREFIX, large_id)
        while _copied(client, large_id) < args.head_start:
            time.sleep(0.1)
        at_start = _copied(client, large_id)
        started = time.monotonic()
        summary = start_copy(
            args.code, redis_url, url, SMALL_PREFIX, f"small-{time.time_ns()}"
        ).wait_summary()
        seconds = time.monotonic() - started
        large_meanwhile = _copied(client, large_id) - at_start
        _cancel(args.code, redis_url, large_id)
        large.wait_summary(check=False)
    return {
        "small_seconds": round(seconds, 2),
        "small_copied": summary["objects_copied"],
        "large_copied_meanwhile": large_meanwhile,
        "redis_peak_mib": memory.peak_mib(),
    }


# --- processes --------------------------------------------------------------------------------
def _env(code: Path, endpoint: str) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": endpoint,
        "PYTHONPATH": str(code),
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def start_worker(
    code: Path, redis_url: str, endpoint: str, work: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``s3fanout worker --concurrency 2`` of ``code``, until the context ends."""
    log = open(work / "worker.log", "wb")  # noqa: SIM115 - as long as the worker
    argv = [sys.executable, "-m", "copy_workers", "--redis-url", redis_url, "--concurrency", "2"]
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=_env(code, endpoint), cwd=code
    )
    try:
        deadline = time.monotonic() + 60
        while b"ready" not in (work / "worker.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "worker.log").read_text()[-3000:])
            time.sleep(0.2)
        yield proc
    finally:
        stop_process(proc)
        log.close()


class _Copy:
    """One ``s3fanout copy`` of a prefix to the destination bucket, in the background."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def wait_summary(self, check: bool = True) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=3600)
        if check and self.proc.returncode != 0:
            raise RuntimeError(err.decode()[-3000:])
        return dict(json.loads(out)) if out.strip() else {}


def start_copy(code: Path, redis_url: str, endpoint: str, prefix: str, run_id: str) -> _Copy:
    argv = [
        sys.executable,
        "-m",
        "copy_control.console",
        "copy",
        f"s3://{BUCKET}/{prefix}",
        f"s3://{DEST}/{run_id}/",
        "--recursive",
        "--json",
        "--redis-url",
        redis_url,
        "--run-id",
        run_id,
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(code, endpoint), cwd=code
    )
    return _Copy(proc)


def _cancel(code: Path, redis_url: str, run_id: str) -> None:
    argv = [
        sys.executable,
        "-m",
        "copy_control.console",
        "cancel",
        run_id,
        "--redis-url",
        redis_url,
        "--wait",
        "600",
    ]
    subprocess.run(argv, env=_env(code, ""), cwd=code, capture_output=True, check=False)


def _copied(client: redis.Redis, run_id: str) -> int:
    return int(client.hget(f"s3fanout:{{{run_id}}}:run", "objects_copied") or 0)


class _Memory:
    """Redis's used_memory, sampled in a thread: the peak above the starting value."""

    def __init__(self, redis_url: str) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._base = int(self._client.info("memory")["used_memory"])
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self._peak = max(self._peak, int(self._client.info("memory")["used_memory"]))

    def peak_mib(self) -> float:
        return round((self._peak - self._base) / 2**20, 1)


@contextmanager
def redis_memory(redis_url: str) -> Iterator[_Memory]:
    memory = _Memory(redis_url)
    memory._thread.start()
    try:
        yield memory
    finally:
        memory._stop.set()
        memory._thread.join()


# --- set-up and output ------------------------------------------------------------------------
def seed_source(
    url: str, s3: Any, args: argparse.Namespace, data: Path, work: Path
) -> dict[str, Any]:
    marker = data / MARKER
    if marker.exists() and json.loads(marker.read_text()).get("objects") == args.objects:
        return {**json.loads(marker.read_text()), "reused": True}
    seeded = seed(url, args.objects, work)
    for i in range(args.small):
        s3.put_object(Bucket=BUCKET, Key=f"{SMALL_PREFIX}s{i:04d}", Body=b"small object")
    s3.create_bucket(Bucket=DEST)
    marker.write_text(json.dumps(seeded))
    return {**seeded, "reused": False}


def commit_of(code: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def _table(results: dict[str, Any]) -> str:
    small, large, beside = (
        results[k] for k in ("small alone", "large alone", "small beside large")
    )
    rows = [
        "| commit | large alone: objects/s | large alone: Redis peak MiB | small alone: s | "
        "small beside large: s | large copied meanwhile | beside: Redis peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| {results['commit']} | {large['objects_per_s']} | {large['redis_peak_mib']} | "
        f"{small['seconds']} | {beside['small_seconds']} | {beside['large_copied_meanwhile']:,} | "
        f"{beside['redis_peak_mib']} |",
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
