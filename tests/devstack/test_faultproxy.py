"""The fault proxy: a faithful relay to moto and SeaweedFS, and faults exactly as configured."""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, ConnectionClosedError

from devstack.faultproxy import (
    Fault,
    FaultProxy,
    FaultRule,
    Request,
    fault_proxy,
    in_bucket,
    is_copy_object,
)
from devstack.servers import free_port

MiB = 1024 * 1024


def s3_client(url: str, secret: str = "testing", pool: int = 10):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=secret,
        config=Config(
            retries={"total_max_attempts": 1},  # each injected fault reaches the test
            max_pool_connections=pool,
            connect_timeout=5,
            read_timeout=10,
        ),
    )


def new_bucket(url: str) -> str:
    name = f"fp-{uuid.uuid4().hex[:12]}"
    s3_client(url).create_bucket(Bucket=name)
    return name


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def was_reset(exc: pytest.ExceptionInfo[ConnectionClosedError]) -> bool:
    """Whether the client saw a TCP reset (urllib3's ProtocolError wraps the socket's error)."""
    cause = exc.value.kwargs["error"]
    return any(isinstance(arg, ConnectionResetError) for arg in cause.args)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += more
    return data


@contextlib.contextmanager
def scripted_upstream(script: list[tuple[str, bytes | int]]) -> Iterator[tuple[str, list[bytes]]]:
    """An upstream that, on ONE connection, receives and sends exactly what the script says."""
    received: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(5)

        def run() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(5)
                for action, arg in script:
                    if action == "recv":
                        assert isinstance(arg, int)
                        received.append(recv_exactly(conn, arg))
                    else:
                        assert isinstance(arg, bytes)
                        conn.sendall(arg)
                with contextlib.suppress(TimeoutError):  # a second connection would be a bug
                    listener.settimeout(0.2)
                    extra, _ = listener.accept()
                    extra.close()
                    received.append(b"<second connection>")

        thread = threading.Thread(target=run)
        thread.start()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
        thread.join(10)


# --- relaying: byte for byte, streaming, keep-alive ------------------------------------------


def test_relays_heads_and_bodies_byte_for_byte_on_one_connection():
    big = os.urandom(300_000)
    put = (
        b"PUT /b/k?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nx-amz-meta-Odd-CASE:  two  spaces \r\n"
        b"X-Amz-Date:20260101T000000Z\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n" + f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\nx-t: 1\r\n\r\n"
    )
    put_reply = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: "e"\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
    )
    head = b"HEAD /b/k HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n"
    head_reply = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # and no body: a HEAD
    expect = (
        b"PUT /b/k2 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 300000\r\n\r\n"
    )
    go_on = b"HTTP/1.1 100 Continue\r\n\r\n"
    done = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    script: list[tuple[str, bytes | int]] = [
        ("recv", len(put)), ("send", put_reply),
        ("recv", len(head)), ("send", head_reply),
        ("recv", len(expect)), ("send", go_on), ("recv", len(big)), ("send", done),
    ]  # fmt: skip
    with scripted_upstream(script) as (url, received), fault_proxy(url) as proxy:
        with socket.create_connection(urlsplit_port(proxy.url), timeout=5) as client:
            client.sendall(put)
            assert recv_exactly(client, len(put_reply)) == put_reply
            client.sendall(head)
            assert recv_exactly(client, len(head_reply)) == head_reply
            client.sendall(expect)
            assert recv_exactly(client, len(go_on)) == go_on  # the upstream's, relayed
            client.sendall(big)
            assert recv_exactly(client, len(done)) == done
        stats = proxy.stats
    assert received == [put, head, expect, big]
    assert (stats.connections, stats.requests, stats.forwarded) == (1, 3, 3)


def urlsplit_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture(params=["seaweed", "s3_endpoint"])
def upstream(request: pytest.FixtureRequest) -> str:
    """SeaweedFS (checks signatures, keeps connections alive) and moto (closes after each)."""
    return str(request.getfixturevalue(request.param))


