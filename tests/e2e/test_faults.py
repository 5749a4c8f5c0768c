"""The fault matrix: every scenario ends with nothing lost and nothing counted twice, or with
a clear failure, and never a hang.

Real processes throughout: redis-server, worker processes, the CLI, SeaweedFS's S3 gateway over
HTTP behind the fault-injection proxy, at the workers' shipped defaults (leases of 30 s, the
visibility timeout of an hour: nothing here waits for it). After each scenario every source
object is at the destination with the same size and ETag (or is reported failed with its
reason), and the summary's counts equal what is in the destination.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from copy_control.dispatch.listing_log import ListingLog
from copy_control.dispatch.producer import producer_app
from copy_core.contract import QUEUE, TASK_NAME, ChunkMessage, CopyItem, CopyJob
from copy_core.runs.keys import RunKeys
from copy_core.runs.leases import LeaseStore, chunk_of
from copy_core.runs.store import RunStore, connect
from devstack.faultproxy import Fault, FaultProxy, FaultRule, Request, fault_proxy, is_copy_object
from devstack.servers import REPO, RedisServer, redis_server, worker_process
from tests.e2e.conftest import s3fanout, seed, start_cli, wait_for

N = 2000
FAST_RETRIES = {"S3FANOUT_KEY_RETRY_BASE_S": "0.05"}


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, tuple[int, str]]:
    """key -> (size, ETag) of every object under ``prefix``."""
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            found[obj["Key"][len(prefix) :]] = (obj["Size"], obj["ETag"])
    return found


@pytest.fixture(scope="module")
def source(sw_s3: Any) -> tuple[str, dict[str, tuple[int, str]]]:
    bucket = f"faults-src-{uuid.uuid4().hex[:6]}"
    keys = [f"data/{i % 10}/{i % 7}/object-{i:05d}.bin" for i in range(N)]
    seed(sw_s3, bucket, keys, body=lambda k: k.encode() * (1 + int(k[-9:-4]) % 17))
    return bucket, objects(sw_s3, bucket, "data/")


@pytest.fixture
def dest(sw_s3: Any) -> str:
    bucket = f"faults-dst-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=bucket)
    return bucket


_db = iter(range(4, 16))


@pytest.fixture
def redis_url(redis_srv: RedisServer) -> str:
    """A Redis database of this test's own: its own queue and run state."""
    return redis_srv.url.rsplit("/", 1)[0] + f"/{next(_db)}"


@pytest.fixture
def proxy(seaweed: str) -> Iterator[FaultProxy]:
    with fault_proxy(seaweed, seed=7) as running:
        yield running


def start(
    redis_url: str, endpoint: str, bucket: str, dest: str, *args: str
) -> subprocess.Popen[str]:
    """``s3fanout copy`` of ``{bucket}/data/`` to ``{dest}/copy/``, in the background."""
    return start_cli(
        "copy",
        f"s3://{bucket}/data/",
        f"s3://{dest}/copy/",
        "--recursive",
        *args,
        "--redis-url",
        redis_url,
        "--json",
        endpoint=endpoint,
    )


def finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, dict[str, Any]]:
    out, err = process.communicate(timeout=timeout)
    assert out.strip(), f"no summary printed:\n{err[-3000:]}"
    return process.returncode, json.loads(out)


def run_hash(redis_url: str, run_id: str) -> dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    found: dict[str, str] = client.hgetall(RunKeys(run_id).run)  # type: ignore[assignment]
    return found


def copied_so_far(redis_url: str, run_id: str) -> int:
    return int(run_hash(redis_url, run_id).get("objects_copied", 0))


def assert_nothing_lost(
    s3: Any,
    dest: str,
    expected: dict[str, tuple[int, str]],
    summary: dict[str, Any],
    missing: frozenset[str] = frozenset(),
) -> None:
    copied = objects(s3, dest, "copy/")
    want = {k: v for k, v in expected.items() if k not in missing}
    assert copied == want, f"{len(set(want) ^ set(copied))} keys differ"
    assert summary["objects_listed"] == len(expected)
    assert summary["objects_copied"] == len(copied)
    assert summary["objects_failed"] == len(missing)
    assert summary["objects_verified"] == len(copied)


