"""Dependency providers of the auth service: the edges tests may replace."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nameko.extensions import DependencyProvider

from plumbing import config


def write_to_mailbox(
    mailbox: Path, recipient: dict[str, Any], code: str, expires_at: datetime
) -> Path:
    """Write the reset message to ``<mailbox>/<user_id>.txt``, readable by the
    owner only, replacing any earlier message."""
    mailbox.mkdir(parents=True, exist_ok=True)
    mailbox.chmod(0o700)
    path = mailbox / f"{recipient['user_id']}.txt"
    text = (
        f"To: {recipient['email']}\n"
        "Subject: Your password reset code\n\n"
        f"Hello {recipient['given_name']},\n\n"
        f"Your code to reset the password of {recipient['username']} is:\n\n"
        f"    {code}\n\n"
        f"It works once, until {expires_at.isoformat()}.\n"
        "If you did not ask for it, ignore this message.\n"
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path


class ResetCodeDelivery(DependencyProvider):
    """Gives ``self.deliver_reset_code(recipient, code, expires_at)``.

    Until the notify service sends email, the message goes to a file under
    ``DATA_DIR/mailbox`` (container config ``DATA_DIR`` or the environment),
    where a developer or an end-to-end test reads it. Tests of the container
    may swap it with nameko's ``replace_dependencies``.
    """

    def setup(self) -> None:
        data_dir = self.container.config.get("DATA_DIR")
        base = Path(data_dir) if data_dir else config.data_dir()
        self.mailbox = base / "mailbox"

    def get_dependency(self, worker_ctx: Any) -> Any:
        def deliver(recipient: dict[str, Any], code: str, expires_at: datetime) -> None:
            write_to_mailbox(self.mailbox, recipient, code, expires_at)

        return deliver


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it to move
    time forward (session expiry, lockouts, code expiry)."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now


class JwtSecret(DependencyProvider):
    """Gives ``self.jwt_secret``: container config ``JWT_SECRET``, else
    :func:`plumbing.config.jwt_secret`."""

    def setup(self) -> None:
        self.secret = self.container.config.get("JWT_SECRET") or config.jwt_secret()

    def get_dependency(self, worker_ctx: Any) -> str:
        return self.secret
