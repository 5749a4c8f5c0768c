"""Every AWS client the operator makes follows its AWS connection: endpoints included."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from airflow_plugin import S3CrossAccountCopyOperator
from copy_core.aws.clients import Identity

ROLE = "arn:aws:iam::123456789012:role/s3fanout-source-reader"


@pytest.mark.parametrize("where", ["endpoint_url", "service_config"])
def test_roles_are_assumed_through_the_connections_sts_endpoint(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # moto stands for an STS VPC endpoint (or LocalStack, MinIO) named by the connection
    # only: nothing in the environment points boto3 at it.
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    extra: dict[str, object] = {"region_name": "us-east-1", "endpoint_url": s3_endpoint}
    if where == "service_config":
        extra = {"region_name": "us-east-1", "service_config": {
            "s3": {"endpoint_url": s3_endpoint}, "sts": {"endpoint_url": s3_endpoint}}}  # fmt: skip
    connection = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_S3FANOUT_TEST_AWS", json.dumps(connection))
    bucket = f"af-sts-{uuid.uuid4().hex[:6]}"
    setup = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    setup.create_bucket(Bucket=bucket)
    setup.put_object(Bucket=bucket, Key="data/one.txt", Body=b"1")
    op = S3CrossAccountCopyOperator(
        task_id="copy",
        source_bucket=bucket,
        source_prefix="data/",
        dest_bucket="af-sts-dest",
        source_role_arn=ROLE,
        aws_conn_id="s3fanout_test_aws",
        redis_url="redis://127.0.0.1:1/0",
    )
    client = op._client_factory().s3(Identity(role_arn=ROLE, session_name="af-test"))
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["data/one.txt"]
    credentials = client._request_signer._credentials.get_frozen_credentials()  # type: ignore[attr-defined]
    assert credentials.access_key.startswith("ASIA")  # a session STS issued, not the login
