"""One measured run of one tool, and the order of runs (tools alternate, run by run)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from bench import peers
from bench.config import BenchConfig, Multipart, WorkerShape
from bench.dataset import Dataset, delete_prefix, verify_copy
from bench.measure import Cpu, Finished, run_measured, run_metered
from bench.proxy import Proxy
from devstack.servers import RedisServer, worker_process

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEST_BUCKET = "bench-dest"
Row = TypeVar("Row")


class ToolFailed(RuntimeError):
    """A tool exited with an error or reported other counts than the verification found."""


@dataclass(frozen=True)
class ToolSpec:
    """A row of the results: a tool, and for s3fanout the layout of its workers."""

    tool: str
    label: str
    shape: WorkerShape | None = None


def build_schedule(specs: Sequence[Row], repeats: int) -> list[tuple[int, Row]]:
    """Round r runs every tool once, the order rotated by r: A B C, B C A, C A B, ...

    Tools alternate run by run (never A A A B B B), so slow drift of a shared machine hits all
    of them alike, and rotating removes the advantage of always going first (or last).
    """
    schedule = []
    for repeat in range(repeats):
        shift = repeat % len(specs)
        schedule += [(repeat, spec) for spec in [*specs[shift:], *specs[:shift]]]
    return schedule


@dataclass
class Stage:
    """What the runs of one invocation share: servers, clients, the scratch directory."""

    config: BenchConfig
    s3: S3Client  # straight to the server: seeding, verification, clean-up
    redis: RedisServer
    server_pid: int
    workdir: Path
    warmup: Dataset
    runs_started: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)

    def redis_pid(self) -> int:
        assert self.redis.process is not None
        return self.redis.process.pid


@dataclass(frozen=True)
class Slot:
    """One run to do: which variant, tool, repeat, source, endpoint and part settings."""

    variant: str
    repeat: int
    spec: ToolSpec
    source: Dataset
    endpoint_url: str
    multipart: Multipart | None = None
    proxy: Proxy | None = None  # the latency variant's proxy in front of the server


def run_slot(stage: Stage, slot: Slot) -> dict[str, Any]:
    """Copy the slot's source to a fresh prefix with its tool, measure, verify, clean up."""
    stage.runs_started += 1
    index = stage.runs_started
    name = f"{index:03d}-{slot.variant}-{slot.spec.label.replace(' ', '')}"
    target = peers.Target(
        slot.endpoint_url,
        slot.source.bucket,
        slot.source.prefix,
        DEST_BUCKET,
        f"runs/{name}/",
        slot.multipart,
    )
    scratch = stage.workdir / "runs" / name
    scratch.mkdir(parents=True, exist_ok=True)
    run = _run_s3fanout if slot.spec.tool == "s3fanout" else _run_external
    measured, report = run(stage, slot, target, scratch)
    finished = measured.finished
    verified = verify_copy(stage.s3, slot.source, DEST_BUCKET, target.dest_prefix)
    _check_report(slot, finished, report)
    delete_prefix(stage.s3, DEST_BUCKET, target.dest_prefix)
    record = {
        "index": index,
        "variant": slot.variant,
        "tool": slot.spec.tool,
        "label": slot.spec.label,
        "repeat": slot.repeat,
        "shape": asdict(slot.spec.shape) if slot.spec.shape else None,
        "objects": slot.source.count,
        "bytes": slot.source.total_bytes,
        "wall_s": finished.wall_s,
        "cpu": {part: asdict(value) for part, value in measured.cpu.items()},
        "proxy_requests": measured.requests,
        "verified": asdict(verified),
        "tool_report": report,
        "argv": list(finished.argv),
    }
    stage.records.append(record)
    return record


@dataclass(frozen=True)
class Measured:
    """A tool's command that ran, with the CPU of every process tree in its window."""

    finished: Finished
    cpu: dict[str, Cpu]
    requests: dict[str, int] | None  # the latency proxy's counters for the window


def _measure(
    stage: Stage, slot: Slot, command: peers.Command, scratch: Path, **tools: list[int]
) -> Measured:
    """Run ``command`` to its end; CPU of the server, Redis, the proxy and ``tools`` meanwhile."""
    roots: dict[str, int | list[int]] = {
        "server": stage.server_pid,
        "redis": stage.redis_pid(),
        **tools,
    }
    proxy = slot.proxy
    if proxy is not None:
        roots["proxy"] = proxy.pid
        proxy.counters()  # from zero: the warm-up's requests are not the run's
    finished, cpu = run_metered(
        roots, command.argv, command.env, scratch, slot.spec.tool, stage.config.timeout_s + 30
    )
    requests = proxy.counters() if proxy is not None else None
    if finished.returncode != 0:
        raise ToolFailed(f"{slot.spec.label} exited {finished.returncode}\n{finished.tail()}")
    return Measured(finished, cpu, requests)


