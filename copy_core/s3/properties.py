"""Which object properties a copy carries, as S3 request parameters. Pure functions.

A single CopyObject with the COPY directives carries metadata, content headers and tags by
itself; storage class it does not (S3 writes STANDARD unless told), so it is passed from the
listing. Nor does it carry Object Lock retention and legal hold, or WebsiteRedirectLocation
("not copied when using the x-amz-metadata-directive header", says CopyObject's reference):
those are read from the source's HeadObject and passed, where the run carries them. A
multipart copy carries nothing by itself: every property is read from the source
(HeadObject, GetObjectTagging) and passed to CreateMultipartUpload explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from copy_core.contract import CopyItem, CopyJob
from copy_core.options import CopyOptions
from copy_core.s3.verify import CRC_ALGORITHMS

CONTENT_HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentLanguage",
    "ContentDisposition",
    "CacheControl",
)
# Metadata recorded on a copy whose ETag is not the source's and whose checksum cannot prove
# it the same either (``needs_source_etag_marker``): how a later `overwrite="if-different"`
# run recognises the object it copied.
SOURCE_ETAG_META = "s3fanout-source-etag"
OBJECT_LOCK_FIELDS = ("ObjectLockMode", "ObjectLockRetainUntilDate", "ObjectLockLegalHoldStatus")


def single_copy_needs_head(options: CopyOptions) -> bool:
    """Whether a single CopyObject needs the source's HeadObject for what it passes."""
    return (
        options.metadata_directive == "REPLACE"
        or options.object_lock == "copy"
        or options.website_redirect == "copy"
    )


def copy_source(job: CopyJob, item: CopyItem) -> dict[str, str]:
    """CopyObject's and UploadPartCopy's CopySource: the listed version when one is pinned."""
    source = {"Bucket": job.source_bucket, "Key": item.source_key}
    if item.version_id is not None:
        source["VersionId"] = item.version_id
    return source


def source_version(item: CopyItem) -> dict[str, str]:
    """The VersionId parameter of a read of the source (HeadObject, GetObject, tagging)."""
    return {} if item.version_id is None else {"VersionId": item.version_id}


def single_copy_params(
    job: CopyJob, item: CopyItem, options: CopyOptions, head: Mapping[str, Any] | None
) -> dict[str, Any]:
    """CopyObject parameters. ``head`` (the source's HeadObject) is needed where
    ``single_copy_needs_head`` says so.

    A checksum algorithm chosen by name is passed on; "auto" and "none" pass none.
    """
    params: dict[str, Any] = {
        "Bucket": job.dest_bucket,
        "Key": item.dest_key,
        "CopySource": copy_source(job, item),
    }
    if item.etag:
        params["CopySourceIfMatch"] = item.etag
    if single_copy_needs_head(options) and head is None:
        raise ValueError("this copy needs the source's HeadObject")
    if options.metadata_directive == "REPLACE":
        assert head is not None
        params["MetadataDirective"] = "REPLACE"
        params["Metadata"] = dict(options.metadata)
        params.update(content_headers(head))
    if head is not None:
        params.update(_carried_from_head(options, head, website=options.website_redirect))
    if options.tagging != "copy":
        params["TaggingDirective"] = "REPLACE"
        if options.tagging == "replace":
            params["Tagging"] = urlencode(dict(options.tags))
    params.update(_destination_settings(options, item.storage_class))
    if options.checksum_algorithm not in ("auto", "none"):
        params["ChecksumAlgorithm"] = options.checksum_algorithm
    return params


def explicit_params(
    job: CopyJob,
    item: CopyItem,
    options: CopyOptions,
    head: Mapping[str, Any],
    source_tags: Mapping[str, str],
    *,
    record_source_etag: bool = True,
) -> dict[str, Any]:
    """CreateMultipartUpload / PutObject parameters carrying every property explicitly.

    ``record_source_etag`` adds the source's ETag as user metadata, for copies whose own ETag
    will differ from the source's (every multipart copy).
    """
    params: dict[str, Any] = {"Bucket": job.dest_bucket, "Key": item.dest_key}
    params.update(content_headers(head))
    if options.metadata_directive == "REPLACE":
        metadata = dict(options.metadata)
    else:
        metadata = dict(head.get("Metadata") or {})
    if record_source_etag:
        metadata[SOURCE_ETAG_META] = str(head.get("ETag", "")).strip('"')
    params["Metadata"] = metadata
    tags = dict(options.tags) if options.tagging == "replace" else dict(source_tags)
    if options.tagging != "none" and tags:
        params["Tagging"] = urlencode(tags)
    params.update(_destination_settings(options, head.get("StorageClass")))
    # The HeadObject is read anyway: a redirect is carried unless the run says none.
    website = "none" if options.website_redirect == "none" else "copy"
    params.update(_carried_from_head(options, head, website=website))
    return params


def needs_source_etag_marker(
    options: CopyOptions, source_sums: Mapping[str, str], algorithm: str | None
) -> bool:
    """Whether a copy whose ETag differs from its source's must record the source's ETag.

    ``if-different`` recognises a copy by its ETag, or else by a full-object checksum on
    both sides. A copy's CRC is a full-object one (``checksum_params``), so the marker is
    needed only where the source has no full-object CRC of the algorithm the copy computes;
    every object S3 has stored since December 2024 has a CRC64NVME at least.
    ``source_etag_marker="never"`` never records it.
    """
    if options.source_etag_marker == "never":
        return False
    return not (algorithm in CRC_ALGORITHMS and algorithm in source_sums)


def checksum_params(algorithm: str | None) -> dict[str, str]:
    """CreateMultipartUpload's checksum: a CRC as a full-object one, as S3's CopyObject keeps
    it (a composite CRC of parts could not be compared with the source's); SHA digests
    can only be composite."""
    if not algorithm:
        return {}
    if algorithm in CRC_ALGORITHMS:
        return {"ChecksumAlgorithm": algorithm, "ChecksumType": "FULL_OBJECT"}
    return {"ChecksumAlgorithm": algorithm}


def _carried_from_head(
    options: CopyOptions, head: Mapping[str, Any], website: str
) -> dict[str, Any]:
    """What a copy carries only when told: Object Lock settings, a website redirect."""
    carried: dict[str, Any] = {}
    if options.object_lock == "copy":
        carried.update({name: head[name] for name in OBJECT_LOCK_FIELDS if head.get(name)})
    if website == "copy" and head.get("WebsiteRedirectLocation"):
        carried["WebsiteRedirectLocation"] = head["WebsiteRedirectLocation"]
    return carried


def content_headers(head: Mapping[str, Any]) -> dict[str, Any]:
    """Content-Type, -Encoding, -Language, -Disposition, Cache-Control and Expires."""
    headers = {name: head[name] for name in CONTENT_HEADERS if head.get(name)}
    expires = head.get("ExpiresString") or head.get("Expires")
    if expires:
        headers["Expires"] = expires
    return headers


def _destination_settings(options: CopyOptions, source_class: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    storage_class = options.storage_class or source_class
    if storage_class and storage_class != "STANDARD":
        settings["StorageClass"] = storage_class
    if options.acl:
        settings["ACL"] = options.acl
    if options.sse:
        settings["ServerSideEncryption"] = options.sse
    if options.sse_kms_key_id:
        settings["SSEKMSKeyId"] = options.sse_kms_key_id
    return settings


def tag_dict(tag_set: list[dict[str, str]]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tag_set}
