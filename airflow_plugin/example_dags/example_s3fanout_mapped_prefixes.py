"""Example DAG: copy several prefixes at once (dynamic task mapping), then sum the results.

Each mapped task instance drives its own run (its run id comes from the map index) and
returns its summary; the downstream task reads all of them from XCom and combines them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow_plugin.compat import DAG, task
from airflow_plugin.operators import S3CrossAccountCopyOperator
from airflow_plugin.summaries import combine_summaries

log = logging.getLogger(__name__)
PREFIXES = ["events/2026/11/01/", "events/2026/11/02/", "events/2026/11/03/"]

with DAG(
    dag_id="example_s3fanout_mapped_prefixes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "s3fanout"],
) as dag:
    copies = S3CrossAccountCopyOperator.partial(
        task_id="copy_prefix",
        source_bucket="prod-events",
        dest_bucket="analytics-landing",
        redis_conn_id="s3fanout_redis",
        max_failures=0,
        deferrable=True,
    ).expand_kwargs(
        # One source prefix and its destination prefix per mapped task instance. With one
        # shared destination, .expand(source_prefix=PREFIXES) is enough.
        [{"source_prefix": prefix, "dest_prefix": f"replica/{prefix}"} for prefix in PREFIXES]
    )

    @task
    def report(summaries: Any) -> dict[str, Any]:
        """One line for all prefixes: objects and bytes copied, failures, runs per status."""
        totals = combine_summaries(summaries)
        log.info(
            "%d runs %s: %d objects, %d bytes copied, %d failed",
            totals["runs"],
            totals["statuses"],
            totals["objects_copied"],
            totals["bytes_copied"],
            totals["objects_failed"],
        )
        return totals

    report(copies.output)
