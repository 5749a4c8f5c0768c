"""Copy options: what a user may ask of every copy in a run. Part of the wire contract.

Standard library only. Options are validated once, where they are built, with messages that
say what to change; the worker receives them already valid. Unknown option names on the wire
are an error rather than a silent no-op (the same idea as s3transfer's ALLOWED_COPY_ARGS).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MiB = 1024**2
GiB = 1024**3

# S3's own limits for CopyObject and multipart copies.
MAX_SINGLE_COPY = 5 * GiB
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
# The largest object 10,000 parts of 5 GiB can hold; S3 itself rejects anything above its
# current object size limit with EntityTooLarge, which is reported per key.
MAX_MULTIPART_OBJECT = MAX_PARTS * MAX_PART
DEFAULT_MULTIPART_THRESHOLD = 256 * MiB
DEFAULT_SPLIT_THRESHOLD = 4 * GiB
DEFAULT_PARTS_PER_TASK = 8

OVERWRITE = ("always", "if-different", "never")
METADATA_DIRECTIVES = ("COPY", "REPLACE")
TAGGING = ("copy", "none", "replace")
CHECKSUM_ALGORITHMS = ("auto", "CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1", "none")
SSE = ("AES256", "aws:kms", "aws:kms:dsse")
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
)
# Directory buckets (S3 Express One Zone) are refused: see DIRECTORY_BUCKETS.
DIRECTORY_STORAGE_CLASS = "EXPRESS_ONEZONE"
DIRECTORY_BUCKETS = (
    "S3 Express One Zone directory buckets are not supported: they list without StartAfter "
    "(which the parallel key-range listing needs), answer on zonal endpoints and sign with "
    "session credentials (CreateSession); copy to or from a general purpose bucket instead "
    "(docs/regions.md)"
)
REQUEST_PAYERS = ("requester",)
# "auto": resolved once per run by the control plane, which sends "copy" where the buckets
# show something to carry; a worker reads "auto" as not carried on single copies.
OBJECT_LOCK = ("auto", "copy", "none")
WEBSITE_REDIRECT = ("auto", "copy", "none")
SOURCE_ETAG_MARKERS = ("auto", "never")
CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
_META_KEY = re.compile(r"^[A-Za-z0-9!#$&'*+.^_`|~-]+$")


class InvalidOption(ValueError):
    """An option value that cannot work; the message says which and what is allowed."""


@dataclass(frozen=True)
class CopyOptions:
    """How each object is copied. Defaults copy an object exactly as it is."""

    overwrite: str = "always"
    metadata_directive: str = "COPY"
    metadata: Mapping[str, str] = field(default_factory=dict)
    tagging: str = "copy"
    tags: Mapping[str, str] = field(default_factory=dict)
    storage_class: str | None = None  # None: keep the source's
    acl: str | None = None  # None: send no ACL (many buckets disable ACLs)
    sse: str | None = None  # None: the destination bucket's default encryption
    sse_kms_key_id: str | None = None
    checksum_algorithm: str = "auto"
    multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD
    part_size: int | None = None  # None: chosen from the object size
    verify: bool = True
    # Server-side copies larger than this are split: their parts go to several workers.
    split_threshold: int = DEFAULT_SPLIT_THRESHOLD
    parts_per_task: int = DEFAULT_PARTS_PER_TASK
    # "requester": every request says the requester pays (x-amz-request-payer), as a
    # requester-pays bucket of another account demands.
    request_payer: str | None = None
    object_lock: str = "auto"  # retention and legal hold of each object
    website_redirect: str = "auto"  # WebsiteRedirectLocation, which CopyObject drops
    # "auto": a multipart or streamed copy records the source's ETag as user metadata only
    # where no full-object checksum could later prove it the same (--overwrite if-different).
    source_etag_marker: str = "auto"

    def __post_init__(self) -> None:
        _one_of("overwrite", self.overwrite, OVERWRITE)
        _one_of("metadata_directive", self.metadata_directive, METADATA_DIRECTIVES)
        _one_of("tagging", self.tagging, TAGGING)
        _one_of("checksum_algorithm", self.checksum_algorithm, CHECKSUM_ALGORITHMS)
        if self.storage_class == DIRECTORY_STORAGE_CLASS:
            raise InvalidOption(f"storage_class {DIRECTORY_STORAGE_CLASS}: {DIRECTORY_BUCKETS}")
        if self.storage_class is not None:
            _one_of("storage_class", self.storage_class, STORAGE_CLASSES)
        if self.acl is not None:
            _one_of("acl", self.acl, CANNED_ACLS)
        if self.sse is not None:
            _one_of("sse", self.sse, SSE)
        if self.request_payer is not None:
            _one_of("request_payer", self.request_payer, REQUEST_PAYERS)
        _one_of("object_lock", self.object_lock, OBJECT_LOCK)
        _one_of("website_redirect", self.website_redirect, WEBSITE_REDIRECT)
        _one_of("source_etag_marker", self.source_etag_marker, SOURCE_ETAG_MARKERS)
        self._check_metadata_and_tags()
        self._check_sizes()

    def _check_metadata_and_tags(self) -> None:
        if self.metadata and self.metadata_directive != "REPLACE":
            raise InvalidOption("metadata is only used with metadata_directive REPLACE")
        for key in self.metadata:
            if not _META_KEY.match(key):
                raise InvalidOption(f"metadata key {key!r} is not a valid HTTP header name")
        if self.tags and self.tagging != "replace":
            raise InvalidOption("tags are only used with tagging 'replace'")
        if len(self.tags) > 10:
            raise InvalidOption(f"S3 allows at most 10 tags per object, got {len(self.tags)}")
        if self.sse_kms_key_id and self.sse not in ("aws:kms", "aws:kms:dsse"):
            raise InvalidOption("sse_kms_key_id needs sse 'aws:kms' (or 'aws:kms:dsse')")

    def _check_sizes(self) -> None:
        if not MIN_PART <= self.multipart_threshold <= MAX_SINGLE_COPY:
            raise InvalidOption(
                f"multipart_threshold must be between 5 MiB and 5 GiB (the largest CopyObject), "
                f"got {self.multipart_threshold} bytes"
            )
        if self.split_threshold < self.multipart_threshold:
            raise InvalidOption(
                f"split_threshold ({self.split_threshold} bytes) must be at least the "
                f"multipart_threshold ({self.multipart_threshold} bytes)"
            )
        if not 1 <= self.parts_per_task <= MAX_PARTS:
            raise InvalidOption(
                f"parts_per_task must be 1 to {MAX_PARTS}, got {self.parts_per_task}"
            )
        if self.part_size is not None and not MIN_PART <= self.part_size <= MAX_PART:
            raise InvalidOption(
                f"part_size must be between 5 MiB and 5 GiB, got {self.part_size} bytes"
            )

    def to_wire(self) -> dict[str, Any]:
        """Only the options that differ from the defaults, to keep messages small."""
        defaults = CopyOptions()
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> CopyOptions:
        if not isinstance(raw, Mapping):
            raise InvalidOption("copy options must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidOption(f"unknown copy options {unknown}; known: {sorted(known)}")
        return cls(**raw)


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidOption(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else value
