"""Security end to end: no secret in any log, message or Redis value; JSON-only messages.

moto runs in this process (ThreadedMotoServer, still over HTTP for the worker and the CLI) so
that the test can read back every credential its STS issued and look for each of them.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from moto.server import ThreadedMotoServer

from copy_core.broker import celery_settings
from copy_core.contract import QUEUE, TASK_NAME, ChunkMessage, CopyItem, CopyJob
from devstack.servers import RedisServer, redis_server
from tests.e2e.conftest import wait_for
from tests.e2e.test_roles import (
    BASE_ENV,
    Accounts,
    check_copied,
    dest_bucket,
    run_cli,
    seed,
    two_accounts,
)


@pytest.fixture(scope="module")
def in_process_moto() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def accounts(
    redis_srv: RedisServer, in_process_moto: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Accounts]:
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/3"
    workdir = tmp_path_factory.mktemp("sec-worker")
    with two_accounts(redis_url, in_process_moto, workdir, "sec-worker") as found:
        yield found


class RedisMonitor:
    """Records every command Redis executes: Celery messages and run state included."""

    def __init__(self, url: str) -> None:
        self.lines: list[str] = []
        self._client = redis.Redis.from_url(url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RedisMonitor:
        self._thread.start()
        time.sleep(0.2)  # let MONITOR start before the run does
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._client.ping()  # one more command wakes the monitor loop
        self._thread.join(10)

    def _run(self) -> None:
        with self._client.monitor() as monitor:  # type: ignore[no-untyped-call]
            for command in monitor.listen():
                self.lines.append(str(command.get("command", "")))
                if self._stop.is_set():
                    return


def issued_secrets() -> set[str]:
    """Every access key id, secret key and session token moto's STS handed out."""
    from moto.sts.models import sts_backends

    found = {BASE_ENV["AWS_SECRET_ACCESS_KEY"]}
    for regions in sts_backends.values():
        for backend in regions.values():
            for role in getattr(backend, "assumed_roles", []):
                found |= {role.access_key_id, role.secret_access_key, role.session_token}
    return found


def test_no_secret_reaches_a_log_a_message_or_redis(accounts: Accounts) -> None:
    source, objects = seed(accounts, 20, big=1)
    dest = dest_bucket(accounts)
    with RedisMonitor(accounts.redis_url) as monitor:
        done = run_cli(
            accounts,
            f"s3://{source}/data/",
            f"s3://{dest}/data/",
            "--recursive",
            "--copy-mode",
            "auto",
            "--chunk-size",
            "5",
        )
    assert done.returncode == 0, done.stdout + done.stderr
    secrets = issued_secrets()
    assert len(secrets) > 3, "the roles were assumed, so STS issued credentials"
    scanned = {
        "worker log": accounts.worker.log_text(),
        "CLI output": done.stdout + done.stderr,
        "Redis commands (Celery messages, run state)": "\n".join(monitor.lines),
    }
    assert any(TASK_NAME in line for line in monitor.lines), "the monitor saw the messages"
    for where, text in scanned.items():
        leaked = [s for s in secrets if s and s in text]
        assert not leaked, f"the {where} contains {len(leaked)} secret(s)"
        assert "[REDACTED]" not in text, f"something tried to write a secret to the {where}"
    check_copied(accounts, dest, objects, tags=False)


def test_a_pickled_message_is_refused(accounts: Accounts) -> None:
    source, objects = seed(accounts, 1)
    dest = dest_bucket(accounts)
    key = next(iter(objects))
    message = ChunkMessage(
        f"pickle-{uuid.uuid4().hex[:6]}",
        "0",
        CopyJob(source, dest),
        (CopyItem(key, key, len(objects[key]), None, None),),
    )
    producer = Celery("attacker", set_as_current=False)
    producer.conf.update(celery_settings(accounts.redis_url))
    producer.send_task(
        TASK_NAME, kwargs={"chunk": message.to_wire()}, queue=QUEUE, serializer="pickle"
    )
    wait_for(
        lambda: "untrusted content" in accounts.worker.log_text(),
        "the worker to report the refused message",
        timeout=30,
    )
    log_lines = [
        json.loads(line) for line in accounts.worker.log_text().splitlines() if line.startswith("{")
    ]
    refused = [line for line in log_lines if "untrusted content" in line["event"]]
    assert "pickle" in refused[0]["event"]
    assert accounts.dest.list_objects_v2(Bucket=dest).get("KeyCount", 0) == 0


REDIS_PASSWORD = "redis-acl-password-7f3a"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(
        tmp_path_factory.mktemp("tls-redis"), tls=True, username="copier", password=REDIS_PASSWORD
    ) as server:
        yield server


def test_copy_over_tls_with_an_acl_user(
    tls_redis: RedisServer, in_process_moto: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert tls_redis.url.startswith("rediss://copier:")
    workdir = tmp_path_factory.mktemp("tls-worker")
    with two_accounts(tls_redis.url, in_process_moto, workdir, "tls-worker") as accounts:
        source, objects = seed(accounts, 12)
        dest = dest_bucket(accounts)
        done = run_cli(
            accounts,
            f"s3://{source}/data/",
            f"s3://{dest}/data/",
            "--recursive",
            "--chunk-size",
            "4",
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["objects_copied"] == len(objects)
        check_copied(accounts, dest, objects, tags=False)
        for text in (accounts.worker.log_text(), done.stdout, done.stderr):
            assert REDIS_PASSWORD not in text
        # `ps`: the worker's command line and Celery's process titles, main and pool children.
        shown = [_command_line(pid) for pid in _process_tree(accounts.worker.process.pid)]
        assert len(shown) >= 2 and any("redis" in line for line in shown), shown
        assert not any(REDIS_PASSWORD in line for line in shown), shown


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_plain_redis_clients_are_refused_by_the_tls_server(tls_redis: RedisServer) -> None:
    plain = redis.Redis(port=tls_redis.port, socket_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError):
        plain.ping()
