"""The fast ListObjectsV2 reading gives what botocore's own parser gives."""

from __future__ import annotations

from typing import Any

import botocore.session
from botocore.parsers import RestXMLParser

from copy_control.listing.fastlist import _parse_contents

BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>src</Name><Prefix>data/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>
  <EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
  <NextContinuationToken>tok+/=</NextContinuationToken>
  <Contents><Key>data/a+b%25c</Key><LastModified>2026-11-05T12:00:01.000Z</LastModified>
    <ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>12</Size>
    <StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>data/%C3%BC%20x</Key><LastModified>2026-11-05T12:00:02Z</LastModified>
    <ETag>&quot;abc-2&quot;</ETag><Size>0</Size><StorageClass>GLACIER_IR</StorageClass>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm></Contents>
  <Contents><Key>data/&amp;&lt;&gt;</Key><LastModified>2026-11-05T12:00:03.123Z</LastModified>
    <ETag>&quot;e&quot;</ETag><Size>5368709120</Size><StorageClass>STANDARD</StorageClass></Contents>
  <CommonPrefixes><Prefix>data/sub/</Prefix></CommonPrefixes>
</ListBucketResult>"""

FIELDS = ("Key", "Size", "ETag", "StorageClass", "LastModified")


def _parse(response: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    assert shape is not None
    parsed = RestXMLParser().parse(response, shape)
    parsed.update(custom)
    return dict(parsed)


def _response(body: bytes, status: int = 200) -> dict[str, Any]:
    return {"status_code": status, "headers": {}, "body": body}


def test_the_same_objects_and_the_same_page_fields_as_botocore() -> None:
    expected = _parse(_response(BODY), {})
    response, custom = _response(BODY), dict[str, Any]()
    _parse_contents(response, custom)
    fast = _parse(response, custom)
    assert b"Contents" not in response["body"]
    assert [{k: o.get(k) for k in FIELDS} for o in fast["Contents"]] == [
        {k: o.get(k) for k in FIELDS} for o in expected["Contents"]
    ]
    others = {k: v for k, v in expected.items() if k not in ("Contents", "ResponseMetadata")}
    assert {k: fast[k] for k in others} == others


def test_errors_and_empty_pages_are_left_to_botocore() -> None:
    for response in (_response(BODY, status=403), _response(b"<ListBucketResult/>")):
        before, custom = dict(response), dict[str, Any]()
        _parse_contents(response, custom)
        assert response == before and custom == {}
