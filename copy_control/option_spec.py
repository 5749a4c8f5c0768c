"""Every option of a copy, declared once: the CLI's flags, the operator's arguments and the
options reference (docs/options.md) are all built from ``OPTIONS``.

An option has a name (the operator's argument, ``--name-with-dashes`` on the CLI unless it says
otherwise), a kind (how a value given as text or as a Python value becomes what the request
takes), a group, a help text and a default. Defaults of request fields and copy options are
read from ``CopyRequest`` and ``CopyOptions`` themselves, so no default is written twice.

``prepare`` turns the values of the options (from argparse or from the operator's attributes)
and the locations into a validated ``PreparedCopy``: InvalidRequest says what is wrong.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest, build_options
from copy_control.selection import build_selection, parse_time
from copy_control.units import format_size, parse_pairs, parse_size
from copy_core.contract import COPY_MODES, REPORT_SCOPES
from copy_core.options import (
    CANNED_ACLS,
    CHECKSUM_ALGORITHMS,
    METADATA_DIRECTIVES,
    OBJECT_LOCK,
    OVERWRITE,
    REQUEST_PAYERS,
    SOURCE_ETAG_MARKERS,
    SSE,
    STORAGE_CLASSES,
    TAGGING,
    WEBSITE_REDIRECT,
    CopyOptions,
)
from copy_core.runs.controls import DEFAULT_PRIORITY, InvalidControl, RunControls

Kind = Literal["str", "int", "count", "seconds", "rate", "bool", "size", "pairs", "globs", "time"]
# Where a value goes: a CopyOptions field, a CopyRequest field, the selection, or the run.
Target = Literal["options", "request", "selection", "run"]


@dataclass(frozen=True)
class Group:
    """A group of options: a section of ``--help`` and of the reference."""

    title: str
    description: str = ""


RUN = Group("the run")
SELECTION = Group(
    "which objects", "see docs/selection.md; patterns match the key below the source prefix"
)
COPY = Group("how each object is copied")
ROLES = Group("cross-account roles", "assumed through STS by the workers; no stored keys")
MIRROR = Group("versions, sync and move", "see docs/mirroring.md")
GROUPS = (RUN, SELECTION, MIRROR, COPY, ROLES)


@dataclass(frozen=True)
class Option:
    """One option of a copy, as the CLI, the operator and the reference know it."""

    name: str
    group: Group
    help: str
    target: Target
    kind: Kind = "str"
    default: Any = None
    choices: tuple[str, ...] = ()
    field: str | None = None  # its name in the target, where it differs from ``name``
    flag: str | None = None  # the CLI flag, where it is not --name-with-dashes
    metavar: str | None = None
    templated: bool = False  # an operator template field (Jinja)
    attribute: str | None = None  # the operator's attribute, where it is not ``name``

    @property
    def cli_flag(self) -> str:
        if self.flag is not None:
            return self.flag
        return "--" + self.name.replace("_", "-")

    @property
    def target_field(self) -> str:
        return self.field or self.name

    @property
    def operator_attribute(self) -> str:
        return self.attribute or self.name

    def shown_default(self) -> str:
        """The default as a user would write it (sizes in binary units)."""
        if self.kind == "size" and isinstance(self.default, int):
            return format_size(self.default)
        if self.default is None:
            return "none"
        return str(self.default)


def _default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (the one place it is written)."""
    found = {f.name: f for f in dataclasses.fields(cls)}[name]
    if found.default is not dataclasses.MISSING:
        return found.default
    return None  # a default_factory (an empty dict or tuple): "none given"


def _copy(name: str, help: str, kind: Kind = "str", **more: Any) -> Option:
    return Option(name, COPY, help, "options", kind, _default(CopyOptions, name), **more)


def _request(name: str, group: Group, help: str, kind: Kind = "str", **more: Any) -> Option:
    field = more.get("field") or name
    return Option(name, group, help, "request", kind, _default(CopyRequest, field), **more)


def _selection(name: str, help: str, kind: Kind = "str", **more: Any) -> Option:
    return Option(name, SELECTION, help, "selection", kind, None, templated=True, **more)


