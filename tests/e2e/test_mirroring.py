"""Mirror semantics end to end on moto's S3 server (versioning, ListObjectVersions, delete
markers): sync with delete, versioned copies, move, through the CLI and a real worker.

A fault proxy sits between the worker and moto, so that one key's copy can be refused as S3
refuses a copy it may not make (a move must then keep that key's source).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import boto3
import pytest

from devstack.faultproxy import (
    Answer,
    FaultProxy,
    Request,
    error_answer,
    fault_proxy,
    is_copy_object,
)
from devstack.servers import RedisServer, worker_process
from tests.e2e.conftest import all_keys, run_cli

POISON = "poison"  # a key whose copy the proxy refuses (403 AccessDenied)


def _refuse_poison(request: Request) -> Answer | None:
    if is_copy_object(request) and request.path.endswith(POISON):
        return error_answer("403 Forbidden", "AccessDenied", "Access Denied")
    return None


@dataclass
class World:
    endpoint: str  # moto, as the CLI and the test see it
    redis_url: str
    s3: Any
    proxy: FaultProxy

    def bucket(self, versioned: bool = False) -> str:
        name = f"mirror-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=name)
        if versioned:
            self.s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        return name

    def copy(self, source: str, dest: str, *args: str) -> tuple[int, dict[str, Any], str]:
        done = run_cli(
            "copy",
            source,
            dest,
            "--redis-url",
            self.redis_url,
            "--chunk-size",
            "4",
            "--json",
            *args,
            endpoint=self.endpoint,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        return done.returncode, (json.loads(lines[-1]) if lines else {}), done.stderr


@pytest.fixture(scope="module")
def world(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/6"  # a queue of its own
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with fault_proxy(s3_endpoint, responder=_refuse_poison) as proxy:
        workdir = tmp_path_factory.mktemp("mirror-worker")
        with worker_process(redis_url, proxy.url, workdir, concurrency=2, name="mirror"):
            yield World(s3_endpoint, redis_url, s3, proxy)


def _put(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def _bodies(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    return {
        key: s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        for key in all_keys(s3, bucket, prefix)
    }


def _history(s3: Any, bucket: str, key: str) -> list[bytes]:
    """The bodies of a key's versions, oldest first (delete markers left out)."""
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    mine = [v for v in versions if v["Key"] == key]  # newest first, as S3 lists them
    return [
        s3.get_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])["Body"].read()
        for v in reversed(mine)
    ]


# --- sync with delete -------------------------------------------------------------------------
def test_sync_with_delete_makes_the_destination_the_filtered_source(world: World) -> None:
    source, dest = world.bucket(), world.bucket()
    wanted = {f"data/{i:02d}.csv": f"row {i}".encode() for i in range(10)}
    _put(world.s3, source, {**wanted, "data/skip.tmp": b"excluded at the source"})
    stale = {"mirror/00.csv": b"old", "mirror/03.csv": b"old"}
    extraneous = {f"mirror/gone-{i}.csv": b"deleted at the source" for i in range(6)}
    kept = {"mirror/local.tmp": b"excluded: the sync leaves it", "other/x.csv": b"outside"}
    _put(world.s3, dest, {**stale, **extraneous, **kept})
    args = ("--recursive", "--delete", "--exclude", "*.tmp")

    code, plan, err = world.copy(f"s3://{source}/data/", f"s3://{dest}/mirror/", *args, "--dry-run")
    assert code == 0, err
    assert plan["objects_to_copy"] == 10 and plan["objects_filtered"] == 1
    assert plan["objects_to_delete"] == 6
    assert sorted(plan["keys_to_delete"]) == sorted(extraneous)
    assert _bodies(world.s3, dest) == {**stale, **extraneous, **kept}  # a dry run changes nothing

    code, summary, err = world.copy(f"s3://{source}/data/", f"s3://{dest}/mirror/", *args)

    assert code == 0, err
    assert summary["status"] == "succeeded"
    assert (summary["objects_copied"], summary["objects_to_delete"]) == (10, 6)
    assert summary["objects_deleted"] == 6 and summary["objects_failed"] == 0
    mirrored = {key.replace("data/", "mirror/"): body for key, body in wanted.items()}
    assert _bodies(world.s3, dest) == {**mirrored, **kept}


def test_max_delete_stops_a_sync_that_would_delete_more(world: World) -> None:
    source, dest = world.bucket(), world.bucket()
    _put(world.s3, source, {f"k{i}": b"new" for i in range(3)})
    extraneous = {f"old-{i}": b"x" for i in range(9)}
    _put(world.s3, dest, extraneous)

    code, summary, err = world.copy(
        f"s3://{source}/", f"s3://{dest}/", "--recursive", "--delete", "--max-delete", "5"
    )

    assert code == 1, err
    assert summary["status"] == "failed" and summary["deletes_refused"] > 5
    assert summary["objects_deleted"] == 0 and summary["objects_copied"] == 3
    assert set(all_keys(world.s3, dest)) == {*extraneous, "k0", "k1", "k2"}  # none deleted


