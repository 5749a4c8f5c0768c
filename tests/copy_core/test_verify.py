"""Combining part CRCs into the full object's, as S3 reports it for a multipart copy."""

from __future__ import annotations

import base64
import os

import pytest
from awscrt import checksums

from copy_core.s3.verify import combine_part_crcs, encode_crc

CRC = {"CRC32": checksums.crc32, "CRC32C": checksums.crc32c, "CRC64NVME": checksums.crc64nvme}


@pytest.mark.parametrize("algorithm", sorted(CRC))
def test_the_combined_crc_of_parts_is_the_crc_of_the_whole(algorithm: str) -> None:
    parts = [os.urandom(n) for n in (5000, 1, 70_000)]
    crc = CRC[algorithm]
    given = [(encode_crc(algorithm, crc(part)), len(part)) for part in parts]
    assert combine_part_crcs(algorithm, given) == encode_crc(algorithm, crc(b"".join(parts)))


def test_a_crc_is_written_big_endian_in_base64() -> None:
    assert base64.b64decode(encode_crc("CRC32", 0x01020304)) == b"\x01\x02\x03\x04"
    assert len(base64.b64decode(encode_crc("CRC64NVME", 1))) == 8


def test_unknown_or_missing_part_crcs_combine_to_nothing() -> None:
    assert combine_part_crcs("SHA256", [("abc", 3)]) is None
    assert combine_part_crcs("CRC32", [("", 3)]) is None
    assert combine_part_crcs("CRC32", []) is None
