from __future__ import annotations

import json
from typing import Any

import pytest

from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest
from copy_control.s3url import check_bucket_name, parse_s3_url
from copy_control.selection import build_selection
from copy_core.options import CopyOptions


def test_prefix_copy_maps_source_prefix_to_dest_prefix_byte_for_byte() -> None:
    request = CopyRequest("src-bucket", "dst-bucket", source_prefix="in/", dest_prefix="out/")
    assert request.dest_for("in/a/b c+%?#=.txt") == "out/a/b c+%?#=.txt"
    assert request.dest_for("in//x/") == "out//x/"


def test_prefix_copy_without_dest_prefix_keeps_the_relative_key() -> None:
    request = CopyRequest("src-bucket", "dst-bucket", source_prefix="in/")
    assert request.dest_for("in/a/b") == "a/b"


def test_single_key_goes_to_dest_key_or_dest_prefix_plus_basename() -> None:
    to_key = CopyRequest("src-bucket", "dst-bucket", source_key="a/b/c.txt", dest_key="z.txt")
    to_prefix = CopyRequest("src-bucket", "dst-bucket", source_key="a/b/c.txt", dest_prefix="p/")
    same = CopyRequest("src-bucket", "dst-bucket", source_key="a/b/c.txt")
    assert to_key.dest_for("a/b/c.txt") == "z.txt"
    assert to_prefix.dest_for("a/b/c.txt") == "p/c.txt"
    assert same.dest_for("a/b/c.txt") == "a/b/c.txt"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_key": "a", "source_prefix": "b"}, "exactly one of source_key"),
        ({}, "exactly one of source_key"),
        ({"source_prefix": "p/", "dest_key": "k"}, "use dest_prefix"),
        ({"source_key": "k", "dest_key": "k", "dest_prefix": "p"}, "not both"),
        ({"source_key": ""}, "source_key is empty"),
        ({"source_key": "k" * 1025}, "1024 UTF-8 bytes"),
        ({"source_prefix": "", "chunk_size": 0}, "chunk_size must be between"),
        ({"source_prefix": "", "max_failures": -1}, "max_failures must be 0 or more"),
        ({"source_key": "caf\udce9"}, "not valid UTF-8 \\(byte 0xe9 at character 4\\)"),
        ({"source_prefix": "p" * 1100}, "source_prefix is 1,100 bytes"),
        ({"source_prefix": "", "dest_prefix": "é" * 600}, "dest_prefix is 1,200 bytes"),
    ],
)
def test_bad_requests_say_what_to_fix(kwargs, message) -> None:
    with pytest.raises(InvalidRequest, match=message):
        CopyRequest("src-bucket", "dst-bucket", **kwargs)


@pytest.mark.parametrize(
    "name", ["ab", "a" * 64, "Upper", "under_score", "-dash", "dot.", "a..b", "192.168.0.1", ""]
)
def test_invalid_bucket_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest, match="not a valid S3 bucket name"):
        check_bucket_name(name, "source bucket")


@pytest.mark.parametrize("name", ["abc", "my.bucket-1", "a" * 63, "0bucket9"])
def test_valid_bucket_names_pass(name: str) -> None:
    check_bucket_name(name, "source bucket")


def test_s3_urls_split_into_bucket_and_key() -> None:
    assert parse_s3_url("s3://my-bucket/a/b/") == ("my-bucket", "a/b/")
    assert parse_s3_url("s3://my-bucket") == ("my-bucket", "")


@pytest.mark.parametrize("url", ["my-bucket/key", "s3:/my-bucket/k", "s3:///key", "http://b/k"])
def test_malformed_s3_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidRequest, match=r"s3://BUCKET/KEY|not a valid S3 bucket"):
        parse_s3_url(url)


def test_a_request_sent_to_a_worker_comes_back_equal() -> None:
    request = CopyRequest(
        "src-bucket",
        "dst-bucket",
        source_prefix="in/",
        dest_prefix="out/",
        chunk_size=250,
        max_failures=None,
        options=CopyOptions(overwrite="if-different", storage_class="GLACIER_IR", verify=False),
        source_role_arn="arn:aws:iam::111122223333:role/reader",
        dest_role_arn="arn:aws:iam::444455556666:role/writer",
        external_id="ext-1",
        session_duration_s=1800,
        copy_mode="auto",
        manifest="s3://src-bucket/manifests/list.csv",
        selection=build_selection(
            include=["*.parquet"],
            exclude=["tmp/*"],
            min_size="1KiB",
            modified_after="2026-11-01",
            modified_before="2026-11-02T12:00:00+01:00",
        ),
        listing_concurrency=16,
    )
    wire = json.loads(json.dumps(request.to_wire()))  # JSON on the wire, nothing else
    assert CopyRequest.from_wire(wire) == request
    single = CopyRequest("src-bucket", "dst-bucket", source_key="a/b.bin", dest_key="c.bin")
    assert CopyRequest.from_wire(json.loads(json.dumps(single.to_wire()))) == single


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chunk_size": 0}, "chunk_size must be between 1"),
        ({"unknown_field": 1}, "not a copy request"),
        ({"options": {"overwrite": "sometimes"}}, "overwrite must be one of"),
        ({"selection": {"min_size": "lots"}}, "min_size"),
    ],
)
def test_a_request_from_the_wire_is_checked_again(change: dict[str, Any], message: str) -> None:
    wire = {**CopyRequest("src-bucket", "dst-bucket", source_prefix="").to_wire(), **change}
    with pytest.raises(InvalidRequest, match=message):
        CopyRequest.from_wire(wire)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source_prefix": "data/", "dest_prefix": "data/copy/"}, "is inside the source"),
        ({"source_prefix": "", "dest_prefix": "backup/"}, "is inside the source"),
        ({"source_prefix": "data/", "dest_prefix": "data/"}, "the destination is the source"),
        ({"source_key": "a/b.txt"}, "the destination is the source"),
        ({"source_key": "a/b.txt", "dest_prefix": "a/"}, "the destination is the source"),
    ],
)
def test_copies_within_one_bucket_that_would_copy_themselves_are_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        CopyRequest("bucket", "bucket", **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"source_prefix": "data/", "dest_prefix": "archive/"},
        {"source_prefix": "data/copy/", "dest_prefix": "data/"},  # the source is not listed again
        {"source_prefix": "data/", "dest_prefix": "data-copy/"},
        {"source_key": "a/b.txt", "dest_key": "a/c.txt"},
        {"source_key": "a/b.txt", "options": CopyOptions(storage_class="GLACIER_IR")},
        {"source_prefix": "data/", "options": CopyOptions(metadata_directive="REPLACE")},
        {"source_prefix": "", "dest_prefix": "copy/", "manifest": "s3://bucket/m.csv"},
    ],
)
def test_copies_within_one_bucket_that_change_or_move_are_accepted(kwargs: dict[str, Any]) -> None:
    CopyRequest("bucket", "bucket", **kwargs)
