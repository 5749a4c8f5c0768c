"""Key ranges of a prefix and where to split them. Pure functions, no I/O.

A range is ``after < key <= end`` below one prefix (``after`` None: from the first key, ``end``
None: to the last), which is exactly what ListObjectsV2 can list: ``StartAfter=after``, then
stop at the first key past ``end``. Any strings serve as boundaries, so splitting never needs
to know which keys exist: it only decides how evenly the work is shared.

S3 lists keys in UTF-8 byte order, which is Unicode code point order, which is how Python
compares strings; boundaries are therefore computed on code points. Where nothing is known
about the keys to come, a boundary is placed in the printable ASCII range first (where most
keys live); a range that then turns out empty costs one request.

Boundaries are shaped for S3-compatible stores that keep keys as a file tree (SeaweedFS, for
one, lists folder by folder and reads ``StartAfter=a/b`` as "after the folder a/b", skipping
everything in it): a boundary never ends at a character below ``/`` and always ends with
``~``, so it cannot name an existing folder; on S3 itself any string would do.
"""

from __future__ import annotations

_PRINTABLE_LOW = 0x30  # "0": never split at a character that sorts before "/"
_SUFFIX = "~"
_PRINTABLE_HIGH = 0x7F  # exclusive: DEL and above are rare in keys
_SURROGATES = range(0xD800, 0xE000)  # not characters: never a boundary
_MAX_CHAR = 0x10FFFF


def split_points(prefix: str, low: str, high: str | None, pieces: int) -> list[str]:
    """Up to ``pieces - 1`` boundaries ``b``, ``low < b1 < b2 ... < high``, all under ``prefix``.

    ``low`` is the last key listed (under ``prefix``); ``high`` the range's end (None: the end
    of the prefix). Boundaries go at the first character position where ``low`` and ``high``
    differ, spread evenly over the characters between them there.
    """
    if pieces < 2:
        return []
    rel_low = low[len(prefix) :]
    rel_high = None if high is None else high[len(prefix) :]
    base, first, last = _split_position(rel_low, rel_high)
    first = max(first, _PRINTABLE_LOW) if last >= _PRINTABLE_LOW else first
    return [prefix + base + chr(c) + _SUFFIX for c in _spread(first, last, pieces - 1)]


def extrapolated_points(
    prefix: str, first: str, last: str, high: str | None, pieces: int, pages: int = 4
) -> list[str]:
    """Boundaries where the keys after ``last`` probably are, ``pages`` pages apart.

    ``first`` and ``last`` are the first and last keys of the page just listed. Where they
    first differ is where the keys vary; the next pages are guessed to go on at the same pace
    there: boundaries at ``last[i] + k * pages * (last[i] - first[i])``. The guess only shapes
    the ranges (the last one takes whatever remains, and is split again later); every
    boundary is still strictly between ``last`` and ``high``. None if no such place is found.
    """
    rel_first, rel_last = first[len(prefix) :], last[len(prefix) :]
    i = next((n for n, (a, b) in enumerate(zip(rel_first, rel_last, strict=False)) if a != b), None)
    if pieces < 2 or i is None:
        return []
    step = (ord(rel_last[i]) - ord(rel_first[i])) * pages
    base, start = prefix + rel_last[:i], ord(rel_last[i])
    points = []
    for k in range(1, pieces):
        c = max(start + k * step, _PRINTABLE_LOW)
        if c >= _PRINTABLE_HIGH:
            break
        point = base + chr(c) + _SUFFIX
        if last < point and (high is None or point < high) and point not in points:
            points.append(point)
    return points


def _split_position(low: str, high: str | None) -> tuple[str, int, int]:
    """(common part, lowest, highest) characters a boundary may take after the common part."""
    i = 0
    while True:
        low_c = ord(low[i]) if i < len(low) else None
        high_c = _MAX_CHAR + 1 if high is None or i >= len(high) else ord(high[i])
        if high is not None and i >= len(high):
            return low[:i], 0, -1  # low is not below high: nothing to split
        if low_c is None:
            return low[:i], _PRINTABLE_LOW, min(high_c - 1, _PRINTABLE_HIGH - 1)
        if high_c - low_c >= 2:
            return low[:i], low_c + 1, _upper(low_c, high_c)
        if high_c == low_c:
            i += 1
            continue
        # Adjacent characters: everything longer than low[:i+1] is still below high.
        return _after_prefix(low, i + 1)


def _after_prefix(low: str, i: int) -> tuple[str, int, int]:
    """Boundaries after ``low[:i]`` where no upper bound applies any more."""
    while i < len(low) and ord(low[i]) >= _MAX_CHAR - 1:
        i += 1
    if i >= len(low):
        return low[:i], _PRINTABLE_LOW, _PRINTABLE_HIGH - 1
    low_c = ord(low[i])
    return low[:i], low_c + 1, _upper(low_c, _MAX_CHAR + 1)


def _upper(low_c: int, high_c: int) -> int:
    """The highest boundary character: the printable range first, when the bounds allow."""
    if low_c + 1 < _PRINTABLE_HIGH - 1 and high_c > _PRINTABLE_HIGH:
        return _PRINTABLE_HIGH - 1
    return high_c - 1


def _spread(first: int, last: int, count: int) -> list[int]:
    """Up to ``count`` distinct characters evenly spread over ``first..last``."""
    if last < first or count < 1:
        return []
    span = last - first + 1
    picks = sorted({first + (span * k) // (count + 1) for k in range(1, count + 1)})
    chosen = [c if c not in _SURROGATES else _SURROGATES.stop for c in picks]
    return sorted({c for c in chosen if first <= c <= last})
