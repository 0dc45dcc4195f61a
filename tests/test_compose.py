"""docker-compose.yml, as docker-compose itself reads it."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Services that run nameko and may be scaled with --scale.
NAMEKO_SERVICES = ("auth", "audit", "training", "reviews", "notify", "gateway")
# Services that own a database.
DATA_SERVICES = ("auth", "audit", "training", "reviews", "notify")


def _compose_config(**env: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed (make test installs it)")
    return subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file after docker-compose resolved it, with JWT_SECRET set."""
    result = _compose_config(JWT_SECRET="test-secret")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_every_part_of_the_platform_is_a_service(compose: dict[str, Any]) -> None:
    """RabbitMQ, PostgreSQL, the migration, auth and the gateway are defined."""
    assert set(compose["services"]) >= {
        "rabbitmq",
        "postgres",
        "migrate",
        *NAMEKO_SERVICES,
    }


def test_the_jwt_secret_has_no_default() -> None:
    """Without JWT_SECRET in the environment docker-compose refuses the file."""
    env = {key: value for key, value in os.environ.items() if key != "JWT_SECRET"}
    result = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("rabbitmq", "rabbitmq-diagnostics"),
        ("postgres", "pg_isready"),
        ("auth", "rpc_ping.py"),
        ("audit", "rpc_ping.py"),
        ("training", "rpc_ping.py"),
        ("reviews", "rpc_ping.py"),
        ("notify", "rpc_ping.py"),
        ("gateway", "/health"),
    ],
)
def test_long_running_services_have_healthchecks(
    compose: dict[str, Any], service: str, probe: str
) -> None:
    """Each long-running service says how to tell it is healthy."""
    test = compose["services"][service]["healthcheck"]["test"]

    assert any(probe in part for part in test)


def test_services_start_in_order_of_health(compose: dict[str, Any]) -> None:
    """Nothing starts before what it needs is healthy (or, for migrate, done)."""
    services = compose["services"]

    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "rabbitmq": {"condition": "service_healthy"},
    }
    for service in DATA_SERVICES:
        assert services[service]["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }
    assert services["gateway"]["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        **{name: {"condition": "service_healthy"} for name in DATA_SERVICES},
    }


def test_the_migration_runs_the_migrate_module(compose: dict[str, Any]) -> None:
    """The one-shot migration is ``python -m scripts.migrate``."""
    migrate = compose["services"]["migrate"]

    assert migrate["command"] == ["python", "-m", "scripts.migrate"]
    assert migrate["restart"] == "no"
    assert (ROOT / "scripts" / "migrate.py").exists()


@pytest.mark.parametrize("service", NAMEKO_SERVICES)
def test_nameko_services_can_be_scaled(compose: dict[str, Any], service: str) -> None:
    """No container_name and no fixed host port, so --scale works."""
    definition = compose["services"][service]

    assert "container_name" not in definition
    for port in definition.get("ports", []):
        published = str(port.get("published", ""))
        assert published == "" or "-" in published, f"fixed host port {published}"


def test_only_the_gateway_publishes_a_port(compose: dict[str, Any]) -> None:
    """The broker, the database and the services are reachable only inside."""
    publishing = {name for name, s in compose["services"].items() if s.get("ports")}

    assert publishing == {"gateway"}


def _runner_modules() -> dict[str, str]:
    """``PROCESS_MODULES`` of the local runner (scripts/processes.py), read
    from its source since ``scripts`` is not an installed package."""
    source = (ROOT / "scripts" / "processes.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [
            getattr(t, "id", None) for t in node.targets
        ] == ["PROCESS_MODULES"]:
            return ast.literal_eval(node.value)
    raise AssertionError("scripts/processes.py has no PROCESS_MODULES")


def _service_name_of(target: str) -> str:
    """The ``name`` of the nameko class a ``module:Class`` target names."""
    module, class_name = target.split(":")
    path = ROOT / Path(*module.split(".")).with_suffix(".py")
    assert path.exists(), f"{module} has no source file"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for statement in node.body:
                if (
                    isinstance(statement, ast.Assign)
                    and [getattr(t, "id", None) for t in statement.targets] == ["name"]
                    and isinstance(statement.value, ast.Constant)
                ):
                    return statement.value.value
    raise AssertionError(f"{target} is not a class with a nameko name")


@pytest.mark.parametrize("service", NAMEKO_SERVICES)
def test_each_service_runs_its_nameko_module_like_the_local_runner(
    compose: dict[str, Any], service: str
) -> None:
    """The container command is the local runner's, and names a module that
    defines the nameko service of that name."""
    definition = compose["services"][service]
    module = _runner_modules()[service]

    assert definition["command"] == ["nameko", "run", "--config", "config.yml", module]
    assert _service_name_of(module) == service


@pytest.mark.parametrize("service", NAMEKO_SERVICES)
def test_services_get_their_settings_from_the_environment(
    compose: dict[str, Any], service: str
) -> None:
    """Broker, secret and JSON logs are set; each data service gets its database."""
    env = compose["services"][service]["environment"]

    assert env["AMQP_URI"].startswith("amqp://")
    assert env["JWT_SECRET"] == "test-secret"
    assert env["LOG_FORMAT"] == "json"
    if service in DATA_SERVICES:
        url = env[f"{service.upper()}_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg2://")
        assert url.endswith(f"@postgres:5432/{service}")


def test_notify_mails_the_catcher_unless_told_otherwise() -> None:
    """By default notify sends to the mailsink service, which runs the
    local runner's mail catcher; NOTIFY_SMTP_HOST points it elsewhere."""
    services = yaml.safe_load(_compose_config(JWT_SECRET="x").stdout)["services"]
    assert services["notify"]["environment"]["NOTIFY_SMTP_HOST"] == "mailsink"
    assert services["mailsink"]["command"][:3] == ["python", "-m", "scripts.mail_sink"]
    relayed = _compose_config(JWT_SECRET="x", NOTIFY_SMTP_HOST="smtp.example.org")
    notify = yaml.safe_load(relayed.stdout)["services"]["notify"]
    assert notify["environment"]["NOTIFY_SMTP_HOST"] == "smtp.example.org"


def test_postgres_takes_as_many_connections_as_the_services_may_open(
    compose: dict[str, Any],
) -> None:
    """At scale one, every data service's pool at its fullest fits within
    PostgreSQL's max_connections, so no worker meets 'too many clients'."""
    services = compose["services"]
    command = services["postgres"]["command"]
    [limit] = [int(arg.split("=")[1]) for arg in command if "max_connections=" in arg]
    most = 0
    for service in DATA_SERVICES:
        env = services[service]["environment"]
        most += int(env["DB_POOL_SIZE"]) + int(env["DB_MAX_OVERFLOW"])
    assert most <= limit


def test_the_postgres_init_script_creates_a_database_per_service() -> None:
    """One database for each service, made when the data volume is new."""
    script = (ROOT / "docker" / "postgres" / "01-databases.sql").read_text()

    for service in ("auth", "training", "reviews", "notify", "audit"):
        assert f"CREATE DATABASE {service};" in script


def test_the_image_installs_the_project_and_runs_as_a_user() -> None:
    """The Dockerfile builds on python:3.11-slim, pip installs ., drops root."""
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile
    assert "\nUSER " in dockerfile
