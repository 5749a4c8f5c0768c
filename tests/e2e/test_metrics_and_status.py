"""Operations end to end: a worker's Prometheus metrics against the run's summary, the live
progress of ``s3fanout status`` and ``s3fanout copy`` under a pseudo-terminal, Celery's tools.

Real processes throughout: a redis-server of this module's own, one worker process serving
metrics, the CLI, SeaweedFS behind the fault proxy (which slows copies down so that a run can be
watched while it runs, and answers some with 503 SlowDown so that retries are counted).

Runs are dispatched while the worker is told not to consume (``celery control
cancel_consumer``): the queue then holds the run's window of chunks (its listing pauses there:
back-pressure), watchers start at 0 %, and a source key of a queued chunk deleted in between
fails deterministically. ``add_consumer`` lets the run go.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from fcntl import ioctl
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from copy_control.dispatch.admission import window_for
from copy_control.dispatch.producer import producer_app
from copy_core.contract import QUEUE, RunSummary
from copy_core.runs.store import RunStore, connect
from devstack.faultproxy import Fault, FaultProxy, FaultRule, fault_proxy, is_copy_object
from devstack.servers import REPO, Worker, free_port, redis_server, worker_process
from tests.e2e.conftest import cli_env, s3fanout, seed, start_cli, wait_for

N = 400
CHUNK = 25
# The one run's window in a pool of one worker of 2 processes of 3 chunks each.
WINDOW = window_for(4, 4, 2 * 3)
CELERY = str(Path(sys.executable).parent / "celery")
SLOW_COPIES = [
    FaultRule(Fault.DELAY, delay_s=0.04, match=is_copy_object),
    FaultRule(Fault.SLOW_DOWN, probability=0.05, match=is_copy_object),
]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of this module's own: its queue is seen by this module's worker only."""
    with redis_server(tmp_path_factory.mktemp("redis-ops")) as server:
        yield server.url


