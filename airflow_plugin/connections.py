"""The worker pool's Redis (broker and run store), from an Airflow connection or a URL.

A connection uses the fields of the standard ``redis`` connection type (the one of
apache-airflow-providers-redis): host, port, login (an ACL user), password, and extra
``{"db": 0, "ssl": true, "ssl_cert_reqs": "required", "ssl_ca_certs": "/path/ca.pem", ...}``.
A URI-style connection (``redis://:password@host:6379/0``) works too: its path is the db.

The URL built from a connection holds the password, so it is never stored: the operator
builds it when it needs it, and a trigger is given the connection id, not the URL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from airflow_plugin.compat import BaseHook, get_async_connection, mask_secret
from copy_core.broker import DEFAULT_REDIS_URL

DEFAULT_PORT = 6379
# Connection extras passed on to the URL when "ssl" is on (the redis provider's names).
SSL_EXTRAS = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
# A URL query parameter whose name holds one of these carries a secret (redis-py reads
# ?password=... and ?ssl_password=... as connection arguments).
_SECRET_WORDS = ("password", "passwd", "secret", "token")


class RedisConnectionError(ValueError):
    """The Redis connection or URL cannot be used as given; the message says why."""


def url_has_secret(url: str) -> bool:
    """Whether ``url`` carries a password (in its user info or in a query parameter)."""
    parts = urlsplit(url)
    if parts.password:
        return True
    names = (name.lower() for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return any(word in name for name in names for word in _SECRET_WORDS)


def url_from_connection(conn: Any) -> str:
    """A redis:// or rediss:// URL from a connection's host, port, login, password and extra."""
    if not conn.host:
        raise RedisConnectionError(f"connection {conn.conn_id!r} has no host")
    extra = _extra(conn)
    ssl = _truthy(extra.get("ssl", False))
    userinfo = ""
    if conn.login or conn.password:
        userinfo = f"{quote(conn.login or '', safe='')}:{quote(conn.password or '', safe='')}@"
    host = f"[{conn.host}]" if ":" in conn.host else conn.host
    db = extra.get("db", conn.schema or 0)
    url = f"{'rediss' if ssl else 'redis'}://{userinfo}{host}:{conn.port or DEFAULT_PORT}/{db}"
    query = {name: _query_value(extra[name]) for name in SSL_EXTRAS if ssl and name in extra}
    return f"{url}?{urlencode(query)}" if query else url


def resolve_redis_url(redis_conn_id: str | None, redis_url: str | None) -> str:
    """The Redis URL to use (blocking: for the operator, never for a trigger)."""
    if redis_conn_id:
        conn = BaseHook.get_connection(redis_conn_id)
        if conn.password:
            # Airflow masks the password itself; its URL-quoted form must be masked too.
            mask_secret(quote(conn.password, safe=""))
        return url_from_connection(conn)
    return redis_url or DEFAULT_REDIS_URL


async def aresolve_redis_url(redis_conn_id: str | None, redis_url: str | None) -> str:
    """The Redis URL to use, without blocking the event loop (for triggers)."""
    if redis_conn_id:
        return url_from_connection(await get_async_connection(redis_conn_id))
    return redis_url or DEFAULT_REDIS_URL


def _extra(conn: Any) -> dict[str, Any]:
    # The raw JSON, not extra_dejson: on Airflow 3 extra_dejson masks secrets through a
    # synchronous call that must not run on a triggerer's event loop.
    raw = conn.extra or "{}"
    try:
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except ValueError:
        raise RedisConnectionError(f"connection {conn.conn_id!r}: extra is not JSON") from None
    if not isinstance(extra, dict):
        raise RedisConnectionError(f"connection {conn.conn_id!r}: extra must be a JSON object")
    return extra


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
