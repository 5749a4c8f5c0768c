"""The S3 clients a copy uses, each with the principal it stands for, and denied calls explained.

A server-side copy is signed by one principal that reads the source and writes the destination.
A streamed copy reads with the source role and writes with the destination role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from copy_core.aws.clients import ClientFactory, Identity
from copy_core.aws.denials import Denied, explain
from copy_core.aws.request_log import RequestLog
from copy_core.classify import DENIED_CODES, CopyFailed, error_code, error_message
from copy_core.contract import CopyJob

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Side:
    """One S3 client and the principal whose credentials it carries."""

    client: S3Client
    principal: str

    def call(
        self,
        requests: RequestLog,
        operation: Callable[..., Any],
        *,
        action: str,
        side: str,
        bucket: str,
        key: str | None,
        **params: Any,
    ) -> Any:
        """Make one request; an AccessDenied becomes a CopyFailed that names the policy."""
        try:
            return requests.call(operation, **params)
        except ClientError as exc:
            if error_code(exc) not in DENIED_CODES:
                raise
            denied = Denied(self.principal, action, bucket, key, side, error_message(exc))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise CopyFailed("AccessDenied", explain(denied), status) from exc


@dataclass(frozen=True)
class CopyClients:
    """``copy`` signs server-side copies (in the destination's region) and ``copy_reader``
    reads their sources with the same principal (in the source's region); ``source`` and
    ``dest`` serve streamed copies."""

    copy: Side
    source: Side
    dest: Side
    copy_reader: Side

    @classmethod
    def single(cls, client: S3Client, principal: str = "the worker's own identity") -> CopyClients:
        side = Side(client, principal)
        return cls(side, side, side, side)

    @classmethod
    def for_job(cls, job: CopyJob, factory: ClientFactory) -> CopyClients:
        """The source role reads, the destination role writes; a server-side copy is signed by
        the destination role (the common pull set-up), or by the source role if it is the only
        one given, or by the worker's own identity."""
        source = _identity(job, job.source_role_arn)
        dest = _identity(job, job.dest_role_arn)
        signer = signer_identity(job)
        payer = job.options.request_payer

        def side(identity: Identity, region: str | None) -> Side:
            client = factory.s3(identity, region=region, request_payer=payer)
            return Side(client, factory.principal(identity))

        return cls(
            copy=side(signer, job.dest_region),
            source=side(source, job.source_region),
            dest=side(dest, job.dest_region),
            copy_reader=side(signer, job.source_region),
        )


def signer_identity(job: CopyJob) -> Identity:
    """Who signs server-side copies: the destination role if given, else the source role."""
    return _identity(job, job.dest_role_arn or job.source_role_arn)


def _identity(job: CopyJob, role_arn: str | None) -> Identity:
    if role_arn is None:
        return Identity()
    return Identity(role_arn, job.external_id, job.role_session_name, job.session_duration_s)
