"""The Redis of deploy/k8s and docker-compose.yml, started for real from its own script and file.

The container's start-up script runs under /bin/sh with this machine's redis-server, against
redis.conf as shipped (only its address and data directory moved to a temporary place): AUTH is
required, the AOF is on with fsync every second, nothing is evicted, and the password is on no
command line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from devstack.servers import free_port, stop_process, wait_until
from tests.deploy.artefacts import REDIS, REDIS_CONF, base_docs, compose, container, find

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]
PASSWORD = "0123456789abcdef0123456789abcdef"
CONF_IN_CONTAINER = "/etc/redis/redis.conf"


def _scripts() -> dict[str, str]:
    statefulset = container(find(base_docs(), "StatefulSet", REDIS))
    return {
        "k8s": statefulset["command"][-1],
        "compose": compose()["services"]["redis"]["command"][-1],
    }


@dataclass
class Started:
    port: int
    pid: int
    workdir: Path


@pytest.fixture(params=["k8s", "compose"])
def started(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Started]:
    port = free_port()
    conf = REDIS_CONF.read_text(encoding="utf-8")
    for directive, value in (("bind", "127.0.0.1"), ("port", str(port)), ("dir", str(tmp_path))):
        conf, count = re.subn(rf"^{directive} .*$", f"{directive} {value}", conf, flags=re.M)
        assert count == 1, directive
    (tmp_path / "redis.conf").write_text(conf, encoding="utf-8")
    script = _scripts()[request.param].replace(CONF_IN_CONTAINER, str(tmp_path / "redis.conf"))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "REDIS_PASSWORD": PASSWORD}
    with open(tmp_path / "redis.log", "wb") as log:
        proc = subprocess.Popen(["sh", "-c", script], env=env, stdout=log, stderr=log)
    try:
        client = redis.Redis(port=port, password=PASSWORD)
        wait_until(lambda: bool(client.ping()), timeout=15, what="redis-server to start")
        yield Started(port, proc.pid, tmp_path)
    finally:
        stop_process(proc)


def test_redis_refuses_clients_without_the_password(started: Started) -> None:
    for password in (None, "wrong"):
        client = redis.Redis(port=started.port, password=password, retry=Retry(NoBackoff(), 0))
        with pytest.raises(redis.AuthenticationError):
            client.ping()


def test_redis_runs_with_the_aof_and_no_eviction(started: Started) -> None:
    client = redis.Redis(port=started.port, password=PASSWORD, decode_responses=True)
    config = client.config_get("*")
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    assert config["save"] == ""
    client.rpush("s3copy", "chunk")
    assert any((started.workdir / "appendonlydir").iterdir())


def test_the_password_is_on_no_command_line(started: Started) -> None:
    # exec: redis-server itself is the process started (PID 1 in the container).
    cmdline = Path(f"/proc/{started.pid}/cmdline").read_bytes().decode()
    assert cmdline.startswith("redis-server") or "/redis-server" in cmdline.split("\0")[0]
    assert PASSWORD not in cmdline
