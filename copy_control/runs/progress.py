"""Live progress of a run: a bar on a terminal, a plain line in a log, or JSON lines.

The arithmetic and the rendering are pure functions of a ``RunSummary`` and the previous
``Reading`` (rates come from the change between two readings, smoothed); only ``LiveProgress``
writes to a stream. Standard library only: a bar is one line redrawn after a carriage return.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from copy_core.contract import RunStatus, RunSummary

SMOOTHING = 0.3  # weight of the newest rate: reacts in a few readings, ignores one odd one
_LISTING = (RunStatus.CREATED.value, RunStatus.DISPATCHING.value)
_UNICODE_BAR = ("█", "░")
_ASCII_BAR = ("#", "-")
_ERASE_TO_END = "\x1b[K"

Mode = Literal["bar", "lines", "json"]


@dataclass(frozen=True)
class Reading:
    """One look at a run: when (monotonic seconds), how far, and the smoothed rates so far."""

    at: float
    done: int
    bytes_copied: int
    objects_per_s: float
    bytes_per_s: float


def objects_done(summary: RunSummary) -> int:
    """Keys with a final outcome: copied, skipped, failed or cancelled."""
    return (
        summary.objects_copied
        + summary.objects_skipped
        + summary.objects_failed
        + summary.objects_cancelled
    )


def listing_done(summary: RunSummary) -> bool:
    """Whether ``objects_listed`` is the run's final count of keys."""
    return summary.status not in _LISTING


def next_reading(summary: RunSummary, previous: Reading | None, now: float) -> Reading:
    """The reading after ``previous``: rates from the change since it, smoothed.

    The first reading (and the last, once the run has ended) takes the run's average rates.
    """
    done, copied = objects_done(summary), summary.bytes_copied
    elapsed = now - previous.at if previous is not None else 0.0
    if previous is None or summary.is_final or elapsed <= 0:
        seconds = summary.duration_s
        return Reading(now, done, copied, _per_s(done, seconds), _per_s(copied, seconds))
    return Reading(
        now,
        done,
        copied,
        _smooth(previous.objects_per_s, (done - previous.done) / elapsed),
        _smooth(previous.bytes_per_s, (copied - previous.bytes_copied) / elapsed),
    )


def _per_s(amount: int, seconds: float) -> float:
    return amount / seconds if seconds > 0 else 0.0


def _smooth(old: float, new: float) -> float:
    return old + SMOOTHING * (max(new, 0.0) - old)


def fraction_done(summary: RunSummary) -> float | None:
    """Done / listed, in [0, 1]; None while nothing is listed."""
    if summary.objects_listed <= 0:
        return 1.0 if summary.is_final else None
    return min(objects_done(summary) / summary.objects_listed, 1.0)


def eta_seconds(summary: RunSummary, reading: Reading) -> float | None:
    """Seconds left at the current rate; None while listing, or while nothing moves."""
    if summary.is_final:
        return 0.0
    if not listing_done(summary) or reading.objects_per_s <= 0:
        return None
    remaining = max(summary.objects_listed - objects_done(summary), 0)
    return remaining / reading.objects_per_s


# --- formatting ------------------------------------------------------------------------------
def format_bytes(amount: float) -> str:
    """1536 -> "1.5 KiB"; powers of 1024, like the flags' sizes."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(amount) < 1024 or unit == "PiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """42 -> "0:42", 3725 -> "1:02:05"; None -> "?"."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(per_s: float) -> str:
    """Objects per second, with one decimal below 10."""
    return f"{per_s:.1f}" if per_s < 10 else f"{per_s:,.0f}"


def bar(fraction: float | None, width: int, ascii_only: bool = False) -> str:
    """``[█████░░░░░]`` of ``width`` characters in all; all empty while unknown."""
    inner = max(width - 2, 0)
    full, empty = _ASCII_BAR if ascii_only else _UNICODE_BAR
    filled = math.floor((fraction or 0.0) * inner)
    return "[" + full * filled + empty * (inner - filled) + "]"


