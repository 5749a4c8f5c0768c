"""A faster reading of ListObjectsV2 responses, through botocore's own extension point.

botocore turns each ``<Contents>`` element into a dict by walking the service model, and parses
every LastModified with dateutil, which caps how many keys one process lists a second whatever
the server does (docs/performance.md, listing). This handler, registered on
``before-parse.s3.ListObjectsV2``, reads the ``<Contents>`` elements with ElementTree (expat)
into the same dicts (Key, Size, ETag, StorageClass, LastModified as an aware datetime), hands
them to botocore through ``customized_response_dict`` (which botocore merges into the parsed
response), and leaves botocore the rest of the document (IsTruncated, the continuation token,
CommonPrefixes...). Keys stay as the response has them: botocore's ``after-call`` handler still
URL-decodes them (it asks S3 for ``EncodingType=url``). Any response it does not recognise is
left to botocore untouched.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_HANDLER_ID = "s3fanout-fast-list-objects-v2"
_FIELDS = ("Key", "Size", "ETag", "StorageClass", "LastModified")


def speed_up_listing(client: S3Client) -> None:
    """Make ``client``'s ListObjectsV2 calls parse their keys the fast way (idempotent)."""
    client.meta.events.register(
        "before-parse.s3.ListObjectsV2", _parse_contents, unique_id=_HANDLER_ID
    )


def _parse_contents(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    body = response_dict.get("body")
    if response_dict.get("status_code", 500) >= 300 or not body or b"Contents>" not in body:
        return
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - the S3 response botocore would parse
    except ElementTree.ParseError:
        return  # botocore reports it
    namespace = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    contents = root.findall(f"{namespace}Contents")
    parsed = [_entry(element, len(namespace)) for element in contents]
    for element in contents:
        root.remove(element)
    response_dict["body"] = ElementTree.tostring(root, default_namespace=namespace[1:-1] or None)
    customized_response_dict["Contents"] = parsed


def _entry(element: ElementTree.Element, skip: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for child in element:
        name = child.tag[skip:]
        if name in _FIELDS:
            entry[name] = child.text or ""
    if "Size" in entry:
        entry["Size"] = int(entry["Size"])
    if "LastModified" in entry:
        entry["LastModified"] = datetime.fromisoformat(entry["LastModified"])
    return entry
