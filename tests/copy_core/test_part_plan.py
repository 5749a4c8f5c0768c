from __future__ import annotations

import itertools

import pytest

from copy_core.options import GiB, MiB
from copy_core.s3.part_plan import DEFAULT_PART_SIZE, Part, part_size_for, plan_parts

TiB = 1024 * GiB


def _check_cover(size: int, parts: list[Part]) -> None:
    assert parts[0].first_byte == 0
    assert parts[-1].last_byte == size - 1
    for before, after in itertools.pairwise(parts):
        assert after.first_byte == before.last_byte + 1
        assert after.number == before.number + 1
    assert sum(p.size for p in parts) == size


@pytest.mark.parametrize(
    "size",
    [
        1,
        5 * MiB - 1,
        5 * MiB,
        5 * MiB + 1,
        DEFAULT_PART_SIZE,
        DEFAULT_PART_SIZE + 1,
        5 * GiB,
        5 * GiB + 1,
        640 * GiB,
        5 * TiB,
        48 * TiB,
    ],
)
def test_parts_cover_the_object_within_s3_limits(size: int) -> None:
    parts = plan_parts(size)
    _check_cover(size, parts)
    assert len(parts) <= 10_000
    assert all(5 * MiB <= p.size <= 5 * GiB for p in parts[:-1])
    assert parts[-1].size <= 5 * GiB


def test_exactly_5_gib_in_default_parts() -> None:
    parts = plan_parts(5 * GiB)
    assert len(parts) == 5 * GiB // DEFAULT_PART_SIZE
    assert parts[1].copy_source_range == f"bytes={DEFAULT_PART_SIZE}-{2 * DEFAULT_PART_SIZE - 1}"


def test_part_size_grows_until_there_are_at_most_10000_parts() -> None:
    size = 10_000 * DEFAULT_PART_SIZE + 1
    assert part_size_for(size) == 2 * DEFAULT_PART_SIZE
    assert len(plan_parts(size)) <= 10_000


def test_requested_part_size_is_clamped_to_s3_limits() -> None:
    assert part_size_for(100 * MiB, 1 * MiB) == 5 * MiB
    assert part_size_for(100 * GiB, 6 * GiB) == 5 * GiB


def test_exactly_10000_parts_of_the_largest_size_is_the_ceiling() -> None:
    assert len(plan_parts(10_000 * 5 * GiB)) == 10_000
    with pytest.raises(ValueError, match="cannot be copied in 10000 parts"):
        plan_parts(10_000 * 5 * GiB + 1)


def test_zero_bytes_is_never_multipart() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        plan_parts(0)