def test_throttling_5xx_and_resets_lose_nothing(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules(
        [
            FaultRule(Fault.SLOW_DOWN, probability=0.20),
            FaultRule(Fault.INTERNAL_ERROR, probability=0.05),
            FaultRule(Fault.RESET, probability=0.01),
            FaultRule(Fault.RESET, probability=0.01, after_upstream=True),
        ]
    )
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        code, summary = finish(start(redis_url, proxy.url, bucket, dest, "--chunk-size", "100"))
    stats = proxy.stats
    assert code == 0, summary
    assert stats.slow_down > 100 and stats.internal_error > 20 and stats.reset > 10
    assert summary["retries"] >= stats.slow_down // 2  # most faults were retried per key
    assert_nothing_lost(sw_s3, dest, expected, summary)


@pytest.mark.parametrize("lost", ["host", "main process"])
def test_a_worker_killed_mid_chunk_is_taken_over(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path, lost: str
) -> None:
    # SIGKILL, at the shipped lease: the killed worker's chunks go back to the queue once
    # their lease expires (30 s), not after the visibility timeout (an hour).
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.02, match=is_copy_object)])
    env = {**FAST_RETRIES, "S3FANOUT_KEYS_IN_FLIGHT": "4", "S3FANOUT_WINDOW_INITIAL": "4"}
    run_id = f"kill-{uuid.uuid4().hex[:6]}"
    with (
        worker_process(
            redis_url, proxy.url, tmp_path / "a", concurrency=1, extra_env=env, name="doomed"
        ) as doomed,
        worker_process(
            redis_url, proxy.url, tmp_path / "b", concurrency=1, extra_env=env, name="survivor"
        ) as survivor,
    ):
        process = start(
            redis_url, proxy.url, bucket, dest, "--chunk-size", "200", "--run-id", run_id
        )
        wait_for(
            lambda: (
                copied_so_far(redis_url, run_id) > 300 and '"chunk finished"' in doomed.log_text()
            ),
            "the doomed worker to work",
        )
        wait_for(
            lambda: holds_a_started_chunk(redis_url, run_id, "doomed", 200),
            "the doomed worker to hold a chunk it has started",
        )
        if lost == "host":
            doomed.kill_all()
        else:
            doomed.process.send_signal(signal.SIGKILL)  # its pool process lives on, orphaned
            doomed.process.wait(10)
        code, summary = finish(process, timeout=240)
        takeover = [
            json.loads(line)
            for line in survivor.log_text().splitlines()
            if '"chunk finished"' in line
        ]
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)
    if lost == "host":
        assert any(event["already_recorded"] > 0 for event in takeover), (
            "the survivor took over a chunk the killed worker had started"
        )


def holds_a_started_chunk(redis_url: str, run_id: str, name: str, size: int) -> bool:
    """Whether worker ``name``'s processes hold a chunk of the run that is well under way:
    some of its items recorded, and a quarter of it still to copy (so it cannot end between
    this look and the kill that follows: the window of copies spans chunks, so a worker also
    holds chunks it has only just taken, with nothing recorded yet)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    leases = LeaseStore(client, 600)
    keys = RunKeys(run_id)
    hostname = socket.gethostname()
    for member in leases.members(run_id):
        chunk_id = chunk_of(member)
        holder = leases.holder(run_id, member) or ""
        if chunk_id is None or not holder.startswith(f"{hostname}:"):
            continue
        recorded = int(client.bitcount(keys.recorded(chunk_id)))
        if 0 < recorded < size * 3 // 4 and _parent_is_worker(int(holder.split(":")[1]), name):
            return True
    return False


def _parent_is_worker(pid: int, name: str) -> bool:
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return f"{name}-" in Path(f"/proc/{parent}/cmdline").read_text()
    except OSError:
        return False


def test_redis_restart_mid_run_loses_nothing(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.01, match=is_copy_object)])
    run_id = f"restart-{uuid.uuid4().hex[:6]}"
    # The persistence the README recommends: append-only file, fsync every second.
    with (
        redis_server(
            tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "everysec"
        ) as server,
        worker_process(server.url, proxy.url, tmp_path / "w", extra_env=FAST_RETRIES),
    ):
        process = start(
            server.url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
        )
        wait_for(
            lambda: (
                run_hash(server.url, run_id).get("listing_done") == "1"
                and copied_so_far(server.url, run_id) > 400
            ),
            "the run to be under way",
        )
        server.restart()
        code, summary = finish(process)
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)


def _cursors_saved(redis_url: str, run_id: str, chunks: int) -> bool:
    """Whether ``chunks`` chunks are registered and the listing's cursors are past them all."""
    store = RunStore(connect(redis_url))
    registered = int(store.client.scard(RunKeys(run_id).dispatched))
    saved = sum(part.cursor.next_chunk for part in ListingLog(store, run_id).load())
    return registered >= chunks and saved >= registered


