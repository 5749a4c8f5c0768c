"""The command line of each tool for one copy: one function per tool, no I/O but config files.

Every tool copies server-side (CopyObject / UploadPartCopy) from the source prefix to a fresh
destination prefix, with the concurrency named in issue 7, quiet output (printing a line per
object costs CPU that the copy does not need) and, for the mixed variant, the same multipart
threshold and part size where the tool has such settings.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.config import BENCH_VENV, MiB, Multipart
from devstack.servers import AWS_TEST_ENV

S5CMD_WORKERS = 256
RCLONE_TRANSFERS = 64
AWSCLI_CONCURRENCY = 64
BOTO3_THREADS = 64


@dataclass(frozen=True)
class Target:
    """One copy: where from, where to, through which endpoint, with which part settings."""

    endpoint_url: str
    source_bucket: str
    source_prefix: str
    dest_bucket: str
    dest_prefix: str
    multipart: Multipart | None = None  # None: each tool's defaults

    @property
    def source_url(self) -> str:
        return f"s3://{self.source_bucket}/{self.source_prefix}"

    @property
    def dest_url(self) -> str:
        return f"s3://{self.dest_bucket}/{self.dest_prefix}"


@dataclass(frozen=True)
class Command:
    """A process to start: arguments and its whole environment."""

    argv: tuple[str, ...]
    env: dict[str, str]


def tool_env(**extra: str) -> dict[str, str]:
    """The harness's environment with the test credentials and no stray AWS or tool settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "S3FANOUT_", "RCLONE_", "BOTO_"))
    }
    return {**env, **AWS_TEST_ENV, **extra}


def s5cmd(target: Target, scratch: Path) -> Command:
    """``s5cmd cp 's3://A/prefix/*' s3://B/prefix/``: CopyObject for every object, any size."""
    del scratch  # s5cmd needs no config file
    argv = (
        str(BENCH_VENV / "bin" / "s5cmd"),
        "--endpoint-url",
        target.endpoint_url,
        "--numworkers",
        str(S5CMD_WORKERS),
        "--log",
        "error",
        "cp",
        target.source_url + "*",
        target.dest_url,
    )
    return Command(argv, tool_env())


def rclone(target: Target, scratch: Path) -> Command:
    """``rclone copy`` within one remote, so it copies server-side (CopyObject)."""
    remote = {
        "TYPE": "s3",
        "PROVIDER": "SeaweedFS",
        "ENV_AUTH": "false",
        "ACCESS_KEY_ID": AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        "SECRET_ACCESS_KEY": AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        "REGION": AWS_TEST_ENV["AWS_REGION"],
        "ENDPOINT": target.endpoint_url,
    }
    config = scratch / "rclone.conf"
    config.touch()  # empty: the remote comes from the environment
    env = tool_env(RCLONE_CONFIG=str(config))
    env.update({f"RCLONE_CONFIG_BENCH_{k}": v for k, v in remote.items()})
    argv = [
        "rclone",
        "copy",
        f"bench:{target.source_bucket}/{target.source_prefix}",
        f"bench:{target.dest_bucket}/{target.dest_prefix}",
        "--transfers",
        str(RCLONE_TRANSFERS),
        "--checkers",
        str(RCLONE_TRANSFERS),
        "--s3-no-check-bucket",  # the bucket exists: no probe
        "--no-check-dest",  # a fresh prefix: nothing to compare against
        "--s3-no-head",  # no HEAD after each copy (the harness verifies every object)
    ]
    if target.multipart is not None:
        # rclone copies in parts of the cutoff's size above the cutoff: use the part size.
        argv += ["--s3-copy-cutoff", f"{target.multipart.part_size // MiB}Mi"]
    return Command(tuple(argv), env)


def awscli_env(scratch: Path, concurrency: int, multipart: Multipart | None) -> dict[str, str]:
    """An ``aws`` process's environment, with a private config file of these s3 settings."""
    settings = [f"max_concurrent_requests = {concurrency}"]
    if multipart is not None:
        settings += [
            f"multipart_threshold = {multipart.threshold // MiB}MB",
            f"multipart_chunksize = {multipart.part_size // MiB}MB",  # awscli's MB are MiB
        ]
    # What `aws configure set default.s3.<name> <value>` writes, without an aws process each.
    config = scratch / "aws-config"
    config.write_text(
        "[default]\n"
        f"region = {AWS_TEST_ENV['AWS_REGION']}\n"
        "s3 =\n" + "".join(f"    {line}\n" for line in settings)
    )
    return tool_env(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=os.devnull)


def awscli(target: Target, scratch: Path) -> Command:
    """``aws s3 cp --recursive`` with 64 concurrent requests (from a private config file)."""
    argv = (
        str(BENCH_VENV / "bin" / "aws"),
        "s3",
        "cp",
        target.source_url,
        target.dest_url,
        "--recursive",
        "--only-show-errors",
        "--endpoint-url",
        target.endpoint_url,
    )
    return Command(argv, awscli_env(scratch, AWSCLI_CONCURRENCY, target.multipart))


def boto3(target: Target, scratch: Path) -> Command:
    """The naive baseline: list, then ``copy_object`` from 64 threads (bench/boto3_copy.py)."""
    del scratch
    argv = (
        sys.executable,
        "-m",
        "bench.boto3_copy",
        "--endpoint-url",
        target.endpoint_url,
        "--threads",
        str(BOTO3_THREADS),
        target.source_bucket,
        target.source_prefix,
        target.dest_bucket,
        target.dest_prefix,
    )
    return Command(argv, tool_env())


def s3fanout_cli(
    target: Target,
    redis_url: str,
    chunk_size: int | None,
    timeout_s: float,
    list_in_pool: bool = False,
) -> Command:
    """``s3fanout copy --recursive --json``: lists (or, with ``list_in_pool``, has a worker
    list), dispatches to the workers, waits."""
    # A worker lists with its own endpoint (the workers are started with the target's).
    where = ["--list-in-pool"] if list_in_pool else ["--endpoint-url", target.endpoint_url]
    argv = [
        str(Path(sys.executable).parent / "s3fanout"),
        "copy",
        target.source_url,
        target.dest_url,
        "--recursive",
        "--json",
        "--redis-url",
        redis_url,
        *where,
        *(() if chunk_size is None else ("--chunk-size", str(chunk_size))),
        "--timeout",
        str(timeout_s),
    ]
    if target.multipart is not None:
        argv += [
            "--multipart-threshold",
            str(target.multipart.threshold),
            "--part-size",
            str(target.multipart.part_size),
        ]
    return Command(tuple(argv), tool_env())


EXTERNAL = {"s5cmd": s5cmd, "rclone": rclone, "awscli": awscli, "boto3": boto3}