def progress_fields(summary: RunSummary, reading: Reading) -> dict[str, str]:
    """The parts of a progress line by name, in the order they are shown."""
    fraction = fraction_done(summary)
    listed = f"{summary.objects_listed:,}" + ("" if listing_done(summary) else "+")
    fields = {
        "status": summary.status,
        "percent": "?%" if fraction is None else f"{fraction * 100:.1f}%",
        "objects": f"{objects_done(summary):,}/{listed} objects",
        "bytes": format_bytes(summary.bytes_copied),
        "rate": f"{format_rate(reading.objects_per_s)} obj/s",
        "bytes_rate": f"{format_bytes(reading.bytes_per_s)}/s",
        "eta": ("elapsed " + format_duration(summary.duration_s))
        if summary.is_final
        else ("ETA " + format_duration(eta_seconds(summary, reading))),
        "failed": f"{summary.objects_failed:,} failed",
    }
    if summary.objects_skipped:
        fields["skipped"] = f"{summary.objects_skipped:,} skipped"
    if summary.objects_cancelled:
        fields["cancelled"] = f"{summary.objects_cancelled:,} cancelled"
    return fields


# What a narrow terminal loses first; status, percentage, objects, ETA and failures stay.
DROP_ORDER = ("bytes_rate", "bytes", "rate", "skipped", "cancelled")
BAR_WIDTH = (10, 30)


def render_line(
    summary: RunSummary,
    reading: Reading,
    *,
    width: int | None = None,
    with_bar: bool = True,
    ascii_only: bool = False,
) -> str:
    """One line: ``running [████░░░░] 52.3%  5,230/10,000 objects ...``, under ``width``.

    The bar takes what the text leaves, 10 to 30 characters; where that is too little, the
    least useful fields go first, then the bar. The line is never wider than the terminal,
    because a wrapped line cannot be redrawn in place.
    """
    fields = progress_fields(summary, reading)
    if not with_bar:
        return "  ".join(fields.values())
    limit = (width or 120) - 1  # writing the last column wraps on some terminals
    for dropped in range(len(DROP_ORDER) + 1):
        shown = [v for k, v in fields.items() if k not in DROP_ORDER[:dropped]]
        status, percent, *rest = shown
        text = f"{percent:>6}  " + "  ".join(rest)
        room = limit - len(status) - len(text) - 2
        if room >= BAR_WIDTH[0]:
            drawn = bar(fraction_done(summary), min(room, BAR_WIDTH[1]), ascii_only)
            return f"{status} {drawn} {text}"
    return f"{status} {text}"[:limit]


def json_record(summary: RunSummary, reading: Reading) -> dict[str, Any]:
    """The summary plus a ``progress`` object: what ``--json`` prints, one per reading."""
    eta = eta_seconds(summary, reading)
    return {
        **summary.to_dict(),
        "progress": {
            "objects_done": objects_done(summary),
            "fraction_done": fraction_done(summary),
            "listing_done": listing_done(summary),
            "objects_per_second_now": round(reading.objects_per_s, 3),
            "bytes_per_second_now": round(reading.bytes_per_s, 3),
            "eta_s": None if eta is None else round(eta, 1),
        },
    }


# --- the one stateful part: drawing readings on a stream -------------------------------------
class LiveProgress:
    """Draws each summary it is called with: in place (``bar``), a line each, or JSON lines."""

    def __init__(
        self, stream: TextIO, mode: Mode, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stream = stream
        self._mode = mode
        self._clock = clock
        self._reading: Reading | None = None
        self._open_line = False  # a bar was drawn and its line not yet ended
        self._ascii = not _can_encode(stream, "".join(_UNICODE_BAR))

    def __call__(self, summary: RunSummary) -> None:
        self._reading = next_reading(summary, self._reading, self._clock())
        if self._mode == "json":
            self._write(json.dumps(json_record(summary, self._reading)) + "\n")
        elif self._mode == "lines":
            self._write(render_line(summary, self._reading, with_bar=False) + "\n")
        else:
            line = render_line(
                summary, self._reading, width=_columns(self._stream), ascii_only=self._ascii
            )
            self._write(f"\r{line}{_ERASE_TO_END}")
            self._open_line = True

    def close(self) -> None:
        """End the bar's line, so that what is printed next starts on a line of its own."""
        if self._open_line:
            self._write("\n")
            self._open_line = False

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()


def _can_encode(stream: TextIO, text: str) -> bool:
    try:
        text.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _columns(stream: TextIO) -> int:
    """The terminal's width, or 80 where it does not say."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        columns = os.get_terminal_size(stream.fileno()).columns
        if columns > 0:
            return columns
    return 80


@contextlib.contextmanager
def terminal_bar(stream: TextIO, enabled: bool = True) -> Iterator[LiveProgress | None]:
    """A bar on ``stream`` if it is a terminal (and ``enabled``), else None; ends its line."""
    if not (enabled and stream.isatty()):
        yield None
        return
    progress = LiveProgress(stream, "bar")
    try:
        yield progress
    finally:
        progress.close()
