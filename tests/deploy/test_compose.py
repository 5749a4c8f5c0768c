"""docker-compose.yml: compose-spec valid, loopback only, healthy, AOF, keys for local moto only."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.artefacts import (
    AIRFLOW_DOCKERFILE,
    COMPOSE_FILE,
    REDIS_CONF,
    REPO,
    WORKER_DOCKERFILE,
    compose,
    compose_env,
    venv_tool,
)

MOTO_ENDPOINT = "http://s3:5000"


def test_the_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run(
        [
            venv_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stack_has_redis_s3_a_worker_and_airflow() -> None:
    assert set(compose()["services"]) == {"redis", "s3", "worker", "airflow"}


def test_every_published_port_is_bound_to_loopback() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not loopback-only"


def test_every_service_has_a_health_check_and_dependents_wait_for_it() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], f"{name} has no health check"
    for name in ("worker", "airflow"):
        for dependency, condition in services[name]["depends_on"].items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"


def test_redis_uses_the_shared_config_with_aof_and_a_password() -> None:
    redis = compose()["services"]["redis"]
    script = redis["command"][-1]
    assert script.startswith("exec redis-server /etc/redis/redis.conf - <<EOF\n")
    assert "requirepass $REDIS_PASSWORD" in script
    assert compose_env(redis)["REDIS_PASSWORD"]
    assert "./deploy/k8s/base/redis.conf:/etc/redis/redis.conf:ro" in redis["volumes"]
    conf = REDIS_CONF.read_text(encoding="utf-8")
    assert re.search(r"^appendonly yes$", conf, re.M)
    assert re.search(r"^appendfsync everysec$", conf, re.M)


def test_clients_reach_redis_with_its_password() -> None:
    services = compose()["services"]
    password = compose_env(services["redis"])["REDIS_PASSWORD"]
    expected = f"redis://:{password}@redis:6379/0"
    assert compose_env(services["worker"])["S3FANOUT_REDIS_URL"] == expected
    assert compose_env(services["airflow"])["DEMO_REDIS_URL"] == expected


def test_the_worker_and_airflow_are_built_from_the_deploy_dockerfiles() -> None:
    services = compose()["services"]
    assert services["worker"]["build"]["dockerfile"] == str(WORKER_DOCKERFILE.relative_to(REPO))
    assert services["airflow"]["build"]["dockerfile"] == str(AIRFLOW_DOCKERFILE.relative_to(REPO))
    assert services["airflow"]["command"] == "standalone"
    assert "./demo/dags:/opt/airflow/dags:ro" in services["airflow"]["volumes"]
    assert (REPO / "demo" / "dags" / "s3fanout_demo.py").exists()


def test_the_worker_container_is_locked_down() -> None:
    worker = compose()["services"]["worker"]
    assert worker["read_only"] is True
    assert worker["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in worker["security_opt"]
    assert worker["stop_signal"] == "SIGTERM"


def test_aws_keys_appear_only_for_the_local_moto_endpoint() -> None:
    # The single exception to "no access keys in deploy artefacts": dummy values for moto.
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert text.count("AWS_ACCESS_KEY_ID") == 1
    assert text.count("AWS_SECRET_ACCESS_KEY") == 1
    for name, service in compose()["services"].items():
        env = compose_env(service)
        if "AWS_ACCESS_KEY_ID" in env or "AWS_SECRET_ACCESS_KEY" in env:
            assert env["AWS_ENDPOINT_URL"] == MOTO_ENDPOINT, name
            assert env["AWS_ACCESS_KEY_ID"] == "local-moto-only", name
            assert env["AWS_SECRET_ACCESS_KEY"] == "local-moto-only", name
