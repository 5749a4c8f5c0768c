"""A real Airflow 3.x deployment for tests: api-server, scheduler, dag-processor and triggerer
as separate processes, LocalExecutor on SQLite, on 127.0.0.1 only.

Unlike ``dag.test()``, where a deferred task's trigger runs inline in one process, a task here
runs in a LocalExecutor process that talks to the api-server's execution API, defers, and is
resumed by the triggerer process, as in a production deployment. State is read from the
metadata database (SQLite, read-only); DAG runs are triggered, cleared and marked failed
through the public REST API, as a user's UI would.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.servers import free_port, stop_process, wait_until

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass
class AirflowDeployment:
    home: Path
    port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str | None = None

    @property
    def database(self) -> Path:
        return self.home / "airflow.db"

    # --- reading state ------------------------------------------------------------------------
    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        uri = f"file:{self.database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return db.execute(sql, args).fetchall()

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        rows = self.query(
            "SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
            dag_id,
            run_id,
            task_id,
        )
        return rows[0][0] if rows else None

    def try_number(self, dag_id: str, run_id: str, task_id: str) -> int:
        rows = self.query(
            "SELECT try_number FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
            dag_id,
            run_id,
            task_id,
        )
        return int(rows[0][0]) if rows else 0

    def trigger_claimed(self, dag_id: str, run_id: str, task_id: str) -> bool:
        """Whether a triggerer has taken the deferred task's trigger (it runs it from then)."""
        rows = self.query(
            "SELECT t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id=? AND ti.run_id=? AND ti.task_id=?",
            dag_id,
            run_id,
            task_id,
        )
        return bool(rows and rows[0][0] is not None)

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id=? AND run_id=?", dag_id, run_id)
        return rows[0][0] if rows else None

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float = 240
    ) -> str:
        seen: list[str | None] = []

        def reached() -> bool:
            seen.append(self.task_state(dag_id, run_id, task_id))
            self.check_alive()
            return seen[-1] in states

        wait_until(reached, timeout, f"{dag_id}.{task_id} in {sorted(states)} (last {seen[-1:]})")
        return str(seen[-1])

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        return self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        )["value"]

    def check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited ({proc.returncode}): {self.log(name)[-3000:]}"
                )

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    # --- acting as a user ---------------------------------------------------------------------
    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token()}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            raw = response.read()
        return json.loads(raw) if raw else None

    def token(self) -> str:
        if self._token is None:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/auth/token", method="GET"
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                self._token = str(json.loads(response.read())["access_token"])
        return self._token

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        body = {"logical_date": None, "conf": dict(conf or {})}
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", body)["dag_run_id"])

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> None:
        self.api(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            {"new_state": state},
        )

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> None:
        self.api(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            {"dag_run_id": run_id, "task_ids": [task_id], "dry_run": False, "only_failed": False},
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        def parsed() -> bool:
            self.check_alive()
            return bool(self.query("SELECT 1 FROM dag WHERE dag_id=?", dag_id))

        wait_until(parsed, timeout, f"the dag-processor to parse {dag_id}", every=0.5)


def airflow_env(home: Path, dags: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment every component (and the tasks they run) shares."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "s3fanout-test-jwt-secret-of-some-length",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


@contextlib.contextmanager
def airflow_deployment(
    home: Path, dags: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[AirflowDeployment]:
    """Migrate a fresh metadata database, start the four components, stop them all after."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = airflow_env(home, dags, port, extra_env or {})
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run(
        [airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    deployment = AirflowDeployment(home, port)
    try:
        for name in COMPONENTS:
            log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - as long as the process
            args = [airflow, name] + (["--port", str(port)] if name == "api-server" else [])
            deployment.processes[name] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(_answers(port), 120, "the api-server", every=0.5)
        yield deployment
    finally:
        for proc in deployment.processes.values():
            stop_process(proc)
        for proc in deployment.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)  # the task processes LocalExecutor started


def _answers(port: int) -> Any:
    def check() -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5
        ) as r:
            return bool(r.status == 200)

    return check
