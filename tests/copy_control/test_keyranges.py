"""Split points of key ranges: always strictly inside the range, under the prefix."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from copy_control.listing.keyranges import extrapolated_points, split_points


@dataclass(frozen=True)
class KeyRange:
    """``after < key <= end``, as a partition's spec reads (None: unbounded on that side)."""

    after: str | None = None
    end: str | None = None

    def contains(self, key: str) -> bool:
        return (self.after is None or key > self.after) and (self.end is None or key <= self.end)


@pytest.mark.parametrize(
    ("prefix", "low", "high"),
    [
        ("data/", "data/2026/11/05/part-0999", None),
        ("", "a", None),
        ("", "0003", "0004"),
        ("x/", "x/a", "x/b"),
        ("x/", "x/a", "x/a0"),
        ("", "~~~", None),
        ("", "é", None),
        ("p/", "p/z\U0010ffff", None),
        ("", "ab", "ac"),
        ("", "a/", "a0"),
    ],
)
def test_boundaries_are_strictly_between_low_and_high(
    prefix: str, low: str, high: str | None
) -> None:
    points = split_points(prefix, low, high, 5)
    assert points == sorted(set(points))
    for point in points:
        assert point.startswith(prefix)
        assert low < point
        assert high is None or point < high
        assert not any(0xD800 <= ord(c) < 0xE000 for c in point)


def test_an_unbounded_range_is_split_in_the_printable_range_first() -> None:
    points = split_points("data/", "data/2026/x", None, 4)
    assert len(points) == 3
    assert all(0x20 < ord(p[len("data/")]) < 0x7F for p in points)


def test_adjacent_characters_move_the_split_one_position_down() -> None:
    points = split_points("", "0003/x", "0004", 3)
    assert points and all(p.startswith("0003") for p in points)


def test_no_room_no_boundary() -> None:
    assert split_points("", "a", "a\x00", 4) == []
    assert split_points("", "a", None, 1) == []


def test_random_ranges_partition_a_key_set_exactly() -> None:
    rng = random.Random(7)
    alphabet = "09afz/-_.~é"
    keys = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 8))) for _ in range(3000)})
    ranges = [KeyRange()]
    for _ in range(40):  # split ranges at random keys, as listing threads would
        i = rng.randrange(len(ranges))
        inside = [k for k in keys if ranges[i].contains(k)]
        if not inside:
            continue
        low = rng.choice(inside)
        bounds = split_points("", low, ranges[i].end, rng.randint(2, 5))
        if not bounds:
            continue
        old = ranges[i]
        pieces = [KeyRange(old.after, bounds[0])]
        pieces += [KeyRange(a, b) for a, b in zip(bounds, [*bounds[1:], old.end], strict=True)]
        ranges[i : i + 1] = pieces
    assert sorted(k for r in ranges for k in keys if r.contains(k)) == keys


def test_extrapolated_boundaries_follow_the_pace_of_the_last_page() -> None:
    first, last = "d/dt=2026-11-01/h=00/p-0001", "d/dt=2026-11-03/h=01/p-0999"
    points = extrapolated_points("d/", first, last, None, 4)
    # Where the page's keys vary (the day's last digit), four pages' worth apart.
    assert points == ["d/dt=2026-11-0;~", "d/dt=2026-11-0C~", "d/dt=2026-11-0K~"]


@pytest.mark.parametrize(
    ("first", "last", "high"),
    [
        ("p/a", "p/b", None),
        ("p/a", "p/b", "p/c"),
        ("p/0001", "p/0002", "p/0003"),
        ("p/x", "p/xy", None),
        ("p/~a", "p/~~", None),
        ("p/é", "p/ü", None),
    ],
)
def test_extrapolated_boundaries_stay_inside_the_range(
    first: str, last: str, high: str | None
) -> None:
    points = extrapolated_points("p/", first, last, high, 6)
    assert points == sorted(set(points))
    assert all(last < p and (high is None or p < high) for p in points)
