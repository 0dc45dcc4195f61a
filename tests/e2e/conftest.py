"""The platform as separate processes, started the way ``make run`` starts it,
on a fresh RabbitMQ vhost and fresh PostgreSQL databases, seeded with the
demo trust."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from scripts.processes import ROOT, Platform, platform_env
from tests.conftest import copy_database, drop_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def e2e_vhost(rabbit_manager: Any) -> Iterator[str]:
    vhost = f"cpd_e2e_{uuid.uuid4().hex[:10]}"
    rabbit_manager.create_vhost(vhost)
    rabbit_manager.set_vhost_permissions(vhost, "guest", ".*", ".*", ".*")
    yield vhost
    rabbit_manager.delete_vhost(vhost)


@pytest.fixture(scope="module")
def platform(
    e2e_vhost: str, database_templates: Any, tmp_path_factory: Any
) -> Iterator[Platform]:
    """auth and the gateway running, the demo trust seeded."""
    data_dir: Path = tmp_path_factory.mktemp("e2e-data")
    name, auth_url = copy_database(database_templates("auth"), "auth")
    audit_name, audit_url = copy_database(database_templates("audit"), "audit")
    databases = {
        service: copy_database(database_templates(service), service)
        for service in ("training", "reviews", "notify")
    }
    smtp_port = free_port()
    env = platform_env(
        {
            "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{e2e_vhost}",
            "AUTH_DATABASE_URL": auth_url,
            "AUDIT_DATABASE_URL": audit_url,
            **{
                f"{service.upper()}_DATABASE_URL": url
                for service, (_, url) in databases.items()
            },
            "JWT_SECRET": uuid.uuid4().hex,
            "GATEWAY_ADDRESS": f"127.0.0.1:{free_port()}",
            "DATA_DIR": str(data_dir),
            "LOG_FORMAT": "json",
            "RPC_TIMEOUT": "5",
            # Notify mails the catcher started below, as make run does.
            "NOTIFY_SMTP_PORT": str(smtp_port),
            "NOTIFY_MAIL_POLL_SECONDS": "0.2",
            "NOTIFY_TIMER_SECONDS": "2",
            # Real cost: the seed and every login hash at bcrypt cost 12.
            "BCRYPT_ROUNDS": "12",
        }
    )
    # The set-up step, as make run does it: the databases are migrated copies
    # already, and this declares every event queue before the seed publishes.
    subprocess.run(
        [sys.executable, "-m", "scripts.migrate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "scripts.seed", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    platform = Platform(env=env, log_dir=data_dir / "logs")
    platform.credentials = {  # type: ignore[attr-defined]
        entry["username"]: entry["password"]
        for entry in json.loads(seeded.stdout.strip().splitlines()[-1])
    }
    platform.mail_folder = data_dir / "mail"  # type: ignore[attr-defined]
    platform.start_mail_sink(data_dir / "mail", smtp_port)
    platform.start()
    try:
        platform.wait_ready(timeout=60)
        yield platform
    finally:
        platform.stop()
        drop_database(name)
        drop_database(audit_name)
        for db_name, _ in databases.values():
            drop_database(db_name)


class Client:
    """A logged-in API client."""

    def __init__(self, platform: Platform, username: str) -> None:
        self.base = f"{platform.base_url}/api/v1"
        self.http = requests.Session()
        password = platform.credentials[username]  # type: ignore[attr-defined]
        response = self.http.post(
            f"{self.base}/auth/login",
            json={"username": username, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        self.tokens = response.json()
        self.http.cookies.clear()
        self.http.headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
        self.user = self.tokens["user"]

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(f"{self.base}{path}", timeout=10, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(f"{self.base}{path}", timeout=10, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.patch(f"{self.base}{path}", timeout=10, **kwargs)


@pytest.fixture(scope="module")
def login(platform: Platform) -> Any:
    def make(username: str) -> Client:
        return Client(platform, username)

    return make
