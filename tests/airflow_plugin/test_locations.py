"""Source and destination from bucket/key/prefix arguments or s3:// URLs."""

from __future__ import annotations

import pytest

from airflow_plugin.locations import Locations, resolve_locations
from copy_control.errors import InvalidRequest

NONE = dict.fromkeys(
    (
        "source_bucket",
        "source_key",
        "source_prefix",
        "source_s3_url",
        "dest_bucket",
        "dest_key",
        "dest_prefix",
        "dest_s3_url",
    )
)


def resolve(**given) -> Locations:
    return resolve_locations(**(NONE | given))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"source_s3_url": "s3://src/a/b.csv", "dest_s3_url": "s3://dst/c/d.csv"},
            Locations("src", "dst", source_key="a/b.csv", dest_key="c/d.csv"),
        ),
        (
            {"source_s3_url": "s3://src/a/b.csv", "dest_s3_url": "s3://dst/c/"},
            Locations("src", "dst", source_key="a/b.csv", dest_prefix="c/"),
        ),
        (
            {"source_s3_url": "s3://src/a/b.csv", "dest_s3_url": "s3://dst"},
            Locations("src", "dst", source_key="a/b.csv", dest_prefix=""),
        ),
        (
            {"source_s3_url": "s3://src/data/", "dest_s3_url": "s3://dst/copy"},
            Locations("src", "dst", source_prefix="data/", dest_prefix="copy"),
        ),
        (
            {"source_s3_url": "s3://src", "dest_bucket": "dst"},
            Locations("src", "dst", source_prefix=""),
        ),
        (
            {"source_bucket": "src", "source_prefix": "p/", "dest_s3_url": "s3://dst/q/"},
            Locations("src", "dst", source_prefix="p/", dest_prefix="q/"),
        ),
        (
            {"source_bucket": "src", "source_key": "k", "dest_bucket": "dst", "dest_key": "k2"},
            Locations("src", "dst", source_key="k", dest_key="k2"),
        ),
    ],
)
def test_urls_and_arguments(given, expected: Locations) -> None:
    assert resolve(**given) == expected


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ({"source_s3_url": "s3://src/k", "source_bucket": "src", "dest_bucket": "d"}, "not both"),
        ({"source_s3_url": "s3://src/", "source_prefix": "", "dest_bucket": "d"}, "not both"),
        (
            {"source_bucket": "s", "source_key": "k", "dest_s3_url": "s3://d/", "dest_key": "x"},
            "not both",
        ),
        ({"source_s3_url": "https://src/k", "dest_bucket": "dst"}, "not an S3 URL"),
        ({"source_s3_url": "s3://Bad_Bucket/k", "dest_bucket": "dst"}, "not a valid S3 bucket"),
        ({"dest_bucket": "dst", "source_key": "k"}, "give source_bucket"),
        ({"source_bucket": "src", "source_key": "k"}, "give dest_bucket"),
    ],
)
def test_conflicts_and_bad_urls_are_clear_errors(given, error: str) -> None:
    with pytest.raises(InvalidRequest, match=error):
        resolve(**given)