OPTIONS: tuple[Option, ...] = (
    # --- run ------------------------------------------------------------------------------
    _request("chunk_size", RUN, "keys per worker task", "count"),
    _request(
        "max_failures",
        RUN,
        "failed keys tolerated before the run fails (operator: None for no limit)",
        "int",
    ),
    Option(
        "timeout",
        RUN,
        "stop waiting for the run after SECONDS (the run goes on; wait again to re-attach)",
        "run",
        "seconds",
        None,
    ),
    Option(
        "priority",
        RUN,
        "the run's share of a shared pool: low, normal or high (weights 1, 4, 16), or a weight "
        "from 1 to 1000; a higher priority gets a larger share, never all of it",
        "run",
        "str",
        DEFAULT_PRIORITY,
    ),
    Option(
        "max_requests_per_second",
        RUN,
        "cap on the run's S3 requests a second, over every worker of the pool (changeable "
        "while it runs: s3fanout limit)",
        "run",
        "rate",
        None,
        metavar="N",
    ),
    Option(
        "max_bytes_per_second",
        RUN,
        "cap on the bytes the run copies a second, e.g. 500MiB (changeable while it runs)",
        "run",
        "size",
        None,
    ),
    Option(
        "list_in_pool",
        RUN,
        "a worker lists the source and dispatches the chunks; this process needs only Redis, "
        "no AWS access (the operator's default: yes when deferrable, so that no slot is held "
        "while a large source is listed)",
        "run",
        "bool",
        None,
    ),
    _request(
        "report",
        RUN,
        "write a completion report of every key in S3 Batch Operations' format (CSV shards "
        "and a manifest.json) under s3://BUCKET/PREFIX/RUN_ID/, streamed as chunks finish "
        "(see docs/reports.md)",
        metavar="s3://BUCKET/PREFIX",
        templated=True,
    ),
    _request(
        "report_scope",
        RUN,
        "what the report lists: all keys, or the failed ones",
        choices=REPORT_SCOPES,
    ),
    Option(
        "dry_run",
        SELECTION,
        "list, filter and plan; report what would be copied or skipped; copy nothing",
        "run",
        "bool",
        False,
        attribute="plan_only",  # BaseOperator has a dry_run() method of its own
    ),
    # --- which objects ----------------------------------------------------------------------
    _request(
        "manifest",
        SELECTION,
        "copy the keys a manifest lists: a CSV of bucket,key (URL-encoded keys) or an S3 "
        "Inventory manifest.json (CSV or Parquet); the source is then s3://BUCKET/[PREFIX]",
        metavar="s3://BUCKET/KEY",
        templated=True,
    ),
    _selection("include", "copy only keys matching a glob (repeatable; any of them)", "globs"),
    _selection("exclude", "skip keys matching a glob (repeatable; excludes win)", "globs"),
    _selection("min_size", "copy only objects of at least SIZE (e.g. 1KiB)", "size"),
    _selection("max_size", "copy only objects of at most SIZE (e.g. 5GB)", "size"),
    _selection(
        "modified_after",
        "copy only objects last modified at or after this ISO 8601 time (UTC if no zone)",
        "time",
    ),
    _selection(
        "modified_before",
        "copy only objects last modified before this ISO 8601 time (UTC if no zone)",
        "time",
    ),
    _request(
        "listing_concurrency", SELECTION, "key ranges (or manifest files) listed at once", "count"
    ),
    # --- versions, sync and move -------------------------------------------------------------
    _request(
        "version_id",
        MIRROR,
        "copy this version of the single source key (CopySource with versionId)",
        metavar="VERSION_ID",
        templated=True,
    ),
    _request(
        "all_versions",
        MIRROR,
        "copy every version of each key under the prefix, oldest first, so that the "
        "(versioned) destination's versions come in the same order; delete markers are not "
        "copied unless --delete-markers is given",
        "bool",
    ),
    _request(
        "delete_markers",
        MIRROR,
        "with --all-versions: copy each key's delete markers too, in their place among its "
        "versions (a DeleteObject of the destination key writes each one)",
        "bool",
    ),
    _request(
        "as_of",
        MIRROR,
        "copy each key as it was at this ISO 8601 time: the version current then (keys that "
        "did not exist or were deleted then are left out)",
        "time",
        templated=True,
    ),
    _request(
        "delete_extraneous",
        MIRROR,
        "sync: once every copy has ended within max_failures, delete destination keys under "
        "the destination prefix that match the filters and have no source key",
        "bool",
        flag="--delete",
    ),
    _request(
        "max_delete",
        MIRROR,
        "with --delete: fail the run, deleting nothing, if it would delete more than N keys",
        "int",
    ),
    _request(
        "delete_source",
        MIRROR,
        "move: delete each source object (the listed version or ETag) once its copy is "
        "recorded and verified; never on failure, skip or cancel",
        "bool",
    ),
    # --- how each object is copied ----------------------------------------------------------
    _copy(
        "overwrite",
        "existing destination objects: always overwrite, skip if the same object is there "
        "already (if-different), or never overwrite",
        choices=OVERWRITE,
        templated=True,
    ),
    _copy(
        "multipart_threshold",
        "objects larger than this are copied in parts",
        "size",
        templated=True,
    ),
    _copy(
        "part_size",
        "part size of multipart copies (default: by object size)",
        "size",
        templated=True,
    ),
    _copy(
        "split_threshold",
        "server-side copies larger than this are split: their parts go to several workers",
        "size",
        templated=True,
    ),
    _copy("parts_per_task", "parts per worker task of a split object", "count"),
    _copy(
        "metadata_directive",
        "COPY the source's user metadata, or REPLACE it with --metadata",
        choices=METADATA_DIRECTIVES,
        templated=True,
    ),
    _copy(
        "metadata",
        "user metadata for --metadata-directive REPLACE (repeatable KEY=VALUE; operator: a dict)",
        "pairs",
        metavar="KEY=VALUE",
        templated=True,
    ),
    _copy(
        "tagging",
        "copy the source's tags, set none, or replace them with --tag",
        choices=TAGGING,
        templated=True,
    ),
    _copy(
        "tags",
        "tags for --tagging replace (repeatable KEY=VALUE; operator: a dict)",
        "pairs",
        flag="--tag",
        metavar="KEY=VALUE",
        templated=True,
    ),
    _copy(
        "storage_class",
        "destination storage class (default: the source's)",
        choices=STORAGE_CLASSES,
        templated=True,
    ),
    _copy(
        "acl",
        "canned ACL (default: none, for buckets with ACLs disabled)",
        choices=CANNED_ACLS,
        templated=True,
    ),
    _copy(
        "sse",
        "server-side encryption (default: the destination bucket's)",
        choices=SSE,
        templated=True,
    ),
    _copy(
        "sse_kms_key_id",
        "KMS key of the destination account, with --sse aws:kms",
        templated=True,
    ),
    _copy(
        "checksum_algorithm",
        "checksum S3 computes for the copies (auto: the source's)",
        choices=CHECKSUM_ALGORITHMS,
        templated=True,
    ),
    _copy(
        "verify",
        "compare checksums or ETags of source and copy (CLI: --no-verify turns it off)",
        "bool",
        flag="--no-verify",
    ),
    _copy(
        "request_payer",
        "requester: say on every request that this account pays, as a requester-pays "
        "bucket of another account demands (see docs/regions.md)",
        choices=REQUEST_PAYERS,
        templated=True,
    ),
    _copy(
        "object_lock",
        "Object Lock retention and legal hold of each object: auto carries them where the "
        "destination bucket has Object Lock enabled (and the source may have it); copy "
        "refuses a destination without it; none leaves them behind",
        choices=OBJECT_LOCK,
        templated=True,
    ),
    _copy(
        "website_redirect",
        "each object's WebsiteRedirectLocation, which S3's CopyObject drops: auto carries it "
        "where the source bucket is a website (and on every multipart copy); copy always "
        "(a HeadObject per object); none never",
        choices=WEBSITE_REDIRECT,
        templated=True,
    ),
    _copy(
        "source_etag_marker",
        "auto: a multipart or streamed copy records the source's ETag as metadata "
        "(s3fanout-source-etag) only where no CRC64NVME on both sides can prove it the same "
        "for --overwrite if-different; never: record nothing",
        choices=SOURCE_ETAG_MARKERS,
        templated=True,
    ),
    # --- roles ------------------------------------------------------------------------------
    _request(
        "source_role_arn",
        ROLES,
        "role that reads the source (and lists it)",
        templated=True,
    ),
    _request(
        "dest_role_arn",
        ROLES,
        "role that writes the destination (signs server-side copies)",
        templated=True,
    ),
    _request("external_id", ROLES, "sts:ExternalId for both roles", templated=True),
    _request(
        "session_duration",
        ROLES,
        "seconds per STS session; renewed before expiry",
        "count",
        field="session_duration_s",
    ),
    _request(
        "copy_mode",
        ROLES,
        "server_side: one principal copies inside S3; stream: the source role reads and the "
        "destination role writes; auto: server-side, streaming a key whose server-side copy "
        "is denied",
        choices=COPY_MODES,
        templated=True,
    ),
)

BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class PreparedCopy:
    """A validated copy request, and how to run it."""

    request: CopyRequest
    list_in_pool: bool = False
    dry_run: bool = False
    timeout_s: float | None = None
    controls: RunControls = RunControls()


Spelling = Callable[[Option], str]


def operator_spelling(option: Option) -> str:
    """How an operator user wrote an option: its argument name."""
    return option.name


def cli_spelling(option: Option) -> str:
    """How a CLI user wrote an option: its flag."""
    return option.cli_flag


def prepare(
    values: Mapping[str, Any],
    locations: Mapping[str, str | None],
    spelling: Spelling = operator_spelling,
    owner: str = "",
) -> PreparedCopy:
    """The copy that ``values`` (option name -> value, absent: the default) ask for.

    ``locations``: CopyRequest's source_bucket, dest_bucket and key/prefix fields.
    ``spelling`` names an option in error messages as the user wrote it; ``owner`` says who
    runs the copy (``s3fanout runs`` shows it).
    """
    unknown = sorted(set(values) - set(BY_NAME))
    if unknown:
        raise InvalidRequest(f"unknown copy options {unknown}")
    by_target: dict[Target, dict[str, Any]] = {
        target: {} for target in ("options", "request", "selection", "run")
    }
    for option in OPTIONS:
        raw = values.get(option.name, option.default)
        by_target[option.target][option.target_field] = _convert(option, raw, spelling(option))
    options = build_options(**{k: v for k, v in by_target["options"].items() if v is not None})
    selection = build_selection(**by_target["selection"])
    fields = {k: v for k, v in by_target["request"].items() if v is not None or k == "max_failures"}
    request = CopyRequest(**locations, **fields, options=options, selection=selection)  # type: ignore[arg-type]
    run = by_target["run"]
    try:
        controls = RunControls(
            run["priority"] or DEFAULT_PRIORITY,
            run["max_requests_per_second"],
            run["max_bytes_per_second"],
            owner,
        )
    except InvalidControl as exc:
        raise InvalidRequest(str(exc)) from None
    return PreparedCopy(
        request, bool(run["list_in_pool"]), bool(run["dry_run"]), run["timeout"], controls
    )


