"""Is the destination the same object as the source? Pure comparisons, no I/O.

Two kinds of evidence, strongest first:
- a full-object checksum (CRC64NVME, CRC32C, CRC32, SHA*) stored with the source and computed
  by S3 for the destination; for a multipart copy the destination's full-object CRC is combined
  from the part CRCs S3 returns (CRC combination needs only each part's CRC and length);
- the ETag, when both are plain MD5s: a single-part, non-KMS object's ETag is the MD5 of its
  bytes, and a server-side CopyObject keeps it.
When neither applies (a multipart-uploaded source with no stored checksum, say), the copy is
reported as unverified rather than guessed at.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CRC_ALGORITHMS = ("CRC64NVME", "CRC32C", "CRC32")
ALL_ALGORITHMS = (*CRC_ALGORITHMS, "SHA256", "SHA1")
_PLAIN_MD5 = re.compile(r'^"?[0-9a-fA-F]{32}"?$')
_CRC_WIDTH = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8}


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing source and destination."""

    method: str  # "checksum:<ALG>", "etag", or "none"
    matches: bool
    detail: str = ""

    @property
    def verified(self) -> bool:
        return self.matches and self.method != "none"


def is_plain_md5(etag: str | None) -> bool:
    return bool(etag) and bool(_PLAIN_MD5.match(etag or ""))


def full_object_checksums(response: Mapping[str, Any]) -> dict[str, str]:
    """The full-object checksums in a HeadObject/CopyObject response (composite ones left out)."""
    found = {}
    for algorithm in ALL_ALGORITHMS:
        value = response.get(f"Checksum{algorithm}")
        composite = response.get("ChecksumType") == "COMPOSITE"
        if isinstance(value, str) and value and "-" not in value and not composite:
            found[algorithm] = value
    return found


def combine_part_crcs(algorithm: str | None, parts: Sequence[tuple[str, int]]) -> str | None:
    """The full-object CRC of parts given as (base64 CRC, length) pairs, or None if unknown."""
    if algorithm not in _CRC_WIDTH or not parts or not all(crc for crc, _ in parts):
        return None
    # Imported here: the CRT's native library costs ~0.1 s of CPU to load, which the control
    # plane (it compares, never combines) should not pay.
    from awscrt import checksums  # noqa: PLC0415

    combine = getattr(checksums, f"combine_{algorithm.lower()}")
    total: int | None = None
    for encoded, length in parts:
        value = int.from_bytes(base64.b64decode(encoded), "big")
        total = value if total is None else combine(total, value, length)
    assert total is not None
    return encode_crc(algorithm, total)


def encode_crc(algorithm: str, value: int) -> str:
    """A CRC as S3 writes it: big-endian bytes, base64."""
    return base64.b64encode(value.to_bytes(_CRC_WIDTH[algorithm], "big")).decode()


def compare(
    source_etag: str | None,
    source_checksums: Mapping[str, str],
    dest_etag: str | None,
    dest_checksums: Mapping[str, str],
    dest_is_kms: bool = False,
) -> Verdict:
    """Compare the evidence available for both sides, strongest first."""
    for algorithm in ALL_ALGORITHMS:
        if algorithm in source_checksums and algorithm in dest_checksums:
            ours, theirs = source_checksums[algorithm], dest_checksums[algorithm]
            detail = "" if ours == theirs else f"source {algorithm} {ours}, destination {theirs}"
            return Verdict(f"checksum:{algorithm}", ours == theirs, detail)
    if is_plain_md5(source_etag) and is_plain_md5(dest_etag) and not dest_is_kms:
        same = _strip(source_etag) == _strip(dest_etag)
        detail = "" if same else f"source ETag {source_etag}, destination ETag {dest_etag}"
        return Verdict("etag", same, detail)
    return Verdict("none", True, "no comparable checksum or ETag")


def _strip(etag: str | None) -> str:
    return (etag or "").strip('"').lower()
