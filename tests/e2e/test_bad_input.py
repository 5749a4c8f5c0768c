"""Bad input, tried as a user would: each case exits with its documented code and one clear
line, before anything is written to S3 or Redis.

The processes are real (the CLI and the worker's command, SeaweedFS over HTTP, redis-server)
and no worker runs: refusing bad input must never depend on one. Each case runs against a
Redis of this module's own, so that "nothing written" is its whole key count.
"""

from __future__ import annotations

import contextlib
import gzip
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from copy_core.runs.store import RunStore
from devstack.servers import REPO, RedisServer, free_port, redis_server
from tests.e2e.conftest import all_keys, cli_env, s3fanout, seed

SRC, DST = "bad-src", "bad-dst"
GOOD_ROWS = 3000
PASSWORD = "hunter2pw"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    message: str
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    redis: str = "plain"  # which server --redis-url names: plain, protected, closed, ...


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RedisServer]]:
    with (
        redis_server(tmp_path_factory.mktemp("bad-redis")) as plain,
        redis_server(
            tmp_path_factory.mktemp("bad-redis-acl"), username="u", password=PASSWORD
        ) as protected,
    ):
        yield {"plain": plain, "protected": protected}


@pytest.fixture(scope="module")
def buckets(sw_s3) -> None:
    seed(sw_s3, SRC, [f"data/{i}.txt" for i in range(20)])
    with contextlib.suppress(sw_s3.exceptions.BucketAlreadyOwnedByYou):
        sw_s3.create_bucket(Bucket=DST)
    good = "".join(f"{SRC},data/{i % 20}.txt\n" for i in range(GOOD_ROWS))
    manifests = {
        "late-bad-row.csv": good + f"{SRC}\n",  # one column: not bucket,key
        "latin1.csv": f"{SRC},data/1.txt\n".encode() + f"{SRC},caf\xe9\n".encode("latin-1"),
        "huge-field.csv": f'{SRC},"{"k" * 200_000}"\n',
        "long-key.csv": f"{SRC},{'k' * 1100}\n",
        "bad-escape.csv": f"{SRC},data%FF.txt\n",
    }
    for name, body in manifests.items():
        raw = body.encode() if isinstance(body, str) else body
        sw_s3.put_object(Bucket=SRC, Key=f"manifests/{name}", Body=raw)
    sw_s3.put_object(
        Bucket=SRC, Key="manifests/late-bad-row.csv.gz", Body=gzip.compress(good.encode() + b",\n")
    )


def _url(case: Case, servers: dict[str, RedisServer]) -> str:
    plain, protected = servers["plain"], servers["protected"]
    return {
        "plain": plain.url,
        "protected": protected.url,
        "no-password": f"redis://127.0.0.1:{protected.port}/0",
        "wrong-password": f"redis://u:wrong@127.0.0.1:{protected.port}/0",
        "closed": f"redis://127.0.0.1:{free_port()}/0",
        "tls-to-plain": f"rediss://127.0.0.1:{plain.port}/0",
        "db-out-of-range": f"redis://127.0.0.1:{plain.port}/99",
        "not-a-url": "notaurl",
    }[case.redis]


def copy(*args: str) -> tuple[str, ...]:
    return ("copy", f"s3://{SRC}/data/", f"s3://{DST}/out/", "--recursive", *args)


def manifest(name: str) -> tuple[str, ...]:
    return (
        "copy",
        f"s3://{SRC}/",
        f"s3://{DST}/out/",
        "--manifest",
        f"s3://{SRC}/manifests/{name}",
    )


