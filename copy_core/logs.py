"""Structured logging: one JSON object per event, carrying the run and chunk ids.

The ids live in context variables, set once where a chunk starts, so that every log line of
that chunk (the engine's, botocore's) carries them without being passed around.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

run_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("run_id", default=None)
chunk_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("chunk_id", default=None)

# Defence in depth: credentials are never passed to a logger on purpose, but a library's
# exception text could quote one. Access key ids and anything labelled as a secret or token
# are masked before a line is written.
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),
    re.compile(
        r"(?i)((?:secret_?access_?key|session_?token|security-token|password)[\"'=: ]+)[^\s\"',}]+"
    ),
)
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """Mask anything in ``text`` that looks like an AWS credential."""
    text = _SECRET_PATTERNS[0].sub("[REDACTED]", text)
    return _SECRET_PATTERNS[1].sub(r"\1[REDACTED]", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON with run and chunk ids and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        run_id, chunk_id = run_id_var.get(), chunk_id_var.get()
        if run_id:
            event["run_id"] = run_id
        if chunk_id:
            event["chunk_id"] = chunk_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(event, default=str, ensure_ascii=False))


def configure(level: str | int = "INFO", stream: Any = None) -> None:
    """Send every logger's records to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # botocore at DEBUG would log request headers; keep it at WARNING whatever the root says.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def bound(run_id: str | None = None, chunk_id: str | None = None) -> Iterator[None]:
    """Attach run and chunk ids to every log line emitted inside the block."""
    run_token = run_id_var.set(run_id)
    chunk_token = chunk_id_var.set(chunk_id)
    try:
        yield
    finally:
        chunk_id_var.reset(chunk_token)
        run_id_var.reset(run_token)


def log_event(logger: logging.Logger, event: str, **fields: Any) -> None:
    """Log ``event`` at INFO with ``fields`` as top-level JSON keys."""
    logger.info(event, extra=fields)
