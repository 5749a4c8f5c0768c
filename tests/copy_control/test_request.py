from __future__ import annotations

import pytest

from copy_control.request import CopyRequest, InvalidRequest, check_bucket_name
from copy_control.s3url import parse_s3_url


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
