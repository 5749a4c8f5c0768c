"""Credentials and S3 clients: the one place that decides whose credentials a request carries.

The base identity is whatever boto3's default chain finds (environment, IRSA web identity,
instance profile). Roles are assumed from it with botocore's own AssumeRoleCredentialFetcher
and refreshing credentials, so a run of many hours renews its sessions before they expire.
Credentials never leave this process: messages carry role ARNs only.

One client per identity per process, shared by every thread (botocore clients are
thread-safe), so connections are reused across keys and chunks.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)

from copy_core.classify import THROTTLING_CODES

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

DEFAULT_SESSION_S = 3600
MAX_CLIENTS = 32


@dataclass(frozen=True)
class Identity:
    """Whose credentials a client carries: the process's own, or an assumed role."""

    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = "s3fanout"
    duration_s: int = DEFAULT_SESSION_S

    def describe(self) -> str:
        return self.role_arn or "the worker's own identity (no role assumed)"


class _AssumedRole(CredentialProvider):
    """Hands botocore the refreshing credentials of one assumed role."""

    METHOD = "s3fanout-assume-role"
    CANONICAL_NAME = "s3fanout-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


def assumed_role_session(
    base: boto3.Session,
    identity: Identity,
    refresh_margin_s: int | None = None,
    sts_options: Mapping[str, Any] | None = None,
) -> boto3.Session:
    """A boto3 session whose credentials come from assuming ``identity.role_arn`` from ``base``.

    ``refresh_margin_s`` renews the credentials that long before they expire (botocore's
    default: 15 minutes, and at the latest 10). ``sts_options``: what the STS client is
    built with (an endpoint, a botocore config, TLS verification), as for any client.
    """
    assert identity.role_arn is not None
    extra: dict[str, Any] = {
        "RoleSessionName": identity.session_name,
        "DurationSeconds": identity.duration_s,
    }
    if identity.external_id:
        extra["ExternalId"] = identity.external_id
    options = dict(sts_options or {})

    def sts_client(service_name: str, **kwargs: Any) -> Any:
        return base.client(service_name, **{**options, **kwargs})  # type: ignore[call-overload]

    fetcher = AssumeRoleCredentialFetcher(
        client_creator=sts_client,
        source_credentials=base.get_credentials(),
        role_arn=identity.role_arn,
        extra_args=extra,
    )

    def fetch() -> dict[str, Any]:
        fetched: dict[str, Any] = fetcher.fetch_credentials()
        log.info(
            "assumed role",
            extra={
                "role_arn": identity.role_arn,
                "session_name": identity.session_name,
                "expires": str(fetched.get("expiry_time")),
            },
        )
        return fetched

    credentials = DeferredRefreshableCredentials(method="assume-role", refresh_using=fetch)
    if refresh_margin_s is not None:
        # botocore's refresh margins are class attributes; an instance may override them.
        credentials._advisory_refresh_timeout = refresh_margin_s  # type: ignore[attr-defined]
        credentials._mandatory_refresh_timeout = max(refresh_margin_s - 1, 0)  # type: ignore[attr-defined]
    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole(credentials))
    return boto3.Session(botocore_session=core, region_name=base.region_name)


REQUEST_PAYER_HEADER = "x-amz-request-payer"


def _payer_header(payer: str) -> Callable[..., None]:
    """botocore hook: say who pays on every request, HeadBucket and ListObjectsV2 included.

    A header rather than each operation's ``RequestPayer`` parameter: HeadBucket has none,
    and one hook covers every call the copy makes. Set before signing, so it is signed.
    """

    def add(request: Any = None, **_: Any) -> None:
        if request is not None:
            request.headers[REQUEST_PAYER_HEADER] = payer

    return add


# The MD5 of an empty body: CopyObject has none.
_EMPTY_MD5 = "1B2M2Y8AsgTpgAEuZdmsGQ=="


def _lock_integrity(request: Any = None, **_: Any) -> None:
    """botocore hook: a CopyObject that sets Object Lock retention carries a Content-MD5.

    S3 and the stores that follow it ask an integrity header of any write that sets a
    retention period ("Content-MD5 or x-amz-sdk-checksum-algorithm header required"), and
    botocore's CopyObject has no body to digest or member to send one; the MD5 of its empty
    body is what it would be.
    """
    headers = None if request is None else request.headers
    if headers is not None and "x-amz-object-lock-mode" in headers and "Content-MD5" not in headers:
        headers["Content-MD5"] = _EMPTY_MD5