def _is_later_listing_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and "list-type" in request.query
        and ("start-after" in request.query or "continuation-token" in request.query)
    )


def test_a_killed_dispatcher_resumes_without_copying_anything_twice(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    # A rule that never fires records every CopyObject; the second listing page hangs long
    # enough for the dispatcher (what an Airflow task runs) to be killed after the first page
    # was dispatched.
    copies: list[str] = []

    def record_copy(request: Request) -> bool:
        if is_copy_object(request):
            copies.append(request.target)
        return False

    count_copies = FaultRule(Fault.DELAY, delay_s=1e-6, match=record_copy)
    proxy.set_rules(
        [count_copies, FaultRule(Fault.DELAY, delay_s=30, match=_is_later_listing_page)]
    )
    run_id = f"resume-{uuid.uuid4().hex[:6]}"
    args = (redis_url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id)
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        first = start(*args)
        # Killed once the first page's chunks are registered *and* their cursors saved: a
        # dispatcher killed between the two sends the last chunk again on resume (by design,
        # counted once), and a copy of it still in flight would then be copied twice.
        wait_for(lambda: _cursors_saved(redis_url, run_id, 10), "the first page to be dispatched")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert run_hash(redis_url, run_id).get("listing_done") == "0"
        proxy.set_rules([count_copies])
        code, summary = finish(start(*args))
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)
    # Every CopyObject the proxy saw is one key's copy, or a retry the summary counted.
    assert len(copies) == len(expected) + summary["retries"], "nothing was copied twice"


def test_a_source_deleted_after_listing_is_one_failed_key(
    sw_s3: Any, dest: str, seaweed: str, redis_url: str, tmp_path: Path
) -> None:
    bucket = f"faults-del-{uuid.uuid4().hex[:6]}"
    seed(sw_s3, bucket, [f"data/k{i:04d}" for i in range(300)])
    expected = objects(sw_s3, bucket, "data/")
    run_id = f"deleted-{uuid.uuid4().hex[:6]}"
    process = start(redis_url, seaweed, bucket, dest, "--chunk-size", "50", "--run-id", run_id)
    # No worker yet: the first chunks are dispatched (up to the run's window), then an object
    # of the first goes, then work starts.
    wait_for(lambda: int(run_hash(redis_url, run_id).get("objects_listed", 0)) >= 50, "dispatch")
    sw_s3.delete_object(Bucket=bucket, Key="data/k0012")
    with worker_process(redis_url, seaweed, tmp_path):
        code, summary = finish(process)
    assert code == 1, summary  # one failure, --max-failures 0
    assert [(f["key"], f["error_code"]) for f in summary["failures"]] == [
        ("data/k0012", "NoSuchKey")
    ]
    assert summary["status"] == "failed"
    assert_nothing_lost(sw_s3, dest, expected, summary, missing=frozenset({"k0012"}))


