"""The fast lane's reading of S3's CopyObject responses."""

from __future__ import annotations

import pytest

from copy_workers.s3.fastlane import _fields, copy_result_etag

MD5 = "0123456789abcdef0123456789abcdef"
XMLNS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'


def _result(etag_text: str, extra: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult {XMLNS}>'
        f"<LastModified>2026-11-26T04:00:00.000Z</LastModified><ETag>{etag_text}</ETag>"
        f"{extra}</CopyObjectResult>"
    ).encode()


@pytest.mark.parametrize(
    "etag_text",
    [
        f"&quot;{MD5}&quot;",  # AWS S3
        f"&#34;{MD5}&#34;",  # Go's encoding/xml: SeaweedFS, MinIO
        f'"{MD5}"',
    ],
)
def test_the_etag_reads_as_an_xml_parser_reads_it(etag_text: str) -> None:
    body = _result(etag_text, "<ChecksumCRC64NVME>AAAAAAAAAAA=</ChecksumCRC64NVME>")
    assert copy_result_etag(body) == f'"{MD5}"' == _fields(body)["ETag"]


def test_a_document_without_an_etag_leaves_it_unknown() -> None:
    body = f"<CopyObjectResult {XMLNS}><LastModified>x</LastModified></CopyObjectResult>"
    assert copy_result_etag(body.encode()) is None
    assert copy_result_etag(b"") is None
