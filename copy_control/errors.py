"""The control plane's error for bad input: what is wrong, and how to fix it.

Kept in a module of its own, below every other module of the control plane, so that each can
raise it without importing the request (the request imports them).
"""

from __future__ import annotations


class InvalidRequest(ValueError):
    """The user's input is wrong; the message says what and how to fix it. Nothing was copied."""
