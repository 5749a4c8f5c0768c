"""One declaration of every option: the CLI, the operator, the dataclasses and the reference agree.

Each test fails when an option is added on one side only: a CopyOptions field, a request field
or a selection filter without an option, a flag or an operator argument without a declaration,
or a reference that was not regenerated (``make docs``).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from copy_control import cli
from copy_control.errors import InvalidRequest
from copy_control.option_spec import BY_NAME, OPTIONS, prepare
from copy_control.options_reference import render
from copy_control.request import CopyRequest
from copy_control.selection import Selection
from copy_core.options import CopyOptions

REPO = Path(__file__).resolve().parents[2]
# What only one side has (docs/options.md names them).
CLI_ONLY = {
    "source",
    "dest",
    "--recursive",
    "--redis-url",
    "--endpoint-url",
    "--region",
    "--run-id",
    "--json",
    "--help",
}
# CopyRequest fields that are locations or built from other options, not options themselves.
REQUEST_NOT_OPTIONS = {
    *("source_bucket", "dest_bucket", "source_key", "source_prefix", "dest_key", "dest_prefix"),
    *("options", "selection"),
}


def _targets(target: str) -> set[str]:
    return {o.target_field for o in OPTIONS if o.target == target}


def test_every_copy_option_field_is_declared_once() -> None:
    fields = {f.name for f in dataclasses.fields(CopyOptions)}
    declared = [o.target_field for o in OPTIONS if o.target == "options"]
    assert sorted(declared) == sorted(fields)


def test_every_request_field_is_declared_or_a_location() -> None:
    fields = {f.name for f in dataclasses.fields(CopyRequest)} - REQUEST_NOT_OPTIONS
    assert _targets("request") == fields


def test_every_selection_filter_is_declared() -> None:
    assert _targets("selection") == {f.name for f in dataclasses.fields(Selection)}


def _copy_parser() -> argparse.ArgumentParser:
    subparsers = next(
        a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = subparsers.choices["copy"]
    return parser


def test_the_cli_flags_are_the_declared_options_and_its_own() -> None:
    flags = set()
    for action in _copy_parser()._actions:
        long = [s for s in action.option_strings if s.startswith("--")]
        flags |= set(long) if long else {action.dest}
    assert flags - CLI_ONLY == {o.cli_flag for o in OPTIONS}


def test_defaults_come_from_the_dataclasses() -> None:
    assert BY_NAME["multipart_threshold"].default == CopyOptions().multipart_threshold
    assert BY_NAME["chunk_size"].default == CopyRequest("a-b", "c-d", source_key="k").chunk_size


def test_the_reference_is_current() -> None:
    assert (REPO / "docs" / "options.md").read_text() == render(), "run `make docs`"


def test_cli_and_operator_values_make_the_same_request() -> None:
    locations = {"source_bucket": "src-b", "dest_bucket": "dst-b", "source_prefix": "a/"}
    locations["dest_prefix"] = "b/"
    cli_values = {
        "multipart_threshold": "64MiB",
        "tags": ["team=data", "tier=gold"],
        "tagging": "replace",
        "include": ["*.csv"],
        "chunk_size": "200",
        "verify": False,
    }
    operator_values = {
        "multipart_threshold": 64 * 1024**2,
        "tags": {"team": "data", "tier": "gold"},
        "tagging": "replace",
        "include": "*.csv",
        "chunk_size": 200,
        "verify": False,
    }
    assert prepare(cli_values, locations) == prepare(operator_values, locations)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"chunk_size": "many"}, "chunk_size must be a whole number"),
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
        ({"timeout": -5}, "timeout must be a positive number of seconds"),
        ({"timeout": "nan"}, "timeout must be a positive number of seconds"),
        ({"part_size": "lots"}, "part_size 'lots' is not a size"),
        ({"chunk_sise": 3}, "unknown copy options"),
    ],
)
def test_bad_values_are_named_as_the_user_wrote_them(
    values: dict[str, object], message: str
) -> None:
    locations = {"source_bucket": "src-b", "dest_bucket": "dst-b", "source_key": "k"}
    with pytest.raises(InvalidRequest, match=message):
        prepare(values, locations)
