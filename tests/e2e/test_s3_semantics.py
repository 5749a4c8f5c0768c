"""Real S3's semantics end to end: buckets in other regions, requester pays, Object Lock.

moto answers any region and never asks who pays, so these tests run against devstack's S3
semantics emulator in front of moto's server: a request signed for another region than its
bucket's is refused as S3 refuses it, and a requester-pays bucket refuses whoever does not
say that they pay. CLI and worker run in eu-central-1, the buckets elsewhere, in two accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from devstack.faultproxy import Fault, FaultRule, Request
from devstack.s3_semantics import S3Emulator, s3_emulator
from devstack.servers import RedisServer
from tests.e2e.conftest import all_keys
from tests.e2e.conftest import run_cli as run_s3fanout
from tests.e2e.test_roles import (
    BASE_ENV,
    DEST_ROLE,
    ROLE_ARGS,
    SOURCE_ROLE,
    role_client,
    two_accounts,
)

MiB = 1024 * 1024
HOME = "eu-central-1"  # the workers' and the CLI's region
SOURCE_REGION, DEST_REGION = "us-west-2", "ap-southeast-2"
ENV = {**BASE_ENV, "AWS_DEFAULT_REGION": HOME, "AWS_REGION": HOME}
RETAIN_UNTIL = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


@dataclass
class World:
    emulator: S3Emulator
    redis_url: str

    def client(self, role: str, region: str) -> Any:
        return role_client(self.emulator.url, role, region)

    def bucket(self, role: str, region: str, prefix: str, **extra: Any) -> tuple[Any, str]:
        """A new bucket in ``region`` of the role's account, placed there in the emulator."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        s3 = self.client(role, region)
        s3.create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": region}, **extra
        )
        self.emulator.semantics.set_region(name, region)
        return s3, name

    def copy(self, source: str, dest: str, *args: str) -> Any:
        return run_s3fanout(
            "copy",
            f"s3://{source}/",
            f"s3://{dest}/",
            "--recursive",
            "--redis-url",
            self.redis_url,
            *ROLE_ARGS,
            "--multipart-threshold",
            "5MiB",
            "--part-size",
            "5MiB",
            "--chunk-size",
            "8",
            "--json",
            *args,
            endpoint=self.emulator.url,
            credentials=ENV,
        )


@pytest.fixture(scope="module")
def world(
    redis_srv: RedisServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    redis_url = redis_srv.url.rsplit("/", 1)[0] + "/4"  # a queue of its own
    with s3_emulator(s3_endpoint) as emulator:
        workdir = tmp_path_factory.mktemp("regions-worker")
        with two_accounts(redis_url, emulator.url, workdir, "regions-worker", ENV):
            yield World(emulator, redis_url)


def _seed(s3: Any, bucket: str, small: int, big: int, **extra: Any) -> dict[str, bytes]:
    objects = {f"small/{i}.txt": f"object {i} ".encode() * (1 + i % 7) for i in range(small)}
    objects.update({f"big/{i}.bin": bytes([65 + i]) * (11 * MiB + i) for i in range(big)})
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="text/x-test", **extra)
    return objects


def _check(s3: Any, bucket: str, objects: dict[str, bytes]) -> None:
    assert set(all_keys(s3, bucket)) == set(objects)
    for key, body in objects.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key


@pytest.mark.parametrize(
    "mode, extra",
    [
        ("server_side", ()),  # small keys on the fast lane, big ones multipart
        ("server_side", ("--split-threshold", "10MiB", "--parts-per-task", "1")),
        ("stream", ()),
    ],
    ids=["lane-and-multipart", "split", "stream"],
)
def test_a_copy_between_two_other_regions_copies_every_object(
    world: World, mode: str, extra: tuple[str, ...]
) -> None:
    source_s3, source = world.bucket(SOURCE_ROLE, SOURCE_REGION, "src-usw2")
    dest_s3, dest = world.bucket(DEST_ROLE, DEST_REGION, "dst-apse2")
    objects = _seed(source_s3, source, small=30, big=2)
    before = world.emulator.stats

    done = world.copy(source, dest, "--copy-mode", mode, *extra)

    assert done.returncode == 0, done.stdout + done.stderr
    _check(dest_s3, dest, objects)
    after = world.emulator.stats
    # Every object request (copies, parts, heads, reads, writes) was signed for its bucket's
    # region from the first one; only the control plane's first bucket request of each
    # client met S3's redirect, which botocore follows.
    assert after.wrong_region_objects == before.wrong_region_objects
    assert after.wrong_region > before.wrong_region  # the set-up really was in other regions


def test_a_bucket_moved_to_another_region_mid_run_is_copied_there(world: World) -> None:
    source_s3, source = world.bucket(SOURCE_ROLE, SOURCE_REGION, "src-moving")
    dest_s3, dest = world.bucket(DEST_ROLE, DEST_REGION, "dst-moving")
    objects = _seed(source_s3, source, small=20, big=1)
    moved: list[Request] = []

    def move_on_first_copy(request: Request) -> bool:
        """After the run resolved the region, the first copy finds the bucket moved."""
        if request.header("x-amz-copy-source") and not moved:
            world.emulator.semantics.set_region(dest, "sa-east-1")
            moved.append(request)
        return False  # selects nothing: the rule only watches

    world.emulator.proxy.set_rules(
        [FaultRule(Fault.DELAY, delay_s=0.001, match=move_on_first_copy)]
    )
    before = world.emulator.stats
    try:
        done = world.copy(source, dest)
    finally:
        world.emulator.proxy.set_rules([])

    assert done.returncode == 0, done.stdout + done.stderr
    assert moved, "no copy was sent"
    # Copies signed for the region the run resolved were refused, and retried in the new one.
    assert world.emulator.stats.wrong_region_objects > before.wrong_region_objects
    _check(dest_s3, dest, objects)


