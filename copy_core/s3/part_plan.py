"""Multipart arithmetic: pure functions of sizes, no I/O.

The part size comes from s3transfer's ChunksizeAdjuster (S3's 5 MiB / 5 GiB / 10,000-part
limits, doubling the size until the parts fit) and the ranges from its
``calculate_range_parameter``, so the numbers are the ones boto3's own transfers use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from s3transfer.utils import ChunksizeAdjuster, calculate_range_parameter

from copy_core.options import MAX_MULTIPART_OBJECT, MAX_PART, MAX_PARTS, MIN_PART, MiB

DEFAULT_PART_SIZE = 64 * MiB

_ADJUSTER = ChunksizeAdjuster(max_size=MAX_PART, min_size=MIN_PART, max_parts=MAX_PARTS)


@dataclass(frozen=True)
class Part:
    """One part of a multipart copy: its number (from 1) and its inclusive byte range."""

    number: int
    first_byte: int
    last_byte: int

    @property
    def size(self) -> int:
        return self.last_byte - self.first_byte + 1

    @property
    def copy_source_range(self) -> str:
        return f"bytes={self.first_byte}-{self.last_byte}"


def part_size_for(object_size: int, requested: int | None = None) -> int:
    """The part size to use for an object of ``object_size`` bytes."""
    if object_size > MAX_MULTIPART_OBJECT:
        raise ValueError(
            f"an object of {object_size} bytes cannot be copied in {MAX_PARTS} parts "
            f"of at most {MAX_PART} bytes"
        )
    return int(_ADJUSTER.adjust_chunksize(requested or DEFAULT_PART_SIZE, object_size))


def plan_parts(object_size: int, requested_part_size: int | None = None) -> list[Part]:
    """Split ``object_size`` bytes into parts: all of one size but the last, which is smaller."""
    if object_size <= 0:
        raise ValueError("a multipart copy needs at least one byte")
    size = part_size_for(object_size, requested_part_size)
    count = math.ceil(object_size / size)
    parts = []
    for index in range(count):
        byte_range = calculate_range_parameter(size, index, count, object_size)
        first, last = byte_range.removeprefix("bytes=").split("-")
        parts.append(Part(index + 1, int(first), int(last)))
    return parts
