"""No password in ``ps``: the command line a process shows, with secrets in URLs masked.

A Redis URL may carry a password (``redis://user:secret@host``), and a command line is readable
by every user of the host (``ps``, ``/proc/<pid>/cmdline``); Celery also copies ``sys.argv``
into its process titles. ``hide_secrets`` rewrites both: the title through setproctitle (which
writes over the process's own argv memory, so ``/proc`` shows it too), and ``sys.argv``.
"""

from __future__ import annotations

import re
import sys

from copy_core.logs import redact

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@\s]+)@")
_QUERY_SECRET = re.compile(r"(?i)([?&][^=&\s]*(?:password|secret|token)[^=&\s]*=)[^&\s]+")


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it (and ``?password=`` values) masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return redact(_QUERY_SECRET.sub(r"\1***", text))


def hide_secrets(argv: list[str] | None = None) -> None:
    """Mask secrets in this process's command line and title (and in ``sys.argv``)."""
    argv = sys.argv if argv is None else argv
    masked = [redact_url(arg) for arg in argv]
    if masked == argv:
        return
    argv[:] = masked
    try:
        import setproctitle  # noqa: PLC0415 - optional where the process is not a service
    except ImportError:
        return
    setproctitle.setproctitle(" ".join([sys.executable, *masked]))
