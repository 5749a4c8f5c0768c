from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from copy_core import contract, options
from copy_core.contract import ChunkMessage, ContractError, CopyItem, CopyJob, RunSummary, summarize
from copy_core.runs.keys import RunKeys


def _message() -> ChunkMessage:
    return ChunkMessage(
        run_id="run-1",
        chunk_id="3",
        job=CopyJob(source_bucket="src-bucket", dest_bucket="dst-bucket"),
        items=(
            CopyItem("a/b c+d%20?#=.txt", "x/b c+d%20?#=.txt", 10, '"etag"'),
            CopyItem("//leading//slashes/", "dest//", 0, None),
        ),
    )


def test_chunk_message_survives_a_json_round_trip() -> None:
    message = _message()
    wire = json.loads(json.dumps(message.to_wire()))
    assert ChunkMessage.from_wire(wire) == message


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda w: w.update(schema=99), "unsupported chunk schema"),
        (lambda w: w.update(run_id=""), "run_id must be a non-empty string"),
        (lambda w: w.update(items="nope"), "chunk items must be a list"),
        (
            lambda w: w["items"].append(["k", "d", -1, None, None]),
            "size must be a non-negative int",
        ),
        (lambda w: w["items"].append(["k", "d"]), "a copy item is"),
        (lambda w: w["job"].update(surprise=1), "unknown copy job fields"),
    ],
)
def test_malformed_messages_are_rejected_with_the_reason(mutate, error) -> None:
    wire = _message().to_wire()
    mutate(wire)
    with pytest.raises(ContractError, match=error):
        ChunkMessage.from_wire(wire)


def test_summary_is_computed_from_the_run_hash() -> None:
    run_hash = {
        "status": "succeeded",
        "created_at": "100.0",
        "finished_at": "104.0",
        "objects_listed": "10",
        "objects_copied": "7",
        "objects_skipped": "1",
        "objects_failed": "2",
        "bytes_copied": "4000",
        "retries": "3",
    }
    failures = [
        json.dumps(
            {"key": f"k{i}", "error_code": "NoSuchKey", "message": "m", "size": 1, "attempts": 1}
        )
        for i in range(2)
    ]
    summary = summarize("r", run_hash, failures, now=999.0)
    assert summary.duration_s == 4.0
    assert summary.objects_per_second == 1.75
    assert summary.bytes_per_second == 1000.0
    assert summary.failures == [
        {"key": "k0", "error_code": "NoSuchKey", "message": "m"},
        {"key": "k1", "error_code": "NoSuchKey", "message": "m"},
    ]
    assert summary.failures_omitted == 0
    assert RunSummary.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


def test_summary_fields_are_the_documented_ones() -> None:
    fields = list(summarize("r", {}, [], now=1.0).to_dict())
    assert fields == [
        "run_id",
        "status",
        "objects_listed",
        "objects_copied",
        "objects_skipped",
        "objects_failed",
        "bytes_copied",
        "retries",
        "objects_verified",
        "objects_streamed",
        "duration_s",
        "objects_per_second",
        "bytes_per_second",
        "failures",
        "failures_omitted",
        "errors",
        "objects_cancelled",
        "objects_filtered",
        "rate_limited_s",
        "objects_to_delete",
        "objects_deleted",
        "deletes_refused",
        "deletes_withheld",
        "objects_source_deleted",
        "objects_source_kept",
    ]


def test_summary_caps_failures_and_counts_the_rest() -> None:
    failures = [{"key": str(i), "error_code": "E", "message": ""} for i in range(150)]
    summary = summarize("r", {"objects_failed": "150"}, failures, now=1.0)
    assert len(summary.failures) == contract.FAILURES_IN_SUMMARY
    assert summary.failures_omitted == 50


def test_every_key_of_a_run_shares_one_cluster_hash_tag() -> None:
    keys = RunKeys("abc")
    names = [keys.run, keys.dispatched, keys.done, keys.progress, keys.failures, keys.recorded("7")]
    names.append(keys.listing)
    assert all("{abc}" in name for name in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("module", [contract, options])
def test_contract_imports_only_the_standard_library(module: ModuleType) -> None:
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
    first_party = {name for name in imported if name.split(".")[0] == "copy_core"}
    assert first_party <= {"copy_core.options"}  # itself checked by this test
    third_party = {name.split(".")[0] for name in imported - first_party}
    assert third_party <= set(sys.stdlib_module_names) | {"__future__"}


def test_bucket_regions_travel_in_the_job_and_are_absent_when_unknown() -> None:
    plain = CopyJob("src", "dst")
    assert "source_region" not in plain.to_wire() and "dest_region" not in plain.to_wire()
    placed = CopyJob("src", "dst", source_region="us-west-2", dest_region="ap-southeast-2")
    wire = json.loads(json.dumps(placed.to_wire()))
    assert CopyJob.from_wire(wire) == placed
    # A worker of an earlier version knows no such field and rejects the chunk, not copies it
    # in its own region.
    older = {name for name in wire} - {"source_region", "dest_region"}
    assert set(plain.to_wire()) == older


def test_a_pinned_version_travels_as_a_sixth_element_only_when_there_is_one() -> None:
    plain = CopyItem("k", "d", 3, '"e"')
    pinned = CopyItem("k", "d", 3, '"e"', version_id="3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert len(plain.to_wire()) == 5  # what workers of an earlier version read
    assert len(pinned.to_wire()) == 6  # which they refuse, rather than copy the current one
    for item in (plain, pinned):
        assert CopyItem.from_wire(json.loads(json.dumps(item.to_wire()))) == item
    with pytest.raises(ContractError, match="version_id must be a non-empty string"):
        CopyItem.from_wire(["k", "d", 3, None, None, ""])


def test_a_move_is_on_the_wire_only_when_it_is_one() -> None:
    assert "delete_source" not in CopyJob("a-bucket", "b-bucket").to_wire()
    moved = CopyJob("a-bucket", "b-bucket", delete_source=True)
    assert CopyJob.from_wire(moved.to_wire()) == moved
    assert contract.outcome_slots(moved, 10) == 20  # each key's source is settled too


def test_a_delete_marker_travels_as_a_seventh_element_that_earlier_workers_refuse() -> None:
    marker = CopyItem("k", "d", 0, None, None, "m1", delete_marker=True)
    wire = marker.to_wire()
    assert wire == ["k", "d", 0, None, None, "m1", True]
    assert CopyItem.from_wire(wire) == marker
    assert len(CopyItem("k", "d", 0, None, None, "v1").to_wire()) == 6  # versions: unchanged
    with pytest.raises(ContractError, match="delete_marker must be true"):
        CopyItem.from_wire(["k", "d", 0, None, None, "m1", False])
