"""How a run shares the pool: its priority (a weight) and its rate caps. Set when it is
created, changeable while it runs (``s3fanout limit``); never part of what is copied."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A run's share of the pool is its weight over the sum of the weights of the runs in it.
PRIORITIES = {"low": 1, "normal": 4, "high": 16}
DEFAULT_PRIORITY = "normal"
MAX_WEIGHT = 1000


class InvalidControl(ValueError):
    """A priority or a rate cap that cannot work; the message says what is allowed."""


def weight_of(priority: str | int) -> int:
    """The weight of a priority: a named level (low, normal, high) or a number 1-1000."""
    if isinstance(priority, str) and priority in PRIORITIES:
        return PRIORITIES[priority]
    try:
        weight = int(priority)
    except (TypeError, ValueError):
        weight = 0
    if str(weight) != str(priority).strip() or not 1 <= weight <= MAX_WEIGHT:
        raise InvalidControl(
            f"priority must be one of {', '.join(PRIORITIES)} or a weight from 1 to "
            f"{MAX_WEIGHT}, got {priority!r}"
        )
    return weight


def check_cap(value: float | None, what: str) -> float | None:
    """A rate cap: None (no cap) or a positive finite number."""
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise InvalidControl(f"{what} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RunControls:
    """A run's place in the pool: how large its share is, how fast it may go, who runs it."""

    priority: str | int = DEFAULT_PRIORITY
    max_requests_per_second: float | None = None
    max_bytes_per_second: float | None = None
    owner: str = ""

    def __post_init__(self) -> None:
        weight_of(self.priority)
        check_cap(self.max_requests_per_second, "max_requests_per_second")
        check_cap(self.max_bytes_per_second, "max_bytes_per_second")

    @property
    def weight(self) -> int:
        return weight_of(self.priority)

    def to_wire(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> RunControls:
        if not isinstance(raw, Mapping) or set(raw) - {f.name for f in dataclasses.fields(cls)}:
            raise InvalidControl(f"not run controls: {raw!r}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise InvalidControl(f"not run controls: {exc}") from None
