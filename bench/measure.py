"""CPU accounting: what every process of a tool spent, in user and system CPU seconds.

Two sources, both exact to the kernel's accounting:
- a command the harness starts and waits for (an external CLI, s3fanout's CLI): ``os.wait4``
  returns the resource usage of that process and of every descendant it waited for;
- a long-lived process tree (s3fanout's workers with Celery's prefork children, redis-server,
  SeaweedFS): ``/proc/<pid>/stat`` utime+stime, plus cutime+cstime (children already reaped),
  summed over the tree, read before and after the measured window.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 0.25  # after a tool exits, let the workers and the server finish their last writes


@dataclass(frozen=True)
class Cpu:
    """User and system CPU seconds."""

    user: float = 0.0
    sys: float = 0.0

    @property
    def total(self) -> float:
        return self.user + self.sys

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.user + other.user, self.sys + other.sys)

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.user - other.user, self.sys - other.sys)


def _stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (the command name may hold spaces and parentheses)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> Cpu:
    """CPU of one process and of its children it has already reaped (all threads)."""
    fields = _stat_fields(pid)
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return Cpu((utime + cutime) / CLK_TCK, (stime + cstime) / CLK_TCK)


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue  # exited while we looked
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu(root: int) -> Cpu:
    """CPU of a process tree: every live process, plus what each has reaped."""
    total = Cpu()
    for pid in descendants(root):
        try:
            total += process_cpu(pid)
        except (OSError, ValueError):
            continue  # exited (and is now counted in its parent's cutime/cstime)
    return total


class TreeMeter:
    """CPU spent by named process trees between ``start()`` and ``stop()``."""

    def __init__(self, roots: Mapping[str, int | Sequence[int]]) -> None:
        self._roots = {
            name: [pids] if isinstance(pids, int) else list(pids) for name, pids in roots.items()
        }
        self._before: dict[str, Cpu] = {}

    def _read(self) -> dict[str, Cpu]:
        return {
            name: sum((tree_cpu(pid) for pid in pids), Cpu()) for name, pids in self._roots.items()
        }

    def start(self) -> None:
        self._before = self._read()

    def stop(self) -> dict[str, Cpu]:
        after = self._read()
        return {name: after[name] - self._before[name] for name in after}


@dataclass(frozen=True)
class Finished:
    """A command that ran to its end: exit code, wall time, CPU of it and its descendants."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    cpu: Cpu
    stdout: Path
    stderr: Path

    def tail(self, chars: int = 3000) -> str:
        """The end of its output, for error messages."""
        out = self.stdout.read_text(errors="replace")[-chars:]
        err = self.stderr.read_text(errors="replace")[-chars:]
        return f"--- stdout (end) ---\n{out}\n--- stderr (end) ---\n{err}"


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    name: str,
    timeout_s: float,
    cwd: Path | None = None,
) -> Finished:
    """Run a command to its end; its output goes to files (a full pipe would stall it)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout, stderr = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env), cwd=cwd)
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, not by Popen
    cpu = Cpu(usage.ru_utime, usage.ru_stime)
    return Finished(tuple(argv), proc.returncode, wall, cpu, stdout, stderr)


def run_metered(
    roots: Mapping[str, int | Sequence[int]],
    argv: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    name: str,
    timeout_s: float,
) -> tuple[Finished, dict[str, Cpu]]:
    """``run_measured``, with the CPU of the ``roots`` trees and of this harness in its window.

    The window closes ``SETTLE_S`` after the command exits; the harness's CPU is ``"harness"``.
    """
    meter = TreeMeter(roots)
    harness = self_cpu()
    meter.start()
    finished = run_measured(argv, env, log_dir, name, timeout_s)
    time.sleep(SETTLE_S)
    cpu = meter.stop()
    cpu["harness"] = self_cpu() - harness
    return finished, cpu


def self_cpu() -> Cpu:
    """CPU of this (harness) process so far, all threads."""
    times = os.times()
    return Cpu(times.user, times.system)


def find_child(argument: str) -> int:
    """The pid of this process's child whose command line holds ``argument`` exactly."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and argument.encode() in args:
            return int(entry)
    raise LookupError(f"no child process with the argument {argument!r}")