def _run_external(
    stage: Stage, slot: Slot, target: peers.Target, scratch: Path
) -> tuple[Measured, dict[str, Any]]:
    command = peers.EXTERNAL[slot.spec.tool](target, scratch)
    measured = _measure(stage, slot, command, scratch)
    measured.cpu["client"] = measured.finished.cpu
    report: dict[str, Any] = {}
    if slot.spec.tool == "boto3":
        report = json.loads(measured.finished.stdout.read_text().strip().splitlines()[-1])
    return measured, report


def _run_s3fanout(
    stage: Stage, slot: Slot, target: peers.Target, scratch: Path
) -> tuple[Measured, dict[str, Any]]:
    """Fresh workers for the run, warmed up; then only the measured copy counts."""
    shape = slot.spec.shape or stage.config.workers
    command = peers.s3fanout_cli(
        target,
        stage.redis.url,
        stage.config.chunk_size,
        stage.config.timeout_s,
        list_in_pool=stage.config.list_in_pool,
    )
    extra_env = {}
    if stage.config.keys_in_flight is not None:
        extra_env["S3FANOUT_KEYS_IN_FLIGHT"] = str(stage.config.keys_in_flight)
    with worker_pool(stage.redis.url, slot.endpoint_url, shape, scratch, extra_env) as pids:
        _warm_up(stage, slot.endpoint_url, scratch)
        measured = _measure(stage, slot, command, scratch, workers=pids)
    cpu = measured.cpu
    cpu["cli"] = measured.finished.cpu
    cpu["client"] = cpu["cli"] + cpu["workers"]
    return measured, json.loads(measured.finished.stdout.read_text())


@contextlib.contextmanager
def worker_pool(
    redis_url: str,
    endpoint_url: str,
    shape: WorkerShape,
    scratch: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[list[int]]:
    """``shape.instances`` fresh worker processes (logs ``worker<i>.log``); yields their pids."""
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                worker_process(
                    redis_url,
                    endpoint_url,
                    scratch,
                    concurrency=shape.concurrency,
                    extra_env=extra_env,
                    name=f"worker{i}",
                )
            )
            for i in range(shape.instances)
        ]
        yield [worker.process.pid for worker in workers]


def _warm_up(stage: Stage, endpoint_url: str, scratch: Path) -> None:
    """A small copy in one-key chunks, so that every pool process has built its S3 client.

    Workers are long-lived; their start-up (imports, clients, connections) is not what a
    copied object costs. The CLI, like every peer, starts cold in every run.
    """
    target = peers.Target(
        endpoint_url,
        stage.warmup.bucket,
        stage.warmup.prefix,
        DEST_BUCKET,
        f"warmup/{scratch.name}/",
    )
    command = peers.s3fanout_cli(
        target, stage.redis.url, 1, stage.config.timeout_s, stage.config.list_in_pool
    )
    finished = run_measured(
        command.argv, command.env, scratch, "warmup", stage.config.timeout_s + 30
    )
    if finished.returncode != 0:
        raise ToolFailed(f"s3fanout warm-up exited {finished.returncode}\n{finished.tail()}")
    verify_copy(stage.s3, stage.warmup, DEST_BUCKET, target.dest_prefix)
    delete_prefix(stage.s3, DEST_BUCKET, target.dest_prefix)


def _check_report(slot: Slot, finished: Finished, report: dict[str, Any]) -> None:
    """The tool's own counts must agree with what the verification found."""
    expected: dict[str, Any] = {}
    if slot.spec.tool == "s3fanout":
        expected = {
            "status": "succeeded",
            "objects_listed": slot.source.count,
            "objects_copied": slot.source.count,
            "objects_failed": 0,
            "bytes_copied": slot.source.total_bytes,
        }
    elif slot.spec.tool == "boto3":
        expected = {"copied": slot.source.count, "failed": 0}
    wrong = {k: (report.get(k), v) for k, v in expected.items() if report.get(k) != v}
    if wrong:
        raise ToolFailed(f"{slot.spec.label} reported (got, expected) {wrong}\n{finished.tail()}")