def test_a_requester_pays_source_needs_the_flag(world: World) -> None:
    source_s3, source = world.bucket(SOURCE_ROLE, SOURCE_REGION, "src-payer")
    dest_s3, dest = world.bucket(DEST_ROLE, DEST_REGION, "dst-payer")
    objects = _seed(source_s3, source, small=12, big=1)
    world.emulator.semantics.set_requester_pays(source, True)

    refused = world.copy(source, dest)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--request-payer requester" in refused.stderr
    assert all_keys(dest_s3, dest) == {}

    charged = world.emulator.stats.requester_charged
    done = world.copy(source, dest, "--request-payer", "requester")
    assert done.returncode == 0, done.stdout + done.stderr
    _check(dest_s3, dest, objects)
    assert world.emulator.stats.requester_charged > charged + len(objects)


def test_object_lock_and_website_redirects_arrive(world: World) -> None:
    source_s3, source = world.bucket(
        SOURCE_ROLE, SOURCE_REGION, "src-locked", ObjectLockEnabledForBucket=True
    )
    dest_s3, dest = world.bucket(
        DEST_ROLE, DEST_REGION, "dst-locked", ObjectLockEnabledForBucket=True
    )
    source_s3.put_bucket_website(
        Bucket=source, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
    )
    lock = {
        "ObjectLockMode": "GOVERNANCE",
        "ObjectLockRetainUntilDate": RETAIN_UNTIL,
        "ObjectLockLegalHoldStatus": "ON",
        "WebsiteRedirectLocation": "/elsewhere.html",
    }
    objects = _seed(source_s3, source, small=4, big=1, **lock)
    plain = {"plain.txt": b"no lock, no redirect"}
    source_s3.put_object(Bucket=source, Key="plain.txt", Body=plain["plain.txt"])

    created: dict[str, Request] = {}

    def watch_uploads(request: Request) -> bool:
        if request.method == "POST" and "uploads" in request.query:
            created[request.path.split("/", 2)[2]] = request
        return False  # selects nothing: the rule only watches

    world.emulator.proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.001, match=watch_uploads)])
    try:
        done = world.copy(source, dest)
    finally:
        world.emulator.proxy.set_rules([])

    assert done.returncode == 0, done.stdout + done.stderr
    _check(dest_s3, dest, {**objects, **plain})
    # moto keeps no Object Lock settings of a multipart upload (S3 does): what was asked of
    # it is checked instead.
    upload = created.pop("big/0.bin")
    assert not created
    assert upload.header("x-amz-object-lock-mode") == "GOVERNANCE"
    assert upload.header("x-amz-object-lock-retain-until-date") == "2031-05-06T07:08:09Z"
    assert upload.header("x-amz-object-lock-legal-hold") == "ON"
    assert upload.header("x-amz-website-redirect-location") == "/elsewhere.html"
    assert dest_s3.head_object(Bucket=dest, Key="big/0.bin")["WebsiteRedirectLocation"] == (
        "/elsewhere.html"
    )
    for key in (k for k in objects if k.startswith("small/")):
        head = dest_s3.head_object(Bucket=dest, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE", key
        assert head["ObjectLockRetainUntilDate"] == RETAIN_UNTIL, key
        assert head["ObjectLockLegalHoldStatus"] == "ON", key
        assert head["WebsiteRedirectLocation"] == "/elsewhere.html", key
    head = dest_s3.head_object(Bucket=dest, Key="plain.txt")
    assert "ObjectLockMode" not in head and "WebsiteRedirectLocation" not in head


def test_object_lock_copy_into_a_bucket_without_it_is_refused(world: World) -> None:
    source_s3, source = world.bucket(SOURCE_ROLE, SOURCE_REGION, "src-lock2")
    dest_s3, dest = world.bucket(DEST_ROLE, DEST_REGION, "dst-nolock")
    _seed(source_s3, source, small=2, big=0)

    refused = world.copy(source, dest, "--object-lock", "copy")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "does not have Object Lock enabled" in refused.stderr
    assert "--object-lock none" in refused.stderr
    assert all_keys(dest_s3, dest) == {}


@pytest.mark.parametrize("url", ["s3://data--usw2-az1--x-s3/", "s3://fine-bucket/"])
def test_directory_buckets_are_refused_up_front(world: World, url: str) -> None:
    other = "s3://fine-bucket/" if "x-s3" in url else "s3://dir--usw2-az1--x-s3/"
    done = run_s3fanout(
        "copy",
        url,
        other,
        "--recursive",
        "--redis-url",
        world.redis_url,
        endpoint=world.emulator.url,
        credentials=ENV,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "directory bucket" in done.stderr and "not supported" in done.stderr
