"""``python -m bench``: s3fanout against s5cmd, rclone, aws s3 cp and boto3, side by side.

Starts SeaweedFS's S3 gateway and a redis-server on loopback, seeds the source objects, then
runs every tool in turn (alternating, run by run), verifies every destination object after
every run, and writes bench/results/<timestamp>/results.{md,json,png}. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from bench import install, report
from bench.config import (
    RESULTS_ROOT,
    TOOLS,
    VARIANTS,
    BenchConfig,
    Multipart,
    SizeRange,
    WorkerShape,
)
from bench.dataset import Dataset, VerificationError, plan_sizes, seed_dataset, warm_server
from bench.measure import find_child
from bench.proxy import Proxy, latency_proxy
from bench.runner import DEST_BUCKET, Slot, Stage, ToolFailed, ToolSpec, build_schedule, run_slot
from copy_control.units import parse_size
from devstack.servers import AWS_TEST_ENV, redis_server, seaweed_server

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SOURCE_BUCKET = "bench-source"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = parser.add_argument
    add("--objects", type=int, default=2000, help="objects per copy (default 2000)")
    add("--sizes", default="1KiB-64KiB", help="object size range (default 1KiB-64KiB)")
    add("--repeats", type=int, default=3, help="runs per tool and variant; the median is shown")
    add("--variants", default=",".join(VARIANTS), help="comma-separated, of: %(default)s")
    add("--tools", default=",".join(TOOLS), help="comma-separated, of: %(default)s")
    add("--seed", type=int, default=20261125, help="seed of the object sizes and contents")
    add("--concurrency", type=int, default=2, help="s3fanout pool processes (default 2)")
    add("--chunk-size", type=int, default=None, help="s3fanout keys per task (the CLI's default)")
    add("--keys-in-flight", type=int, default=None, help="s3fanout copies at once per chunk")
    add(
        "--listing",
        choices=("pool", "cli"),
        default="cli",
        help="where s3fanout lists: in the CLI (its default) or in a worker (--list-in-pool)",
    )
    add("--scaleout", default="1,2,4", help="worker processes of the scaleout rows (1,2,4)")
    add(
        "--scaleout-by",
        choices=("concurrency", "instances"),
        default="concurrency",
        help="scale one worker's --concurrency, or start that many workers of 1 process",
    )
    add(
        "--latency-ms",
        default="20",
        help="delay per request of the latency variant; a sweep: 0,20,100,250 (default 20)",
    )
    add("--large-objects", type=int, default=3, help="objects above the multipart threshold")
    add("--large-size", default="40MiB", help="their size, mixed variant (default 40MiB)")
    add("--multipart-threshold", default="16MiB", help="mixed variant, all tools (16MiB)")
    add("--part-size", default="8MiB", help="mixed variant, all tools (default 8MiB)")
    add("--timeout", type=float, default=900.0, help="seconds a single run may take")
    add("--results-dir", type=Path, default=RESULTS_ROOT, help="where <timestamp>/ goes")
    add("--keep-work", action="store_true", help="keep the servers' data and logs")
    return parser


def config_from_args(argv: Sequence[str] | None) -> BenchConfig:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _config(args)
    except ValueError as exc:  # and copy_control's InvalidRequest, a ValueError
        parser.error(str(exc))


def _config(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        objects=args.objects,
        sizes=SizeRange.parse(args.sizes),
        repeats=args.repeats,
        variants=_names(args.variants),
        tools=_names(args.tools),
        seed=args.seed,
        workers=WorkerShape(1, args.concurrency),
        scaleout=tuple(int(n) for n in _names(args.scaleout)),
        scaleout_by=args.scaleout_by,
        chunk_size=args.chunk_size,
        keys_in_flight=args.keys_in_flight,
        listing=args.listing,
        latency_ms=tuple(float(ms) for ms in _names(args.latency_ms)),
        large_objects=args.large_objects,
        large_size=parse_size(args.large_size, "--large-size"),
        multipart=Multipart(
            parse_size(args.multipart_threshold, "--multipart-threshold"),
            parse_size(args.part_size, "--part-size"),
        ),
        timeout_s=args.timeout,
        results_dir=args.results_dir,
        keep_work=args.keep_work,
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def tool_rows(config: BenchConfig, variant: str) -> list[ToolSpec]:
    """The rows of a variant: every tool, or (scaleout) s3fanout with 1, 2, 4 processes."""
    if variant == "scaleout":
        return [
            ToolSpec("s3fanout", f"s3fanout x{shape.processes}", shape)
            for shape in config.scaleout_shapes()
        ]
    return [
        ToolSpec(tool, tool, config.workers if tool == "s3fanout" else None)
        for tool in config.tools
    ]


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(argv)
    if "scaleout" in config.variants and "s3fanout" not in config.tools:
        config = replace(config, variants=tuple(v for v in config.variants if v != "scaleout"))
    install.ensure_bench_venv()
    install.compile_project()
    if "rclone" in config.tools:
        install.ensure_rclone()
    out_dir = config.results_dir / time.strftime("%Y%m%d-%H%M%S")
    workdir = out_dir / "work"
    info: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
        "config": {**asdict(config), "sizes": str(config.sizes), "results_dir": str(out_dir)},
        "machine": install.machine_info(),
        "versions": install.tool_versions(config.tools),
    }
    print(f"results: {out_dir}")
    runs: list[dict[str, Any]] = []
    try:
        failure = _bench(config, workdir, runs)
    finally:
        text = report.write_results(out_dir, runs, info)
    print()
    print(text)
    if failure:
        print(f"FAILED: {failure}\nservers' data and logs kept in {workdir}", file=sys.stderr)
        return 1
    png = report.plot(out_dir)
    print(f"written: {out_dir / 'results.md'}, results.json" + (", results.png" if png else ""))
    if not config.keep_work:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _bench(config: BenchConfig, workdir: Path, runs: list[dict[str, Any]]) -> str | None:
    """Run every variant; returns why the benchmark stopped early, or None."""
    with redis_server(workdir / "redis") as redis, seaweed_server(workdir / "seaweed") as url:
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            config=Config(max_pool_connections=32),
            aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_TEST_ENV["AWS_REGION"],
        )
        for bucket in (SOURCE_BUCKET, DEST_BUCKET):
            s3.create_bucket(Bucket=bucket)
        datasets = _seed(config, s3)
        for dataset in datasets.values():
            warm_server(s3, dataset, DEST_BUCKET, f"warmup/server/{dataset.name}/")
        stage = Stage(
            config,
            s3,
            redis,
            find_child(f"-dir={workdir / 'seaweed'}"),
            workdir,
            datasets["warmup"],
            records=runs,  # the caller writes them out, even after a failure
        )
        try:
            for variant in config.variants:
                for name, latency_ms in config.runs_of(variant):
                    _run_variant(stage, variant, name, latency_ms, url, datasets)
        except (VerificationError, ToolFailed) as exc:
            return str(exc)
    return None


def _seed(config: BenchConfig, s3: S3Client) -> dict[str, Dataset]:
    """The sources (small objects; the mixed set) and the workers' warm-up objects."""
    started = time.perf_counter()
    needs = {"small": {"plain", "latency", "scaleout"}, "mixed": {"mixed"}}
    datasets: dict[str, Dataset] = {}
    for name, variants in needs.items():
        if variants & set(config.variants):
            large = config.large_objects if name == "mixed" else 0
            sizes = plan_sizes(config.objects, config.sizes, config.seed, large, config.large_size)
            datasets[name] = seed_dataset(
                s3, name, SOURCE_BUCKET, f"src/{name}/", sizes, config.seed
            )
    processes = max(
        (s.processes for v in config.variants for t in tool_rows(config, v) if (s := t.shape)),
        default=1,
    )
    datasets["warmup"] = seed_dataset(
        s3, "warmup", SOURCE_BUCKET, "src/warmup/", [1024] * (8 * processes), config.seed
    )
    seeded = sum(d.count for d in datasets.values())
    print(f"seeded {seeded} source objects in {time.perf_counter() - started:.1f} s")
    return datasets


