"""Fixtures shared by every test: real servers on loopback, started and stopped here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis

from devstack.servers import AWS_TEST_ENV, RedisServer, moto_server, redis_server, seaweed_server

for _name, _value in AWS_TEST_ENV.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def redis_srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_client(redis_srv: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(redis_srv.url, decode_responses=True)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture
def s3(s3_endpoint: str):
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS's S3 gateway: fast, and it enforces CopySourceIfMatch and signatures."""
    with seaweed_server(tmp_path_factory.mktemp("seaweed")) as url:
        yield url


@pytest.fixture(scope="session")
def sw_s3(seaweed: str):
    return boto3.client("s3", endpoint_url=seaweed, region_name="us-east-1")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
