"""The fast lane's reading of S3's CopyObject responses."""

from __future__ import annotations

import pytest
from botocore.utils import SAFE_CHARS, percent_encode

from copy_workers.s3.fastlane import _fields, copy_result_etag, encode_path

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


@pytest.mark.parametrize(
    "key", ["part-000/obj-000001.bin", "a~b_c.d-e/f", "k/00 é+.txt", "x?y=1&z#w", "%41", ""]
)
def test_a_key_is_encoded_as_botocore_encodes_a_path_and_a_copy_source(key: str) -> None:
    assert encode_path(key) == percent_encode(key, safe="/~")
    assert encode_path(key) == percent_encode(key, safe=SAFE_CHARS + "/")
