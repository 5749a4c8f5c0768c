"""From raw runs to medians, a Markdown table, results.json and the plot."""

from __future__ import annotations

import json
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config import BENCH_VENV, REPO

METRICS = (
    "wall_s",
    "objects_per_s",
    "mb_per_s",
    "client_ms",
    "redis_ms",
    "incl_redis_ms",
    "cli_ms",
    "workers_ms",
    "server_ms",
    "proxy_ms",
    "requests_per_obj",
)


def derive(run: dict[str, Any]) -> dict[str, float | None]:
    """A run's figures: rates from wall time, CPU per object in milliseconds."""
    objects: int = run["objects"]
    wall: float = run["wall_s"]
    cpu: dict[str, dict[str, float]] = run["cpu"]

    def ms(part: str) -> float | None:
        if part not in cpu:
            return None
        return 1000 * (cpu[part]["user"] + cpu[part]["sys"]) / objects

    s3fanout = run["tool"] == "s3fanout"
    client, redis = ms("client"), ms("redis")
    return {
        "wall_s": wall,
        "objects_per_s": objects / wall,
        "mb_per_s": run["bytes"] / 1e6 / wall,
        "client_ms": client,
        "redis_ms": redis,
        "incl_redis_ms": (client or 0) + (redis or 0) if s3fanout else None,
        "cli_ms": ms("cli"),
        "workers_ms": ms("workers"),
        "server_ms": ms("server"),
        "proxy_ms": ms("proxy"),
        "requests_per_obj": (
            run["proxy_requests"]["requests"] / objects if run.get("proxy_requests") else None
        ),
    }


def summarize(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (variant, tool row): the median of each figure over the repeats."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["variant"], run["label"]), []).append(run)
    rows = []
    for (variant, label), group in groups.items():
        figures = [derive(run) for run in group]
        row: dict[str, Any] = {
            "variant": variant,
            "label": label,
            "tool": group[0]["tool"],
            "runs": len(group),
            "objects": group[0]["objects"],
            "bytes": group[0]["bytes"],
        }
        for metric in METRICS:
            values = [v for f in figures if (v := f[metric]) is not None]
            row[metric] = statistics.median(values) if values else None
        rows.append(row)
    _add_ratio_to_s5cmd(rows)
    return rows


def _add_ratio_to_s5cmd(rows: list[dict[str, Any]]) -> None:
    """Each tool's CPU per object over s5cmd's in the same variant (s3fanout: with Redis)."""
    s5cmd = {r["variant"]: r["client_ms"] for r in rows if r["tool"] == "s5cmd"}
    for row in rows:
        base = s5cmd.get(row["variant"])
        own = row["incl_redis_ms"] if row["tool"] == "s3fanout" else row["client_ms"]
        row["cpu_vs_s5cmd"] = own / base if base and own is not None else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown(
    rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]], info: dict[str, Any]
) -> str:
    """The results as Markdown: the main table, s3fanout's CPU by process, the conditions."""
    lines = [
        "| variant | tool | runs | wall s | objects/s | MB/s | client CPU ms/obj "
        "| incl. Redis ms/obj | CPU ÷ s5cmd | server CPU ms/obj |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['label']} | {r['runs']} | {_fmt(r['wall_s'])} "
        f"| {_fmt(r['objects_per_s'], 0)} | {_fmt(r['mb_per_s'], 1)} | {_fmt(r['client_ms'])} "
        f"| {_fmt(r['incl_redis_ms'])} | {_fmt(r['cpu_vs_s5cmd'])} | {_fmt(r['server_ms'])} |"
        for r in rows
    ]
    fanout = [r for r in rows if r["tool"] == "s3fanout"]
    if fanout:
        lines += [
            "",
            "s3fanout's CPU by process (ms per object; client = CLI + workers):",
            "",
            "| variant | tool | CLI | workers (all pool processes) | Redis |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r['variant']} | {r['label']} | {_fmt(r['cli_ms'])} | {_fmt(r['workers_ms'])} "
            f"| {_fmt(r['redis_ms'])} |"
            for r in fanout
        ]
    proxied = [r for r in rows if r["proxy_ms"] is not None]
    if proxied:
        lines += [
            "",
            "Through the latency proxy (requests it received, and its CPU, per object):",
            "",
            "| variant | tool | requests/obj | proxy CPU ms/obj |",
            "|---|---|---:|---:|",
        ]
        lines += [
            f"| {r['variant']} | {r['label']} | {_fmt(r['requests_per_obj'])} "
            f"| {_fmt(r['proxy_ms'])} |"
            for r in proxied
        ]
    lines += _multipart_note(runs)
    machine, config = info["machine"], info["config"]
    lines += [
        "",
        f"Median of {config['repeats']} runs per row; {config['objects']} objects of "
        f"{config['sizes']} (seed {config['seed']}); MB = 10^6 bytes. s3fanout lists "
        + (
            "in a worker (`copy --list-in-pool`)."
            if config.get("listing", "cli") == "pool"
            else "in the CLI process."
        ),
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_total']} memory, Linux {machine['kernel']}; "
        "S3 = SeaweedFS on loopback.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
    ]
    return "\n".join(lines) + "\n"


def _multipart_note(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Which tools copied the large objects in parts (a new ETag, so checked by content)."""
    parts: dict[str, int] = {}
    for run in runs:
        if run["variant"] == "mixed":
            parts[run["label"]] = max(
                parts.get(run["label"], 0), run["verified"]["content_checked"]
            )
    if not parts:
        return []
    split = ", ".join(f"{label} ({n})" for label, n in parts.items() if n)
    whole = ", ".join(label for label, n in parts.items() if not n)
    return [
        "",
        f"mixed: copied in parts (new ETag, verified by content MD5): {split or 'none'}; "
        f"in one CopyObject each: {whole or 'none'}.",
    ]


def write_results(out_dir: Path, runs: list[dict[str, Any]], info: dict[str, Any]) -> str:
    """results.json (every run's raw numbers) and results.md; returns the Markdown."""
    rows = summarize(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**info, "summary": rows, "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    text = markdown(rows, runs, info)
    (out_dir / "results.md").write_text(text)
    return text


def plot(out_dir: Path) -> Path | None:
    """results.png, drawn by bench/plot.py in .venv-bench (which has matplotlib)."""
    png = out_dir / "results.png"
    done = subprocess.run(
        [
            str(BENCH_VENV / "bin" / "python"),
            str(REPO / "bench" / "plot.py"),
            str(out_dir / "results.json"),
            str(png),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"the plot failed:\n{done.stderr[-2000:]}")
        return None
    return png
