"""deploy/k8s/monitoring: the alert rules and the dashboard name only metrics the workers export,
and Prometheus's own promtool accepts them (rules checked and unit-tested, every dashboard
query parsed). Offline: promtool comes from Debian's prometheus package (make system-deps).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from copy_core.runs.census import RunState
from copy_workers import metrics
from copy_workers.pool_metrics import PoolStateCollector
from tests.deploy.artefacts import K8S, find, kustomize_build, load_yaml, venv_tool

MONITORING = K8S / "monitoring"
DASHBOARD = MONITORING / "s3fanout-dashboard.json"
RULE_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yaml"
_METRIC = re.compile(r"\bs3fanout_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        raise RuntimeError("promtool is not installed: run `make system-deps`, which installs it")
    return found


def exported() -> set[str]:
    """Every sample name a worker serves: its own metrics and the pool's state."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = {
        family.name + suffix
        for family in REGISTRY.collect()
        if family.name.startswith("s3fanout_")
        for suffix in suffixes.get(family.type, ("",))
    }
    names.add(metrics.QueueDepthCollector._family().name)
    state = RunState("r", "running", "", 4, 1, 1, 0, 1, 1.0, 1.0, False, 1, 1, 1.0, 1.0, 1.0)
    reading = ({"r": state}, 1, 3, 1, 0)
    for family in PoolStateCollector._families(reading):
        names |= {sample.name for sample in family.samples}
    return names


def rules() -> dict[str, Any]:
    return dict(load_yaml(MONITORING / "prometheusrule.yaml"))


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def rule_queries() -> list[str]:
    return [rule["expr"] for group in rules()["spec"]["groups"] for rule in group["rules"]]


@pytest.mark.parametrize("where", ["dashboard", "rules"])
def test_every_metric_named_is_one_the_workers_export(where: str) -> None:
    queries = dashboard_queries() if where == "dashboard" else rule_queries()
    named = {name for query in queries for name in _METRIC.findall(query)}
    assert named, where
    assert named <= exported(), sorted(named - exported())


def _rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(json.dumps({"groups": rules()["spec"]["groups"]}))  # JSON is YAML
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    checked = _promtool("check", "rules", str(_rules_file(tmp_path)))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_fire_on_what_they_are_for(tmp_path: Path) -> None:
    # promtool's rule unit tests: synthetic series in, alerts out (tests/deploy/promtool/).
    _rules_file(tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = _promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    # Each query as a recording rule: promtool parses it as Prometheus would. Grafana's own
    # variables are given the value Grafana would.
    recorded = [
        {"record": f"dashboard:query_{i}", "expr": query.replace("$__rate_interval", "2m")}
        for i, query in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard.yaml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_is_grafana_json_with_a_datasource_variable() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "s3fanout" and board["panels"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_prod_renders_the_monitoring_component() -> None:
    docs = kustomize_build("prod")
    monitor = find(docs, "ServiceMonitor", "s3fanout-worker")
    service = find(docs, "Service", "s3fanout-worker-metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    board = find(docs, "ConfigMap", "s3fanout-grafana-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["s3fanout-dashboard.json"]) == json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_the_monitoring_objects_match_their_schemas(kind: str, tmp_path: Path) -> None:
    schema = Path(__file__).parent / "schemas" / f"{kind.lower()}.schema.json"
    doc = find(kustomize_build("prod"), kind)
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(doc))
    checked = subprocess.run(
        [venv_tool("check-jsonschema"), "--schemafile", str(schema), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_monitoring_schemas_reject_a_typo(tmp_path: Path) -> None:
    schema = Path(__file__).parent / "schemas" / "servicemonitor.schema.json"
    doc = find(kustomize_build("prod"), "ServiceMonitor")
    doc["spec"]["endpoints"][0]["intervall"] = doc["spec"]["endpoints"][0].pop("interval")
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(doc))
    checked = subprocess.run(
        [venv_tool("check-jsonschema"), "--schemafile", str(schema), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode != 0
