"""Seeded source objects, and the check of every destination object after every run."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.config import SizeRange

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CopySourceTypeDef, ObjectIdentifierTypeDef


class VerificationError(AssertionError):
    """A destination does not hold exactly the source's objects."""


@dataclass(frozen=True)
class SourceObject:
    """One seeded object: its key below the dataset's prefix, size, ETag and content MD5."""

    rel: str
    size: int
    etag: str
    md5: str


@dataclass(frozen=True)
class Dataset:
    """Objects seeded under ``s3://bucket/prefix``."""

    name: str
    bucket: str
    prefix: str
    objects: tuple[SourceObject, ...]

    @property
    def total_bytes(self) -> int:
        return sum(obj.size for obj in self.objects)

    @property
    def count(self) -> int:
        return len(self.objects)


def plan_sizes(
    count: int, sizes: SizeRange, seed: int, large: int = 0, large_size: int = 0
) -> list[int]:
    """``count`` sizes drawn from ``sizes``; the last ``large`` of them are ``large_size``."""
    rng = random.Random(seed)
    small = [rng.randint(sizes.low, sizes.high) for _ in range(count - large)]
    return small + [large_size] * large


def object_bytes(seed: int, index: int, size: int) -> bytes:
    """The content of object ``index``: the same bytes for the same seed, every time."""
    return random.Random(seed * 1_000_003 + index).randbytes(size)


def object_rel(index: int) -> str:
    """Its key below the prefix: nested folders, as real prefixes have."""
    return f"part-{index // 500:03d}/obj-{index:06d}.bin"


def seed_dataset(
    s3: S3Client, name: str, bucket: str, prefix: str, sizes: list[int], seed: int
) -> Dataset:
    """Upload the objects (32 at once), then read back what the server lists."""

    def put(index: int) -> tuple[str, str]:
        data = object_bytes(seed, index, sizes[index])
        s3.put_object(Bucket=bucket, Key=prefix + object_rel(index), Body=data)
        return object_rel(index), hashlib.md5(data, usedforsecurity=False).hexdigest()

    with ThreadPoolExecutor(32) as pool:
        md5s = dict(pool.map(put, range(len(sizes))))
    listed = dict(list_prefix(s3, bucket, prefix))
    if sorted(listed) != sorted(md5s) or any(
        listed[object_rel(i)][0] != size for i, size in enumerate(sizes)
    ):
        raise RuntimeError(f"seeding {name}: the server lists other objects than were uploaded")
    objects = tuple(
        SourceObject(rel, listed[rel][0], listed[rel][1], md5s[rel]) for rel in sorted(md5s)
    )
    return Dataset(name, bucket, prefix, objects)


def list_prefix(s3: S3Client, bucket: str, prefix: str) -> Iterator[tuple[str, tuple[int, str]]]:
    """``(key below prefix, (size, ETag))`` for every object under the prefix."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"][len(prefix) :], (item["Size"], item["ETag"].strip('"'))


@dataclass(frozen=True)
class Verified:
    """What a verification found: every object present and equal."""

    objects: int
    bytes: int
    etag_equal: int
    content_checked: int  # multipart copies (new ETag): compared by MD5 of the content


def verify_copy(s3: S3Client, source: Dataset, bucket: str, prefix: str) -> Verified:
    """Every source object is at the destination with its size and ETag (or same content)."""
    found = dict(list_prefix(s3, bucket, prefix))
    expected = {obj.rel: obj for obj in source.objects}
    problems = [f"missing: {rel}" for rel in sorted(expected.keys() - found.keys())]
    problems += [f"unexpected: {rel}" for rel in sorted(found.keys() - expected.keys())]
    etag_equal = content_checked = 0
    for rel in sorted(expected.keys() & found.keys()):
        want, (size, etag) = expected[rel], found[rel]
        if size != want.size:
            problems.append(f"size: {rel}: {size} != {want.size}")
        elif etag == want.etag:
            etag_equal += 1
        elif "-" in etag and read_back_md5(s3, bucket, prefix + rel) == want.md5:
            content_checked += 1  # a multipart copy gets a multipart ETag; the bytes decide
        else:
            problems.append(f"content: {rel}: ETag {etag} != {want.etag}")
    if problems:
        shown = "\n  ".join(problems[:20])
        raise VerificationError(
            f"s3://{bucket}/{prefix}: {len(problems)} problems of {source.count} objects "
            f"({len(found)} found):\n  {shown}"
        )
    return Verified(len(found), source.total_bytes, etag_equal, content_checked)


def read_back_md5(s3: S3Client, bucket: str, key: str) -> str:
    """MD5 of an object's bytes, read in a stream (8 MiB at a time)."""
    digest = hashlib.md5(usedforsecurity=False)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for block in iter(lambda: body.read(8 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def warm_server(s3: S3Client, source: Dataset, bucket: str, prefix: str) -> None:
    """Copy ``source`` once and delete the copies: SeaweedFS creates a bucket's volumes on its
    first writes, a cost that would otherwise fall on whichever tool runs first."""

    def copy(obj: SourceObject) -> None:
        copy_source: CopySourceTypeDef = {"Bucket": source.bucket, "Key": source.prefix + obj.rel}
        s3.copy_object(Bucket=bucket, Key=prefix + obj.rel, CopySource=copy_source)

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(copy, source.objects))
    verify_copy(s3, source, bucket, prefix)
    delete_prefix(s3, bucket, prefix)


def delete_prefix(s3: S3Client, bucket: str, prefix: str) -> None:
    """Remove a run's copies (so the server's size stays the same from run to run)."""
    keys = [prefix + rel for rel, _ in list_prefix(s3, bucket, prefix)]
    for start in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
