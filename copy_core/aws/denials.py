"""AccessDenied, explained: who was denied what on which bucket, and which policy to fix.

S3 answers a denied request with little more than "Access Denied". Cross-account copies involve
up to five policies (the source bucket policy, the copying role's identity policy, the
destination bucket policy, KMS key policies, the role's trust policy), and the useful message
names the one that most likely lacks the permission.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a server-side copy (CopyObject, UploadPartCopy) asks of the one principal that signs it.
COPY_ACTION = "s3:GetObject on the source and s3:PutObject on the destination"


@dataclass(frozen=True)
class Denied:
    """A denied S3 action, as the copier saw it."""

    principal: str
    action: str  # e.g. "s3:GetObject"
    bucket: str
    key: str | None
    side: str  # "source", "destination", or "both" (a server-side copy reads and writes)
    s3_message: str = ""

    @property
    def resource(self) -> str:
        suffix = f"/{self.key}" if self.key is not None else ""
        return f"arn:aws:s3:::{self.bucket}{suffix}"


def explain(denied: Denied) -> str:
    """One message: the principal, the action, the resource and the policy to look at."""
    head = f"{denied.principal} was denied {denied.action} on {denied.resource}" + (
        f" ({denied.s3_message})" if denied.s3_message else ""
    )
    payer = _REQUESTER_PAYS if denied.side != "destination" else ""
    return f"{head}. {_likely_policy(denied)}{payer}"


_REQUESTER_PAYS = (
    " If the source bucket is a requester-pays bucket, every request must say so: pass "
    "--request-payer requester (operator: request_payer='requester')."
)


def _likely_policy(denied: Denied) -> str:
    if denied.side == "both":
        return (
            f"A server-side copy is signed by one principal: {denied.principal} needs "
            f"s3:GetObject (and s3:GetObjectTagging to copy tags) on the source, granted by the "
            f"source bucket policy of {denied.bucket}, and s3:PutObject (and "
            f"s3:PutObjectTagging) on the destination, granted by its own IAM policy. If the "
            f"source account cannot grant that, use copy_mode 'stream' or 'auto' with both "
            f"roles (see deploy/iam/)."
        )
    if "kms" in denied.s3_message.lower():
        action = "kms:Decrypt" if denied.side == "source" else "kms:GenerateDataKey"
        return (
            f"The object's KMS key is the likely cause: the {denied.side} KMS key policy must "
            f"allow {action} for {denied.principal}."
        )
    if denied.side == "source":
        return (
            f"Most likely missing from the source bucket policy of {denied.bucket}: it must "
            f"grant {denied.action} to {denied.principal} (the role's own IAM policy must allow "
            f"it too; see deploy/iam/source-bucket-policy.json)."
        )
    return (
        f"Most likely missing from the identity policy of {denied.principal} in the "
        f"destination account: it must allow {denied.action} on {denied.resource} "
        f"(see deploy/iam/copier-role-policy.json); if {denied.bucket} belongs to another "
        f"account, its bucket policy must grant it as well."
    )
