"""A copy request: what to copy where, validated before anything is listed or dispatched."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from copy_control.errors import InvalidRequest
from copy_control.s3url import check_bucket_name, check_key, parse_s3_url
from copy_control.selection import Selection, build_selection, parse_time
from copy_core.contract import COPY_MODES, REPORT_SCOPES, ContractError, CopyJob, ReportTarget
from copy_core.options import CopyOptions, InvalidOption

if TYPE_CHECKING:
    from copy_core.aws.clients import Identity

MAX_CHUNK_SIZE = 10_000
MAX_LISTING_CONCURRENCY = 64
DEFAULT_LISTING_CONCURRENCY = 8

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_SESSION_NAME_UNSAFE = re.compile(r"[^\w+=,.@-]")


def build_options(**values: Any) -> CopyOptions:
    """CopyOptions from user input; a bad value becomes InvalidRequest (exit code 2)."""
    try:
        return CopyOptions(**values)
    except InvalidOption as exc:
        raise InvalidRequest(str(exc)) from None


def session_name(run_id: str) -> str:
    """The STS session name: carries the run id, so CloudTrail shows which run did what."""
    return _SESSION_NAME_UNSAFE.sub("-", f"s3fanout-{run_id}")[:64]


def check_run_id(run_id: str) -> None:
    if not _RUN_ID.match(run_id):
        raise InvalidRequest(
            f"run id {run_id!r} is not valid: use 1-200 letters, digits, '.', '_', ':' or '-'"
        )


@dataclass(frozen=True)
class CopyRequest:
    """One copy: a single source key, every key under a prefix, or the keys a manifest lists.

    Key mapping: a prefix copy maps ``source_prefix + rest`` to ``dest_prefix + rest``; a single
    key goes to ``dest_key``, or to ``dest_prefix + basename``, or to the same key name. A
    manifest copy (``manifest="s3://bucket/key"``: a CSV of ``bucket,key`` or an S3 Inventory
    ``manifest.json``) maps keys like a prefix copy; rows outside ``source_prefix`` are filtered.
    ``selection`` filters keys (see ``copy_control.selection``); ``listing_concurrency`` is how
    many key ranges (or manifest files) are read at once.
    """

    source_bucket: str
    dest_bucket: str
    source_key: str | None = None
    source_prefix: str | None = None
    dest_key: str | None = None
    dest_prefix: str | None = None
    chunk_size: int = 500
    max_failures: int | None = 0
    options: CopyOptions = field(default_factory=CopyOptions)
    source_role_arn: str | None = None
    dest_role_arn: str | None = None
    external_id: str | None = None
    session_duration_s: int = 3600
    copy_mode: str = "server_side"
    manifest: str | None = None
    selection: Selection | None = None
    listing_concurrency: int = DEFAULT_LISTING_CONCURRENCY
    # Versions (docs/versions.md): one version of a single key, every version of each key,
    # or each key as it was at a time.
    version_id: str | None = None
    all_versions: bool = False
    delete_markers: bool = False  # with all_versions: the histories' delete markers too
    as_of: datetime | None = None
    # Mirror semantics (docs/mirroring.md): delete destination keys the source does not have
    # (at most max_delete of them), or delete each source object once its copy is verified.
    delete_extraneous: bool = False
    max_delete: int | None = None
    delete_source: bool = False
    # A completion report of every key (or of the failed ones), in S3 Batch Operations'
    # format, under this s3://BUCKET/PREFIX (docs/reports.md).
    report: str | None = None
    report_scope: str = "all"

    def __post_init__(self) -> None:
        check_bucket_name(self.source_bucket, "source bucket")
        check_bucket_name(self.dest_bucket, "destination bucket")
        self._check_source()
        self._check_manifest()
        self._check_dest()
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            raise InvalidRequest(
                f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}, got {self.chunk_size}"
            )
        if self.max_failures is not None and self.max_failures < 0:
            raise InvalidRequest(
                f"max_failures must be 0 or more (or None for no limit), got {self.max_failures}"
            )
        if not 1 <= self.listing_concurrency <= MAX_LISTING_CONCURRENCY:
            raise InvalidRequest(
                f"listing_concurrency must be between 1 and {MAX_LISTING_CONCURRENCY}, "
                f"got {self.listing_concurrency}"
            )
        self._check_roles()
        self._check_versions()
        self._check_mirroring()
        self._check_report()

    def _check_report(self) -> None:
        if self.report_scope not in REPORT_SCOPES:
            raise InvalidRequest(
                f"report_scope must be one of {', '.join(REPORT_SCOPES)}, got {self.report_scope!r}"
            )
        if self.report is not None:
            parse_s3_url(self.report, "report")

    @property
    def report_target(self) -> ReportTarget | None:
        """Where the completion report goes (its bucket's region is settled by the run)."""
        if self.report is None:
            return None
        bucket, prefix = parse_s3_url(self.report, "report")
        return ReportTarget(bucket, prefix, self.report_scope)

    def _check_versions(self) -> None:
        if self.version_id is not None:
            if self.source_key is None:
                raise InvalidRequest(
                    "version_id names a version of one object: give a single source key, "
                    "not a prefix (for every version under a prefix use all_versions)"
                )
            if not self.version_id or len(self.version_id) > 1024:
                raise InvalidRequest("version_id must be a non-empty S3 version id")
        if self.all_versions and self.as_of is not None:
            raise InvalidRequest(
                "all_versions copies every version and as_of the one current at a time: "
                "give one of them"
            )
        if self.all_versions or self.as_of is not None:
            what = "all_versions" if self.all_versions else "as_of"
            if self.source_prefix is None or self.manifest is not None:
                raise InvalidRequest(
                    f"{what} lists a prefix's versions: give the source as a prefix "
                    "(--recursive), without a manifest (a manifest names its versions in its "
                    "rows)"
                )
        if self.all_versions and self.options.overwrite != "always":
            raise InvalidRequest(
                "all_versions writes each key's versions in order, as new versions of the "
                f"destination key: it takes overwrite='always', not {self.options.overwrite!r}"
            )
        if self.as_of is not None and self.as_of.tzinfo is None:
            raise InvalidRequest("as_of must be a time with a zone (UTC if none is given)")
        if self.delete_markers and not self.all_versions:
            raise InvalidRequest(
                "delete_markers copies the delete markers of each key's history, in their "
                "place among its versions: give all_versions too"
            )

    def _check_mirroring(self) -> None:
        if self.max_delete is not None and not self.delete_extraneous:
            raise InvalidRequest("max_delete bounds delete_extraneous (--delete): give both")
        if self.max_delete is not None and self.max_delete < 0:
            raise InvalidRequest(f"max_delete must be 0 or more, got {self.max_delete}")
        if self.delete_extraneous:
            if self.source_prefix is None or self.manifest is not None:
                raise InvalidRequest(
                    "delete_extraneous (--delete) makes a destination prefix equal to a source "
                    "prefix: give the source as a prefix (--recursive), without a manifest"
                )
            if self.all_versions or self.as_of is not None:
                raise InvalidRequest(
                    "delete_extraneous (--delete) compares the destination with the source's "
                    "current keys: it does not go with all_versions or as_of"
                )
            if self.delete_source:
                raise InvalidRequest(
                    "delete_extraneous and delete_source together would empty both sides of "
                    "keys: give one of them"
                )
            source, dest = self.source_prefix, self.dest_prefix or ""
            if self.source_bucket == self.dest_bucket and (
                source.startswith(dest) or dest.startswith(source)
            ):
                raise InvalidRequest(
                    f"delete_extraneous (--delete) with the source s3://{self.source_bucket}/"
                    f"{source} and the destination s3://{self.dest_bucket}/{dest} in one "
                    "another would delete source objects as extraneous: choose prefixes "
                    "that do not contain each other"
                )
        if self.delete_source:
            if not self.options.verify:
                raise InvalidRequest(
                    "delete_source deletes a source object only once its copy is verified: "
                    "it does not go with verify=False (--no-verify)"
                )
            if self.all_versions or self.as_of is not None:
                raise InvalidRequest(
                    "delete_source does not go with all_versions or as_of: a move of a "
                    "prefix's history would delete versions for good; copy them, then expire "
                    "them with a lifecycle rule"
                )

    def _check_manifest(self) -> None:
        if self.manifest is None:
            return
        _, key = parse_s3_url(self.manifest, "manifest")
        if not key:
            raise InvalidRequest(
                f"manifest {self.manifest!r} is not an S3 object URL: write s3://BUCKET/KEY"
            )
        if self.source_prefix is None:
            raise InvalidRequest(
                "a manifest names the keys to copy: give the source as a bucket (and "
                "optionally a prefix), not a single key"
            )

    @property
    def manifest_location(self) -> tuple[str, str] | None:
        """(bucket, key) of the manifest, if the request has one."""
        if self.manifest is None:
            return None
        return parse_s3_url(self.manifest, "manifest")

    def _check_roles(self) -> None:
        for name in ("source_role_arn", "dest_role_arn"):
            arn = getattr(self, name)
            if arn is not None and not _ROLE_ARN.match(arn):
                raise InvalidRequest(
                    f"{name} {arn!r} is not an IAM role ARN: write arn:aws:iam::ACCOUNT:role/NAME"
                )
        if self.external_id is not None and not _EXTERNAL_ID.match(self.external_id):
            raise InvalidRequest(
                "external_id must be 2 to 1,224 letters, digits or any of _+=,.@:/-"
            )
        if self.external_id is not None and not (self.source_role_arn or self.dest_role_arn):
            raise InvalidRequest("external_id is only used when assuming a role: give a role ARN")
        if not 900 <= self.session_duration_s <= 43_200:
            raise InvalidRequest(
                f"session_duration must be 900 to 43,200 seconds, got {self.session_duration_s}"
            )
        if self.copy_mode not in COPY_MODES:
            raise InvalidRequest(
                f"copy_mode must be one of {', '.join(COPY_MODES)}; got {self.copy_mode!r}"
            )
        if self.copy_mode != "server_side" and not (self.source_role_arn and self.dest_role_arn):
            raise InvalidRequest(
                f"copy_mode {self.copy_mode!r} reads with the source role and writes with the "
                "destination role: give both source_role_arn and dest_role_arn"
            )

    def _check_source(self) -> None:
        if (self.source_key is None) == (self.source_prefix is None):
            raise InvalidRequest(
                "give exactly one of source_key (one object) or source_prefix "
                "(every object under it, recursively)"
            )
        if self.source_key is not None:
            if self.source_key == "":
                raise InvalidRequest("source_key is empty: name an object, or use source_prefix")
            check_key(self.source_key, "source_key")
        if self.source_prefix:
            check_key(self.source_prefix, "source_prefix")

    def _check_dest(self) -> None:
        if self.dest_key is not None and self.dest_prefix is not None:
            raise InvalidRequest("give dest_key or dest_prefix, not both")
        if self.dest_key is not None:
            if self.source_prefix is not None:
                raise InvalidRequest(
                    "dest_key names one object, but the source is a prefix: use dest_prefix"
                )
            if self.dest_key == "":
                raise InvalidRequest("dest_key is empty: name the object, or use dest_prefix")
            check_key(self.dest_key, "dest_key")
        if self.dest_prefix:
            check_key(self.dest_prefix, "dest_prefix")
        self._check_overlap()

    def _check_overlap(self) -> None:
        """Refuse copies S3 would refuse, or that would copy their own output again.

        A listed destination inside the source prefix would list the copies as sources (a
        manifest names its keys once, so it may). A copy onto itself is refused by S3 unless
        it changes the metadata, storage class or encryption.
        """
        if self.source_bucket != self.dest_bucket:
            return
        source = f"s3://{self.source_bucket}/{self.source_key or self.source_prefix or ''}"
        if self.source_key is not None:
            onto_itself = self.dest_for(self.source_key) == self.source_key
        else:
            prefix, dest = self.source_prefix or "", self.dest_prefix or ""
            if dest != prefix and dest.startswith(prefix) and self.manifest is None:
                raise InvalidRequest(
                    f"the destination s3://{self.dest_bucket}/{dest} is inside the source "
                    f"{source}: the copies would be listed and copied again; choose a "
                    "destination outside the source prefix"
                )
            onto_itself = dest == prefix
        changes = (
            self.options.metadata_directive == "REPLACE"
            or self.options.storage_class is not None
            or self.options.sse is not None
        )
        if onto_itself and not changes:
            raise InvalidRequest(
                f"the destination is the source ({source}): S3 copies an object onto itself "
                "only to change it; add --metadata-directive REPLACE, --storage-class or --sse, "
                "or choose another destination"
            )

    @property
    def is_prefix(self) -> bool:
        return self.source_prefix is not None

    def dest_for(self, source_key: str) -> str:
        """The destination key of ``source_key``, byte for byte."""
        if self.source_prefix is not None:
            return (self.dest_prefix or "") + source_key[len(self.source_prefix) :]
        if self.dest_key is not None:
            return self.dest_key
        if self.dest_prefix is not None:
            return self.dest_prefix + source_key.rsplit("/", 1)[-1]
        return source_key

    def job(self, run_id: str) -> CopyJob:
        """The part of the request every chunk message carries."""
        return CopyJob(
            self.source_bucket,
            self.dest_bucket,
            self.options,
            source_role_arn=self.source_role_arn,
            dest_role_arn=self.dest_role_arn,
            external_id=self.external_id,
            role_session_name=session_name(run_id),
            session_duration_s=self.session_duration_s,
            copy_mode=self.copy_mode,
            delete_source=self.delete_source,
            report=self.report_target,
        )

    def listing_identity(self, run_id: str) -> Identity:
        """Who lists the source: the source role when one is given."""
        return self._identity(self.source_role_arn, run_id)

    def dest_identity(self, run_id: str) -> Identity:
        """Who reads the destination (a dry run's listing): the destination role if given."""
        return self._identity(self.dest_role_arn, run_id)

    def _identity(self, role_arn: str | None, run_id: str) -> Identity:
        # Imported here: boto3 comes with it, and `s3fanout copy --list-in-pool` lists nothing.
        from copy_core.aws.clients import Identity  # noqa: PLC0415

        if role_arn is None:
            return Identity()
        return Identity(role_arn, self.external_id, session_name(run_id), self.session_duration_s)

    def describe(self) -> dict[str, Any]:
        """A JSON-able record of the request, stored with the run.

        Selection fields appear only when used, so that runs recorded before they existed
        still resume. ``listing_concurrency`` is left out: a run may resume with another.
        """
        record: dict[str, Any] = {
            "source": f"s3://{self.source_bucket}/{self.source_key or self.source_prefix or ''}",
            "dest": f"s3://{self.dest_bucket}/{self.dest_key or self.dest_prefix or ''}",
            "recursive": self.is_prefix,
            "chunk_size": self.chunk_size,
            "max_failures": self.max_failures,
            "options": self.options.to_wire(),
            "source_role_arn": self.source_role_arn,
            "dest_role_arn": self.dest_role_arn,
            "copy_mode": self.copy_mode,
        }
        if self.manifest is not None:
            record["manifest"] = self.manifest
        if self.selection is not None and not self.selection.is_everything:
            record["selection"] = self.selection.describe()
        record.update(self._described_extras())
        return record

    def _described_extras(self) -> dict[str, Any]:
        """Versions and mirroring, where used (runs recorded before them still resume)."""
        extras: dict[str, Any] = {}
        if self.version_id is not None:
            extras["version_id"] = self.version_id
        if self.all_versions:
            extras["all_versions"] = True
        if self.delete_markers:
            extras["delete_markers"] = True
        if self.as_of is not None:
            extras["as_of"] = self.as_of.isoformat()
        if self.delete_extraneous:
            extras["delete_extraneous"] = True
            extras["max_delete"] = self.max_delete
        if self.delete_source:
            extras["delete_source"] = True
        if self.report is not None:
            extras["report"] = {"location": self.report, "scope": self.report_scope}
        return extras

    def to_wire(self) -> dict[str, Any]:
        """The whole request as JSON-able data, for a worker that lists it (``from_wire``)."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record["options"] = self.options.to_wire()
        record["selection"] = None if self.selection is None else self.selection.describe()
        record["as_of"] = None if self.as_of is None else self.as_of.isoformat()
        return record

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> CopyRequest:
        """The request ``to_wire`` gave, checked again; InvalidRequest if it is not one."""
        values = dict(raw)
        try:
            values["options"] = CopyOptions.from_wire(values.get("options") or {})
            selection = values.get("selection")
            values["selection"] = None if selection is None else build_selection(**selection)
            values["as_of"] = parse_time(values.get("as_of"), "as_of")
            return cls(**values)
        except (ContractError, InvalidOption, TypeError) as exc:
            raise InvalidRequest(f"not a copy request: {exc}") from None


def check_same_request(existing: Mapping[str, str], request: CopyRequest, run_id: str) -> None:
    """InvalidRequest if run ``run_id`` exists (``existing`` is its hash) for another copy."""
    if existing and json.loads(existing.get("spec", "{}")) != request.describe():
        raise InvalidRequest(
            f"run {run_id!r} already exists for a different copy; "
            "choose another run id, or repeat the original request to resume it"
        )