@pytest.fixture(scope="module")
def proxy(seaweed: str) -> Iterator[FaultProxy]:
    with fault_proxy(seaweed, seed=11) as running:
        yield running


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def worker(
    redis_url: str, proxy: FaultProxy, metrics_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    env = {"S3FANOUT_KEYS_IN_FLIGHT": "4", "S3FANOUT_KEY_RETRY_BASE_S": "0.05"}
    with worker_process(
        redis_url,
        proxy.url,
        tmp_path_factory.mktemp("ops-worker"),
        concurrency=2,
        extra_env=env,
        metrics_port=metrics_port,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def source(sw_s3: Any) -> str:
    bucket = f"ops-src-{uuid.uuid4().hex[:6]}"
    seed(sw_s3, bucket, [f"data/{i % 9}/object-{i:04d}.bin" for i in range(N)], _body)
    return bucket


def _body(key: str) -> bytes:
    return key.encode() * (1 + int(key[-8:-4]) % 13)


@pytest.fixture
def dest(sw_s3: Any) -> str:
    bucket = f"ops-dst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=bucket)
    return bucket


# --- helpers -----------------------------------------------------------------------------------
def scrape(port: int) -> Samples:
    """Every sample the worker serves, by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name and v}


def node_name(redis_url: str) -> str:
    """The Celery node name of the one worker on ``redis_url``."""
    replies = producer_app(redis_url).control.ping(timeout=10, limit=1)
    assert replies, "no worker answered"
    ((name, _),) = replies[0].items()
    return str(name)


def celery(redis_url: str, *args: str) -> str:
    """Run Celery's own command line against the pool, as an operator would."""
    done = subprocess.run(
        [CELERY, "-A", "copy_workers.celery_app", *args, "--timeout", "10"],
        capture_output=True,
        text=True,
        env={**os.environ, "S3FANOUT_REDIS_URL": redis_url},
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def summary_of(redis_url: str, run_id: str) -> RunSummary | None:
    return RunStore(connect(redis_url)).summary(run_id)


@contextlib.contextmanager
def paused(redis_url: str) -> Iterator[None]:
    """The worker takes no chunk inside the block; the queue keeps what is dispatched.

    Celery's remote control (``celery control cancel_consumer s3copy`` does the same): the
    worker stops consuming once it has answered, and starts again the moment it is told.
    """
    control = producer_app(redis_url).control
    replies = control.cancel_consumer(QUEUE, reply=True, limit=1, timeout=10)
    assert "no longer consuming" in str(replies), replies
    try:
        yield
    finally:
        control.add_consumer(QUEUE, reply=False)


def dispatch(
    redis_url: str, seaweed: str, source: str, dest: str, run_id: str, *extra: str
) -> subprocess.Popen[str]:
    """``s3fanout copy`` in the background; returns once its window of chunks is queued."""
    process = start_cli(
        "copy",
        f"s3://{source}/data/",
        f"s3://{dest}/copy/",
        "--recursive",
        "--redis-url",
        redis_url,
        "--chunk-size",
        str(CHUNK),
        "--run-id",
        run_id,
        *extra,
        endpoint=seaweed,
    )

    store = RunStore(connect(redis_url))

    def at_its_bound() -> bool:
        assert process.poll() is None, process.communicate()
        queued = store.client.llen(QUEUE)
        return store.outstanding(run_id) == WINDOW and queued == WINDOW

    wait_for(at_its_bound, "the run to fill its window of chunks")
    return process


class Terminal:
    """A process whose stdout (or stderr) is a pseudo-terminal of 120 columns; the rest pipes."""

    def __init__(self, command: list[str], env: dict[str, str], stream: str = "stdout") -> None:
        self._master, slave = pty.openpty()
        ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        streams[stream] = slave
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, env=env, cwd=REPO, **streams
        )
        os.close(slave)
        self.output = b""

    def read(self, until: Callable[[str], bool] = lambda _: False, timeout: float = 120) -> str:
        """Read what the terminal shows until ``until`` holds, or the process has ended."""
        deadline = time.monotonic() + timeout
        while not until(self.text) and time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self._master, 65536)
                except OSError:  # EIO: the process closed its end
                    chunk = b""
                if not chunk and self.process.poll() is not None:
                    break
                self.output += chunk
            elif self.process.poll() is not None:
                break
        return self.text

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Exit code, everything the terminal showed, and the other stream's text."""
        self.read(timeout=timeout)
        out, err = self.process.communicate(timeout=timeout)
        os.close(self._master)
        other = (out or err or b"").decode()
        return self.process.returncode, self.text, other


def updates(screen: str) -> list[str]:
    """The successive states of the progress line, redrawn after carriage returns (the line
    after the run id's, if the command printed it)."""
    lines = screen.split("\n")  # the terminal shows a newline as "\r\n"
    line = lines[1] if lines[0].startswith("s3fanout: run ") and len(lines) > 1 else lines[0]
    return [part.removesuffix("\x1b[K") for part in line.split("\r")[1:] if part]


# --- metrics -----------------------------------------------------------------------------------
def test_the_metrics_equal_the_run_summary(
    worker: Worker,
    redis_url: str,
    seaweed: str,
    proxy: FaultProxy,
    metrics_port: int,
    source: str,
    dest: str,
    sw_s3: Any,
) -> None:
    before = scrape(metrics_port)
    assert value(before, "s3fanout_objects_total", outcome="copied") == 0
    run_id = f"metrics-{uuid.uuid4().hex[:6]}"
    missing = f"data/0/object-{9:04d}.bin"  # in the first chunk: queued, not yet copied
    proxy.set_rules(SLOW_COPIES)
    with paused(redis_url):
        process = dispatch(redis_url, seaweed, source, dest, run_id, "--json")
        sw_s3.delete_object(Bucket=source, Key=missing)  # listed, gone before it is copied
        queued = scrape(metrics_port)
        assert value(queued, "s3fanout_queue_depth") == WINDOW
        assert value(queued, "s3fanout_chunks_in_flight") == 0

    during = watch_while_running(metrics_port, redis_url, run_id)
    assert 0 < value(during, "s3fanout_objects_total", outcome="copied") < N
    assert 1 <= value(during, "s3fanout_chunks_in_flight") <= 2 * 3  # two pool processes

    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err  # one failed key, --max-failures 0
    summary = json.loads(out)
    assert summary["objects_failed"] == 1
    assert summary["errors"] == {"NoSuchKey": 1}
    assert summary["retries"] >= 1, proxy.stats  # SlowDown answers were retried

    # The last outcomes are counted just after Redis records them: give the scrape a moment.
    wait_for(lambda: counters(scrape(metrics_port)) == expected(summary), "exact counters", 10)
    after = scrape(metrics_port)
    assert counters(after) == expected(summary)
    assert value(after, "s3fanout_queue_depth") == 0
    assert value(after, "s3fanout_chunks_in_flight") == 0
    copies = sum(by_label(after, "s3fanout_copy_seconds_count", "outcome").values())
    assert copies >= N - 1  # every key that was not cancelled was timed at least once
    assert value(after, "s3fanout_chunks_total", result="admitted") >= N // CHUNK
    # s3fanout status on the ended run: one reading, the failed run's exit code.
    once = subprocess.run(
        s3fanout("status", run_id, "--redis-url", redis_url, "--once", "--json"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert once.returncode == 1, once.stderr
    assert json.loads(once.stdout)["progress"]["fraction_done"] == 1.0


def watch_while_running(port: int, redis_url: str, run_id: str) -> Samples:
    """A scrape taken while chunks are being copied (counters below the later summary)."""
    found: list[Samples] = []

    def caught() -> bool:
        samples = scrape(port)
        summary = summary_of(redis_url, run_id)
        assert summary is not None and not summary.is_final, "the run ended unobserved"
        # Outcomes are recorded in Redis first, then counted: a scrape never runs ahead.
        copied = value(samples, "s3fanout_objects_total", outcome="copied")
        if value(samples, "s3fanout_chunks_in_flight") and copied > 0:
            assert copied <= summary.objects_copied
            found.append(samples)
        return bool(found)

    wait_for(caught, "a scrape in the middle of the run", timeout=60)
    return found[0]


def counters(samples: Samples) -> dict[str, Any]:
    outcomes = by_label(samples, "s3fanout_objects_total", "outcome")
    return {
        "objects_copied": outcomes.get("copied", 0),
        "objects_skipped": outcomes.get("skipped", 0),
        "objects_failed": outcomes.get("failed", 0),
        "objects_cancelled": outcomes.get("cancelled", 0),
        "bytes_copied": value(samples, "s3fanout_bytes_copied_total"),
        "retries": value(samples, "s3fanout_retries_total"),
        "objects_verified": value(samples, "s3fanout_objects_verified_total"),
        "objects_streamed": value(samples, "s3fanout_objects_streamed_total"),
        "errors": by_label(samples, "s3fanout_failures_total", "error_code"),
    }


def expected(summary: dict[str, Any]) -> dict[str, Any]:
    return {name: summary[name] for name in counters({})}


# --- live progress -----------------------------------------------------------------------------
def test_status_draws_a_live_bar_on_a_terminal_and_exits_when_the_run_ends(
    worker: Worker, redis_url: str, seaweed: str, proxy: FaultProxy, source: str, dest: str
) -> None:
    run_id = f"status-{uuid.uuid4().hex[:6]}"
    proxy.set_rules(SLOW_COPIES[:1])
    command = s3fanout("status", run_id, "--redis-url", redis_url, "--interval", "0.1")
    with paused(redis_url):
        copy = dispatch(redis_url, seaweed, source, dest, run_id)
        terminal = Terminal(command, cli_env(seaweed))
        assert "0.0%" in terminal.read(until=lambda shown: "0.0%" in shown, timeout=60)
    code, screen, _ = terminal.finish()
    copy.communicate(timeout=300)

    assert code == 0, screen
    listed = f"{summary_of(redis_url, run_id).objects_listed:,}"  # type: ignore[union-attr]
    drawn = updates(screen)
    percents = {line.split("%")[0].split()[-1] for line in drawn if "%" in line}
    assert len(percents) >= 3, drawn  # 0 %, something in between, 100 %
    assert "100.0" in percents
    assert all(len(line) < 120 for line in drawn)
    assert "█" in drawn[-1] and "succeeded" in drawn[-1]
    assert f"{listed}/{listed} objects" in drawn[-1]
    # Then a new line, and the summary.
    tail = screen.split("\n", 1)[1]
    assert tail.startswith("succeeded:"), tail
    assert f"run id: {run_id}" in tail

    # Not on a terminal: a plain line per reading (no carriage return, no bar), then the summary.
    piped = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )
    assert piped.returncode == 0, piped.stderr
    first, *rest = piped.stdout.splitlines()
    assert first.startswith(f"succeeded  100.0%  {listed}/{listed}") and "\r" not in piped.stdout
    assert "█" not in piped.stdout and rest[0].startswith("succeeded:")


def test_copy_draws_the_bar_on_stderr_when_it_is_a_terminal(
    worker: Worker, redis_url: str, seaweed: str, proxy: FaultProxy, source: str, dest: str
) -> None:
    proxy.set_rules([])
    base = [f"s3://{source}/data/1/", f"s3://{dest}/one/", "--recursive", "--redis-url", redis_url]
    shown = Terminal(s3fanout("copy", *base), cli_env(seaweed), stream="stderr")
    code, screen, stdout = shown.finish()
    assert code == 0, screen
    assert screen.startswith("s3fanout: run cli-"), screen  # the run id first
    assert "\r" in screen and "100.0%" in updates(screen)[-1], screen
    assert stdout.startswith("succeeded:"), stdout  # the summary on stdout, as before

    quiet = Terminal(s3fanout("copy", *base, "--json"), cli_env(seaweed), stream="stderr")
    code, screen, stdout = quiet.finish()
    assert code == 0, screen
    assert "%" not in screen  # --json: no bar
    assert json.loads(stdout)["status"] == "succeeded"


# --- Celery's own tools, and ports ---------------------------------------------------------------
def test_celery_inspect_answers_for_the_pool(worker: Worker, redis_url: str) -> None:
    node = ["--destination", node_name(redis_url)]  # answers at once instead of at the timeout
    assert "pong" in celery(redis_url, "inspect", "ping", *node)
    assert "s3fanout.copy_chunk" in celery(redis_url, "inspect", "registered", *node)
    assert "add consumer" in celery(redis_url, "control", "add_consumer", QUEUE, *node)


def listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (from /proc: no ss or lsof needed)."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def test_only_the_main_process_listens_and_only_with_a_metrics_port(
    worker: Worker, metrics_port: int, redis_url: str, seaweed: str, tmp_path: Path
) -> None:
    pool = children(worker.process.pid)
    assert len(pool) == 2
    assert listening_ports(worker.process.pid) == {metrics_port}
    for child in pool:
        assert listening_ports(child) == set(), "a pool child kept the metrics socket"

    with worker_process(redis_url, seaweed, tmp_path, concurrency=1, name="no-metrics") as plain:
        for pid in [plain.process.pid, *children(plain.process.pid)]:
            assert listening_ports(pid) == set()
