from __future__ import annotations

from collections.abc import Iterator

from copy_control.listing import ListedObject
from copy_control.planning import plan_chunks


def _pages(n: int, page: int) -> list[list[ListedObject]]:
    objs = [ListedObject(f"k{i:04d}", i, f'"{i}"') for i in range(n)]
    return [objs[i : i + page] for i in range(0, n, page)]


def test_chunks_span_pages_and_the_last_one_is_partial() -> None:
    chunks = list(plan_chunks(_pages(25, page=7), lambda k: "d/" + k, chunk_size=10))
    assert [c.chunk_id for c in chunks] == ["0", "1", "2"]
    assert [len(c.items) for c in chunks] == [10, 10, 5]
    assert chunks[1].items[0].source_key == "k0010"
    assert chunks[1].items[0].dest_key == "d/k0010"
    assert chunks[2].last_key == "k0024"
    assert chunks[0].total_bytes == sum(range(10))


def test_planning_is_deterministic_from_a_cursor() -> None:
    first = list(plan_chunks(_pages(30, 4), str, chunk_size=10))
    resumed_pages = [[o for o in p if o.key > first[0].last_key] for p in _pages(30, 4)]
    resumed = list(plan_chunks(resumed_pages, str, chunk_size=10, first_chunk=1))
    assert resumed == first[1:]


def test_empty_listing_plans_nothing() -> None:
    assert list(plan_chunks([[]], str, chunk_size=10)) == []
    assert list(plan_chunks([], str, chunk_size=10)) == []


def test_chunks_are_emitted_before_the_listing_ends() -> None:
    def pages() -> Iterator[list[ListedObject]]:
        yield _pages(10, 10)[0]
        raise AssertionError("the first chunk should be out before the second page is read")

    chunks = plan_chunks(pages(), str, chunk_size=10)
    assert len(next(chunks).items) == 10
