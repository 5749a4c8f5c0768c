"""OpenLineage datasets of a copy, named as the amazon provider's S3 copy operators name them.

Input: ``s3://<source bucket>`` with the source key or prefix; output: ``s3://<dest bucket>``
with the destination key or prefix ("/" stands for a whole bucket).
"""

from __future__ import annotations

from typing import Any

from airflow_plugin.compat import openlineage_classes
from airflow_plugin.locations import Locations
from copy_control.errors import InvalidRequest
from copy_control.request import CopyRequest


def dataset_names(loc: Locations) -> tuple[tuple[str, str], tuple[str, str]]:
    """``((namespace, name) of the input, (namespace, name) of the output)``."""
    source = (f"s3://{loc.source_bucket}", loc.source_name)
    if loc.source_key is not None:
        request = CopyRequest(
            loc.source_bucket,
            loc.dest_bucket,
            source_key=loc.source_key,
            dest_key=loc.dest_key,
            dest_prefix=loc.dest_prefix,
        )
        dest_name = request.dest_for(loc.source_key)
    else:
        dest_name = loc.dest_prefix or "/"
    return source, (f"s3://{loc.dest_bucket}", dest_name)


def operator_lineage(loc: Locations | None) -> Any:
    """An OperatorLineage, or None when the OpenLineage provider is not installed.

    Lineage is best effort: locations that do not resolve give a lineage without datasets
    (the task itself reports the error).
    """
    classes = openlineage_classes()
    if classes is None:
        return None
    dataset, operator_lineage_cls = classes
    if loc is None:
        return operator_lineage_cls()
    try:
        source, dest = dataset_names(loc)
    except InvalidRequest:
        return operator_lineage_cls()
    return operator_lineage_cls(
        inputs=[dataset(namespace=source[0], name=source[1])],
        outputs=[dataset(namespace=dest[0], name=dest[1])],
    )