def test_cancel_mid_run_stops_with_exact_counts(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.03, match=is_copy_object)])
    run_id = f"cancel-{uuid.uuid4().hex[:6]}"
    with worker_process(redis_url, proxy.url, tmp_path, extra_env=FAST_RETRIES):
        process = start(
            redis_url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
        )
        wait_for(lambda: copied_so_far(redis_url, run_id) > 200, "copies to start")
        cancel = subprocess.run(
            s3fanout("cancel", run_id, "--redis-url", redis_url, "--json", "--wait", "120"),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
            check=False,
        )
        assert cancel.returncode == 0, cancel.stderr
        code, summary = finish(process)
        at_stop = objects(sw_s3, dest, "copy/")
        time.sleep(2)  # a worker that kept copying after the stop would show up here
        later = objects(sw_s3, dest, "copy/")
    assert code == 1 and summary["status"] == "cancelled"
    assert json.loads(cancel.stdout)["status"] == "cancelled"
    assert 200 < summary["objects_copied"] < len(expected)
    assert summary["objects_copied"] + summary["objects_cancelled"] == summary["objects_listed"]
    assert len(at_stop) == len(later) == summary["objects_copied"]
    assert all(expected[key] == value for key, value in later.items())


# --- Redis out of memory, Redis empty, a destination gone --------------------------------------
def test_redis_out_of_memory_for_20_s_loses_nothing(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, tmp_path: Path
) -> None:
    # maxmemory reached, noeviction: every write answers OOM for 20 s. Workers hold their
    # outcomes and deliveries and write them once Redis takes writes again; none stops.
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.01, match=is_copy_object)])
    run_id = f"oom-{uuid.uuid4().hex[:6]}"
    with redis_server(tmp_path / "redis", "--maxmemory-policy", "noeviction") as server:
        admin = redis.Redis.from_url(server.url)
        with worker_process(server.url, proxy.url, tmp_path / "w", extra_env=FAST_RETRIES) as w:
            process = start(
                server.url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
            )
            wait_for(lambda: copied_so_far(server.url, run_id) > 300, "the run to be under way")
            used = int(admin.info("memory")["used_memory"])
            admin.config_set("maxmemory", used)  # full from now on
            time.sleep(20)
            admin.config_set("maxmemory", 0)
            code, summary = finish(process)
            assert w.process.poll() is None, "the worker stopped"
            assert "Unrecoverable error" not in w.log_text()
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)


@pytest.mark.parametrize("listing", ["cli", "pool"])
def test_redis_restarted_empty_is_a_clear_failure(
    source, dest: str, proxy: FaultProxy, tmp_path: Path, listing: str
) -> None:
    # No persistence: the run's state is gone. The waiting command says so and exits; it
    # never waits for a run that can no longer end.
    bucket, _ = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.02, match=is_copy_object)])
    run_id = f"empty-{uuid.uuid4().hex[:6]}"
    extra = ("--list-in-pool",) if listing == "pool" else ()
    with (
        redis_server(tmp_path / "redis") as server,
        worker_process(server.url, proxy.url, tmp_path / "w", extra_env=FAST_RETRIES) as w,
    ):
        process = start(
            server.url,
            proxy.url,
            bucket,
            dest,
            "--chunk-size",
            "100",
            "--run-id",
            run_id,
            *extra,
        )
        wait_for(lambda: copied_so_far(server.url, run_id) > 100, "the run to be under way")
        server.restart()  # without its state
        out, err = process.communicate(timeout=120)
        assert w.process.poll() is None, "the worker stopped"
    assert process.returncode == 1, (out, err)
    assert f"the state of run {run_id} is gone from Redis" in err
    assert "Traceback" not in err


