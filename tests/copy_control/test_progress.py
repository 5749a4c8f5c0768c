"""Progress arithmetic and rendering: pure functions of a summary and the previous reading."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from copy_control.runs.progress import (
    LiveProgress,
    Reading,
    bar,
    eta_seconds,
    format_bytes,
    format_duration,
    fraction_done,
    json_record,
    next_reading,
    objects_done,
    render_line,
    terminal_bar,
)
from copy_core.contract import RunSummary


def summary(**fields: Any) -> RunSummary:
    values: dict[str, Any] = {
        "run_id": "r1",
        "status": "running",
        "objects_listed": 1000,
        "objects_copied": 400,
        "objects_skipped": 50,
        "objects_failed": 2,
        "objects_cancelled": 0,
        "bytes_copied": 4 * 1024**2,
        "retries": 0,
        "objects_verified": 0,
        "objects_streamed": 0,
        "duration_s": 10.0,
        "objects_per_second": 40.0,
        "bytes_per_second": 0.0,
        "failures": [],
    }
    return RunSummary(**{**values, **fields})


def reading(**fields: Any) -> Reading:
    values = {"at": 0.0, "done": 0, "bytes_copied": 0, "objects_per_s": 0.0, "bytes_per_s": 0.0}
    return Reading(**{**values, **fields})


# --- arithmetic ----------------------------------------------------------------------------------
def test_done_counts_every_final_outcome() -> None:
    assert objects_done(summary(objects_cancelled=8)) == 400 + 50 + 2 + 8


def test_the_first_reading_takes_the_average_since_the_run_began() -> None:
    first = next_reading(summary(), None, now=100.0)
    assert first == Reading(100.0, 452, 4 * 1024**2, 45.2, 4 * 1024**2 / 10)


def test_later_readings_smooth_the_change_since_the_previous_one() -> None:
    previous = reading(at=100.0, done=452, bytes_copied=0, objects_per_s=45.0, bytes_per_s=0.0)
    now = next_reading(summary(objects_copied=496), previous, now=102.0)  # +96 in 2 s
    assert now.done == 548
    assert now.objects_per_s == pytest.approx(45.0 + 0.3 * (48.0 - 45.0))
    assert now.bytes_per_s == pytest.approx(0.3 * (4 * 1024**2 / 2))


def test_a_stalled_run_slows_down_and_time_never_runs_backwards() -> None:
    previous = reading(at=100.0, done=452, objects_per_s=45.0)
    stalled = next_reading(summary(), previous, now=101.0)
    assert stalled.objects_per_s == pytest.approx(45.0 * 0.7)
    same_instant = next_reading(summary(), previous, now=100.0)
    assert same_instant.objects_per_s == 45.2  # no division by zero: the run's average


def test_the_last_reading_is_the_whole_runs_average() -> None:
    previous = reading(at=100.0, done=452, objects_per_s=999.0)
    final = next_reading(summary(status="succeeded", duration_s=20.0), previous, now=101.0)
    assert final.objects_per_s == pytest.approx(452 / 20)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 0.452),
        ({"objects_listed": 0}, None),  # nothing listed yet
        ({"objects_listed": 0, "objects_copied": 0, "status": "succeeded"}, 1.0),  # empty prefix
        ({"objects_listed": 100, "objects_copied": 500}, 1.0),  # never above 100 %
    ],
)
def test_fraction_done(fields: dict[str, Any], expected: float | None) -> None:
    assert fraction_done(summary(**fields)) == expected


def test_eta_is_what_is_left_at_the_current_rate() -> None:
    assert eta_seconds(summary(), reading(objects_per_s=54.8)) == pytest.approx(548 / 54.8)


@pytest.mark.parametrize(
    ("fields", "rate", "expected"),
    [
        ({"status": "dispatching"}, 50.0, None),  # still listing: the total is not known
        ({}, 0.0, None),  # nothing moves
        ({"status": "failed"}, 0.0, 0.0),
    ],
)
def test_eta_edges(fields: dict[str, Any], rate: float, expected: float | None) -> None:
    assert eta_seconds(summary(**fields), reading(objects_per_s=rate)) == expected


# --- formatting ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**6, "3072.0 PiB"),
    ],
)
def test_format_bytes(amount: int, text: str) -> None:
    assert format_bytes(amount) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("inf"), "?"), (0, "0:00"), (42.4, "0:42"), (3725, "1:02:05")],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("fraction", "width", "drawn"),
    [
        (0.0, 12, "[░░░░░░░░░░]"),
        (0.5, 12, "[█████░░░░░]"),
        (0.999, 12, "[█████████░]"),  # full only when done
        (1.0, 12, "[██████████]"),
        (None, 6, "[░░░░]"),
    ],
)
def test_bar(fraction: float | None, width: int, drawn: str) -> None:
    assert bar(fraction, width) == drawn
    assert bar(fraction, width, ascii_only=True) == drawn.replace("█", "#").replace("░", "-")


# --- lines -----------------------------------------------------------------------------------
def test_a_line_on_a_wide_terminal_has_everything() -> None:
    line = render_line(summary(), reading(objects_per_s=54.8, bytes_per_s=2048), width=140)
    assert line == (
        "running [████████████░░░░░░░░░░░░░░░░]  45.2%  452/1,000 objects  4.0 MiB  "
        "55 obj/s  2.0 KiB/s  ETA 0:10  2 failed  50 skipped"
    )


@pytest.mark.parametrize("width", [200, 120, 100, 80, 60, 40, 20, 1])
def test_a_line_always_fits_its_terminal(width: int) -> None:
    line = render_line(summary(objects_cancelled=3), reading(objects_per_s=5), width=width)
    assert len(line) <= max(width - 1, 0)


def test_a_narrow_terminal_loses_rates_and_bytes_before_failures_and_the_bar() -> None:
    line = render_line(summary(), reading(objects_per_s=54.8, bytes_per_s=2048), width=80)
    assert "[" in line and "2 failed" in line and "ETA 0:10" in line
    assert "KiB/s" not in line and "MiB" not in line


def test_while_listing_the_total_is_open_and_the_eta_unknown() -> None:
    line = render_line(summary(status="dispatching"), reading(objects_per_s=9.0))
    assert "452/1,000+ objects" in line and "ETA ?" in line


def test_an_ended_run_shows_its_elapsed_time() -> None:
    line = render_line(summary(status="succeeded", objects_copied=948), reading(), width=120)
    assert "100.0%" in line and "elapsed 0:10" in line and "ETA" not in line


def test_a_plain_line_has_no_bar() -> None:
    line = render_line(summary(), reading(), with_bar=False)
    assert line.startswith("running  45.2%  452/1,000 objects") and "[" not in line


def test_the_json_record_is_the_summary_plus_progress() -> None:
    record = json_record(summary(), reading(objects_per_s=54.8, bytes_per_s=1.23456))
    assert record["objects_copied"] == 400 and record["run_id"] == "r1"
    assert record["progress"] == {
        "objects_done": 452,
        "fraction_done": 0.452,
        "listing_done": True,
        "objects_per_second_now": 54.8,
        "bytes_per_second_now": 1.235,
        "eta_s": 10.0,
    }


# --- drawing ---------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_a_bar_is_redrawn_in_place_and_its_line_ended_once() -> None:
    screen = Tty()
    progress = LiveProgress(screen, "bar", clock=Clock())
    progress(summary())
    progress(summary(objects_copied=500, status="succeeded"))
    progress.close()
    progress.close()
    text = screen.getvalue()
    assert text.count("\r") == 2 and text.count("\x1b[K") == 2 and text.endswith("\n")
    assert text.count("\n") == 1


def test_lines_and_json_modes_write_one_line_per_reading() -> None:
    lines, jsonl = io.StringIO(), io.StringIO()
    for stream, mode in ((lines, "lines"), (jsonl, "json")):
        progress = LiveProgress(stream, mode, clock=Clock())  # type: ignore[arg-type]
        progress(summary())
        progress(summary(objects_copied=500))
        progress.close()
    assert len(lines.getvalue().splitlines()) == 2 and "\r" not in lines.getvalue()
    records = [json.loads(line) for line in jsonl.getvalue().splitlines()]
    assert [r["progress"]["objects_done"] for r in records] == [452, 552]


def test_a_terminal_that_cannot_show_blocks_gets_ascii() -> None:
    screen = Tty()
    screen.encoding = "ascii"
    LiveProgress(screen, "bar", clock=Clock())(summary())
    assert "#" in screen.getvalue() and "█" not in screen.getvalue()


def test_terminal_bar_only_on_a_terminal_and_only_when_enabled() -> None:
    with terminal_bar(io.StringIO()) as none:
        assert none is None
    with terminal_bar(Tty(), enabled=False) as disabled:
        assert disabled is None
    screen = Tty()
    with pytest.raises(TimeoutError), terminal_bar(screen) as progress:
        assert progress is not None
        progress(summary())
        raise TimeoutError  # the line is ended even when waiting fails
    assert screen.getvalue().endswith("\n")