@pytest.mark.integration
def test_boto3_operations_pass_through_with_valid_signatures(upstream):
    url = upstream
    big = os.urandom(6 * MiB)
    parts = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    with fault_proxy(url) as proxy:
        s3 = s3_client(proxy.url)
        bucket = f"fp-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="small", Body=b"hello")
        s3.put_object(Bucket=bucket, Key="file", Body=io.BytesIO(b"via 100-continue"))
        s3.upload_fileobj(io.BytesIO(big), bucket, "big", Config=parts)  # 2 parts, in parallel
        s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "small"})
        listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
        assert [obj["Key"] for obj in listed] == ["big", "copy", "file", "small"]
        assert s3.get_object(Bucket=bucket, Key="copy")["Body"].read() == b"hello"
        assert s3.get_object(Bucket=bucket, Key="file")["Body"].read() == b"via 100-continue"
        assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == len(big)
        assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == big
        stats = proxy.stats
    assert stats.requests == stats.forwarded >= 12
    assert stats.slow_down == stats.internal_error == stats.reset == stats.delay == 0


@pytest.mark.integration
def test_seaweed_checks_signatures_through_the_proxy(seaweed):
    """The control for the test above: a wrong secret is refused, so signatures are checked."""
    with fault_proxy(seaweed) as proxy, pytest.raises(ClientError) as exc:
        s3_client(proxy.url, secret="not-the-secret").list_buckets()
    assert error_of(exc) == ("SignatureDoesNotMatch", 403)


@pytest.mark.integration
def test_seaweed_validates_against_the_host_header_it_receives(seaweed):
    """Why the proxy forwards Host unchanged: the signature covers the host the client named."""
    signed_for = f"127.0.0.1:{free_port()}"  # what a client of the proxy signs
    aws = AWSRequest(method="GET", url=f"http://{signed_for}/")
    SigV4Auth(Credentials("testing", "testing"), "s3", "us-east-1").add_auth(aws)
    headers = dict(aws.headers.items())
    statuses = []
    for host in (None, signed_for):  # None: http.client sends SeaweedFS's own host:port
        conn = http.client.HTTPConnection(*urlsplit_port(seaweed), timeout=5)
        conn.request("GET", "/", headers=headers if host is None else {**headers, "Host": host})
        statuses.append(conn.getresponse().status)
        conn.close()
    assert statuses == [403, 200]


@pytest.mark.integration
def test_keeps_client_connections_alive_across_injected_errors(seaweed):
    bucket = new_bucket(seaweed)
    with fault_proxy(seaweed) as proxy:
        s3 = s3_client(proxy.url)
        s3.put_object(Bucket=bucket, Key="a", Body=b"1")
        proxy.set_rules([FaultRule(Fault.SLOW_DOWN, methods={"PUT"})])
        for body in (b"2", io.BytesIO(b"3")):  # the second waits for "100 Continue"
            with pytest.raises(ClientError):
                s3.put_object(Bucket=bucket, Key="b", Body=body)
        proxy.set_rules([])
        for _ in range(10):
            s3.put_object(Bucket=bucket, Key="c", Body=io.BytesIO(b"4"))
        assert proxy.stats.connections == 1


