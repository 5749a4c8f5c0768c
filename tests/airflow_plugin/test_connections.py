"""The worker pool's Redis from an Airflow connection, and which URLs hold a secret."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_plugin.connections import (
    RedisConnectionError,
    resolve_redis_url,
    url_from_connection,
    url_has_secret,
)


def conn(**fields) -> SimpleNamespace:
    base = {"conn_id": "c", "host": "redis.internal", "port": None, "login": None}
    return SimpleNamespace(**(base | {"password": None, "schema": None, "extra": None} | fields))


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({}, "redis://redis.internal:6379/0"),
        ({"port": 6380, "schema": "3"}, "redis://redis.internal:6380/3"),
        ({"password": "p@ss/w:rd"}, "redis://:p%40ss%2Fw%3Ard@redis.internal:6379/0"),
        ({"login": "copy", "password": "pw"}, "redis://copy:pw@redis.internal:6379/0"),
        ({"extra": json.dumps({"db": 2})}, "redis://redis.internal:6379/2"),
        ({"host": "::1"}, "redis://[::1]:6379/0"),
        (
            {
                "extra": json.dumps(
                    {"ssl": True, "ssl_cert_reqs": "required", "ssl_ca_certs": "/ca"}
                )
            },
            "rediss://redis.internal:6379/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fca",
        ),
        (
            {"extra": json.dumps({"ssl": "false", "ssl_ca_certs": "/ca"})},
            "redis://redis.internal:6379/0",
        ),
    ],
)
def test_url_from_the_standard_redis_connection_fields(fields, url: str) -> None:
    assert url_from_connection(conn(**fields)) == url


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"host": None}, "no host"),
        ({"extra": "{not json"}, "not JSON"),
        ({"extra": "[1]"}, "object"),
    ],
)
def test_unusable_connections_say_why(fields, error: str) -> None:
    with pytest.raises(RedisConnectionError, match=error):
        url_from_connection(conn(**fields))


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("redis://127.0.0.1:6379/0", False),
        ("redis://user@127.0.0.1:6379/0", False),
        ("rediss://h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem", False),
        ("redis://:pw@h:6379/0", True),
        ("redis://user:pw@h:6379/0", True),
        ("redis://h:6379/0?password=pw", True),
        ("rediss://h:6379/0?ssl_password=pw", True),
    ],
)
def test_url_has_secret(url: str, secret: bool) -> None:
    assert url_has_secret(url) is secret


def test_resolve_prefers_the_connection_then_the_url_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = {"conn_type": "redis", "host": "10.0.0.5", "port": 6390, "password": "pw"}
    monkeypatch.setenv("AIRFLOW_CONN_POOL_REDIS", json.dumps(value))
    assert resolve_redis_url("pool_redis", None) == "redis://:pw@10.0.0.5:6390/0"
    assert resolve_redis_url(None, "redis://h:1/2") == "redis://h:1/2"
    assert resolve_redis_url(None, None) == "redis://127.0.0.1:6379/0"
