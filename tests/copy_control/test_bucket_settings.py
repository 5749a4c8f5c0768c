"""What a run reads of its buckets before it starts: every read at once, refusals in order."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from copy_control.errors import InvalidRequest
from copy_control.listing.bucket_settings import check_run, settle_run
from copy_control.request import CopyRequest

REQUEST = CopyRequest("src", "dst", source_prefix="in/", dest_prefix="out/")


def _error(code: str, status: int) -> ClientError:
    answer: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(answer, "Op")


class _Buckets:
    """An S3 client whose every read waits until ``together`` reads are in flight at once:
    reads made one after another never get there, and fail instead of waiting for ever."""

    def __init__(self, together: int, missing: frozenset[str] = frozenset()) -> None:
        self._barrier = threading.Barrier(together, timeout=30)
        self._missing = missing
        self.calls: list[tuple[str, str]] = []

    def _read(self, operation: str, bucket: str) -> None:
        self.calls.append((operation, bucket))
        self._barrier.wait()
        if bucket in self._missing:
            raise _error("404", 404)

    def head_bucket(self, Bucket: str) -> dict[str, Any]:
        self._read("HeadBucket", Bucket)
        region = {"src": "eu-west-1", "dst": "ap-south-1"}[Bucket]
        return {"ResponseMetadata": {"HTTPHeaders": {"x-amz-bucket-region": region}}}

    def get_object_lock_configuration(self, Bucket: str) -> dict[str, Any]:
        self._read("GetObjectLockConfiguration", Bucket)
        raise _error("ObjectLockConfigurationNotFoundError", 404)

    def get_bucket_website(self, Bucket: str) -> dict[str, Any]:
        self._read("GetBucketWebsite", Bucket)
        raise _error("NoSuchWebsiteConfiguration", 404)


def test_a_runs_reads_are_sent_at_once_and_settle_its_job() -> None:
    # The destination's HeadBucket, its Object Lock, the source's website and region.
    buckets: Any = _Buckets(together=4)
    checked: list[str] = []

    settled = settle_run(
        REQUEST, REQUEST.job("r1"), buckets, buckets, lambda: checked.append("source")
    )

    assert checked == ["source"]
    assert sorted(buckets.calls) == [
        ("GetBucketWebsite", "src"),
        ("GetObjectLockConfiguration", "dst"),
        ("HeadBucket", "dst"),
        ("HeadBucket", "src"),
    ]
    assert (settled.source_region, settled.dest_region) == ("eu-west-1", "ap-south-1")
    assert settled.options.object_lock == "auto" and settled.options.website_redirect == "auto"


def test_the_sources_refusal_comes_first_whatever_else_is_wrong() -> None:
    buckets: Any = _Buckets(together=2, missing=frozenset({"dst"}))

    def bad_source() -> None:
        raise InvalidRequest("source prefix 'in/' is empty")

    with pytest.raises(InvalidRequest, match="source prefix"):
        check_run(REQUEST, REQUEST.job("r2"), buckets, buckets, bad_source)
    with pytest.raises(InvalidRequest, match="destination bucket 'dst' does not exist"):
        check_run(REQUEST, REQUEST.job("r3"), buckets, buckets)
