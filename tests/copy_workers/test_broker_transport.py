"""The worker's Redis transport against a real redis-server at maxmemory (noeviction)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from copy_workers.broker_transport import Transport
from devstack.servers import RedisServer, redis_server


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path, "--maxmemory-policy", "noeviction") as server:
        yield server


def test_an_acknowledgement_waits_for_a_full_redis_instead_of_stopping_the_worker(
    full_redis: RedisServer,
) -> None:
    admin = redis.Redis.from_url(full_redis.url)
    with Connection(full_redis.url, transport=Transport) as connection:
        queue = connection.SimpleQueue("q")
        queue.put({"n": 1})
        message = queue.get(timeout=5)  # recorded as delivered (unacked)
        assert admin.hlen("unacked") == 1
        admin.config_set("maxmemory", 1)  # far below what it holds: every write is refused
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            admin.set("probe", "x" * 10_000)  # Redis is full indeed
        acked = threading.Event()
        errors: list[BaseException] = []

        def ack() -> None:
            try:
                message.ack()
                acked.set()
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=ack)
        thread.start()
        thread.join(1.0)
        assert not errors and not acked.is_set()  # still retrying, not raised
        admin.config_set("maxmemory", 0)
        thread.join(30)
        assert acked.is_set() and not errors
        assert admin.hlen("unacked") == 0
        queue.close()