def _run_variant(
    stage: Stage,
    variant: str,
    name: str,
    latency_ms: float | None,
    url: str,
    datasets: dict[str, Dataset],
) -> None:
    config = stage.config
    source = datasets["mixed" if variant == "mixed" else "small"]
    multipart = config.multipart if variant == "mixed" else None
    specs = tool_rows(config, variant)
    with _endpoint(url, latency_ms) as (endpoint, proxy):
        schedule = build_schedule(specs, config.repeats)
        for number, (repeat, spec) in enumerate(schedule, 1):
            slot = Slot(name, repeat, spec, source, endpoint, multipart, proxy)
            record = run_slot(stage, slot)
            _progress(number, len(schedule), record)


@contextlib.contextmanager
def _endpoint(url: str, latency_ms: float | None) -> Iterator[tuple[str, Proxy | None]]:
    """The URL the tools use: the server's, or (latency) a delaying proxy's in front of it."""
    if latency_ms is None:
        yield url, None
        return
    with latency_proxy(url, latency_ms / 1000) as proxy:
        yield proxy.url, proxy


def _progress(number: int, total: int, record: dict[str, Any]) -> None:
    figures = report.derive(record)
    own = figures["incl_redis_ms"] if record["tool"] == "s3fanout" else figures["client_ms"]
    print(
        f"[{number:>3}/{total}] {record['variant']:<14} {record['label']:<12} "
        f"{record['wall_s']:7.2f} s {figures['objects_per_s']:7.0f} obj/s "
        f"client {own or 0:5.2f} ms/obj  server {figures['server_ms'] or 0:5.2f} ms/obj  "
        f"verified {record['verified']['objects']}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
