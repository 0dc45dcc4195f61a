"""Configuration from environment variables, with defaults that work on a
laptop: the local RabbitMQ and one SQLite file per service under ``DATA_DIR``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"

SERVICES = ("auth", "training", "reviews", "notify", "audit")


def setting(
    key: str,
    kind: Callable[[str], T],
    default: T,
    container_config: Mapping[str, Any] | None = None,
) -> T:
    """``key`` from a nameko container config, else the environment, else
    ``default``, converted by ``kind``; a value it cannot convert is a
    ValueError that names the setting."""
    raw = (container_config or {}).get(key)
    if raw is None:
        raw = os.environ.get(key)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", "value")
        raise ValueError(f"{key} must be a {name}, not {raw!r}") from None


def amqp_uri() -> str:
    return os.environ.get("AMQP_URI", DEFAULT_AMQP_URI)


def data_dir() -> Path:
    path = Path(os.environ.get("DATA_DIR", "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(service: str) -> str:
    """The database of one service: ``<SERVICE>_DATABASE_URL`` or a SQLite file."""
    url = os.environ.get(f"{service.upper()}_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{(data_dir() / f'{service}.sqlite3').resolve()}"


def db_pool() -> tuple[int, int]:
    """How many PostgreSQL connections one service process keeps open
    (``DB_POOL_SIZE``, 10) and may open beyond them while busy
    (``DB_MAX_OVERFLOW``, 40). PostgreSQL's ``max_connections`` must cover
    their sum over every service process; a worker that finds the pool
    full waits for a connection rather than failing."""
    found = []
    for key, default, lowest in (("DB_POOL_SIZE", 10, 1), ("DB_MAX_OVERFLOW", 40, 0)):
        value = setting(key, int, default)
        if value < lowest:
            raise ValueError(f"{key} must be at least {lowest}")
        found.append(value)
    return found[0], found[1]


def rpc_timeout() -> float:
    """Seconds an RPC from one service to another may take before it fails."""
    return float(os.environ.get("RPC_TIMEOUT", "10"))


def gateway_address() -> str:
    """``host:port`` the gateway listens on (``GATEWAY_ADDRESS``)."""
    return os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:8000")


def log_format() -> str:
    """``json`` in containers, ``console`` in development."""
    return os.environ.get("LOG_FORMAT", "console")


def jwt_secret() -> str:
    """The key that signs access tokens, shared by auth and every gateway.

    Production sets ``JWT_SECRET``. On a laptop a random key is made once and
    kept in the data folder so that restarts keep sessions valid.
    """
    secret = os.environ.get("JWT_SECRET")
    if secret:
        return secret
    path = data_dir() / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def nameko_config(**extra: object) -> dict[str, object]:
    """The nameko container config used by every service process."""
    config: dict[str, object] = {
        "AMQP_URI": amqp_uri(),
        "max_workers": int(os.environ.get("MAX_WORKERS", "32")),
        "PARENT_CALLS_TRACKED": 10,
        "serializer": "json",
    }
    config.update(extra)
    return config