def _convert(option: Option, raw: Any, what: str) -> Any:  # noqa: PLR0911 - one branch per kind
    """A value as its target takes it; "" (an empty template) is no value."""
    if raw is None or (isinstance(raw, str) and raw == "" and option.kind != "bool"):
        return None if option.kind != "pairs" else {}
    if option.kind == "size":
        return parse_size(raw, what)
    if option.kind == "pairs":
        return _pairs(raw, what)
    if option.kind in ("int", "count"):
        return _whole(raw, what, minimum=1 if option.kind == "count" else None)
    if option.kind == "seconds":
        return _seconds(raw, what)
    if option.kind == "rate":
        return _positive(raw, what, "a positive number")
    if option.kind == "bool":
        return _boolean(raw, what)
    if option.kind == "time":
        return parse_time(raw, what)
    return raw  # strings (choices), globs: CopyOptions, the request, the selection check


def _pairs(raw: Any, what: str) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, str):
        return parse_pairs([raw], what)
    if isinstance(raw, Sequence):
        return parse_pairs([str(v) for v in raw], what)
    raise InvalidRequest(f"{what} must be KEY=VALUE pairs (a dict), got {raw!r}")


def _whole(raw: Any, what: str, minimum: int | None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise InvalidRequest(f"{what} must be a whole number, got {raw!r}")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{what} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"{what} must be at least {minimum}, got {value}")
    return value


def _seconds(raw: Any, what: str) -> float:
    return _positive(raw, what, "a positive number of seconds")


def _positive(raw: Any, what: str, expected: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{what} must be {expected}, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidRequest(f"{what} must be {expected}, got {raw!r}")
    return value


def _boolean(raw: Any, what: str) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidRequest(f"{what} must be true or false, got {raw!r}")


def in_group(group: Group) -> Iterator[Option]:
    """The options of ``group``, in declaration order."""
    return (option for option in OPTIONS if option.group == group)


def templated() -> tuple[str, ...]:
    """The operator's template fields among the options."""
    return tuple(option.operator_attribute for option in OPTIONS if option.templated)


def operator_params_doc(indent: str = "    ") -> str:
    """``:param name: help`` lines for the operator's docstring, one per option."""
    lines = []
    for option in OPTIONS:
        shown = "" if option.default is None else f" (default {option.shown_default()})"
        lines.append(f"{indent}:param {option.name}: {option.help}{shown}")
    return "\n" + "\n".join(lines) + "\n"


def with_options_signature(init: Callable[..., None]) -> inspect.Signature:
    """``init``'s signature with every option as a keyword-only parameter before ``**kwargs``.

    The operator takes its options through ``**kwargs``; Airflow reads the signature to apply
    ``default_args``, to validate ``partial``/``expand`` arguments and to document the operator.
    """
    signature = inspect.signature(init)
    params = list(signature.parameters.values())
    var_kw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    named = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    taken = {p.name for p in named}
    options = [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
        for o in OPTIONS
        if o.name not in taken
    ]
    return signature.replace(parameters=[*named, *options, *var_kw])
