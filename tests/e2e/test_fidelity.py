"""Copy fidelity end to end: every kind of key and object arrives as the same object.

CLI process + worker process + redis-server + an S3 endpoint over HTTP: SeaweedFS (which,
unlike moto, enforces CopySourceIfMatch and returns part checksums) and moto (which, unlike
SeaweedFS, stores keys with repeated slashes and folder markers as S3 does: SeaweedFS maps
keys onto a file tree). The multipart threshold is lowered to 5 MiB so that 11 MiB objects
take the multipart path.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from devstack.servers import RedisServer, worker_process
from tests.e2e.conftest import run_cli

MiB = 1024 * 1024
HEADERS = (
    "ContentType",
    "ContentEncoding",
    "ContentLanguage",
    "ContentDisposition",
    "CacheControl",
    "ExpiresString",
)
KEYS = [
    "plain.txt",
    "with space.txt",
    "plus+sign",
    "percent%20encoded%2F",
    "question?mark",
    "hash#tag",
    "equals=sign&amp;x",
    "unicode/ключ/日本語 ✓.txt",
    "/leading-slash",
    # 1,024 bytes of UTF-8, S3's limit (in segments: SeaweedFS caps one path segment at 255)
    "long/" + ("é" * 100 + "/") * 5 + "x" * 14,
]
# Keys SeaweedFS cannot store as written (its filer normalises them as paths).
PATH_LIKE_KEYS = ["//double//slashes//", "folder-marker/", "dot/./segment/../x"]
BIG = 11 * MiB


@dataclass
class Stack:
    """One S3 endpoint with a worker copying against it."""

    name: str
    s3: Any
    endpoint: str
    redis_url: str


@pytest.fixture(scope="module")
def moto_worker(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    # Redis database 1: its own queue, so this worker never takes a SeaweedFS run's chunks.
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/1"
    with worker_process(
        redis_url,
        s3_endpoint,
        tmp_path_factory.mktemp("moto-worker"),
        concurrency=1,
        name="moto-worker",
    ):
        yield redis_url


@pytest.fixture(scope="module", params=["seaweedfs", "moto"])
def stack(
    request: pytest.FixtureRequest, seaweed: str, s3_endpoint: str, redis_srv: RedisServer
) -> Stack:
    if request.param == "seaweedfs":
        request.getfixturevalue("sw_worker")
        return Stack("seaweedfs", boto3.client("s3", endpoint_url=seaweed), seaweed, redis_srv.url)
    redis_url = request.getfixturevalue("moto_worker")
    return Stack("moto", boto3.client("s3", endpoint_url=s3_endpoint), s3_endpoint, redis_url)


def _put(s3, bucket: str, key: str, body: bytes, rich: bool) -> None:
    extra: dict[str, Any] = {"ChecksumAlgorithm": "CRC32C"}
    if rich:
        extra.update(
            ContentType="application/x-test; charset=utf-8",
            ContentEncoding="identity",
            ContentLanguage="fr-CA",
            # RFC 6266 / 5987: the portable way to give a non-ASCII file name.
            ContentDisposition="attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
            CacheControl="max-age=3600, must-revalidate",
            Expires=datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC),
            Metadata={"owner": "team-a", "x-trace": "42"},
            Tagging="project=alpha&tier=gold",
            StorageClass="STANDARD_IA",
        )
    s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


@pytest.fixture(scope="module")
def source(stack: Stack) -> tuple[str, dict[str, bytes]]:
    bucket = f"fid-src-{uuid.uuid4().hex[:6]}"
    stack.s3.create_bucket(Bucket=bucket)
    keys = KEYS + (PATH_LIKE_KEYS if stack.name == "moto" else [])
    objects = {key: f"body of {key}".encode() for key in keys}
    objects["zero-byte"] = b""
    objects["big/multipart.bin"] = bytes(range(256)) * (BIG // 256)
    objects["big/multipart-plain.bin"] = b"p" * (BIG + 7)
    for i, (key, body) in enumerate(objects.items()):
        _put(stack.s3, bucket, key, body, rich=(i % 2 == 0 or key.startswith("big/")))
    return bucket, objects


def _properties(s3, bucket: str, key: str) -> dict[str, Any]:
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    tags = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    # Nothing added: a multipart copy of a source with a full-object CRC records no marker.
    metadata = dict(head.get("Metadata", {}))
    return {
        **{name: head.get(name) for name in HEADERS},
        "Metadata": metadata,
        "StorageClass": head.get("StorageClass", "STANDARD"),
        "Tags": sorted((t["Key"], t["Value"]) for t in tags),
        "ContentLength": head["ContentLength"],
        "ChecksumCRC32C": head.get("ChecksumCRC32C"),
        "ChecksumType": head.get("ChecksumType", "FULL_OBJECT"),
    }


def _copy(stack: Stack, source_bucket: str, dest_bucket: str, *extra: str) -> dict[str, Any]:
    done = run_cli(
        "copy",
        f"s3://{source_bucket}",
        f"s3://{dest_bucket}",
        "--recursive",
        "--redis-url",
        stack.redis_url,
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
        "--chunk-size",
        "4",
        "--json",
        *extra,
        endpoint=stack.endpoint,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def test_every_key_and_property_arrives_unchanged(stack: Stack, source) -> None:
    bucket, objects = source
    s3 = stack.s3
    dest = f"fid-dst-{uuid.uuid4().hex[:6]}"
    s3.create_bucket(Bucket=dest)
    summary = _copy(stack, bucket, dest)
    assert summary["objects_copied"] == len(objects)
    assert summary["objects_failed"] == 0
    if stack.name == "seaweedfs":  # moto returns no part checksums: multipart is unverified
        assert summary["objects_verified"] == len(objects)
    for key, body in objects.items():
        got = s3.get_object(Bucket=dest, Key=key)["Body"].read()
        assert got == body, key
        assert _properties(s3, dest, key) == _properties(s3, bucket, key), key
    assert s3.list_multipart_uploads(Bucket=dest).get("Uploads") in (None, [])

    again = _copy(stack, bucket, dest, "--overwrite", "if-different")
    assert (again["objects_copied"], again["objects_skipped"]) == (0, len(objects))

    never = _copy(stack, bucket, dest, "--overwrite", "never")
    assert (never["objects_copied"], never["objects_skipped"]) == (0, len(objects))


def test_overrides_replace_metadata_tags_and_storage_class(stack: Stack, source) -> None:
    bucket, _ = source
    sw_s3 = stack.s3
    dest = f"fid-ovr-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=dest)
    _copy(
        stack,
        bucket,
        dest,
        "--metadata-directive",
        "REPLACE",
        "--metadata",
        "copied-by=s3fanout",
        "--tagging",
        "replace",
        "--tag",
        "env=prod",
        "--storage-class",
        "GLACIER_IR",
    )
    for key in ("plain.txt", "big/multipart.bin"):
        want, got = _properties(sw_s3, bucket, key), _properties(sw_s3, dest, key)
        assert got["Metadata"] == {"copied-by": "s3fanout"}
        assert got["Tags"] == [("env", "prod")]
        assert got["StorageClass"] == "GLACIER_IR"
        assert got["ContentType"] == want["ContentType"]  # content headers are kept

    dest_none = f"fid-none-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=dest_none)
    _copy(stack, bucket, dest_none, "--tagging", "none")
    for key in ("plain.txt", "big/multipart.bin"):
        assert _properties(sw_s3, dest_none, key)["Tags"] == []


def test_changed_re_run_with_if_different_copies_only_what_changed(stack: Stack, source) -> None:
    bucket, objects = source
    sw_s3 = stack.s3
    dest = f"fid-chg-{uuid.uuid4().hex[:6]}"
    sw_s3.create_bucket(Bucket=dest)
    _copy(stack, bucket, dest)
    sw_s3.put_object(Bucket=dest, Key="plain.txt", Body=b"tampered")
    summary = _copy(stack, bucket, dest, "--overwrite", "if-different")
    assert (summary["objects_copied"], summary["objects_skipped"]) == (1, len(objects) - 1)
    assert sw_s3.get_object(Bucket=dest, Key="plain.txt")["Body"].read() == objects["plain.txt"]


def test_a_copy_is_what_s3s_own_copy_object_makes(stack: Stack, source) -> None:
    """Field by field, each copy equals S3's CopyObject of the same object (with the storage
    class kept, as s3fanout keeps it): nothing added, multipart copies included."""
    bucket, objects = source
    s3 = stack.s3
    ours, theirs = (f"fid-{name}-{uuid.uuid4().hex[:6]}" for name in ("ours", "own"))
    for name in (ours, theirs):
        s3.create_bucket(Bucket=name)
    summary = _copy(stack, bucket, ours)
    assert summary["objects_copied"] == len(objects)
    for key in objects:
        storage_class = s3.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD")
        kept = {} if storage_class == "STANDARD" else {"StorageClass": storage_class}
        s3.copy_object(Bucket=theirs, Key=key, CopySource={"Bucket": bucket, "Key": key}, **kept)
        assert _properties(s3, ours, key) == _properties(s3, theirs, key), key
