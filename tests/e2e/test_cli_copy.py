"""``s3fanout copy`` end to end: CLI process, worker process, redis-server, S3 over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest
import redis

from devstack.servers import RedisServer, Worker
from tests.e2e.conftest import all_keys, run_cli, seed

N_OBJECTS = 2000


@pytest.fixture(scope="module")
def source(sw_s3) -> tuple[str, dict[str, int]]:
    keys = [f"data/{i % 7}/{i % 13}/object {i}.bin" for i in range(N_OBJECTS)]
    seed(sw_s3, "cli-src", keys, body=lambda k: k.encode() * (1 + len(k) % 5))
    sw_s3.put_object(Bucket="cli-src", Key="elsewhere/not-copied", Body=b"x")
    return "cli-src", all_keys(sw_s3, "cli-src", "data/")


def test_prefix_copy_summary_matches_the_destination(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    bucket, expected = source
    sw_s3.create_bucket(Bucket="cli-dst")
    run_id = f"cli-test-{uuid.uuid4().hex[:8]}"
    args = [
        "copy",
        f"s3://{bucket}/data/",
        "s3://cli-dst/copy/",
        "--recursive",
        "--redis-url",
        redis_srv.url,
        "--chunk-size",
        "150",
        "--run-id",
        run_id,
        "--json",
    ]
    done = run_cli(*args, endpoint=seaweed)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    copied = all_keys(sw_s3, "cli-dst", "copy/")
    assert copied == {"copy/" + k[len("data/") :]: size for k, size in expected.items()}
    assert summary["status"] == "succeeded"
    assert summary["objects_listed"] == summary["objects_copied"] == len(copied) == N_OBJECTS
    assert summary["bytes_copied"] == sum(copied.values())
    assert summary["objects_failed"] == summary["objects_skipped"] == 0

    # The same run again re-attaches to the finished run: nothing is dispatched or counted twice.
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    before = client.hgetall(f"s3fanout:{{{run_id}}}:run")
    again = run_cli(*args, endpoint=seaweed)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["objects_copied"] == N_OBJECTS
    assert client.hgetall(f"s3fanout:{{{run_id}}}:run") == before


def test_single_key_copy_to_a_new_name(
    source, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    bucket, expected = source
    key = sorted(expected)[0]
    done = run_cli(
        "copy",
        f"s3://{bucket}/{key}",
        "s3://cli-dst/single/renamed.bin",
        "--redis-url",
        redis_srv.url,
        "--json",
        endpoint=seaweed,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["objects_copied"] == 1
    body = sw_s3.get_object(Bucket="cli-dst", Key="single/renamed.bin")["Body"].read()
    assert body == sw_s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["s3://no-such-bucket-here/x/", "s3://cli-dst/y/", "--recursive"],
            "source bucket 'no-such-bucket-here' does not exist",
        ),
        (["s3://cli-src/data/missing.bin", "s3://cli-dst/y"], "does not exist"),
        (["cli-src/data/", "s3://cli-dst/y/"], "is not an S3 URL"),
        (["s3://cli-src/data/", "s3://Bad_Bucket/y/"], "not a valid S3 bucket name"),
        (["s3://cli-src", "s3://cli-dst/y/"], "add --recursive"),
    ],
)
def test_bad_input_exits_2_before_anything_is_dispatched(
    args: list[str], message: str, source, redis_srv: RedisServer, seaweed: str
) -> None:
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    queued = client.llen("s3copy")
    run_id = f"bad-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "copy", *args, "--redis-url", redis_srv.url, "--run-id", run_id, endpoint=seaweed
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert client.keys(f"*{run_id}*") == []
    assert client.llen("s3copy") == queued


def test_report_lists_every_failed_key_on_stdout_and_in_s3(
    sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    for bucket in ("report-src", "report-dst"):
        sw_s3.create_bucket(Bucket=bucket)
    for key in ("in/0", "in/1"):
        sw_s3.put_object(Bucket="report-src", Key=key, Body=b"here")
    rows = ["in/0", "missing/a", "in/1", "missing/b"]
    manifest = "".join(f"report-src,{key}\n" for key in rows)
    sw_s3.put_object(Bucket="report-src", Key="lists/manifest.csv", Body=manifest.encode())
    run_id = f"report-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        "copy",
        "s3://report-src/",
        "s3://report-dst/",
        "--manifest",
        "s3://report-src/lists/manifest.csv",
        "--max-failures",
        "2",
        "--redis-url",
        redis_srv.url,
        "--run-id",
        run_id,
        "--json",
        endpoint=seaweed,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["objects_copied"], summary["objects_failed"]) == (2, 2)

    printed = run_cli("report", run_id, "--redis-url", redis_srv.url, endpoint=seaweed)
    assert printed.returncode == 0, printed.stderr
    failures = [json.loads(line) for line in printed.stdout.splitlines()]
    assert sorted(f["key"] for f in failures) == ["missing/a", "missing/b"]
    assert all(f["error_code"] and f["message"] for f in failures)

    # The same lines uploaded: through the command that loads no CRT (see console.py).
    target = "s3://report-dst/reports/failures.ndjson"
    uploaded = run_cli(
        "report", run_id, "--redis-url", redis_srv.url, "--output", target, endpoint=seaweed
    )
    assert uploaded.returncode == 0, uploaded.stderr
    assert "wrote 2 failure records" in uploaded.stderr
    body = sw_s3.get_object(Bucket="report-dst", Key="reports/failures.ndjson")["Body"].read()
    assert body.decode() == printed.stdout
