"""The ``s3fanout`` command's entry point: exit codes, output, and what it does not load."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from devstack.servers import RedisServer


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "copy_control.console", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def test_help_is_printed_whole_before_the_process_exits() -> None:
    done = _command("copy", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: s3fanout copy")
    assert "--checksum-algorithm" in done.stdout  # the end of the text was flushed too


def test_a_usage_error_exits_2_with_the_message() -> None:
    done = _command("copy")
    assert done.returncode == 2
    assert "the following arguments are required: source, dest" in done.stderr


def _loaded_by(*argv: str) -> tuple[int, set[str]]:
    """Run ``s3fanout *argv`` through the console; its exit code and the packages it loaded.

    os._exit is wrapped to report, at the very end, which top-level packages were loaded.
    """
    report = (
        "import json, os, sys\n"
        "exit = os._exit\n"
        "def report(code):\n"
        "    loaded = [m for m, v in sys.modules.items() if v is not None]\n"
        "    packages = sorted({m.split('.')[0] for m in loaded})\n"
        "    print(json.dumps([code, packages]), file=sys.stderr)\n"
        "    exit(code)\n"
        "os._exit = report\n"
        f"sys.argv = {['s3fanout', *argv]!r}\n"
        "from copy_control.console import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", report], capture_output=True, text=True, timeout=120, check=False
    )
    code, loaded = json.loads(done.stderr.strip().splitlines()[-1])
    return code, set(loaded)


def test_the_command_does_not_load_what_it_never_uses() -> None:
    # The CRT, the OpenTelemetry SDK and PyYAML cost ~0.2 s of CPU per command; see console.py.
    code, loaded = _loaded_by("copy", "--help")
    assert code == 0
    assert {"celery", "kombu", "redis"} <= loaded
    assert not loaded & {"awscrt", "_awscrt", "opentelemetry", "yaml"}


def test_a_copy_listed_in_the_pool_does_not_load_boto3(redis_srv: RedisServer) -> None:
    # No worker takes the listing here: the command waits its --timeout and exits 1.
    code, loaded = _loaded_by(
        "copy", "s3://src-bucket/in/", "s3://dst-bucket/out/", "--recursive", "--list-in-pool",
        "--redis-url", redis_srv.url, "--run-id", f"console-{uuid.uuid4().hex[:8]}",
        "--timeout", "0.2",
    )  # fmt: skip
    assert code == 1
    assert {"celery", "kombu", "redis"} <= loaded
    assert not loaded & {"boto3", "botocore", "s3transfer", "awscrt"}
