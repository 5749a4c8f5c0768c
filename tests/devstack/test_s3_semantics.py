"""The S3 semantics emulator: S3's answers to wrong regions and requester pays, over moto."""

from __future__ import annotations

import http.client
import socket
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from devstack.faultproxy import Answer, Request, fault_proxy
from devstack.s3_semantics import (
    S3Semantics,
    SemanticsStats,
    Target,
    copy_source_bucket,
    is_create_bucket,
    s3_emulator,
    says_requester_pays,
    signed_region,
    target_of,
)
from tests.devstack.test_faultproxy import recv_exactly, scripted_upstream, urlsplit_port

WEST = "us-west-2"
EU = "eu-west-1"
MALFORMED = "The authorization header is malformed; the region '{}' is wrong; expecting '{}'"


def s3_client(url: str, region: str, *, follow_region_hints: bool = True) -> Any:
    """A boto3 client signing for ``region``; without region hints, it sees the first answer."""
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    if not follow_region_hints:  # botocore's region redirector skips a request it redirected

        def already_redirected(context: dict[str, Any], **_: Any) -> None:
            context["s3_redirect"]["redirected"] = True

        client.meta.events.register("before-parameter-build.s3", already_redirected)
    return client


def new_bucket(moto_url: str, region: str = "us-east-1") -> str:
    """A bucket made in moto directly, with ``region`` as its LocationConstraint."""
    name = f"sem-{uuid.uuid4().hex[:12]}"
    config = {} if region == "us-east-1" else {"LocationConstraint": region}
    s3_client(moto_url, region).create_bucket(Bucket=name, CreateBucketConfiguration=config)
    return name


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str | None]:
    """The error's code, HTTP status and x-amz-bucket-region header."""
    response = exc.value.response
    meta = response["ResponseMetadata"]
    code = response["Error"]["Code"]
    return code, meta["HTTPStatusCode"], meta["HTTPHeaders"].get("x-amz-bucket-region")


