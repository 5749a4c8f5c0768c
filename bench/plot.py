"""Draw results.png from results.json: objects/s and CPU ms per object, per tool and variant.

Runs in .venv-bench (``.venv-bench/bin/python bench/plot.py results.json results.png``), which
has matplotlib but not this project: standard library and matplotlib only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib  # type: ignore[import-not-found, unused-ignore]

matplotlib.use("Agg")  # headless: choose the backend before pyplot is imported
import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
from matplotlib.patches import Patch  # type: ignore[import-not-found, unused-ignore]

COLOURS = {
    "s3fanout": "#1b7837",
    "s5cmd": "#2166ac",
    "rclone": "#b2182b",
    "awscli": "#e08214",
    "boto3": "#762a83",
}


def positions(rows: list[dict[str, Any]]) -> tuple[list[float], list[float], list[str]]:
    """Bar x positions, grouped by variant with a gap between groups; group centres, names."""
    xs, centres, names = [], [], []
    x, group, start = 0.0, None, 0.0
    for row in rows:
        if row["variant"] != group:
            if group is not None:
                centres.append((start + x - 1) / 2)
                x += 0.8
            group, start = row["variant"], x
            names.append(group)
        xs.append(x)
        x += 1
    centres.append((start + x - 1) / 2)
    return xs, centres, names


def main(results: Path, out: Path) -> None:
    data = json.loads(results.read_text())
    rows = data["summary"]
    xs, centres, names = positions(rows)
    colours = [COLOURS.get(r["tool"], "grey") for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(8, len(rows) * 0.7), 8), sharex=True)
    bars = top.bar(xs, [r["objects_per_s"] for r in rows], color=colours)
    top.bar_label(bars, fmt="%.0f", fontsize="x-small")
    top.set_ylabel("objects / s (median)")
    client = [r["client_ms"] or 0 for r in rows]
    redis = [(r["redis_ms"] or 0) if r["tool"] == "s3fanout" else 0 for r in rows]
    bottom.bar(xs, client, color=colours)
    edges = ["black" if r else "none" for r in redis]
    stacked = bottom.bar(xs, redis, bottom=client, color="white", edgecolor=edges, hatch="///")
    totals = [c + r for c, r in zip(client, redis, strict=True)]
    bottom.bar_label(stacked, labels=[f"{t:.2f}" for t in totals], fontsize="x-small")
    bottom.set_ylabel("client CPU ms / object (median)")
    handles = [
        Patch(facecolor="grey", label="client: all processes of the tool"),
        Patch(facecolor="white", edgecolor="black", hatch="///", label="Redis (s3fanout)"),
    ]
    bottom.legend(handles=handles, loc="upper left", fontsize="small")
    bottom.set_xticks(xs, [r["label"] for r in rows], rotation=45, ha="right", fontsize="small")
    for axis in (top, bottom):
        axis.grid(axis="y", alpha=0.3)
        axis.margins(y=0.15)
    for centre, name in zip(centres, names, strict=True):
        top.annotate(
            name,
            (centre, 1.01),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize="small",
            fontweight="bold",
        )
    machine, config = data["machine"], data["config"]
    fig.suptitle(
        f"{config['objects']} objects of {config['sizes']}, SeaweedFS on loopback, "
        f"{machine['nproc']} CPUs ({machine['cpu_model']})",
        fontsize="medium",
        y=0.995,
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
