"""The pool's Redis URL: where it comes from, whether it can work, and what to say if not.

Every entry point (the CLI's commands, the worker) takes ``--redis-url``, or the environment's
``S3FANOUT_REDIS_URL``, or the default; none prints a password it was given (``--help`` shows
where the default comes from, not the URL). ``check_reachable`` answers within seconds, in one
line that says what to check, where a client with retries would try for a minute and then
raise a traceback.
"""

from __future__ import annotations

import os
import ssl
from urllib.parse import urlsplit

import redis
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

from copy_core.broker import DEFAULT_REDIS_URL
from copy_core.process_title import redact_url

ENV = "S3FANOUT_REDIS_URL"
HELP = f"Redis that serves as broker and run store (default: ${ENV}, else {DEFAULT_REDIS_URL})"
SCHEMES = ("redis", "rediss", "unix")


class RedisUnusable(ValueError):
    """The Redis URL is malformed, or the server cannot be used with it; says what to check."""


def resolve(given: str | None) -> str:
    """The URL to use: the one given, else ``$S3FANOUT_REDIS_URL``, else the default."""
    return given or os.environ.get(ENV) or DEFAULT_REDIS_URL


def check_url(url: str) -> None:
    """RedisUnusable unless ``url`` is a Redis URL redis-py can connect with."""
    shown = redact_url(url)
    if urlsplit(url).scheme not in SCHEMES:
        raise RedisUnusable(
            f"{shown!r} is not a Redis URL: write redis://[USER:PASSWORD@]HOST:PORT/DB "
            "(rediss:// for TLS)"
        )
    try:
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise RedisUnusable(f"Redis URL {shown!r} is not valid: {redact_url(str(exc))}") from None


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    """RedisUnusable unless the server at ``url`` answers a PING, with the reason if not."""
    check_url(url)
    shown = redact_url(url)
    client = redis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=None
    )
    try:
        client.ping()
    except AuthenticationError as exc:
        raise RedisUnusable(
            f"Redis at {shown} refused the credentials ({exc}): check the user and password "
            "in the Redis URL"
        ) from None
    except ResponseError as exc:
        raise RedisUnusable(_response_error(shown, str(exc))) from None
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise RedisUnusable(_connection_error(shown, url, exc)) from None
    finally:
        client.close()


def _response_error(shown: str, text: str) -> str:
    if "NOAUTH" in text or "WRONGPASS" in text:
        return (
            f"Redis at {shown} needs a password (or another one): put USER:PASSWORD@ in the "
            "Redis URL"
        )
    if "DB index" in text:
        return f"Redis at {shown}: {text}; choose a database the server has (the /DB of the URL)"
    return f"Redis at {shown} answered: {text}"


def _connection_error(shown: str, url: str, exc: BaseException) -> str:
    tls = urlsplit(url).scheme == "rediss"
    if tls and (isinstance(exc.__cause__, ssl.SSLError) or "SSL" in str(exc)):
        return (
            f"cannot speak TLS with Redis at {shown} ({exc}): is the server TLS-enabled? "
            "(rediss:// is TLS, redis:// is not)"
        )
    if tls and isinstance(exc, redis.TimeoutError):
        # A plain server waits for a command and never answers the TLS handshake.
        return (
            f"Redis at {shown} did not answer the TLS handshake ({exc}): is the server "
            "TLS-enabled? (rediss:// is TLS, redis:// is not); or check the host and port"
        )
    return f"cannot reach Redis at {shown} ({exc}): check the host and port, and that it runs"
