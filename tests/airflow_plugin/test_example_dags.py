"""The example DAGs shipped in the package import without errors (DagBag, as Airflow does)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import airflow_plugin.example_dags

EXAMPLES = Path(airflow_plugin.example_dags.__file__).parent


def dag_bag() -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3.x
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined,unused-ignore]
    try:
        return DagBag(dag_folder=str(EXAMPLES), include_examples=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:  # Airflow 3.x: examples follow [core] load_examples (off in the tests)
        return DagBag(dag_folder=str(EXAMPLES))


def test_example_dags_import_without_errors() -> None:
    bag = dag_bag()
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "example_s3fanout_mapped_prefixes",
        "example_s3fanout_prefix",
        "example_s3fanout_single_object",
    ]


def test_the_mapped_example_feeds_every_summary_to_one_report_task() -> None:
    dag = dag_bag().get_dag("example_s3fanout_mapped_prefixes")
    copy, report = dag.get_task("copy_prefix"), dag.get_task("report")
    assert copy.task_id in report.upstream_task_ids
    assert type(copy).__name__ == "MappedOperator"
