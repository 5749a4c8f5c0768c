"""The overwrite rule shared by the worker and the dry run (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from copy_core.contract import CopyItem
from copy_core.s3.overwrite import skip_existing, skip_from_listing

MD5 = '"0123456789abcdef0123456789abcdef"'
OTHER = '"fedcba9876543210fedcba9876543210"'
ITEM = CopyItem("s/k", "d/k", 100, MD5)


def _head(size: int = 100, etag: str = MD5, **extra: Any) -> dict[str, Any]:
    return {"ContentLength": size, "ETag": etag, **extra}


@pytest.mark.parametrize(
    ("policy", "dest", "expected"),
    [
        ("always", _head(), False),
        ("never", None, False),
        ("never", _head(size=1), True),
        ("if-different", None, False),
        ("if-different", _head(size=99), False),
        ("if-different", _head(), True),
        ("if-different", _head(etag=OTHER), False),
        ("if-different", _head(etag='"abc-2"', Metadata={"s3fanout-source-etag": MD5[1:-1]}), True),
        ("if-different", _head(etag=MD5, ServerSideEncryption="aws:kms"), False),
    ],
)
def test_decisions_from_head(policy: str, dest: dict[str, Any] | None, expected: bool) -> None:
    assert skip_existing(policy, ITEM, dest) is expected


def test_checksums_need_the_source_head() -> None:
    dest = _head(etag='"abc-2"', ChecksumCRC32="AAAAAA==")
    assert skip_existing("if-different", ITEM, dest) is None
    assert skip_existing("if-different", ITEM, dest, {"ChecksumCRC32": "AAAAAA=="}) is True
    assert skip_existing("if-different", ITEM, dest, {"ChecksumCRC32": "BBBBBB=="}) is False


@pytest.mark.parametrize(
    ("policy", "size", "expected"),
    [
        ("always", 100, False),
        ("never", None, False),
        ("never", 5, True),
        ("if-different", None, False),
        ("if-different", 5, False),
        ("if-different", 100, None),
    ],
)
def test_decisions_from_a_listing(policy: str, size: int | None, expected: bool | None) -> None:
    assert skip_from_listing(policy, ITEM, size) is expected
