"""Human sizes on the command line and in operator arguments: ``8MiB``, ``256MB``, ``1GiB``."""

from __future__ import annotations

import re

from copy_control.errors import InvalidRequest

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int, what: str = "size") -> int:
    """Bytes in ``value``: a whole number, or a number with a unit (KiB, MiB, GiB, KB, MB...)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _UNITS:
        raise InvalidRequest(
            f"{what} {value!r} is not a size: write bytes or a number with a unit, e.g. 8MiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(amount: int) -> str:
    """Bytes as the largest binary unit that divides them exactly: 268435456 -> "256MiB"."""
    for unit in ("tib", "gib", "mib", "kib"):
        if amount and amount % _UNITS[unit] == 0:
            return f"{amount // _UNITS[unit]}{unit[0].upper()}{unit[1:-1]}{unit[-1].upper()}"
    return str(amount)


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments (repeatable flags) as a dict."""
    pairs = {}
    for value in values or []:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"{what} {value!r} must be written KEY=VALUE")
        pairs[key] = val
    return pairs
