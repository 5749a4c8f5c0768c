"""The overwrite policy as pure decisions: does an existing destination object stop a copy?

One place for the rule, shared by the worker (``copy_workers.s3.copier.ObjectCopier``, which
decides from HeadObject responses just before it copies) and the control plane's dry run (which
decides first from a listing of the destination and asks for HeadObject only where a listing
cannot tell). Both therefore count the same keys as skipped.

``if-different`` skips when the destination holds the same object: the same size, and the
source's ETag recorded at copy time, or equal plain-MD5 ETags, or equal full-object checksums.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from copy_core.contract import CopyItem
from copy_core.s3.properties import SOURCE_ETAG_META
from copy_core.s3.verify import compare, full_object_checksums

Head = Mapping[str, Any]


def is_kms(response: Head) -> bool:
    """Whether a HeadObject/CopyObject response shows KMS or customer-key encryption."""
    return str(response.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(
        response.get("SSECustomerAlgorithm")
    )


def skip_existing(
    policy: str, item: CopyItem, dest: Head | None, source: Head | None = None
) -> bool | None:
    """True: skip ``item``; False: copy it; None: the source's HeadObject is needed to tell.

    ``dest`` is the destination's HeadObject response (None when there is no such object),
    ``source`` the source's, asked for only when this function returned None without it.
    """
    if policy == "always" or dest is None:
        return False
    if policy == "never":
        return True
    return _same_object(item, dest, source)


def _same_object(item: CopyItem, dest: Head, source: Head | None) -> bool | None:
    if dest.get("ContentLength") != item.size:
        return False
    recorded = (dest.get("Metadata") or {}).get(SOURCE_ETAG_META)
    if recorded and item.etag and recorded == item.etag.strip('"'):
        return True
    verdict = compare(item.etag, {}, dest.get("ETag"), {}, is_kms(dest))
    if verdict.method == "etag":
        return verdict.matches
    dest_sums = full_object_checksums(dest)
    if not dest_sums:
        return False
    if source is None:
        return None
    return compare(None, full_object_checksums(source), None, dest_sums).verified


def skip_from_listing(policy: str, item: CopyItem, listed_size: int | None) -> bool | None:
    """The same decision from a destination listing: None where only HeadObject can tell.

    A listing shows whether the key exists and its size; it carries neither user metadata,
    checksums nor the encryption, so ``if-different`` with equal sizes needs a HeadObject.
    """
    if policy == "always" or listed_size is None:
        return False
    if policy == "never":
        return True
    if listed_size != item.size:
        return False
    return None