@pytest.mark.integration
def test_serves_many_concurrent_connections(seaweed):
    bucket = new_bucket(seaweed)
    direct = s3_client(seaweed)
    bodies = {f"k{i}": os.urandom(1000 + i) for i in range(8)}
    for key, body in bodies.items():
        direct.put_object(Bucket=bucket, Key=key, Body=body)
    keys = [f"k{i % 8}" for i in range(256)]
    with fault_proxy(seaweed, latency_s=0.05) as proxy:  # requests overlap: the pool fills up
        s3 = s3_client(proxy.url, pool=64)
        with ThreadPoolExecutor(64) as pool:
            got = list(pool.map(lambda k: s3.get_object(Bucket=bucket, Key=k)["Body"].read(), keys))
        stats = proxy.stats
    assert got == [bodies[key] for key in keys]
    assert stats.requests == stats.forwarded == 256
    assert 16 < stats.connections <= 64


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_slow_down_is_answered_before_the_upstream_sees_the_request(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    with fault_proxy(s3_endpoint, [FaultRule(Fault.SLOW_DOWN, methods=["PUT"])]) as proxy:
        s3 = s3_client(proxy.url)
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert error_of(exc) == ("SlowDown", 503)
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # a GET: not selected
        stats = proxy.stats
    assert (stats.requests, stats.forwarded, stats.slow_down) == (2, 1, 1)
    assert "Contents" not in s3_client(s3_endpoint).list_objects_v2(Bucket=bucket)


@pytest.mark.integration
def test_internal_error_only_for_the_selected_bucket(s3_endpoint):
    hit, spared = new_bucket(s3_endpoint), new_bucket(s3_endpoint)
    rule = FaultRule(Fault.INTERNAL_ERROR, match=in_bucket(hit))
    with fault_proxy(s3_endpoint, [rule]) as proxy:
        s3 = s3_client(proxy.url)
        with pytest.raises(ClientError) as exc:
            s3.list_objects_v2(Bucket=hit)
        assert error_of(exc) == ("InternalError", 500)
        s3.list_objects_v2(Bucket=spared)
        assert (proxy.stats.internal_error, proxy.stats.forwarded) == (1, 1)


@pytest.mark.integration
def test_reset_before_forwarding_is_a_connection_error(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    with fault_proxy(s3_endpoint, [FaultRule(Fault.RESET, methods=["GET"])]) as proxy:
        s3 = s3_client(proxy.url)
        with pytest.raises(ConnectionClosedError) as exc:
            s3.list_objects_v2(Bucket=bucket)
        assert was_reset(exc)
        proxy.set_rules([])
        s3.list_objects_v2(Bucket=bucket)  # the client recovers on a new connection
        stats = proxy.stats
    assert (stats.reset, stats.requests, stats.forwarded, stats.connections) == (1, 2, 1, 2)


@pytest.mark.integration
def test_reset_after_forwarding_hides_a_write_that_happened(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    rule = FaultRule(Fault.RESET, methods=["PUT"], after_upstream=True)
    with fault_proxy(s3_endpoint, [rule]) as proxy:
        with pytest.raises(ConnectionClosedError) as exc:
            s3_client(proxy.url).put_object(Bucket=bucket, Key="k", Body=io.BytesIO(b"written"))
        stats = proxy.stats
    assert was_reset(exc)
    assert (stats.reset, stats.forwarded) == (1, 1)
    assert s3_client(s3_endpoint).get_object(Bucket=bucket, Key="k")["Body"].read() == b"written"


@pytest.mark.integration
def test_slow_down_after_a_copy_object_that_happened(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    rule = FaultRule(Fault.SLOW_DOWN, match=is_copy_object, after_upstream=True)
    with fault_proxy(s3_endpoint, [rule]) as proxy:
        s3 = s3_client(proxy.url)
        s3.put_object(Bucket=bucket, Key="src", Body=b"data")  # a PUT, but not a copy
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
        assert error_of(exc) == ("SlowDown", 503)
        assert (proxy.stats.slow_down, proxy.stats.forwarded) == (1, 2)
    assert s3_client(s3_endpoint).get_object(Bucket=bucket, Key="dst")["Body"].read() == b"data"


@pytest.mark.integration
def test_probability_draws_are_reproducible_from_the_seed(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    draws = random.Random(7)
    expected = [draws.random() < 0.3 for _ in range(200)]  # one draw per selecting rule
    outcomes = []
    with fault_proxy(s3_endpoint, [FaultRule(Fault.SLOW_DOWN, 0.3)], seed=7) as proxy:
        s3 = s3_client(proxy.url)
        for _ in range(200):
            try:
                s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
                outcomes.append(False)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "SlowDown"
                outcomes.append(True)
        stats = proxy.stats
    assert outcomes == expected
    assert 40 <= sum(outcomes) <= 80  # roughly 30 %
    assert (stats.slow_down, stats.forwarded) == (sum(outcomes), 200 - sum(outcomes))


@pytest.mark.integration
def test_rule_changes_take_effect_at_run_time(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    with fault_proxy(s3_endpoint) as proxy:
        s3 = s3_client(proxy.url)

        def outcome() -> str:
            try:
                s3.list_objects_v2(Bucket=bucket)
            except ClientError as exc:
                return str(exc.response["Error"]["Code"])
            return "ok"

        seen = [outcome()]
        for rules in ([FaultRule(Fault.SLOW_DOWN)], [FaultRule(Fault.INTERNAL_ERROR)], []):
            proxy.set_rules(rules)
            seen.append(outcome())
        assert seen == ["ok", "SlowDown", "InternalError", "ok"]
        assert proxy.reset_stats().requests == 4
        assert proxy.stats.requests == 0


@pytest.mark.integration
def test_latency_and_delay_rules_wait_at_least_as_configured(s3_endpoint):
    bucket = new_bucket(s3_endpoint)
    with fault_proxy(s3_endpoint, latency_s=0.2) as proxy:
        s3 = s3_client(proxy.url)
        started = time.monotonic()
        s3.list_objects_v2(Bucket=bucket)
        assert time.monotonic() - started >= 0.2
        proxy.set_latency(0)
        proxy.set_rules([FaultRule(Fault.DELAY, delay_s=0.15, max_delay_s=0.25)])
        started = time.monotonic()
        s3.list_objects_v2(Bucket=bucket)
        assert time.monotonic() - started >= 0.15
        stats = proxy.stats
    assert (stats.delay, stats.forwarded) == (1, 2)  # the fixed latency is not a fault


@pytest.mark.integration
def test_stop_ends_connections_waits_and_threads(s3_endpoint):
    rule = FaultRule(Fault.DELAY, delay_s=60, match=lambda request: request.path == "/slow")
    with fault_proxy(s3_endpoint, [rule]) as proxy:
        s3 = s3_client(proxy.url)
        s3.list_buckets()  # leaves an idle keep-alive connection behind

        def slow_request() -> None:
            with contextlib.suppress(Exception):  # it ends when the proxy stops
                s3.head_bucket(Bucket="slow")

        slow = threading.Thread(target=slow_request)
        slow.start()
        while proxy.stats.requests < 2:
            time.sleep(0.01)
        address = urlsplit_port(proxy.url)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 5  # neither the idle nor the waiting one held it up
    slow.join(5)
    assert not slow.is_alive()
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name == "faultproxy" or "process_request" in name]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=1)


# --- rules and predicates --------------------------------------------------------------------


def test_rules_are_validated():
    for bad in (
        {"fault": Fault.SLOW_DOWN, "probability": 1.5},
        {"fault": Fault.DELAY},
        {"fault": Fault.RESET, "delay_s": 1.0},
        {"fault": Fault.DELAY, "delay_s": 2.0, "max_delay_s": 1.0},
    ):
        with pytest.raises(ValueError):
            FaultRule(**bad)
    assert FaultRule(Fault.RESET, methods="put").methods == frozenset({"PUT"})
    with pytest.raises(ValueError):
        FaultProxy("https://s3.amazonaws.com")


def test_predicates_see_the_request_line_and_headers():
    copy = Request("PUT", "/b%2Dx/dst", (("X-Amz-Copy-Source", "src/k"),))
    part = Request("PUT", "/b/dst?partNumber=1&uploadId=u", (("x-amz-copy-source", "src/k"),))
    upload = Request("POST", "/b/k?uploads", ())
    assert (is_copy_object(copy), is_copy_object(part), is_copy_object(upload)) == (
        True,
        False,
        False,
    )
    assert in_bucket("b-x")(copy)
    assert upload.query == {"uploads": [""]}
    assert FaultRule(Fault.SLOW_DOWN, methods=["post"]).selects(upload)
    assert not FaultRule(Fault.SLOW_DOWN, methods=["GET"]).selects(upload)
