"""``s3fanout status`` in process, against a real redis-server (not a terminal: lines, JSON)."""

from __future__ import annotations

import json
import uuid

import pytest

from copy_control.cli import main
from copy_core.runs.store import RunStore, connect
from devstack.servers import RedisServer


@pytest.fixture
def store(redis_srv: RedisServer) -> RunStore:
    return RunStore(connect(redis_srv.url))


def new_run(store: RunStore) -> str:
    run_id = f"status-{uuid.uuid4().hex[:8]}"
    assert store.create_run(run_id, {"test": run_id}, 0) == "created"
    return run_id


def test_an_unknown_run_exits_2(redis_srv: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "no-such-run", "--redis-url", redis_srv.url]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_once_prints_one_json_reading_of_a_run_in_progress(
    store: RunStore, redis_srv: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = new_run(store)
    assert main(["status", run_id, "--redis-url", redis_srv.url, "--once", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["run_id"] == run_id and record["status"] == "created"
    assert record["progress"]["fraction_done"] is None
    assert record["progress"]["listing_done"] is False


def test_an_ended_run_prints_its_line_and_summary_and_exits_1_if_cancelled(
    store: RunStore, redis_srv: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = new_run(store)
    store.request_cancel(run_id)
    assert main(["status", run_id, "--redis-url", redis_srv.url, "--interval", "0.1"]) == 1
    line, summary, *_ = capsys.readouterr().out.splitlines()
    assert line.startswith("cancelled  100.0%  0/0 objects") and "\r" not in line
    assert summary.startswith("cancelled: 0 copied")


@pytest.mark.parametrize("interval", ["0", "-1", "soon"])
def test_the_interval_must_be_a_positive_number(
    interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "r", "--interval", interval])
    assert exited.value.code == 2
    assert "--interval" in capsys.readouterr().err
