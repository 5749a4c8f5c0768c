"""Selection: include/exclude globs, size and date bounds, and their validation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from copy_control.errors import InvalidRequest
from copy_control.listed import ListedObject
from copy_control.selection import Selection, Selector, build_selection, parse_time

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _obj(key: str, size: int = 10, when: datetime | None = T0) -> ListedObject:
    return ListedObject(key, size, '"e"', None, when)


def _keys(selection: Selection, keys: list[str], prefix: str = "") -> list[str]:
    selector = Selector(selection, prefix)
    return [k for k in keys if selector.accepts(_obj(k))]


KEYS = ["data/a.csv", "data/b.json", "data/tmp/c.csv", "logs/d.csv", "data/e.CSV"]


def test_no_filter_selects_everything() -> None:
    assert _keys(Selection(), KEYS) == KEYS
    assert Selection().is_everything


def test_includes_select_any_match_and_excludes_win() -> None:
    selection = build_selection(include=["*.csv", "*.json"], exclude=["tmp/*"])
    assert _keys(selection, KEYS, prefix="data/") == ["data/a.csv", "data/b.json"]


def test_star_crosses_slashes_and_matching_is_case_sensitive() -> None:
    assert _keys(build_selection(include="*.csv"), KEYS) == [
        "data/a.csv",
        "data/tmp/c.csv",
        "logs/d.csv",
    ]
    assert _keys(build_selection(include="data/?.csv"), KEYS) == ["data/a.csv"]
    assert _keys(build_selection(exclude="[dl]*/*.csv"), KEYS) == ["data/b.json", "data/e.CSV"]


def test_keys_outside_the_prefix_are_never_selected() -> None:
    assert _keys(Selection(), KEYS, prefix="logs/") == ["logs/d.csv"]


def test_size_bounds_are_inclusive() -> None:
    selector = Selector(build_selection(min_size="1KiB", max_size=2048))
    sizes = [1023, 1024, 2048, 2049]
    assert [s for s in sizes if selector.accepts(_obj("k", s))] == [1024, 2048]


def test_a_delete_marker_is_judged_by_its_key_and_time_not_a_size() -> None:
    selector = Selector(build_selection(min_size="1KiB", exclude=["*.tmp"]))
    marker = ListedObject("k.csv", 0, None, None, T0, delete_marker=True)
    assert selector.accepts(marker)
    assert not selector.accepts(ListedObject("k.tmp", 0, None, None, T0, delete_marker=True))
    assert not selector.accepts(_obj("k.csv", 0))  # an empty object is still judged by size


def test_modified_window_is_half_open() -> None:
    selector = Selector(
        build_selection(modified_after="2026-11-01", modified_before="2026-11-02T00:00:00Z")
    )
    times = [
        datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC),
        T0,
        datetime(2026, 11, 1, 23, 59, tzinfo=UTC),
        datetime(2026, 11, 2, tzinfo=UTC),
    ]
    assert [t for t in times if selector.accepts(_obj("k", when=t))] == times[1:3]
    assert not selector.accepts(_obj("k", when=None))


def test_a_missing_manifest_object_is_judged_by_its_key_only() -> None:
    selector = Selector(build_selection(include="*.csv", min_size=100))
    assert selector.accepts(ListedObject("a.csv", 0, None, missing=True))
    assert not selector.accepts(ListedObject("a.txt", 0, None, missing=True))


def test_times_without_a_zone_are_utc() -> None:
    assert parse_time("2026-11-01T12:00", "t") == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert parse_time("2026-11-01T12:00+02:00", "t") == datetime(2026, 11, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_size": "lots"}, "is not a size"),
        ({"min_size": "2MiB", "max_size": "1MiB"}, "is above max_size"),
        ({"modified_after": "yesterday"}, "not an ISO 8601"),
        ({"modified_after": "2026-11-02", "modified_before": "2026-11-01"}, "must be before"),
        ({"include": [""]}, "non-empty"),
        ({"include": ["["]}, "opens a set with '\\[' at character 1 and never closes it"),
        ({"exclude": ["logs/[!a"]}, "at character 6"),
        ({"include": ["a[]b"]}, "never closes it"),  # ']' first is in the set: still open
    ],
)
def test_bad_filters_are_refused_with_what_to_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        build_selection(**kwargs)


def test_describe_lists_only_what_is_set() -> None:
    selection = build_selection(include="*.csv", min_size="1KiB", modified_before="2026-11-01")
    assert selection.describe() == {
        "include": ["*.csv"],
        "min_size": 1024,
        "modified_before": "2026-11-01T00:00:00+00:00",
    }


@pytest.mark.parametrize("pattern", ["[[]x", "[!]]y", "[a-z]*.csv", "no sets"])
def test_closed_sets_are_accepted(pattern: str) -> None:
    build_selection(include=[pattern])