def test_a_sync_whose_copies_fail_deletes_nothing(world: World) -> None:
    source, dest = world.bucket(), world.bucket()
    _put(world.s3, source, {"fine": b"1", POISON: b"refused"})
    _put(world.s3, dest, {"extra": b"stays"})

    code, summary, err = world.copy(f"s3://{source}/", f"s3://{dest}/", "--recursive", "--delete")

    assert code == 1, err
    assert summary["objects_failed"] == 1 and summary["objects_to_delete"] == 1
    assert summary["objects_deleted"] == 0 and summary["deletes_withheld"] is True
    assert set(all_keys(world.s3, dest)) == {"fine", "extra"}


# --- versions ---------------------------------------------------------------------------------
def test_all_versions_arrive_in_order_with_the_same_bodies(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket(versioned=True)
    histories = {
        f"v/{k}": [f"{k} version {n}".encode() for n in range(1 + k % 4)] for k in range(7)
    }
    for key, bodies in histories.items():
        for body in bodies:
            world.s3.put_object(Bucket=source, Key=key, Body=body)
    world.s3.delete_object(Bucket=source, Key="v/1")  # its versions stay, under a marker

    code, summary, err = world.copy(
        f"s3://{source}/v/", f"s3://{dest}/", "--recursive", "--all-versions"
    )

    assert code == 0, err
    assert summary["objects_copied"] == sum(len(b) for b in histories.values())
    for key, bodies in histories.items():
        assert _history(world.s3, dest, key.removeprefix("v/")) == bodies, key


def test_delete_markers_are_copied_with_the_versions_when_asked(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket(versioned=True)
    # The listing orders a key's versions and markers by time, and moto keeps LastModified
    # to the second: each entry of the history is written in a second of its own.
    history = [b"one", None, b"two", None]  # None: a delete; the key ends deleted
    for body in history:
        if body is None:
            world.s3.delete_object(Bucket=source, Key="d/k")
        else:
            world.s3.put_object(Bucket=source, Key="d/k", Body=body)
        time.sleep(1.1)
    world.s3.put_object(Bucket=source, Key="d/kept", Body=b"stays")
    # (S3 also writes a marker for a key that never existed; moto does not, so no such case)

    code, summary, err = world.copy(
        f"s3://{source}/d/", f"s3://{dest}/", "--recursive", "--all-versions", "--delete-markers"
    )

    assert code == 0, err
    assert (summary["objects_copied"], summary["objects_verified"]) == (5, 5)
    assert _history(world.s3, dest, "k") == [b"one", b"two"]
    markers = world.s3.list_object_versions(Bucket=dest).get("DeleteMarkers", [])
    assert sorted((m["Key"], m["IsLatest"]) for m in markers) == [("k", False), ("k", True)]
    assert _bodies(world.s3, dest) == {"kept": b"stays"}  # k ends deleted, as at the source


def test_all_versions_into_an_unversioned_bucket_is_refused(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket()
    _put(world.s3, source, {"a": b"1"})

    code, _, err = world.copy(f"s3://{source}/", f"s3://{dest}/", "--recursive", "--all-versions")

    assert code == 2
    assert "versioning is not enabled" in err and "put-bucket-versioning" in err
    assert all_keys(world.s3, dest) == {}


def test_a_point_in_time_copy_is_the_source_as_it_was(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket()
    _put(world.s3, source, {"a": b"a then", "b": b"b then", "gone": b"deleted later"})
    world.s3.put_object(Bucket=source, Key="was-deleted", Body=b"x")
    world.s3.delete_object(Bucket=source, Key="was-deleted")
    then = max(v["LastModified"] for v in world.s3.list_object_versions(Bucket=source)["Versions"])
    time.sleep(1.1)  # moto keeps LastModified to the second: later writes must fall after it
    _put(world.s3, source, {"a": b"a now", "new": b"created later"})
    world.s3.delete_object(Bucket=source, Key="gone")

    code, summary, err = world.copy(
        f"s3://{source}/", f"s3://{dest}/", "--recursive", "--as-of", then.isoformat()
    )

    assert code == 0, err
    assert _bodies(world.s3, dest) == {"a": b"a then", "b": b"b then", "gone": b"deleted later"}
    assert summary["objects_filtered"] == 2  # "new" did not exist then; "was-deleted" was gone


def test_a_given_version_of_one_key_is_copied(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket()
    first = world.s3.put_object(Bucket=source, Key="doc", Body=b"first")["VersionId"]
    world.s3.put_object(Bucket=source, Key="doc", Body=b"second")

    code, _, err = world.copy(f"s3://{source}/doc", f"s3://{dest}/doc", "--version-id", first)

    assert code == 0, err
    assert _bodies(world.s3, dest) == {"doc": b"first"}
    code, _, err = world.copy(f"s3://{source}/doc", f"s3://{dest}/x", "--version-id", "nope")
    assert code == 2 and "has no version 'nope'" in err


def test_a_manifest_of_versions_copies_those_versions(world: World) -> None:
    source, dest = world.bucket(versioned=True), world.bucket()
    old = {k: world.s3.put_object(Bucket=source, Key=k, Body=b"old " + k.encode()) for k in "abc"}
    _put(world.s3, source, {k: b"new " + k.encode() for k in "abc"})
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerows([[source, "a", old["a"]["VersionId"]], [source, "b", ""], [source, "c"]])
    world.s3.put_object(Bucket=source, Key="manifests/m.csv", Body=rows.getvalue().encode())

    code, _, err = world.copy(
        f"s3://{source}/", f"s3://{dest}/", "--manifest", f"s3://{source}/manifests/m.csv"
    )

    assert code == 0, err
    assert _bodies(world.s3, dest) == {"a": b"old a", "b": b"new b", "c": b"new c"}


# --- move -------------------------------------------------------------------------------------
def test_a_move_deletes_only_the_sources_copied_and_verified(world: World) -> None:
    source, dest = world.bucket(), world.bucket()
    moved = {f"in/{i}.json": f"{{{i}}}".encode() for i in range(9)}
    _put(world.s3, source, {**moved, f"in/{POISON}": b"its copy is refused"})

    code, summary, err = world.copy(
        f"s3://{source}/in/",
        f"s3://{dest}/out/",
        "--recursive",
        "--delete-source",
        "--max-failures",
        "1",
    )

    assert code == 0, err
    assert summary["objects_copied"] == 9 and summary["objects_failed"] == 1
    assert summary["objects_source_deleted"] == 9 and summary["objects_source_kept"] == 0
    assert set(all_keys(world.s3, source)) == {f"in/{POISON}"}  # the failed key's source stays
    assert _bodies(world.s3, dest) == {k.replace("in/", "out/"): b for k, b in moved.items()}


# --- completion report ------------------------------------------------------------------------
def _report(s3: Any, manifest_url: str) -> tuple[dict[str, Any], list[list[str]]]:
    bucket, key = manifest_url.removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    rows: list[list[str]] = []
    for shard in manifest["Results"]:
        body = s3.get_object(Bucket=shard["Bucket"], Key=shard["Key"])["Body"].read()
        assert hashlib.md5(body).hexdigest() == shard["MD5Checksum"], shard["Key"]
        shard_rows = list(csv.reader(io.StringIO(body.decode())))
        assert {row[3] for row in shard_rows} == {shard["TaskExecutionStatus"]}
        rows += shard_rows
    return manifest, rows


def test_the_batch_report_lists_every_key_with_its_status(world: World) -> None:
    source, dest, reports = world.bucket(), world.bucket(), world.bucket()
    objects = {f"k/{i:02d} é+.txt": b"x" * i for i in range(11)}
    _put(world.s3, source, {**objects, f"k/{POISON}": b"refused"})
    _put(world.s3, dest, {"gone-1": b"old", "gone-2": b"old"})
    run_id = f"report-{uuid.uuid4().hex[:8]}"

    code, summary, err = world.copy(
        f"s3://{source}/k/",
        f"s3://{dest}/",
        "--recursive",
        "--delete",
        "--max-failures",
        "1",
        "--run-id",
        run_id,
        "--report",
        f"s3://{reports}/copies",
    )

    assert code == 0, err
    assert summary["objects_deleted"] == 2
    manifest_url = f"s3://{reports}/copies/{run_id}/manifest.json"
    assert f"report: {manifest_url} (14 rows" in err
    manifest, rows = _report(world.s3, manifest_url)
    assert manifest["Format"] == "Report_CSV_20180820"
    by_key = {(row[0], unquote(row[1])): row for row in rows}
    assert len(rows) == len(by_key) == 14  # every key once
    for key in objects:
        assert by_key[(source, key)][3:6] == ["succeeded", "200", ""]
        assert by_key[(source, key)][6] == "copied"
    failed = by_key[(source, f"k/{POISON}")]
    assert failed[3:6] == ["failed", "403", "AccessDenied"]
    for key in ("gone-1", "gone-2"):
        assert by_key[(dest, key)][3] == "succeeded" and by_key[(dest, key)][6].startswith(
            "deleted"
        )

    done = run_cli(
        "report",
        run_id,
        "--redis-url",
        world.redis_url,
        "--format",
        "batch-csv",
        "--scope",
        "failed",
        "--output",
        f"s3://{reports}/failed-only",
        endpoint=world.endpoint,
    )
    assert done.returncode == 0, done.stderr
    _, failed_rows = _report(world.s3, f"s3://{reports}/failed-only/{run_id}/manifest.json")
    assert [unquote(row[1]) for row in failed_rows] == [f"k/{POISON}"]
