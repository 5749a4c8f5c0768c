"""Which listed objects a run copies: key patterns, size and last-modified bounds. Pure.

Rules, the same on the CLI and the operator:

- Patterns are globs (``*`` matches any run of characters, ``/`` included; ``?`` one
  character; ``[seq]``, ``[!seq]``), case-sensitive, matched against the key *below the source
  prefix* (the part that is mapped to the destination; the whole key when the prefix is empty).
- A key is selected when it matches at least one ``include`` pattern (or none are given) and no
  ``exclude`` pattern: excludes win, and the order of the patterns does not matter.
- ``min_size <= size <= max_size`` (both inclusive).
- ``modified_after <= LastModified < modified_before``: a half-open interval, so consecutive
  windows (``before=T`` then ``after=T``) neither overlap nor leave a gap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import translate
from typing import TYPE_CHECKING, Any

from copy_control.errors import InvalidRequest
from copy_control.units import parse_size

if TYPE_CHECKING:
    from copy_control.listed import ListedObject

MAX_PATTERNS = 100


@dataclass(frozen=True)
class Selection:
    """The filters of a run; the default selects everything."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("include", "exclude"):
            patterns = getattr(self, name)
            if len(patterns) > MAX_PATTERNS:
                raise InvalidRequest(f"at most {MAX_PATTERNS} {name} patterns, got {len(patterns)}")
            if any(not isinstance(p, str) or not p for p in patterns):
                raise InvalidRequest(f"{name} patterns must be non-empty strings: {patterns!r}")
            for pattern in patterns:
                _check_brackets(pattern, name)
        for name in ("min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InvalidRequest(f"{name} must be 0 or more bytes, got {value}")
        low, high = self.min_size, self.max_size
        if low is not None and high is not None and low > high:
            raise InvalidRequest(f"min_size {self.min_size} is above max_size {self.max_size}")
        after, before = self.modified_after, self.modified_before
        if after is not None and before is not None and after >= before:
            raise InvalidRequest(
                f"modified_after {after.isoformat()} must be before "
                f"modified_before {before.isoformat()}"
            )

    @property
    def is_everything(self) -> bool:
        return self == Selection()

    def describe(self) -> dict[str, Any]:
        """The non-default filters, JSON-able (stored with the run)."""
        found: dict[str, Any] = {}
        for name, value in vars(self).items():
            if value in (None, ()):
                continue
            found[name] = value.isoformat() if isinstance(value, datetime) else value
        return {k: list(v) if isinstance(v, tuple) else v for k, v in found.items()}


class Selector:
    """A compiled Selection: ``accepts`` is called once per listed key."""

    def __init__(self, selection: Selection, prefix: str = "") -> None:
        self._s = selection
        self._skip = len(prefix)
        self._prefix = prefix
        self._include = _compile(selection.include)
        self._exclude = _compile(selection.exclude)

    def accepts(self, obj: ListedObject) -> bool:
        """Whether ``obj`` is copied (False: counted as filtered)."""
        if not obj.key.startswith(self._prefix):
            return False  # a manifest row outside the source prefix
        rel = obj.key[self._skip :]
        if self._include is not None and not self._include.match(rel):
            return False
        if self._exclude is not None and self._exclude.match(rel):
            return False
        if obj.missing:
            return True  # nothing to compare: the copy will report the missing object
        if obj.delete_marker:  # no size to judge: a marker is an entry of a key's history
            return self._time_ok(obj.last_modified)
        return self._size_ok(obj.size) and self._time_ok(obj.last_modified)

    def _size_ok(self, size: int) -> bool:
        low, high = self._s.min_size, self._s.max_size
        return (low is None or size >= low) and (high is None or size <= high)

    def _time_ok(self, when: datetime | None) -> bool:
        after, before = self._s.modified_after, self._s.modified_before
        if after is None and before is None:
            return True
        if when is None:
            return False
        return (after is None or when >= after) and (before is None or when < before)


def build_selection(
    include: Sequence[str] | str | None = None,
    exclude: Sequence[str] | str | None = None,
    min_size: str | int | None = None,
    max_size: str | int | None = None,
    modified_after: str | datetime | None = None,
    modified_before: str | datetime | None = None,
) -> Selection:
    """A Selection from user input (CLI strings or operator arguments); InvalidRequest if bad."""
    return Selection(
        include=_patterns(include),
        exclude=_patterns(exclude),
        min_size=_size(min_size, "min_size"),
        max_size=_size(max_size, "max_size"),
        modified_after=parse_time(modified_after, "modified_after"),
        modified_before=parse_time(modified_before, "modified_before"),
    )


def parse_time(value: str | datetime | None, what: str) -> datetime | None:
    """An ISO 8601 date or date-time; without a zone it is UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise InvalidRequest(
                f"{what} {value!r} is not an ISO 8601 date or time: write e.g. 2026-11-01 "
                "or 2026-11-01T12:00:00Z"
            ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _size(value: str | int | None, what: str) -> int | None:
    return None if value is None or value == "" else parse_size(value, what)


def _patterns(value: Sequence[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_brackets(pattern: str, what: str) -> None:
    """Refuse a ``[`` that opens no set: fnmatch would match it literally, silently."""
    at = pattern.find("[")
    while at != -1:
        end = at + 1
        if end < len(pattern) and pattern[end] == "!":
            end += 1
        if end < len(pattern) and pattern[end] == "]":
            end += 1  # a ']' first in a set is one of its characters
        close = pattern.find("]", end)
        if close == -1:
            raise InvalidRequest(
                f"{what} pattern {pattern!r} opens a set with '[' at character {at + 1} and "
                "never closes it: add the ']', or write '[[]' for a literal '['"
            )
        at = pattern.find("[", close + 1)


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns), re.DOTALL)
