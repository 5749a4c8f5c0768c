"""An object as a listing or a manifest saw it: what the selection and the planning work on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ListedObject:
    """An object as the listing saw it."""

    key: str
    size: int
    etag: str | None
    storage_class: str | None = None
    last_modified: datetime | None = None
    # A manifest row whose object HeadObject did not find (or may not read): it is still sent,
    # so that the copy reports it as one failed key with S3's reason.
    missing: bool = False
    # The version the listing saw, pinned for the copy (None: whatever is current).
    version_id: str | None = None
    # An --all-versions listing: the key's earlier versions, oldest first, copied before this
    # one so that the destination's versions come in the same order.
    older: tuple[ListedObject, ...] = ()
    # An entry of a key's history that is a delete marker (--all-versions --delete-markers).
    delete_marker: bool = False

    @property
    def versions(self) -> tuple[ListedObject, ...]:
        """Every version this entry copies, oldest first."""
        return (*self.older, self)