def test_a_destination_that_only_fails_ends_the_run_failed(
    source, dest: str, sw_s3: Any, proxy: FaultProxy, redis_url: str, tmp_path: Path
) -> None:
    # A destination bucket deleted mid-run: SeaweedFS answers 500 to every copy into it. Once
    # every copy between the two buckets has failed for a key deadline, the rest fail at once.
    bucket, expected = source
    proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.01, match=is_copy_object)])
    run_id = f"gone-{uuid.uuid4().hex[:6]}"
    env = {**FAST_RETRIES, "S3FANOUT_KEY_RETRY_DEADLINE_S": "10"}

    def into_dest(request: Request) -> bool:
        return request.target.startswith(f"/{dest}/")

    with worker_process(redis_url, proxy.url, tmp_path, extra_env=env):
        process = start(
            redis_url, proxy.url, bucket, dest, "--chunk-size", "100", "--run-id", run_id
        )
        wait_for(lambda: copied_so_far(redis_url, run_id) > 200, "the run to be under way")
        proxy.set_rules([FaultRule(Fault.INTERNAL_ERROR, match=into_dest)])
        code, summary = finish(process, timeout=300)
    assert code == 1 and summary["status"] == "failed", summary
    assert summary["objects_copied"] + summary["objects_failed"] == len(expected)
    assert summary["errors"] == {"InternalError": summary["objects_failed"]}
    assert summary["objects_copied"] == len(objects(sw_s3, dest, "copy/"))


# --- what is not a chunk of the run -------------------------------------------------------------
def test_a_forged_chunk_is_rejected_and_copies_nothing(
    source, dest: str, sw_s3: Any, seaweed: str, redis_url: str, tmp_path: Path
) -> None:
    # A message naming a real run, with a chunk id it never dispatched, another source bucket
    # and 20 keys: nothing of it is copied, the run's counts are its own, and a run that ended
    # does not change.
    bucket, expected = source
    other = f"faults-other-{uuid.uuid4().hex[:6]}"
    seed(sw_s3, other, [f"secret/{i}" for i in range(20)])
    run_id = f"forged-{uuid.uuid4().hex[:6]}"
    process = start(redis_url, seaweed, bucket, dest, "--chunk-size", "200", "--run-id", run_id)
    wait_for(lambda: int(run_hash(redis_url, run_id).get("objects_listed", 0)) > 0, "dispatch")
    forged = ChunkMessage(
        run_id,
        "p0-999",
        CopyJob(other, dest),
        tuple(CopyItem(f"secret/{i}", f"copy/stolen-{i}", 8) for i in range(20)),
    )
    app = producer_app(redis_url)
    app.send_task(TASK_NAME, kwargs={"chunk": forged.to_wire()}, queue=QUEUE)
    with worker_process(redis_url, seaweed, tmp_path) as worker:
        code, summary = finish(process)
        before = run_hash(redis_url, run_id)
        app.send_task(TASK_NAME, kwargs={"chunk": forged.to_wire()}, queue=QUEUE)
        wait_for(lambda: '"verdict": "ended"' in worker.log_text(), "the second one dropped")
        assert worker.log_text().count('"rejected chunk"') == 1  # the first one
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)  # no "stolen-*" key among them
    assert run_hash(redis_url, run_id) == before


def test_queue_entries_that_are_not_messages_are_dropped_and_the_worker_serves_on(
    sw_s3: Any, dest: str, seaweed: str, redis_url: str, tmp_path: Path
) -> None:
    bucket = f"faults-junk-{uuid.uuid4().hex[:6]}"
    seed(sw_s3, bucket, [f"data/k{i:03d}" for i in range(50)])
    expected = objects(sw_s3, bucket, "data/")
    queue = redis.Redis.from_url(redis_url)
    queue.lpush(QUEUE, b"this is not json")
    envelope = {
        "body": "!!!not base64!!!",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": TASK_NAME, "id": "junk-1"},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": "junk-tag",
            "delivery_info": {"exchange": "", "routing_key": QUEUE},
            "priority": 0,
        },
    }
    queue.lpush(QUEUE, json.dumps(envelope))
    with worker_process(redis_url, seaweed, tmp_path) as worker:
        wait_for(lambda: worker.log_text().count("not a message") >= 2, "the entries dropped")
        code, summary = finish(start(redis_url, seaweed, bucket, dest, "--chunk-size", "10"))
        assert worker.process.poll() is None
    assert code == 0, summary
    assert_nothing_lost(sw_s3, dest, expected, summary)