class ClientFactory:
    """Builds and caches S3 clients for this process, one per identity."""

    def __init__(
        self,
        *,
        max_pool_connections: int = 64,
        max_attempts: int = 8,
        retry_mode: Literal["standard", "adaptive"] = "standard",
        read_timeout_s: int = 120,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        base_session: boto3.Session | None = None,
        refresh_margin_s: int | None = None,
        on_throttle: Callable[[], None] | None = None,
        service_options: Callable[[str], Mapping[str, Any]] | None = None,
    ) -> None:
        """``service_options(service)``: more arguments for every client of that service (an
        Airflow connection's endpoint per service, botocore config and TLS verification);
        its ``config`` is merged over this factory's, and its ``endpoint_url`` (when not
        None) replaces ``endpoint_url``."""
        self._on_throttle = on_throttle
        self._service_options = service_options
        self._config = Config(
            max_pool_connections=max_pool_connections,
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=read_timeout_s,
            tcp_keepalive=True,
        )
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._base = base_session
        self._refresh_margin_s = refresh_margin_s
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[Identity, str | None, str | None], S3Client] = (
            OrderedDict()
        )
        self._base_principal: str | None = None
        self._sessions: OrderedDict[Identity, boto3.Session] = OrderedDict()
        self._sessions_lock = threading.Lock()

    def s3(
        self,
        identity: Identity | None = None,
        *,
        region: str | None = None,
        request_payer: str | None = None,
    ) -> S3Client:
        """The client for ``identity`` (default: this process's own identity).

        ``region``: the region of the buckets it is for (None: this factory's); requests are
        signed for it and, on AWS, sent to its endpoint. ``request_payer``: "requester" sends
        ``x-amz-request-payer`` on every request, as requester-pays buckets demand.
        """
        identity = identity or Identity()
        key = (identity, region, request_payer)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                options = self._client_options("s3")
                if region is not None:
                    options["region_name"] = region
                client = self._session(identity).client("s3", **options)
                if self._on_throttle is not None:
                    client.meta.events.register("needs-retry.s3", self._watch_throttling)
                client.meta.events.register("before-sign.s3.CopyObject", _lock_integrity)
                if request_payer is not None:
                    client.meta.events.register("before-sign.s3", _payer_header(request_payer))
                self._clients[key] = client
                if len(self._clients) > MAX_CLIENTS:  # one per role and run: keep it bounded
                    self._clients.popitem(last=False)
            self._clients.move_to_end(key)
            return client

    def _client_options(self, service: str) -> dict[str, Any]:
        """The arguments every client of ``service`` this factory builds is made with."""
        options: dict[str, Any] = {"config": self._config}
        if service == "s3":  # --endpoint-url is S3's; other services follow boto3's own config
            options["endpoint_url"] = self._endpoint_url
        extra = dict(self._service_options(service)) if self._service_options else {}
        config = extra.pop("config", None)
        if config is not None:
            options["config"] = self._config.merge(config)
        if extra.get("endpoint_url") is None:
            extra.pop("endpoint_url", None)
        return options | extra

    def _watch_throttling(self, response: Any = None, **_: Any) -> None:
        """botocore hook on every response that may be retried: report S3's SlowDown.

        Returns None, so botocore's own retry decision is left as it is.
        """
        if response is None or self._on_throttle is None:
            return
        code = response[1].get("Error", {}).get("Code")
        if code in THROTTLING_CODES:
            self._on_throttle()

    def principal(self, identity: Identity | None = None) -> str:
        """Who ``identity`` is, for messages: the role ARN, or the caller identity's ARN."""
        identity = identity or Identity()
        if identity.role_arn:
            return identity.role_arn
        if self._base_principal is None:
            try:
                sts = self._session(identity).client("sts", **self._client_options("sts"))
                self._base_principal = str(sts.get_caller_identity()["Arn"])
            except Exception:  # only ever used to word an error message
                self._base_principal = "the worker's own identity"
        return self._base_principal

    def frozen_credentials(self, identity: Identity) -> Callable[[], tuple[str, str, str | None]]:
        """Current (access key, secret, token) of ``identity``, renewed as botocore renews them.

        For the CRT request path, which signs with credentials handed over per request.
        """
        credentials = self._session(identity).get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found for the worker")

        def current() -> tuple[str, str, str | None]:
            frozen = credentials.get_frozen_credentials()
            return str(frozen.access_key), str(frozen.secret_key), frozen.token

        return current

    def _session(self, identity: Identity) -> boto3.Session:
        """One session per identity: its clients and the CRT path share its credentials."""
        with self._sessions_lock:
            session = self._sessions.get(identity)
            if session is None:
                base = self._base or boto3.Session(region_name=self._region_name)
                session = base
                if identity.role_arn is not None:
                    session = assumed_role_session(
                        base, identity, self._refresh_margin_s, self._client_options("sts")
                    )
                self._sessions[identity] = session
                if len(self._sessions) > MAX_CLIENTS:  # one per role and run: keep it bounded
                    self._sessions.popitem(last=False)
            self._sessions.move_to_end(identity)
            return session
