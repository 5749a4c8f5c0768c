"""Versions, sync and move in a copy request: what goes together, and what is refused, why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from copy_control.errors import InvalidRequest
from copy_control.listed import ListedObject
from copy_control.listing.versions import Version, _page_versions, all_versions, version_as_of
from copy_control.request import CopyRequest
from copy_core.options import CopyOptions

PREFIX: dict[str, Any] = {"source_prefix": "in/", "dest_prefix": "out/"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({**PREFIX, "version_id": "v1"}, "version_id names a version of one object"),
        ({**PREFIX, "all_versions": True, "as_of": datetime(2026, 1, 1, tzinfo=UTC)}, "give one"),
        ({"source_key": "k", "all_versions": True}, "give the source as a prefix"),
        (
            {**PREFIX, "all_versions": True, "options": CopyOptions(overwrite="if-different")},
            "takes overwrite='always'",
        ),
        ({**PREFIX, "max_delete": 5}, "max_delete bounds delete_extraneous"),
        ({**PREFIX, "delete_markers": True}, "give all_versions too"),
        ({"source_key": "k", "delete_extraneous": True}, "give the source as a prefix"),
        (
            {**PREFIX, "delete_extraneous": True, "manifest": "s3://src-bucket/m.csv"},
            "without a manifest",
        ),
        ({**PREFIX, "delete_extraneous": True, "all_versions": True}, "does not go with"),
        ({**PREFIX, "delete_extraneous": True, "delete_source": True}, "empty both sides"),
        ({**PREFIX, "delete_source": True, "options": CopyOptions(verify=False)}, "verified"),
        ({**PREFIX, "delete_source": True, "all_versions": True}, "for good"),
        ({**PREFIX, "delete_extraneous": True, "max_delete": -1}, "max_delete must be 0"),
    ],
)
def test_combinations_that_cannot_work_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        CopyRequest("src-bucket", "dst-bucket", **kwargs)


def test_a_sync_into_a_prefix_holding_its_source_is_refused() -> None:
    # (A destination inside the source is refused for every copy: it would list its copies.)
    with pytest.raises(InvalidRequest, match="would delete source objects"):
        CopyRequest(
            "same-bucket",
            "same-bucket",
            source_prefix="data/new/",
            dest_prefix="data/",
            delete_extraneous=True,
        )


def test_versions_and_mirroring_travel_to_a_worker_and_into_the_run_record() -> None:
    when = datetime(2026, 11, 5, 12, 0, tzinfo=UTC)
    for request in (
        CopyRequest("src-bucket", "dst-bucket", **PREFIX, as_of=when),
        CopyRequest("src-bucket", "dst-bucket", **PREFIX, delete_extraneous=True, max_delete=9),
        CopyRequest("src-bucket", "dst-bucket", source_key="k", version_id="3HL4kqtJ"),
    ):
        assert CopyRequest.from_wire(json.loads(json.dumps(request.to_wire()))) == request
    plain = CopyRequest("src-bucket", "dst-bucket", **PREFIX).describe()
    assert "delete_extraneous" not in plain and "as_of" not in plain  # old runs still resume
    moved = CopyRequest("src-bucket", "dst-bucket", **PREFIX, delete_source=True)
    assert moved.describe()["delete_source"] is True and moved.job("r").delete_source


def _v(key: str, version: str, second: int, marker: bool = False, latest: bool = False) -> Version:
    when = datetime(2026, 11, 1, 0, 0, second, tzinfo=UTC)
    return Version(ListedObject(key, 1, '"e"', None, when, version_id=version), marker, latest)


def test_all_versions_are_oldest_first_without_delete_markers() -> None:
    history = [_v("k", "v3", 3, marker=True, latest=True), _v("k", "v2", 2), _v("k", "v1", 1)]
    entry = all_versions(history)
    assert entry is not None
    assert [obj.version_id for obj in entry.versions] == ["v1", "v2"]
    assert all_versions([_v("k", "m", 1, marker=True, latest=True)]) is None


def test_delete_markers_keep_their_place_among_the_versions_when_asked() -> None:
    history = [
        _v("k", "m2", 4, marker=True, latest=True),
        _v("k", "v2", 3),
        _v("k", "m1", 2, marker=True),
        _v("k", "v1", 1),
    ]
    entry = all_versions(history, delete_markers=True)
    assert entry is not None
    assert [(o.version_id, o.delete_marker) for o in entry.versions] == [
        ("v1", False),
        ("m1", True),
        ("v2", False),
        ("m2", True),
    ]
    only_markers = all_versions([_v("k", "m", 1, marker=True, latest=True)], delete_markers=True)
    assert only_markers is not None and only_markers.delete_marker


def test_the_version_as_of_a_time_is_the_newest_written_by_then() -> None:
    history = [_v("k", "v3", 30, latest=True), _v("k", "m", 20, marker=True), _v("k", "v1", 10)]
    at = datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)
    assert version_as_of(history, at.replace(second=15)).version_id == "v1"  # type: ignore[union-attr]
    assert version_as_of(history, at.replace(second=25)) is None  # deleted then
    assert version_as_of(history, at.replace(second=5)) is None  # not written yet
    assert version_as_of(history, at.replace(second=30)).version_id == "v3"  # type: ignore[union-attr]


def test_a_page_keeps_s3s_order_and_puts_the_latest_first_on_a_tie() -> None:
    same = datetime(2026, 11, 1, tzinfo=UTC)
    page = {
        "Versions": [
            {"Key": "a", "VersionId": "a2", "Size": 1, "LastModified": same, "IsLatest": False},
            {"Key": "b", "VersionId": "b1", "Size": 1, "LastModified": same, "IsLatest": True},
        ],
        "DeleteMarkers": [
            {"Key": "a", "VersionId": "am", "LastModified": same, "IsLatest": True},
        ],
    }
    assert [v.obj.version_id for v in _page_versions(page)] == ["am", "a2", "b1"]
