"""``s3fanout worker``'s own start-up: its flags and the metrics directory it owns."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from copy_workers.worker_main import METRICS_DIR_PREFIX, build_parser, metrics_dir, remove_orphans


def test_metrics_are_off_unless_a_port_is_given() -> None:
    args = build_parser().parse_args([])
    assert args.metrics_port is None
    assert args.metrics_address == "0.0.0.0"
    args = build_parser().parse_args(["--metrics-port", "9102", "--metrics-address", "127.0.0.1"])
    assert (args.metrics_port, args.metrics_address) == (9102, "127.0.0.1")


@pytest.mark.parametrize("port", ["0", "65536", "-1"])
def test_a_metrics_port_must_be_a_real_port(port: str) -> None:
    stderr = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stderr(stderr):
        build_parser().parse_args(["--metrics-port", port])
    assert "1 to 65535" in stderr.getvalue()


def test_the_metrics_directory_is_new_private_and_removed_on_exit(tmp_path: Path) -> None:
    with metrics_dir(tmp_path) as directory:
        assert directory.parent == tmp_path and directory.name.startswith(METRICS_DIR_PREFIX)
        assert [p.name for p in directory.iterdir()] == [".lock"]
        assert directory.stat().st_mode & 0o077 == 0  # only the worker's user can read it
    assert list(tmp_path.iterdir()) == []


def test_directories_of_dead_workers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    orphan = tmp_path / f"{METRICS_DIR_PREFIX}deadbeef"
    orphan.mkdir()
    (orphan / ".lock").touch()  # nobody holds it: its worker is gone
    (orphan / "counter_123.db").write_bytes(b"\0" * 64)
    unrelated = tmp_path / f"{METRICS_DIR_PREFIX}not-a-worker"  # no lock file: not ours
    unrelated.mkdir()
    with metrics_dir(tmp_path) as first, metrics_dir(tmp_path) as second:
        assert not orphan.exists()
        assert first.exists() and second.exists() and first != second  # each kept the other
        assert remove_orphans(tmp_path) == []
    assert unrelated.exists()
