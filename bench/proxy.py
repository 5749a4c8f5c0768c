"""The latency variant's proxy: every request to the S3 server is delayed by a fixed time.

The proxy is ``devstack.faultproxy`` (shared with the fault-injection tests) in its fixed-latency
mode. The benchmark runs it in a process of its own (``python -m bench.proxy UPSTREAM DELAY_S``),
so that its CPU is measured like the server's and its threads do not share the harness's GIL.
The process prints its URL, then answers each ``stats`` line on stdin with its request counters
since the previous one (as JSON), and exits when stdin closes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.config import REPO


@dataclass(frozen=True)
class Proxy:
    """A running proxy: the URL to give the tools, its process, and its request counters."""

    url: str
    pid: int
    counters: Callable[[], dict[str, int]]  # counts since the previous call


@contextlib.contextmanager
def latency_proxy(upstream: str, delay_s: float) -> Iterator[Proxy]:
    """``python -m bench.proxy`` in front of ``upstream``; stopped when the context ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", upstream, str(delay_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def counters() -> dict[str, int]:
        stdin.write("stats\n")
        stdin.flush()
        return dict(json.loads(stdout.readline()))

    try:
        url = stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the latency proxy did not start (exit code {proc.poll()})")
        yield Proxy(url, proc.pid, counters)
    finally:
        stdin.close()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def serve(upstream: str, delay_s: float) -> None:
    """The proxy process: print the URL, answer ``stats`` lines, stop at the end of stdin."""
    from devstack.faultproxy import fault_proxy  # noqa: PLC0415 - only in the proxy process

    with fault_proxy(upstream, latency_s=delay_s) as proxy:
        print(proxy.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(dataclasses.asdict(proxy.reset_stats())), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