def send_signed(
    url: str,
    method: str,
    path: str,
    region: str,
    headers: dict[str, str] | None = None,
    host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One SigV4-signed request over http.client: the raw status, headers and body."""
    netloc = host or urlsplit(url).netloc
    aws = AWSRequest(method=method, url=f"http://{netloc}{path}", headers=headers or {})
    S3SigV4Auth(Credentials("testing", "testing"), "s3", region).add_auth(aws)
    return send(url, method, path, {**dict(aws.headers.items()), "Host": netloc})


def send(
    url: str, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*urlsplit_port(url), timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def error_xml(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


# --- the stand-in alone: why the emulator exists ---------------------------------------------


@pytest.mark.integration
def test_moto_alone_ignores_the_signed_region_and_has_no_requester_pays(s3_endpoint):
    """moto has no RequestPayment API at all (a PUT ?requestPayment creates the bucket)."""
    bucket = new_bucket(s3_endpoint, EU)
    wrong = s3_client(s3_endpoint, WEST, follow_region_hints=False)
    wrong.put_object(Bucket=bucket, Key="k", Body=b"x")  # real S3: AuthorizationHeaderMalformed
    head = wrong.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"]
    assert head["x-amz-bucket-region"] == EU  # moto does tell the bucket's region
    got = wrong.get_object(Bucket=bucket, Key="k", RequestPayer="requester")
    assert got["Body"].read() == b"x"
    assert "RequestCharged" not in got


# --- regions ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_operations_signed_for_another_region_are_refused_with_the_bucket_region(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    s3_client(s3_endpoint, WEST).put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        wrong = s3_client(emulator.url, EU, follow_region_hints=False)
        calls: list[Callable[[], object]] = [
            lambda: wrong.get_object(Bucket=bucket, Key="k"),
            lambda: wrong.put_object(Bucket=bucket, Key="new", Body=b"y"),
            lambda: wrong.list_objects_v2(Bucket=bucket),
        ]
        for call in calls:
            with pytest.raises(ClientError) as exc:
                call()
            assert error_of(exc) == ("AuthorizationHeaderMalformed", 400, WEST)
            error: dict[str, Any] = dict(exc.value.response["Error"])
            assert (error["Region"], error["Message"]) == (WEST, MALFORMED.format(EU, WEST))
        for call in (
            lambda: wrong.head_object(Bucket=bucket, Key="k"),
            lambda: wrong.head_bucket(Bucket=bucket),
        ):
            with pytest.raises(ClientError) as exc:
                call()
            assert error_of(exc) == ("301", 301, WEST)
        assert emulator.stats == SemanticsStats(wrong_region=5, wrong_region_objects=3)
        assert (emulator.proxy.stats.answered, emulator.proxy.stats.forwarded) == (5, 0)
    keys = s3_client(s3_endpoint, WEST).list_objects_v2(Bucket=bucket)["Contents"]
    assert [obj["Key"] for obj in keys] == ["k"]  # the refused PUT never reached moto


@pytest.mark.integration
def test_the_raw_answers_are_what_s3_sends(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        status, headers, body = send_signed(emulator.url, "GET", f"/{bucket}/k", EU)
        assert (status, headers["x-amz-bucket-region"]) == (400, WEST)
        assert headers["content-type"] == "application/xml"
        error = error_xml(body)
        assert list(error) == ["Code", "Message", "Region", "RequestId", "HostId"]
        assert (error["Code"], error["Region"]) == ("AuthorizationHeaderMalformed", WEST)
        assert error["Message"] == MALFORMED.format(EU, WEST)
        assert error["RequestId"] == headers["x-amz-request-id"]

        status, headers, body = send_signed(emulator.url, "HEAD", f"/{bucket}", EU)
        assert (status, headers["x-amz-bucket-region"], body) == (301, WEST, b"")
        assert "content-type" not in headers

        presigner = boto3.client(
            "s3",
            endpoint_url=emulator.url,
            region_name=EU,
            config=Config(signature_version="s3v4"),  # with an endpoint_url, SigV2 otherwise
        )
        presigned = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "k"}
        )
        parts = urlsplit(presigned)
        status, headers, body = send(emulator.url, "GET", f"{parts.path}?{parts.query}")
        error = error_xml(body)
        assert (status, error["Code"], error["Region"]) == (
            400,
            "AuthorizationQueryParametersError",
            WEST,
        )
        assert error["Message"] == (
            f"Error parsing the X-Amz-Credential parameter; the region '{EU}' is wrong; "
            f"expecting '{WEST}'"
        )
        assert emulator.stats.wrong_region == 3


@pytest.mark.integration
def test_virtual_hosted_requests_are_checked_by_their_host(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    s3_client(s3_endpoint, WEST).put_object(Bucket=bucket, Key="k", Body=b"vhost")
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        host = f"{bucket}.localhost:{urlsplit(emulator.url).port}"
        status, headers, body = send_signed(emulator.url, "GET", "/k", EU, host=host)
        assert (status, error_xml(body)["Region"]) == (400, WEST)
        status, headers, body = send_signed(emulator.url, "GET", "/k", WEST, host=host)
        assert (status, body, headers["x-amz-bucket-region"]) == (200, b"vhost", WEST)
        assert emulator.stats.wrong_region == 1


@pytest.mark.integration
def test_a_default_client_follows_the_region_hints_through_the_emulator(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        # Each call from a new client, which does not know the bucket's region yet.
        s3_client(emulator.url, EU).put_object(Bucket=bucket, Key="k", Body=b"data")
        assert emulator.stats.wrong_region == 1  # refused once, then sent for us-west-2
        got = s3_client(emulator.url, EU).get_object(Bucket=bucket, Key="k")
        assert got["Body"].read() == b"data"
        assert s3_client(emulator.url, EU).head_object(Bucket=bucket, Key="k")["ContentLength"] == 4
        head = s3_client(emulator.url, "us-east-1").head_bucket(Bucket=bucket)
        assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == WEST
        assert s3_client(emulator.url, EU).list_objects_v2(Bucket=bucket)["KeyCount"] == 1
        assert emulator.stats.wrong_region == 5
        assert emulator.proxy.stats.forwarded == 5


@pytest.mark.integration
def test_forwarded_responses_carry_the_emulated_region(s3_endpoint):
    bucket, other = new_bucket(s3_endpoint), new_bucket(s3_endpoint)  # moto: us-east-1
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        west = s3_client(emulator.url, WEST, follow_region_hints=False)
        head = west.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPHeaders"]
        assert head["x-amz-bucket-region"] == WEST  # the emulator's, not moto's us-east-1
        with pytest.raises(ClientError) as exc:
            west.get_object(Bucket=bucket, Key="missing")
        assert error_of(exc) == ("NoSuchKey", 404, WEST)  # moto's error, with the header
        east = s3_client(emulator.url, "us-east-1", follow_region_hints=False)
        head = east.head_bucket(Bucket=other)["ResponseMetadata"]["HTTPHeaders"]
        assert head["x-amz-bucket-region"] == "us-east-1"  # not emulated: moto's own
        listed = east.list_objects_v2(Bucket=other)["ResponseMetadata"]["HTTPHeaders"]
        assert "x-amz-bucket-region" not in listed
        assert emulator.stats == SemanticsStats()


@pytest.mark.integration
def test_create_bucket_is_forwarded_whatever_region_it_is_signed_for(s3_endpoint):
    bucket = f"sem-{uuid.uuid4().hex[:12]}"
    with s3_emulator(s3_endpoint, regions={bucket: WEST}, requester_pays={bucket}) as emulator:
        eu = s3_client(emulator.url, EU, follow_region_hints=False)
        # moto wants the LocationConstraint to be the signed region, as a regional S3 endpoint.
        eu.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": EU})
        with pytest.raises(ClientError) as exc:  # a subresource PUT is not CreateBucket
            eu.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": []})
        assert error_of(exc) == ("AuthorizationHeaderMalformed", 400, WEST)
        assert emulator.stats == SemanticsStats(wrong_region=1)
    location = s3_client(s3_endpoint, EU).get_bucket_location(Bucket=bucket)
    assert location["LocationConstraint"] == EU  # moto made it: the emulator forwarded it


@pytest.mark.integration
def test_a_copy_is_signed_for_its_destination_and_may_read_another_region(s3_endpoint):
    source, dest = new_bucket(s3_endpoint, EU), new_bucket(s3_endpoint, WEST)
    s3_client(s3_endpoint, EU).put_object(Bucket=source, Key="src", Body=b"across")
    with s3_emulator(s3_endpoint, regions={source: EU, dest: WEST}) as emulator:
        west = s3_client(emulator.url, WEST, follow_region_hints=False)
        copied = west.copy_object(
            Bucket=dest, Key="copy", CopySource={"Bucket": source, "Key": "src"}
        )
        assert copied["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == WEST
        upload = west.create_multipart_upload(Bucket=dest, Key="parts")["UploadId"]
        part = west.upload_part_copy(
            Bucket=dest,
            Key="parts",
            UploadId=upload,
            PartNumber=1,
            CopySource={"Bucket": source, "Key": "src"},
        )
        west.complete_multipart_upload(
            Bucket=dest,
            Key="parts",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]},
        )
        with pytest.raises(ClientError) as exc:
            s3_client(emulator.url, EU, follow_region_hints=False).copy_object(
                Bucket=dest, Key="refused", CopySource={"Bucket": source, "Key": "src"}
            )
        assert error_of(exc) == ("AuthorizationHeaderMalformed", 400, WEST)
        assert emulator.stats == SemanticsStats(wrong_region=1, wrong_region_objects=1)
    direct = s3_client(s3_endpoint, WEST)
    for key in ("copy", "parts"):
        assert direct.get_object(Bucket=dest, Key=key)["Body"].read() == b"across"
    assert [obj["Key"] for obj in direct.list_objects_v2(Bucket=dest)["Contents"]] == [
        "copy",
        "parts",
    ]


@pytest.mark.integration
def test_set_region_changes_the_answers_from_the_next_request(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    s3_client(s3_endpoint, WEST).put_object(Bucket=bucket, Key="k", Body=b"x")
    with s3_emulator(s3_endpoint, regions={bucket: WEST}) as emulator:
        west = s3_client(emulator.url, WEST, follow_region_hints=False)
        following = s3_client(emulator.url, EU)
        assert west.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        assert following.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        assert emulator.stats.wrong_region == 1  # the following client now knows us-west-2

        emulator.semantics.set_region(bucket, "ap-southeast-2")  # "recreated" elsewhere
        with pytest.raises(ClientError) as exc:
            west.get_object(Bucket=bucket, Key="k")
        assert error_of(exc) == ("AuthorizationHeaderMalformed", 400, "ap-southeast-2")
        assert following.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        assert emulator.stats.wrong_region == 3  # its cached region was refused, once
        assert emulator.semantics.region_of(bucket) == "ap-southeast-2"

        emulator.semantics.set_region(bucket, None)  # the default region: not checked
        assert west.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"
        assert emulator.stats.wrong_region == 3


# --- requester pays --------------------------------------------------------------------------


@pytest.mark.integration
def test_requester_pays_needs_the_header_and_charges_the_requester(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    s3_client(s3_endpoint, "us-east-1").put_object(Bucket=bucket, Key="k", Body=b"paid")
    with s3_emulator(s3_endpoint, requester_pays={bucket}) as emulator:
        s3 = s3_client(emulator.url, "us-east-1")
        calls: list[Callable[[], object]] = [
            lambda: s3.get_object(Bucket=bucket, Key="k"),
            lambda: s3.list_objects_v2(Bucket=bucket),
        ]
        for call in calls:
            with pytest.raises(ClientError) as exc:
                call()
            assert error_of(exc) == ("AccessDenied", 403, None)
            assert exc.value.response["Error"]["Message"] == "Access Denied"
        with pytest.raises(ClientError) as exc:
            s3.head_object(Bucket=bucket, Key="k")
        assert error_of(exc) == ("403", 403, None)
        assert emulator.proxy.stats.forwarded == 0

        got = s3.get_object(Bucket=bucket, Key="k", RequestPayer="requester")
        assert (got["Body"].read(), got["RequestCharged"]) == (b"paid", "requester")
        head = s3.head_object(Bucket=bucket, Key="k", RequestPayer="requester")
        assert (head["ContentLength"], head["RequestCharged"]) == (4, "requester")
        listed = s3.list_objects_v2(Bucket=bucket, RequestPayer="requester")
        assert (listed["KeyCount"], listed["RequestCharged"]) == (1, "requester")
        assert emulator.stats == SemanticsStats(requester_pays_denied=3, requester_charged=3)

        status, _, _ = send_signed(
            emulator.url, "GET", f"/{bucket}/k", "us-east-1", {"x-amz-request-payer": "REQUESTER"}
        )
        assert status == 200  # the value is case-insensitive

        emulator.semantics.set_requester_pays(bucket, False)
        plain = s3.get_object(Bucket=bucket, Key="k")
        assert "RequestCharged" not in plain
        assert emulator.stats.requester_pays_denied == 3


@pytest.mark.integration
def test_a_copy_from_a_requester_pays_source_needs_the_header(s3_endpoint):
    source, dest = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    s3_client(s3_endpoint, "us-east-1").put_object(Bucket=source, Key="src", Body=b"paid")
    with s3_emulator(s3_endpoint, requester_pays={source}) as emulator:
        s3 = s3_client(emulator.url, "us-east-1")
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=dest, Key="copy", CopySource={"Bucket": source, "Key": "src"})
        assert error_of(exc) == ("AccessDenied", 403, None)
        s3.put_object(Bucket=dest, Key="own", Body=b"free")  # the destination is not requester pays
        copied = s3.copy_object(
            Bucket=dest,
            Key="copy",
            CopySource={"Bucket": source, "Key": "src"},
            RequestPayer="requester",
        )
        assert copied["RequestCharged"] == "requester"
        assert emulator.stats == SemanticsStats(requester_pays_denied=1, requester_charged=1)
    assert s3_client(s3_endpoint, "us-east-1").get_object(Bucket=dest, Key="copy")[
        "Body"
    ].read() == (b"paid")


@pytest.mark.integration
def test_a_wrong_region_is_refused_before_requester_pays(s3_endpoint):
    bucket = new_bucket(s3_endpoint, WEST)
    with s3_emulator(s3_endpoint, regions={bucket: WEST}, requester_pays={bucket}) as emulator:
        with pytest.raises(ClientError) as exc:
            s3_client(emulator.url, EU, follow_region_hints=False).list_objects_v2(Bucket=bucket)
        assert error_of(exc) == ("AuthorizationHeaderMalformed", 400, WEST)
        with pytest.raises(ClientError) as exc:  # signed right, but without the header
            s3_client(emulator.url, WEST).list_objects_v2(Bucket=bucket)
        assert error_of(exc) == ("AccessDenied", 403, WEST)
        assert emulator.stats == SemanticsStats(wrong_region=1, requester_pays_denied=1)


# --- the parts, without a server -------------------------------------------------------------


def request(method: str, target: str, **headers: str) -> Request:
    return Request(method, target, tuple((k.replace("_", "-"), v) for k, v in headers.items()))


def test_target_from_the_path_or_a_virtual_host():
    assert target_of(request("GET", "/b/a%20key/x", host="127.0.0.1:9")) == Target("b", "a key/x")
    assert target_of(request("GET", "/k/x", host="my.bucket.localhost:9")) == Target(
        "my.bucket", "k/x"
    )
    assert target_of(request("GET", "/?list-type=2", host="b.localhost")) == Target("b", "")
    assert target_of(request("GET", "/", host="localhost:9")) == Target("", "")
    assert target_of(request("GET", "/b/k", host="b.elsewhere:9")) == Target("b", "k")


def test_signed_region_from_the_header_or_the_query():
    auth = (
        "AWS4-HMAC-SHA256 Credential=AKID/20261202/eu-west-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    assert signed_region(request("GET", "/b/k", authorization=auth)) == EU
    query = "/b/k?X-Amz-Credential=AKID%2F20261202%2Fus-west-2%2Fs3%2Faws4_request&X-Amz-Date=1"
    assert signed_region(request("GET", query)) == WEST
    assert signed_region(request("GET", "/b/k")) is None
    assert signed_region(request("GET", "/b/k", authorization="AWS AKID:sig")) is None


def test_copy_sources_create_bucket_and_the_payer_header():
    assert copy_source_bucket(request("PUT", "/d/k", x_amz_copy_source="src/a%2Fb")) == "src"
    assert (
        copy_source_bucket(request("PUT", "/d/k", x_amz_copy_source="/s%2Dx/k?versionId=1"))
        == "s-x"
    )
    assert copy_source_bucket(request("PUT", "/d/k")) is None
    put_bucket = request("PUT", "/b")
    assert is_create_bucket(put_bucket, target_of(put_bucket))
    for other in (request("PUT", "/b?tagging"), request("PUT", "/b/k"), request("GET", "/b")):
        assert not is_create_bucket(other, target_of(other))
    assert says_requester_pays(request("GET", "/b/k", x_amz_request_payer="Requester"))
    assert says_requester_pays(request("GET", "/b/k?x-amz-request-payer=requester"))
    assert not says_requester_pays(request("GET", "/b/k", x_amz_request_payer="owner"))


# --- the fault proxy's hooks, byte for byte --------------------------------------------------


def test_the_responder_answers_after_reading_the_body_and_response_headers_replace():
    get = b"GET /b/k HTTP/1.1\r\nHost: h\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nx-amz-bucket-region: moto\r\nContent-Length: 2\r\n\r\nok"
    answered = b"PUT /no/k HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    seen: list[tuple[str, int]] = []

    def responder(req: Request) -> Answer | None:
        return (
            Answer("418 I'm a teapot", (("x-why", "teapot"),), b"tea")
            if req.bucket == "no"
            else None
        )

    def extra(req: Request, status: int) -> list[tuple[str, str]]:
        seen.append((req.target, status))
        return [("X-Amz-Bucket-Region", "us-west-2"), ("x-new", "1")]

    script: list[tuple[str, bytes | int]] = [("recv", len(get)), ("send", reply)]
    with (
        scripted_upstream(script) as (url, received),
        fault_proxy(url, responder=responder, response_headers=extra) as proxy,
        socket.create_connection(urlsplit_port(proxy.url), timeout=5) as client,
    ):
        client.sendall(answered)
        assert recv_exactly(client, 25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(b"abc")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += recv_exactly(client, 1)
        lines = head.decode().split("\r\n")
        assert lines[:4] == [
            "HTTP/1.1 418 I'm a teapot",
            "x-why: teapot",
            "Content-Length: 3",
            lines[3],
        ]
        assert lines[3].startswith("Date: ") and lines[4:] == ["", ""]
        assert recv_exactly(client, 3) == b"tea"
        client.sendall(get)
        relayed = (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Amz-Bucket-Region: us-west-2\r\n"
            b"x-new: 1\r\n\r\nok"
        )
        assert recv_exactly(client, len(relayed)) == relayed
        stats = proxy.stats
    assert received == [get]
    assert seen == [("/b/k", 200)]
    assert (stats.requests, stats.answered, stats.forwarded) == (2, 1, 1)


def test_semantics_hooks_alone():
    semantics = S3Semantics({"b": WEST}, {"p"})
    east = "AWS4-HMAC-SHA256 Credential=A/20261202/us-east-1/s3/aws4_request, Signature=x"
    answer = semantics.respond(request("DELETE", "/b/k", authorization=east))
    assert answer is not None and answer.status == "400 Bad Request"
    assert semantics.respond(request("GET", "/", authorization=east)) is None  # ListBuckets
    assert semantics.respond(request("GET", "/p/k", x_amz_copy_source="b/k")) is not None
    assert semantics.response_headers(request("GET", "/b/k"), 500) == [
        ("x-amz-bucket-region", WEST)
    ]
    assert semantics.response_headers(request("GET", "/other/k"), 200) == []
    assert semantics.stats == SemanticsStats(
        wrong_region=1, wrong_region_objects=1, requester_pays_denied=1
    )
