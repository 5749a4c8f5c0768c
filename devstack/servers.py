"""Real servers for tests: redis-server, moto's S3 server, copy worker processes.

Each starts on 127.0.0.1 on a free port and is stopped by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[1]
AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 20
) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@dataclass
class RedisServer:
    """A redis-server process; ``restart`` keeps its port and data directory."""

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        if not self.tls:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        ca = self.workdir / "ca.pem"
        return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"

    def _security_args(self) -> list[str]:
        """TLS with a test CA (trustme) and an ACL user, when asked for."""
        args = ["--port", str(self.port)]
        if self.tls:
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            ca.cert_pem.write_to_path(str(self.workdir / "ca.pem"))
            cert.private_key_pem.write_to_path(str(self.workdir / "key.pem"))
            cert.cert_chain_pems[0].write_to_path(str(self.workdir / "cert.pem"))
            args = [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-auth-clients",
                "no",
                "--tls-cert-file",
                str(self.workdir / "cert.pem"),
                "--tls-key-file",
                str(self.workdir / "key.pem"),
                "--tls-ca-cert-file",
                str(self.workdir / "ca.pem"),
            ]
        if self.username:
            acl = self.workdir / "users.acl"
            acl.write_text(
                f"user default off\nuser {self.username} on >{self.password} ~* &* +@all\n"
            )
            args += ["--aclfile", str(acl)]
        return args

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, which installs it")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            *self._security_args(),
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            *self.extra_args,
        ]
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: bool(client.ping()), 20, "redis-server to answer PING")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            stop_process(self.process, sig)
            self.process = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


@contextlib.contextmanager
def redis_server(
    workdir: Path,
    *extra_args: str,
    tls: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> Iterator[RedisServer]:
    server = RedisServer(
        workdir, extra_args=extra_args, tls=tls, username=username, password=password
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[str]:
    """moto in server mode: S3, STS and IAM over HTTP. Yields the endpoint URL."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "moto.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **AWS_TEST_ENV},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _http_ok(port), 30, "moto server to listen")
        yield url
    finally:
        stop_process(proc)
        log.close()


def _http_ok(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@dataclass
class Worker:
    """A copy worker started as a real process: ``python -m copy_workers``."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.process, sig)

    def kill_all(self) -> None:
        """SIGKILL the worker and its pool processes at once, as an evicted pod dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@contextlib.contextmanager
def worker_process(
    redis_url: str,
    endpoint_url: str,
    workdir: Path,
    concurrency: int = 2,
    extra_env: dict[str, str] | None = None,
    name: str = "worker",
    metrics_port: int | None = None,
) -> Iterator[Worker]:
    """A worker process; with ``metrics_port``, serving its metrics on 127.0.0.1:metrics_port."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    env = {
        **os.environ,
        **AWS_TEST_ENV,
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "copy_workers",
                "--redis-url",
                redis_url,
                "--concurrency",
                str(concurrency),
                "--hostname",
                f"{name}-{free_port()}@test",
                *(
                    ()
                    if metrics_port is None
                    else ("--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1")
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,  # a process group of its own: kill_all() takes it whole
        )
    worker = Worker(proc, log_path)
    try:
        wait_until(
            lambda: "ready" in worker.log_text() or proc.poll() is not None,
            60,
            "the worker to start",
        )
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited at start:\n{worker.log_text()[-3000:]}")
        yield worker
    finally:
        worker.stop()


SEAWEED_IDENTITIES = {
    "identities": [
        {
            "name": "admin",
            "credentials": [{"accessKey": "testing", "secretKey": "testing"}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
    ]
}


def _free_port_pair() -> int:
    """A port p with p+1 free too (SeaweedFS services take an HTTP and a gRPC port)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 1))
            return port
    raise RuntimeError("no pair of free ports")


@contextlib.contextmanager
def seaweed_server(workdir: Path, identities: dict | None = None) -> Iterator[str]:  # type: ignore[type-arg]
    """SeaweedFS's S3 gateway (master, volume, filer and s3 in one process). Yields its URL.

    Every bucket is a SeaweedFS collection with volumes of its own: small volumes and a high
    volume count keep many test buckets from running out of writable volumes (which surfaces
    as InternalError on writes). Volume files grow as written, so this costs no disk up front.
    """
    import json

    binary = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "s3.json"
    config.write_text(json.dumps(identities or SEAWEED_IDENTITIES))
    ports = {name: _free_port_pair() for name in ("master", "volume", "filer", "s3")}
    args = [
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={workdir}",
        "-filer",
        "-s3",
        f"-s3.config={config}",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=2000",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 1}"]
    log = open(workdir / "weed.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{ports['s3']}"
    try:
        import boto3

        probe = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        wait_until(lambda: probe.list_buckets() is not None, 60, "SeaweedFS S3 to answer", 0.3)
        yield url
    finally:
        stop_process(proc, grace=3)  # it ignores SIGTERM for ~20 s; its data is disposable
        log.close()