CASES = [
    # --- where the keys are, and where they go
    Case("undecodable source key", ("copy", f"s3://{SRC}/data/\udcff.txt", f"s3://{DST}/x"),
         "is not valid UTF-8 (byte 0xff"),
    Case("prefix over 1,024 bytes",
         ("copy", f"s3://{SRC}/{'p' * 1100}", f"s3://{DST}/", "--recursive"),
         "source_prefix is 1,100 bytes, longer than S3's limit"),
    Case("destination key over 1,024 bytes",
         ("copy", f"s3://{SRC}/data/1.txt", f"s3://{DST}/{'k' * 1100}"), "dest_key is 1,100 bytes"),
    Case("missing destination bucket",
         ("copy", f"s3://{SRC}/data/", "s3://no-such-bucket-here/out/", "--recursive"),
         "destination bucket 'no-such-bucket-here' does not exist"),
    Case("missing source bucket",
         ("copy", "s3://no-such-source-here/data/", f"s3://{DST}/out/", "--recursive"),
         "does not exist"),
    Case("destination inside the source",
         ("copy", f"s3://{SRC}/data/", f"s3://{SRC}/data/copies/", "--recursive"),
         "is inside the source"),
    Case("copy onto itself", ("copy", f"s3://{SRC}/data/1.txt", f"s3://{SRC}/data/1.txt"),
         "the destination is the source"),
    # --- options
    Case("negative timeout", copy("--timeout", "-5"), "--timeout"),
    Case("timeout not a number", copy("--timeout", "nan"), "--timeout"),
    Case("unclosed include set", copy("--include", "["), "never closes it"),
    Case("unclosed exclude set", copy("--exclude", "data/[!a"), "never closes it"),
    Case("chunk size 0", copy("--chunk-size", "0"), "--chunk-size"),
    Case("bad run id", copy("--run-id", "../etc"), "run id"),
    # --- manifests: every row is read before the run is created
    Case("bad row after 3,000 good ones", manifest("late-bad-row.csv"),
         f"late-bad-row.csv row {GOOD_ROWS + 1}: expected bucket,key"),
    Case("bad row in a gzipped manifest", manifest("late-bad-row.csv.gz"),
         f"row {GOOD_ROWS + 1}"),
    Case("manifest not UTF-8", manifest("latin1.csv"), "row 2: byte 0xe9 is not UTF-8"),
    Case("manifest field over the CSV limit", manifest("huge-field.csv"), "not a CSV row"),
    Case("manifest key over 1,024 bytes", manifest("long-key.csv"), "longer than S3's limit"),
    Case("manifest key not URL-encoded UTF-8", manifest("bad-escape.csv"),
         "does not decode to UTF-8"),
    # --- Redis: one line within seconds, with what to check
    Case("redis url not a url", copy(), "notaurl", redis="not-a-url"),
    Case("redis closed", copy(), "cannot reach Redis", redis="closed"),
    Case("redis database out of range", copy(), "choose a database", redis="db-out-of-range"),
    Case("redis wrong password", copy(), "password", redis="wrong-password"),
    Case("redis needs a password", copy(), "password", redis="no-password"),
    Case("rediss to a plain server", copy(), "TLS", redis="tls-to-plain"),
    # --- the worker's own configuration
    Case("worker concurrency 0", ("worker", "--concurrency", "0"), "must be at least 1"),
    Case("worker keys in flight not a number", ("worker",), "S3FANOUT_KEYS_IN_FLIGHT",
         env={"S3FANOUT_KEYS_IN_FLIGHT": "abc"}),
    Case("worker negative visibility timeout", ("worker",), "S3FANOUT_VISIBILITY_TIMEOUT_S",
         env={"S3FANOUT_VISIBILITY_TIMEOUT_S": "-1"}),
]  # fmt: skip


def _key_count(servers: dict[str, RedisServer]) -> int:
    return sum(int(redis.Redis.from_url(s.url).dbsize()) for s in servers.values())


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_is_refused_before_anything_is_written(
    case: Case, servers: dict[str, RedisServer], buckets: None, seaweed: str, sw_s3
) -> None:
    before = _key_count(servers)
    args = case.args if case.args[0] != "copy" else (*case.args, "--redis-url", _url(case, servers))
    if case.args[0] == "worker":
        args = (*args, "--redis-url", _url(case, servers))
    done = subprocess.run(
        s3fanout(*args),
        capture_output=True,
        text=True,
        env={**cli_env(seaweed), **case.env},
        cwd=REPO,
        timeout=120,  # a hang guard only: each case answers in seconds
        check=False,
    )
    assert done.returncode == case.code, done.stderr
    assert case.message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("usage:"), done.stderr
    assert _key_count(servers) == before
    assert all_keys(sw_s3, DST) == {}
    if case.redis == "protected" or case.redis == "plain":
        assert PASSWORD not in done.stderr


def test_a_cancelled_run_is_not_repeated_under_its_id(
    servers: dict[str, RedisServer], buckets: None, seaweed: str
) -> None:
    run_id = f"cancelled-{uuid.uuid4().hex[:6]}"
    store = RunStore(redis.Redis.from_url(servers["plain"].url, decode_responses=True))
    store.create_run(run_id, {"source": "an earlier copy"}, None)
    store.request_cancel(run_id)
    before = _key_count(servers)
    done = subprocess.run(
        s3fanout(*copy("--run-id", run_id, "--redis-url", servers["plain"].url)),
        capture_output=True,
        text=True,
        env=cli_env(seaweed),
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"run {run_id} was cancelled" in done.stderr and "new --run-id" in done.stderr
    assert _key_count(servers) == before


def test_ctrl_c_while_waiting_says_how_to_follow_resume_or_cancel(
    servers: dict[str, RedisServer], buckets: None, seaweed: str, tmp_path: Path
) -> None:
    # No worker: the run waits in the pool, and the user gives up waiting.
    process = subprocess.Popen(
        s3fanout(*copy("--redis-url", servers["plain"].url)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(seaweed),
        cwd=REPO,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # "s3fanout: run cli-...", once the run is recorded
    assert first.startswith("s3fanout: run cli-"), first
    run_id = first.split()[-1]
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    assert process.returncode == 130, rest
    assert "Traceback" not in rest
    assert f"s3fanout status {run_id}" in rest
    assert f"--run-id {run_id}" in rest
    assert f"s3fanout cancel {run_id}" in rest
    store = RunStore(redis.Redis.from_url(servers["plain"].url, decode_responses=True))
    assert store.summary(run_id) is not None  # the run is there to re-attach to
