"""What one benchmark invocation measures: objects, sizes, variants, tools and their settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from copy_control.units import parse_size

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".venv-bench"
RESULTS_ROOT = REPO / "bench" / "results"

VARIANTS = ("plain", "latency", "mixed", "scaleout")
TOOLS = ("s3fanout", "s5cmd", "rclone", "awscli", "boto3")
MiB = 1024**2


@dataclass(frozen=True)
class SizeRange:
    """Object sizes in bytes, inclusive at both ends."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high:
            raise ValueError(f"size range {self.low}-{self.high}: need 0 <= low <= high")

    @classmethod
    def parse(cls, text: str) -> SizeRange:
        """``1KiB-64KiB`` (or a single size, ``4KiB``, for a fixed size)."""
        low, sep, high = text.partition("-")
        return cls(parse_size(low, "--sizes"), parse_size(high if sep else low, "--sizes"))

    def __str__(self) -> str:
        return f"{human(self.low)}-{human(self.high)}"


@dataclass(frozen=True)
class Multipart:
    """Where the tools switch to a multipart copy, and the part size they use then."""

    threshold: int = 16 * MiB
    part_size: int = 8 * MiB

    def __post_init__(self) -> None:
        if self.part_size < 5 * MiB:
            raise ValueError("S3 parts (except the last) must be at least 5 MiB")


@dataclass(frozen=True)
class WorkerShape:
    """How s3fanout's workers are laid out: Celery instances x pool processes each."""

    instances: int = 1
    concurrency: int = 2

    @property
    def processes(self) -> int:
        return self.instances * self.concurrency


@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark invocation needs to know, validated once."""

    objects: int = 2000
    sizes: SizeRange = field(default_factory=lambda: SizeRange(1024, 64 * 1024))
    repeats: int = 3
    variants: tuple[str, ...] = ("plain", "latency", "mixed", "scaleout")
    tools: tuple[str, ...] = TOOLS
    seed: int = 20261125
    workers: WorkerShape = field(default_factory=WorkerShape)
    scaleout: tuple[int, ...] = (1, 2, 4)
    scaleout_by: str = "concurrency"  # or "instances": separate Celery workers of 1 process
    chunk_size: int | None = None  # None: the CLI's default
    keys_in_flight: int | None = None  # None: the worker's default
    listing: str = "cli"  # the CLI lists, its default; or "pool": s3fanout copy --list-in-pool
    latency_ms: tuple[float, ...] = (20.0,)  # the latency variant: one row group each
    large_objects: int = 3
    large_size: int = 40 * MiB
    multipart: Multipart = field(default_factory=Multipart)
    timeout_s: float = 900.0
    results_dir: Path = RESULTS_ROOT
    keep_work: bool = False

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS] + [
            t for t in self.tools if t not in TOOLS
        ]
        if unknown:
            raise ValueError(f"unknown variant or tool {unknown}: choose from {VARIANTS + TOOLS}")
        if self.objects < 1 or self.repeats < 1:
            raise ValueError("--objects and --repeats must be at least 1")
        if "mixed" in self.variants and self.large_objects >= self.objects:
            raise ValueError("--large-objects must be fewer than --objects")
        if self.scaleout_by not in ("concurrency", "instances"):
            raise ValueError("--scaleout-by is 'concurrency' or 'instances'")
        if self.listing not in ("pool", "cli"):
            raise ValueError("--listing is 'pool' or 'cli'")
        if not self.latency_ms or any(not 0 <= ms < 10_000 for ms in self.latency_ms):
            raise ValueError("--latency-ms takes delays from 0 to 10000 ms, e.g. 0,20,100,250")

    def runs_of(self, variant: str) -> list[tuple[str, float | None]]:
        """The row groups a variant stands for, as (name, added latency in ms): the latency
        variant is one group per delay of the sweep, named e.g. ``latency-100ms``."""
        if variant != "latency":
            return [(variant, None)]
        return [(f"latency-{ms:g}ms", ms) for ms in self.latency_ms]

    @property
    def list_in_pool(self) -> bool:
        """Whether s3fanout runs as ``copy --list-in-pool`` (a worker lists)."""
        return self.listing == "pool"

    def scaleout_shapes(self) -> list[WorkerShape]:
        """The worker layouts of the scaleout variant, one row each."""
        if self.scaleout_by == "instances":
            return [WorkerShape(instances=n, concurrency=1) for n in self.scaleout]
        return [WorkerShape(instances=1, concurrency=n) for n in self.scaleout]


def human(size: int) -> str:
    """``5GiB``, ``40MiB``, ``1KiB``: the largest unit that divides it, else bytes."""
    for unit, factor in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
