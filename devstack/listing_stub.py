"""ListObjectsV2 answered in-process from a sorted list of keys, after a fixed delay.

S3's latency without its CPU: the control plane's listing (key ranges, fan-out, planning) can
be tested and measured alone. The continuation token is an index into the keys; ``StartAfter``
and ``Prefix`` behave as on S3 (keys in code point order, which is S3's UTF-8 byte order).
"""

from __future__ import annotations

import bisect
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any


class ListingStub:
    """What an S3 client's ``list_objects_v2`` returns for ``keys``; counts its requests."""

    def __init__(self, keys: list[str], delay_s: float = 0.002, size: int = 16) -> None:
        self.keys, self.delay_s, self.size, self.requests = sorted(keys), delay_s, size, 0
        self.when = datetime.now(UTC)
        # What the control plane touches of a client besides list_objects_v2: its event hooks.
        self.meta = SimpleNamespace(events=SimpleNamespace(register=lambda *_, **__: None))

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        self.requests += 1
        time.sleep(self.delay_s)
        prefix, page_size = kwargs["Prefix"], kwargs["MaxKeys"]
        if "ContinuationToken" in kwargs:
            i = int(kwargs["ContinuationToken"])
        else:
            i = bisect.bisect_right(self.keys, kwargs.get("StartAfter") or prefix[:-1])
        page = [k for k in self.keys[i : i + page_size] if k.startswith(prefix)]
        contents = [
            {
                "Key": k,
                "Size": self.size,
                "ETag": '"e"',
                "StorageClass": "STANDARD",
                "LastModified": self.when,
            }
            for k in page
        ]
        return {
            "Contents": contents,
            "IsTruncated": len(page) == page_size and i + page_size < len(self.keys),
            "NextContinuationToken": str(i + page_size),
        }
