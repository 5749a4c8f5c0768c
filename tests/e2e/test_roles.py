"""Cross-account copies with assumed roles, against moto's S3 and STS over HTTP.

moto keeps each account's buckets apart and issues real-looking temporary credentials for
AssumeRole, so the source bucket lives in account A, the destination in account B, and the
workers reach them only through the roles they assume.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack.servers import RedisServer, Worker, worker_process
from tests.e2e.conftest import run_cli as run_s3fanout

ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
SOURCE_ROLE = f"arn:aws:iam::{ACCOUNT_A}:role/s3fanout-source-reader"
DEST_ROLE = f"arn:aws:iam::{ACCOUNT_B}:role/s3fanout-dest-writer"
EXTERNAL_ID = "s3fanout-test-external-id"
# Distinctive base credentials, so that the secret scan can look for them too.
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAWORKERBASE000001",
    "AWS_SECRET_ACCESS_KEY": "worker-base-secret-5EC12E7-never-logged",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
MiB = 1024 * 1024


def role_client(endpoint: str, role_arn: str, region: str = "us-east-1") -> Any:
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=BASE_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=BASE_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    role = sts.assume_role(RoleArn=role_arn, RoleSessionName="test-setup", ExternalId=EXTERNAL_ID)
    creds = role["Credentials"]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


@dataclass
class Accounts:
    endpoint: str
    redis_url: str
    source: Any  # S3 client in account A
    dest: Any  # S3 client in account B
    worker: Worker


@contextlib.contextmanager
def two_accounts(
    redis_url: str, endpoint: str, workdir: Path, name: str, env: dict[str, str] = BASE_ENV
) -> Iterator[Accounts]:
    """A worker ``name`` with base credentials only, on ``redis_url``; an S3 client per role."""
    with worker_process(
        redis_url, endpoint, workdir, concurrency=1, extra_env=env, name=name
    ) as worker:
        yield Accounts(
            endpoint,
            redis_url,
            role_client(endpoint, SOURCE_ROLE),
            role_client(endpoint, DEST_ROLE),
            worker,
        )


@pytest.fixture(scope="module")
def accounts(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Accounts]:
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/2"  # a queue of its own
    env = {**BASE_ENV, "S3FANOUT_CREDENTIAL_REFRESH_MARGIN_S": "899"}
    workdir = tmp_path_factory.mktemp("roles-worker")
    with two_accounts(redis_url, s3_endpoint, workdir, "roles-worker", env) as found:
        yield found


# The CLI's flags for the two roles of these tests.
ROLE_ARGS = (
    "--source-role-arn",
    SOURCE_ROLE,
    "--dest-role-arn",
    DEST_ROLE,
    "--external-id",
    EXTERNAL_ID,
)


def run_cli(accounts: Accounts, *args: str) -> subprocess.CompletedProcess[str]:
    return run_s3fanout(
        "copy",
        *args,
        "--redis-url",
        accounts.redis_url,
        *ROLE_ARGS,
        "--session-duration",
        "900",
        "--json",
        endpoint=accounts.endpoint,
        credentials=BASE_ENV,
    )


def seed(accounts: Accounts, n: int, big: int = 0) -> tuple[str, dict[str, bytes]]:
    bucket = f"acct-a-{uuid.uuid4().hex[:8]}"
    accounts.source.create_bucket(Bucket=bucket)
    objects = {
        f"data/{i % 4}/obj-{i}.json": f'{{"i": {i}}}'.encode() * (1 + i % 9) for i in range(n)
    }
    objects.update({f"data/big-{i}.bin": bytes([i]) * (9 * MiB + i) for i in range(big)})
    for key, body in objects.items():
        accounts.source.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="text/x-test",
            Metadata={"origin": "a"},
            Tagging="team=data",
        )
    return bucket, objects


def dest_bucket(accounts: Accounts) -> str:
    bucket = f"acct-b-{uuid.uuid4().hex[:8]}"
    accounts.dest.create_bucket(Bucket=bucket)
    return bucket


def check_copied(
    accounts: Accounts, bucket: str, objects: dict[str, bytes], tags: bool = True
) -> None:
    for key, body in objects.items():
        got = accounts.dest.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body, key
        assert got["ContentType"] == "text/x-test", key
        assert got["Metadata"].get("origin") == "a", key
        if tags:
            tag_set = accounts.dest.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
            assert tag_set == [{"Key": "team", "Value": "data"}], key


def test_buckets_really_live_in_two_accounts(accounts: Accounts) -> None:
    source, _ = seed(accounts, 1)
    names_in_b = [b["Name"] for b in accounts.dest.list_buckets()["Buckets"]]
    assert source not in names_in_b


@pytest.mark.parametrize("mode", ["server_side", "stream"])
def test_copy_across_accounts_with_assumed_roles(accounts: Accounts, mode: str) -> None:
    source, objects = seed(accounts, 30, big=2 if mode == "stream" else 0)
    dest = dest_bucket(accounts)
    done = run_cli(
        accounts,
        f"s3://{source}/data/",
        f"s3://{dest}/data/",
        "--recursive",
        "--copy-mode",
        mode,
        "--chunk-size",
        "8",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["objects_copied"] == len(objects)
    assert summary["objects_streamed"] == (len(objects) if mode == "stream" else 0)
    # moto's server-side CopyObject drops tags across accounts (S3 copies them, given
    # s3:GetObjectTagging); a streamed copy passes them explicitly, so they are checked there.
    check_copied(accounts, dest, objects, tags=(mode == "stream"))


def test_credentials_are_refreshed_during_a_run(accounts: Accounts) -> None:
    # The worker renews credentials 899 s before they expire and the sessions last 900 s, so
    # a session is renewed once it is a second old. The run is capped at 40 requests a
    # second and copies 120 objects (a request each at least): it lasts over 2 s on any
    # machine, however fast, so at least one renewal must happen.
    source, objects = seed(accounts, 120)
    dest = dest_bucket(accounts)
    run_id = f"refresh-{uuid.uuid4().hex[:8]}"
    done = run_cli(
        accounts,
        f"s3://{source}/data/",
        f"s3://{dest}/data/",
        "--recursive",
        "--chunk-size",
        "20",
        "--max-requests-per-second",
        "40",
        "--run-id",
        run_id,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert (summary["objects_copied"], summary["objects_failed"]) == (len(objects), 0)
    events = [
        json.loads(line)
        for line in accounts.worker.log_text().splitlines()
        if '"event": "assumed role"' in line
    ]
    this_run = [e for e in events if e["session_name"] == f"s3fanout-{run_id}"]
    assert {e["role_arn"] for e in this_run} == {DEST_ROLE}  # server-side: the signer only
    assert len(this_run) >= 2, "the first session and at least one renewal"
    assert len({e["expires"] for e in this_run}) == len(this_run), "each one a new session"
    check_copied(accounts, dest, dict(list(objects.items())[:20]), tags=False)
