"""Run the demo: start local services, seed a source bucket, run the DAG, check the copy.

Everything it starts listens on 127.0.0.1 and is stopped before it exits. Exit code 0 only
if every source object arrived at the destination, byte for byte.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import redis

from copy_core.runs.store import RunStore, connect
from devstack.servers import AWS_TEST_ENV, REPO, moto_server, redis_server, worker_process

_OPERATOR_LINE = re.compile(r"\b(Run af-[0-9a-f]+.*?)(?:\s+\[airflow|$)")
SOURCE, DEST = "demo-source", "demo-destination"
N_OBJECTS = 1000
ACCOUNT_A, ACCOUNT_B = "111111111111", "222222222222"
SOURCE_ROLE = f"arn:aws:iam::{ACCOUNT_A}:role/s3fanout-source-reader"
DEST_ROLE = f"arn:aws:iam::{ACCOUNT_B}:role/s3fanout-copier"
EXTERNAL_ID = "s3fanout-demo"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def role_client(endpoint: str, role_arn: str):
    """An S3 client of the account that ``role_arn`` belongs to (for set-up and checks)."""
    sts = boto3.client("sts", endpoint_url=endpoint)
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName="demo-setup", ExternalId=EXTERNAL_ID)[
        "Credentials"
    ]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed(s3) -> dict[str, bytes]:
    s3.create_bucket(Bucket=SOURCE)
    objects = {
        f"datasets/{region}/{day:02d}/part-{i:04d}.json": json.dumps(
            {"region": region, "day": day, "row": i}
        ).encode()
        * (1 + i % 40)
        for i in range(N_OBJECTS)
        for region, day in [(("eu", "us", "ap")[i % 3], 1 + i % 28)]
    }
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda kv: s3.put_object(Bucket=SOURCE, Key=kv[0], Body=kv[1]), objects.items()
            )
        )
    return objects


def run_dag(env: dict[str, str], workdir: Path) -> None:
    airflow = str(Path(sys.executable).parent / "airflow")
    say("Preparing Airflow (SQLite metadata database in a temporary AIRFLOW_HOME)")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    say("Running the DAG: airflow dags test s3fanout_demo")
    log_path = workdir / "airflow-dag-run.log"
    with open(log_path, "w") as log:
        done = subprocess.run(
            [airflow, "dags", "test", "s3fanout_demo"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    lines = log_path.read_text(errors="replace").splitlines()
    for line in lines:
        # The operator's own log lines, without Airflow's timestamp and logger decorations.
        if match := _OPERATOR_LINE.search(line):
            print("    [operator]", match.group(1)[:160])
    if done.returncode != 0:
        print("\n".join(lines[-40:]))
        raise SystemExit(f"the DAG run failed (exit {done.returncode}); log: {log_path}")


def verify(s3, objects: dict[str, bytes]) -> int:
    say("Checking every object at the destination")

    def check(item: tuple[str, bytes]) -> bool:
        key, body = item
        got = s3.get_object(Bucket=DEST, Key="replica/" + key)["Body"].read()
        return bool(got == body)

    with ThreadPoolExecutor(16) as pool:
        matches = sum(pool.map(check, objects.items()))
    print(f"    {matches} of {len(objects)} objects present and identical")
    return len(objects) - matches


def print_summary(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    [run_key] = [str(key) for key in client.keys("s3fanout:*:run")]
    run_id = run_key.split("{")[1].split("}")[0]
    summary = RunStore(connect(redis_url)).summary(run_id)
    assert summary is not None
    say(f"Run summary ({run_id})")
    for name, value in summary.to_dict().items():
        print(f"    {name:20} {value}")


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="s3fanout-demo-"))
    os.environ.update(AWS_TEST_ENV)
    say(f"Starting moto's S3 server, redis-server and a copy worker (logs in {workdir})")
    with moto_server(workdir / "moto") as endpoint, redis_server(workdir / "redis") as rds:
        source_s3, dest_s3 = role_client(endpoint, SOURCE_ROLE), role_client(endpoint, DEST_ROLE)
        say(f"Seeding s3://{SOURCE}/datasets/ in account {ACCOUNT_A} with {N_OBJECTS} objects")
        objects = seed(source_s3)
        dest_s3.create_bucket(Bucket=DEST)
        print(
            f"    s3://{DEST} is in account {ACCOUNT_B}; account {ACCOUNT_B} cannot list "
            f"account {ACCOUNT_A}'s buckets: "
            f"{SOURCE not in [b['Name'] for b in dest_s3.list_buckets()['Buckets']]}"
        )
        print(f"    the worker holds no keys for either account: it assumes {SOURCE_ROLE}")
        print(f"    (to list) and {DEST_ROLE} (to copy) through STS, with ExternalId")
        with worker_process(rds.url, endpoint, workdir / "worker", concurrency=2):
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
                "AIRFLOW_HOME": str(workdir / "airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "demo" / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "DEMO_REDIS_URL": rds.url,
                "DEMO_SOURCE_BUCKET": SOURCE,
                "DEMO_DEST_BUCKET": DEST,
                "DEMO_SOURCE_ROLE_ARN": SOURCE_ROLE,
                "DEMO_DEST_ROLE_ARN": DEST_ROLE,
                "DEMO_EXTERNAL_ID": EXTERNAL_ID,
            }
            started = time.monotonic()
            run_dag(env, workdir)
            print(
                f"    DAG run took {time.monotonic() - started:.1f} s (Airflow start-up included)"
            )
        print_summary(rds.url)
        missing = verify(dest_s3, objects)
    say("Stopped every service the demo started")
    return 0 if missing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
