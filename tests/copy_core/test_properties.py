"""What a copy carries beyond CopyObject's own: Object Lock, website redirects, the marker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from copy_core.contract import CopyItem, CopyJob
from copy_core.options import CopyOptions, InvalidOption
from copy_core.s3.properties import (
    SOURCE_ETAG_META,
    checksum_params,
    explicit_params,
    needs_source_etag_marker,
    single_copy_needs_head,
    single_copy_params,
)

UNTIL = datetime(2031, 1, 2, tzinfo=UTC)
HEAD = {
    "ETag": '"0123456789abcdef0123456789abcdef"',
    "ContentType": "text/plain",
    "ObjectLockMode": "COMPLIANCE",
    "ObjectLockRetainUntilDate": UNTIL,
    "ObjectLockLegalHoldStatus": "ON",
    "WebsiteRedirectLocation": "/new.html",
}
ITEM = CopyItem("k", "k", 10, '"0123456789abcdef0123456789abcdef"')


def _job(**options: object) -> CopyJob:
    return CopyJob("src", "dst", CopyOptions(**options))  # type: ignore[arg-type]


def test_a_single_copy_carries_object_lock_and_redirect_only_when_told() -> None:
    assert not single_copy_needs_head(CopyOptions())
    default = single_copy_params(_job(), ITEM, CopyOptions(), None)
    assert not {"ObjectLockMode", "WebsiteRedirectLocation"} & set(default)

    options = CopyOptions(object_lock="copy", website_redirect="copy")
    assert single_copy_needs_head(options)
    params = single_copy_params(_job(), ITEM, options, HEAD)
    assert params["ObjectLockMode"] == "COMPLIANCE"
    assert params["ObjectLockRetainUntilDate"] == UNTIL
    assert params["ObjectLockLegalHoldStatus"] == "ON"
    assert params["WebsiteRedirectLocation"] == "/new.html"
    with pytest.raises(ValueError, match="HeadObject"):
        single_copy_params(_job(), ITEM, options, None)


def test_a_multipart_copy_carries_the_redirect_it_reads_anyway_and_lock_when_told() -> None:
    params = explicit_params(_job(), ITEM, CopyOptions(), HEAD, {}, record_source_etag=False)
    assert params["WebsiteRedirectLocation"] == "/new.html"
    assert "ObjectLockMode" not in params and SOURCE_ETAG_META not in params["Metadata"]
    locked = CopyOptions(object_lock="copy", website_redirect="none")
    params = explicit_params(_job(), ITEM, locked, HEAD, {}, record_source_etag=False)
    assert params["ObjectLockMode"] == "COMPLIANCE" and "WebsiteRedirectLocation" not in params


@pytest.mark.parametrize(
    "sums, algorithm, marker, expected",
    [
        ({"CRC64NVME": "x"}, "CRC64NVME", "auto", False),
        ({"CRC32C": "x"}, "CRC32C", "auto", False),  # a full-object CRC32C on both sides
        ({}, "CRC64NVME", "auto", True),  # the source has nothing to compare with
        ({"SHA256": "x"}, "SHA256", "auto", True),  # a multipart SHA is composite
        ({"CRC32": "x"}, None, "auto", True),  # --checksum-algorithm none
        ({}, "CRC64NVME", "never", False),
    ],
)
def test_the_source_etag_marker_is_recorded_only_where_nothing_else_can_tell(
    sums: dict[str, str], algorithm: str | None, marker: str, expected: bool
) -> None:
    options = CopyOptions(source_etag_marker=marker)
    assert needs_source_etag_marker(options, sums, algorithm) is expected


def test_crcs_are_full_object_checksums_and_shas_composite() -> None:
    assert checksum_params("CRC32C") == {
        "ChecksumAlgorithm": "CRC32C",
        "ChecksumType": "FULL_OBJECT",
    }
    assert checksum_params("SHA256") == {"ChecksumAlgorithm": "SHA256"}
    assert checksum_params(None) == {}


def test_directory_buckets_storage_class_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidOption, match="directory buckets are not supported"):
        CopyOptions(storage_class="EXPRESS_ONEZONE")
