"""Streaming a run's completion report: the rows of each recorded batch, as a CSV shard in S3.

A shard is written after its outcomes are recorded, and only for the outcomes that batch
added (``Recorded.added``): each key's row is written once, by the worker that counted it.
It is written with the identity that writes the destination (the report bucket is usually
the destination account's), retried as a copy is; a shard that cannot be written is logged,
and the manifest's writer reports the rows it is missing (``copy_control.runs.batch_report``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from copy_core.aws.clients import ClientFactory
from copy_core.batch_report import md5, shard_key, streamed_rows, to_csv
from copy_core.classify import classify
from copy_core.contract import CopyJob, KeyOutcome, is_delete_chunk
from copy_workers.retry import KeyRetryPolicy, RetriesExhausted, call_with_retries
from copy_workers.s3.clients import signer_identity

log = logging.getLogger(__name__)


class ReportWriter:
    """Writes the report shards of the batches a worker process records."""

    def __init__(self, clients: ClientFactory, policy: KeyRetryPolicy) -> None:
        self._clients = clients
        self._policy = policy

    def write(
        self, job: CopyJob, run_id: str, chunk_id: str, outcomes: Sequence[KeyOutcome]
    ) -> None:
        """The shards of ``outcomes``, which one batch of chunk ``chunk_id`` recorded."""
        target = job.report
        if target is None or not outcomes:
            return
        bucket = job.dest_bucket if is_delete_chunk(chunk_id) else job.source_bucket
        name = f"{chunk_id}-{min(outcome.index for outcome in outcomes)}"
        # The identity that writes the destination: the report bucket is usually its account's.
        client = self._clients.s3(signer_identity(job), region=target.region)
        for status, rows in streamed_rows(bucket, outcomes, target.scope).items():
            key = shard_key(target, run_id, name, len(rows), status)
            body = to_csv(rows)
            params: dict[str, Any] = {
                "Bucket": target.bucket,
                "Key": key,
                "Body": body,
                "ContentType": "text/csv",
                "Metadata": {"md5": md5(body)},
            }
            try:
                call_with_retries(functools.partial(client.put_object, **params), self._policy)
            except Exception as exc:  # the copies stand; the report says what it lacks
                error = exc.error if isinstance(exc, RetriesExhausted) else classify(exc)
                log.error(
                    "report shard not written",
                    extra={"shard": key, "rows": len(rows), "error_code": error.code},
                )
