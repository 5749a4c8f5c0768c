"""The IAM templates in deploy/iam grant what the copier's S3 calls need, and no more roles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

IAM = Path(__file__).resolve().parents[1] / "deploy" / "iam"
REPO = Path(__file__).resolve().parents[1]
CODE = (REPO / "copy_workers", REPO / "copy_core")

# Every S3 operation the worker calls, and the IAM action it needs.
OPERATIONS = {
    "copy_object": "s3:PutObject",
    "create_multipart_upload": "s3:PutObject",
    "upload_part_copy": "s3:PutObject",
    "upload_part": "s3:PutObject",
    "complete_multipart_upload": "s3:PutObject",
    "put_object": "s3:PutObject",
    "abort_multipart_upload": "s3:AbortMultipartUpload",
    "head_object": "s3:GetObject",
    "get_object": "s3:GetObject",
    "get_object_tagging": "s3:GetObjectTagging",
    "delete_object": "s3:DeleteObject",
    "delete_objects": "s3:DeleteObject",
}
WRITES = {"s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"}


def _actions(policy: str) -> set[str]:
    statements = json.loads((IAM / policy).read_text())["Statement"]
    found: set[str] = set()
    for statement in statements:
        actions = statement["Action"]
        found |= {actions} if isinstance(actions, str) else set(actions)
    return found


@pytest.mark.parametrize("path", sorted(IAM.glob("*.json")), ids=lambda p: p.name)
def test_every_template_is_json_with_placeholders(path: Path) -> None:
    text = path.read_text()
    json.loads(text)
    assert "123456789012" not in text
    assert re.search(r"\$\{[A-Z_]+\}", text) or path.name == "dest-bucket-lifecycle.json"


def test_the_operations_listed_are_the_ones_the_code_calls() -> None:
    source = "\n".join(p.read_text() for package in CODE for p in package.rglob("*.py"))
    called = set(re.findall(r"client\.([a-z_]+)\b", source)) & set(OPERATIONS) | {
        op for op in OPERATIONS if f".{op}" in source
    }
    assert called == set(OPERATIONS)


def test_server_side_copier_role_can_do_everything() -> None:
    assert set(OPERATIONS.values()) | {"s3:ListBucket", "s3:PutObjectTagging"} <= _actions(
        "copier-role-policy.json"
    )


def test_stream_roles_split_reading_from_writing() -> None:
    reader, writer = (
        _actions("source-reader-role-policy.json"),
        _actions("dest-writer-role-policy.json"),
    )
    assert {"s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging"} <= reader
    assert not reader & WRITES, "the source reader must not be able to write"
    assert WRITES | {"s3:PutObjectTagging"} <= writer
    # The writer lists only its own bucket (a sync's destination listing), never the source.
    statements = json.loads((IAM / "dest-writer-role-policy.json").read_text())["Statement"]
    listing = [st for st in statements if "s3:ListBucket" in st["Action"]]
    assert [st["Resource"] for st in listing] == ["arn:aws:s3:::${DEST_BUCKET}"]


def test_trust_policy_requires_the_external_id() -> None:
    statement = json.loads((IAM / "trust-policy.json").read_text())["Statement"][0]
    assert statement["Condition"]["StringEquals"]["sts:ExternalId"] == "${EXTERNAL_ID}"
    assert statement["Action"] == "sts:AssumeRole"
