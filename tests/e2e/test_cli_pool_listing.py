"""``s3fanout copy --list-in-pool``: a worker lists and dispatches; the CLI has no AWS access."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from copy_core.runs.keys import RunKeys
from devstack.servers import RedisServer, Worker
from tests.e2e.conftest import all_keys, run_cli, seed

N_OBJECTS = 600
NO_AWS: dict[str, str] = {}  # no credentials: only the workers can reach S3


@pytest.fixture(scope="module")
def source(sw_s3) -> tuple[str, dict[str, int]]:
    keys = [f"in/{i % 5}/object {i}.bin" for i in range(N_OBJECTS)]
    seed(sw_s3, "pool-src", keys, body=lambda k: k.encode() * (1 + len(k) % 3))
    sw_s3.put_object(Bucket="pool-src", Key="other/not-copied", Body=b"x")
    return "pool-src", all_keys(sw_s3, "pool-src", "in/")


def _copy(redis_url: str, seaweed: str, *args: str) -> tuple[int, str, str]:
    done = run_cli(
        "copy", *args, "--list-in-pool", "--redis-url", redis_url, endpoint=seaweed,
        credentials=NO_AWS,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_a_worker_lists_and_dispatches_the_run(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    bucket, expected = source
    sw_s3.create_bucket(Bucket="pool-dst")
    run_id = f"pool-{uuid.uuid4().hex[:8]}"
    args = [f"s3://{bucket}/in/", "s3://pool-dst/out/", "--recursive", "--chunk-size", "70"]
    code, out, err = _copy(redis_srv.url, seaweed, *args, "--run-id", run_id, "--json")
    assert code == 0, err
    summary = json.loads(out)
    copied = all_keys(sw_s3, "pool-dst", "out/")
    assert copied == {"out/" + key[len("in/") :]: size for key, size in expected.items()}
    assert summary["status"] == "succeeded"
    assert summary["objects_listed"] == summary["objects_copied"] == N_OBJECTS
    assert summary["bytes_copied"] == sum(copied.values())
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    assert client.scard(RunKeys(run_id).dispatched) == 9  # 600 keys in chunks of 70

    # The same command again finds the run finished: nothing is listed or counted twice.
    before = client.hgetall(RunKeys(run_id).run)
    code, out, err = _copy(redis_srv.url, seaweed, *args, "--run-id", run_id, "--json")
    assert code == 0, err
    assert json.loads(out)["objects_copied"] == N_OBJECTS
    assert client.hgetall(RunKeys(run_id).run) == before


def test_bad_input_found_by_the_worker_exits_2_with_its_message(
    source, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    run_id = f"pool-bad-{uuid.uuid4().hex[:8]}"
    code, _, err = _copy(
        redis_srv.url, seaweed, "s3://no-such-pool-bucket/x/", "s3://pool-dst/y/",
        "--recursive", "--run-id", run_id, "--timeout", "120",
    )  # fmt: skip
    assert code == 2, err
    assert "source bucket 'no-such-pool-bucket' does not exist" in err
    assert "Traceback" not in err
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    assert not client.exists(RunKeys(run_id).run)  # nothing recorded, nothing dispatched


def test_a_bad_manifest_row_found_by_the_worker_copies_nothing(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    # The worker reads every row before the run is created: the 3,001st row fails the run
    # with its row number, and none of the 3,000 good rows before it is copied.
    bucket, expected = source
    good = "".join(f"{bucket},{key}\n" for key in sorted(expected)) * 5
    sw_s3.put_object(Bucket=bucket, Key="manifests/late-bad.csv", Body=f"{good}{bucket}\n")
    sw_s3.create_bucket(Bucket="pool-bad-dst")
    run_id = f"pool-row-{uuid.uuid4().hex[:8]}"
    code, _, err = _copy(
        redis_srv.url, seaweed, f"s3://{bucket}/", "s3://pool-bad-dst/out/",
        "--manifest", f"s3://{bucket}/manifests/late-bad.csv", "--run-id", run_id,
        "--timeout", "120",
    )  # fmt: skip
    assert code == 2, err
    assert f"late-bad.csv row {5 * N_OBJECTS + 1}: expected bucket,key" in err
    assert "Traceback" not in err
    assert all_keys(sw_s3, "pool-bad-dst") == {}
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    assert not client.exists(RunKeys(run_id).run)


@pytest.mark.parametrize("flag", [["--dry-run"], ["--endpoint-url", "http://127.0.0.1:1"]])
def test_flags_about_this_process_s3_access_are_refused(
    flag: list[str], redis_srv: RedisServer, seaweed: str
) -> None:
    run_id = f"pool-flag-{uuid.uuid4().hex[:8]}"
    code, _, err = _copy(
        redis_srv.url, seaweed, "s3://pool-src/in/", "s3://pool-dst/z/", "--recursive",
        "--run-id", run_id, *flag,
    )  # fmt: skip
    assert code == 2
    assert f"--list-in-pool and {flag[0]} do not go together" in err
    assert redis.Redis.from_url(redis_srv.url).keys(f"*{run_id}*") == []
