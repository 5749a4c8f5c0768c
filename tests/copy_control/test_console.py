"""The ``s3fanout`` command's entry point: exit codes, output, and what it does not load."""

from __future__ import annotations

import json
import subprocess
import sys


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


def test_the_command_does_not_load_what_it_never_uses() -> None:
    # The CRT, the OpenTelemetry SDK and PyYAML cost ~0.2 s of CPU per command; see console.py.
    # os._exit is wrapped to report, at the very end, which of them were loaded.
    report = (
        "import json, os, sys\n"
        "exit = os._exit\n"
        "def report(code):\n"
        "    loaded = [m for m, v in sys.modules.items() if v is not None]\n"
        "    print(json.dumps(sorted({m.split('.')[0] for m in loaded})), file=sys.stderr)\n"
        "    exit(code)\n"
        "os._exit = report\n"
        "sys.argv = ['s3fanout', 'copy', '--help']\n"
        "from copy_control.console import main\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", report], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert {"botocore", "boto3", "celery", "kombu", "redis"} <= loaded
    assert not loaded & {"awscrt", "_awscrt", "opentelemetry", "yaml"}
