"""Manifest input end to end on SeaweedFS: a Batch Operations CSV, S3 Inventory reports in CSV
and Parquet; keys copied, rows filtered or failed, and bad manifests refused before any write."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from copy_control.listing.manifest import ManifestFile, read_rows
from devstack.servers import RedisServer, Worker
from tests.e2e.conftest import all_keys, seed
from tests.e2e.test_selection import cli

SOURCE = "man-src"
META = "man-meta"
INVENTORY_SCHEMA = (
    "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass"
)


@pytest.fixture(scope="module")
def objects(sw_s3) -> dict[str, dict[str, Any]]:
    keys = [f"in/{d}/obj-{i:03d}.dat" for d in ("a", "b", "c") for i in range(80)]
    keys += ["in/with space.dat", "in/plus+sign.dat", "in/ünïcode/ø.dat", "in/pct%41.dat"]
    keys += ["out/elsewhere.dat"]
    seed(sw_s3, SOURCE, keys, body=lambda k: k.encode() * (1 + len(k) % 7))
    seed(sw_s3, META, [])
    found: dict[str, dict[str, Any]] = {}
    for page in sw_s3.get_paginator("list_objects_v2").paginate(Bucket=SOURCE):
        found.update({o["Key"]: o for o in page["Contents"]})
    return found


def _put(s3, key: str, data: bytes) -> str:
    s3.put_object(Bucket=META, Key=key, Body=data)
    return f"s3://{META}/{key}"


def _dest(s3) -> str:
    name = f"man-dst-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


def _run(*args: str, seaweed: str, redis_url: str) -> dict[str, Any]:
    done = cli(*args, "--json", endpoint=seaweed, redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _inventory_rows(objects: dict[str, dict[str, Any]], keys: list[str]) -> list[list[Any]]:
    rows = []
    for key in keys:
        o = objects[key]
        when = o["LastModified"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        # No version id: SeaweedFS's buckets here are unversioned (an id would be pinned).
        rows.append(
            [SOURCE, key, "", True, False, o["Size"], when, o["ETag"].strip('"'), "STANDARD"]
        )
    some = objects[keys[0]]
    # A noncurrent version and a delete marker: neither is an object to copy.
    rows.append(
        [
            SOURCE,
            keys[0],
            "v0",
            False,
            False,
            some["Size"],
            "2020-01-01T00:00:00.000Z",
            "0" * 32,
            "STANDARD",
        ]
    )
    rows.append(
        [SOURCE, "in/deleted.dat", "v9", True, True, None, "2020-01-01T00:00:00.000Z", None, None]
    )
    return rows


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else value


def _csv_gz(rows: list[list[Any]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for row in rows:
        bucket, key, *rest = row
        writer.writerow([bucket, quote_plus(key), *(_csv_value(v) for v in rest)])
    return gzip.compress(text.getvalue().encode())


def _parquet(rows: list[list[Any]]) -> bytes:
    names = [
        "bucket",
        "key",
        "version_id",
        "is_latest",
        "is_delete_marker",
        "size",
        "last_modified_date",
        "e_tag",
        "storage_class",
    ]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    columns["last_modified_date"] = [
        None if v is None else datetime.fromisoformat(v) for v in columns["last_modified_date"]
    ]
    table = pa.table(columns).cast(
        pa.schema(
            [
                ("bucket", pa.string()),
                ("key", pa.string()),
                ("version_id", pa.string()),
                ("is_latest", pa.bool_()),
                ("is_delete_marker", pa.bool_()),
                ("size", pa.int64()),
                ("last_modified_date", pa.timestamp("ms", tz="UTC")),
                ("e_tag", pa.string()),
                ("storage_class", pa.string()),
            ]
        )
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=40)
    return sink.getvalue()


def _manifest_json(fmt: str, files: list[str], source: str = SOURCE) -> bytes:
    return json.dumps(
        {
            "sourceBucket": source,
            "destinationBucket": f"arn:aws:s3:::{META}",
            "version": "2016-11-30",
            "creationTimestamp": "1514944800000",
            "fileFormat": fmt,
            "fileSchema": INVENTORY_SCHEMA if fmt == "CSV" else "message s3.inventory { ... }",
            "files": [{"key": key, "size": 1, "MD5checksum": "x"} for key in files],
        }
    ).encode()


def test_batch_operations_csv(
    objects, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    chosen = [k for k in objects if k.startswith("in/")][::3]
    lines = [f"{SOURCE},{quote_plus(k)}" for k in chosen]
    lines += [f"{SOURCE},in/never-existed.dat", "", f"{SOURCE},out/elsewhere.dat"]
    manifest = _put(sw_s3, "batch/manifest.csv", "\n".join(lines).encode())
    dest = _dest(sw_s3)
    args = (
        "--manifest",
        manifest,
        f"s3://{SOURCE}/in/",
        f"s3://{dest}/copy/",
        "--max-failures",
        "1",
        "--listing-concurrency",
        "1",
    )

    dry = _run(*args, "--dry-run", seaweed=seaweed, redis_url=redis_srv.url)
    assert all_keys(sw_s3, dest) == {}
    summary = _run(*args, seaweed=seaweed, redis_url=redis_srv.url)

    expected = {"copy/" + k[3:]: objects[k]["Size"] for k in chosen}
    assert all_keys(sw_s3, dest) == expected
    assert summary["objects_copied"] == dry["objects_to_copy"] == len(chosen)
    assert summary["objects_failed"] == dry["objects_missing"] == 1  # the key that never existed
    assert summary["failures"][0]["key"] == "in/never-existed.dat"
    assert summary["objects_filtered"] == dry["objects_filtered"] == 2  # outside in/, blank line
    assert summary["objects_listed"] == dry["objects_listed"] == len(chosen) + 1
    assert summary["bytes_copied"] == dry["bytes_to_copy"]


def test_inventory_csv_manifest(
    objects, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    keys = sorted(k for k in objects if k.startswith("in/"))
    half = len(keys) // 2
    files = [
        _put(sw_s3, f"inv/data/{n}.csv.gz", _csv_gz(_inventory_rows(objects, part)))
        for n, part in enumerate((keys[:half], keys[half:]))
    ]
    data_keys = [f.removeprefix(f"s3://{META}/") for f in files]
    manifest = _put(sw_s3, "inv/manifest.json", _manifest_json("CSV", data_keys))
    dest = _dest(sw_s3)
    summary = _run(
        "--manifest",
        manifest,
        f"s3://{SOURCE}/",
        f"s3://{dest}/",
        "--min-size",
        "40",
        seaweed=seaweed,
        redis_url=redis_srv.url,
    )
    expected = {k: objects[k]["Size"] for k in keys if objects[k]["Size"] >= 40}
    assert all_keys(sw_s3, dest) == expected
    assert summary["objects_copied"] == len(expected)
    # Per data file: one noncurrent version and one delete marker; plus the small objects.
    assert summary["objects_filtered"] == 4 + len(keys) - len(expected)
    assert summary["objects_failed"] == 0


def test_inventory_parquet_manifest(
    objects, sw_s3, sw_worker: Worker, redis_srv: RedisServer, seaweed: str
) -> None:
    keys = sorted(k for k in objects if k.startswith("in/"))
    third = len(keys) // 3
    parts = (keys[:third], keys[third:])
    names = [f"pq/data/{n}.parquet" for n in range(len(parts))]
    for name, part in zip(names, parts, strict=True):
        _put(sw_s3, name, _parquet(_inventory_rows(objects, part)))
    manifest = _put(sw_s3, "pq/manifest.json", _manifest_json("Parquet", names))
    dest = _dest(sw_s3)
    summary = _run(
        "--manifest",
        manifest,
        f"s3://{SOURCE}/in/",
        f"s3://{dest}/p/",
        "--include",
        "b/*",
        "--include",
        "*ø*",
        seaweed=seaweed,
        redis_url=redis_srv.url,
    )
    expected = {"p/" + k[3:]: objects[k]["Size"] for k in keys if k.startswith("in/b/") or "ø" in k}
    assert all_keys(sw_s3, dest) == expected
    assert summary["objects_copied"] == len(expected)
    assert summary["objects_filtered"] == 4 + len(keys) - len(expected)


def test_parquet_rows_resume_inside_a_row_group(objects, sw_s3) -> None:
    keys = sorted(objects)
    _put(sw_s3, "pq/resume.parquet", _parquet(_inventory_rows(objects, keys)))
    file = ManifestFile(META, "pq/resume.parquet", "parquet", (), False, True)
    every = [row["key"] for row in read_rows(sw_s3, file)]
    assert every[: len(keys)] == keys
    for start in (0, 39, 40, 41, 123, len(every) - 1, len(every)):
        assert [row["key"] for row in read_rows(sw_s3, file, start)] == every[start:]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("other-bucket,in/a/obj-001.dat", "b.csv", "names bucket 'other-bucket'"),
        (
            _manifest_json("CSV", ["x.csv.gz"], source="another-src").decode(),
            "m.json",
            "inventory of bucket",
        ),
        (_manifest_json("ORC", ["x.orc"]).decode(), "o.json", "CSV and Parquet are supported"),
        ("{not json", "bad.json", "not valid JSON"),
    ],
)
def test_a_bad_manifest_fails_before_anything_is_written(
    content: str, name: str, message: str, objects, sw_s3, redis_srv: RedisServer, seaweed: str
) -> None:
    manifest = _put(sw_s3, f"bad/{name}", content.encode())
    client = redis.Redis.from_url(redis_srv.url, decode_responses=True)
    queued = client.llen("s3copy")
    run_id = f"man-bad-{uuid.uuid4().hex[:6]}"
    done = cli(
        "--manifest",
        manifest,
        f"s3://{SOURCE}/",
        f"s3://{SOURCE}/never/",
        "--run-id",
        run_id,
        endpoint=seaweed,
        redis_url=redis_srv.url,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert client.keys(f"*{run_id}*") == []
    assert client.llen("s3copy") == queued
