"""Read the deploy artefacts as data: YAML, kustomize builds, Dockerfiles, docker-compose.yml.

Everything here works offline. Rendering a kustomization needs ``kubectl`` (its built-in
kustomize); a test that needs a rendering is skipped, with the reason, where kubectl is missing.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
COMPOSE_FILE = REPO / "docker-compose.yml"
WORKER_DOCKERFILE = DEPLOY / "docker" / "worker.Dockerfile"
AIRFLOW_DOCKERFILE = DEPLOY / "docker" / "airflow.Dockerfile"
REDIS_CONF = BASE / "redis.conf"
KUSTOMIZATIONS = {
    "base": BASE,
    "dev": K8S / "overlays" / "dev",
    "prod": K8S / "overlays" / "prod",
}
# Kinds that kubernetes-validate has no schema for; test_keda.py and test_monitoring.py check them.
CRD_KINDS = frozenset({"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"})
WORKER = "s3fanout-worker"
REDIS = "s3fanout-redis"

Doc = dict[str, Any]


_MISSING_SCHEMA = re.compile(r"Couldn't find schema for kind (\w+)")


def venv_tool(name: str) -> str:
    """A console script of the test environment (the venv's bin), or the test is skipped."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (a dev dependency)")
    return str(path)


def kubernetes_validate(paths: list[Path]) -> None:
    """``kubernetes-validate --strict -k 1.29``: errors fail, and so does any kind it cannot
    check except our CRDs (a typo in an apiVersion would otherwise pass with a warning)."""
    result = subprocess.run(
        [venv_tool("kubernetes-validate"), "--strict", "-k", "1.29", "--quiet", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ERROR" not in output, output
    assert set(_MISSING_SCHEMA.findall(output)) <= CRD_KINDS, output


# --- YAML --------------------------------------------------------------------------------------
def load_yaml_docs(text: str) -> list[Doc]:
    """Every non-empty document of a YAML stream (merge keys resolved)."""
    return copy.deepcopy(_parse_yaml(text))


@functools.lru_cache(maxsize=64)
def _parse_yaml(text: str) -> list[Doc]:
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc]


def load_yaml(path: Path) -> Doc:
    docs = load_yaml_docs(path.read_text(encoding="utf-8"))
    assert len(docs) == 1, f"{path} should hold one YAML document"
    return docs[0]


def manifest_files() -> list[Path]:
    """Every Kubernetes manifest under deploy/k8s (kustomization files are not manifests)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomization_files() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of ``kind`` (and ``name``) in ``docs``."""
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(docs: list[Doc]) -> set[str]:
    return {d["kind"] for d in docs}


def pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def container(workload: Doc, name: str | None = None) -> Doc:
    containers: list[Doc] = pod_spec(workload)["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def base_docs() -> list[Doc]:
    """The base's resource files as written (no kustomize: generators and patches not applied)."""
    kustomization = load_yaml(BASE / "kustomization.yaml")
    return [load_yaml(BASE / name) for name in kustomization["resources"]]


def generator_literals(kustomization: Path, name: str) -> dict[str, str]:
    """``KEY=VALUE`` literals of one configMapGenerator entry of a kustomization file."""
    for entry in load_yaml(kustomization).get("configMapGenerator", []):
        if entry["name"] == name:
            return dict(item.split("=", 1) for item in entry.get("literals", []))
    return {}


@functools.cache
def _render(path: Path) -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip(
            "kubectl is not installed: kustomize builds are rendered with `kubectl kustomize` "
            "(offline). The per-file checks still ran."
        )
    result = subprocess.run(
        [binary, "kustomize", str(path)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, f"kubectl kustomize {path} failed:\n{result.stderr}"
    return result.stdout


def kustomize_build(name: str) -> list[Doc]:
    """The rendered documents of ``base``, ``dev`` or ``prod`` (a fresh copy each call)."""
    return load_yaml_docs(_render(KUSTOMIZATIONS[name]))


def rendered_text(name: str) -> str:
    return _render(KUSTOMIZATIONS[name])


# --- docker-compose.yml --------------------------------------------------------------------------
_COMPOSE_VAR = re.compile(r"\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def interpolate(value: Any) -> Any:
    """Compose's variable interpolation with no variables set: defaults, and ``$$`` -> ``$``."""
    if isinstance(value, str):
        return _COMPOSE_VAR.sub(lambda m: "$" if m[0] == "$$" else (m[2] or ""), value)
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    return value


def compose() -> Doc:
    """docker-compose.yml as compose runs it when no variable is set."""
    data: Doc = interpolate(load_yaml(COMPOSE_FILE))
    return data


def compose_env(service: Doc) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


# --- Dockerfiles ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined and comments dropped."""

    keyword: str
    args: str

    def json(self) -> list[str]:
        """The exec form (``["a", "b"]``) of CMD, ENTRYPOINT and the like."""
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} should use the exec (JSON) form"
        return [str(item) for item in value]


def parse_dockerfile(path: Path) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return instructions


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """Defaults of the ARGs declared before the first FROM (the ones FROM lines can use)."""
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, value = instruction.args.split("=", 1)
            defaults[name] = value
    return defaults


def substitute(text: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m[1] or m[2]], text)


def stages(instructions: list[Instruction]) -> Iterator[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    current: list[Instruction] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            if current and current[0].keyword == "FROM":
                yield current
            current = []
        current.append(instruction)
    if current and current[0].keyword == "FROM":
        yield current


def final_stage(path: Path) -> list[Instruction]:
    return list(stages(parse_dockerfile(path)))[-1]


def last(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert found, f"no {keyword} in the stage"
    return found[-1]


def labels(stage: list[Instruction]) -> dict[str, str]:
    """LABEL key="value" pairs of a stage, ARG defaults of that stage substituted."""
    args = dict(i.args.split("=", 1) for i in stage if i.keyword == "ARG" and "=" in i.args)
    found: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "LABEL":
            for key, value in re.findall(r'([\w.-]+)="([^"]*)"', instruction.args):
                found[key] = substitute(value, args)
    return found
