"""The notify service's settings: container config first, then the
environment, then a default that suits a laptop running ``make run``.

=============================  ==========================================
``NOTIFY_SMTP_HOST``/``PORT``  the SMTP server (``127.0.0.1``/``8025``)
``NOTIFY_SMTP_TLS``            ``none``, ``starttls`` or ``ssl`` (``none``)
``NOTIFY_SMTP_USERNAME``       with ``NOTIFY_SMTP_PASSWORD``: log in first
``NOTIFY_SMTP_TIMEOUT``        seconds for one SMTP conversation (``30``)
``NOTIFY_SMTP_CA_FILE``        CA certificates to trust for TLS (else the
                               system's)
``NOTIFY_FROM``                the From header
``NOTIFY_APP_URL``             the address people sign in at, in messages
``NOTIFY_EMAILS_PER_HOUR``     per recipient; beyond it, email is held back
``NOTIFY_RESETS_PER_HOUR``     reset codes per recipient per hour
``NOTIFY_MAX_ATTEMPTS``        attempts before an email is marked failed
``NOTIFY_RETRY_SECONDS``       first retry delay, doubled each time
``NOTIFY_RETRY_MAX_SECONDS``   the longest delay between two attempts
``NOTIFY_MAIL_POLL_SECONDS``   how often the mailer looks for due email
``NOTIFY_TIMER_SECONDS``       how often reminders and digests are checked
``NOTIFY_MILESTONE_DAYS``      days before a review milestone to remind
``NOTIFY_DIGEST_HOUR``         UTC hour from which daily digests go out
``NOTIFY_LEASE_SECONDS``       how long a mailer may hold an email (300)
``NOTIFY_RETENTION_DAYS``      days notifications and sent emails are kept
                               (365; at least 90, at most 3650)
=============================  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plumbing import config

TLS_MODES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class Settings:
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_tls: str = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = 30.0
    smtp_ca_file: str | None = None
    sender: str = "CPD Platform <cpd@localhost>"
    app_url: str = "http://127.0.0.1:8000"
    emails_per_hour: int = 20
    resets_per_hour: int = 5
    max_attempts: int = 8
    retry_seconds: float = 60.0
    retry_max_seconds: float = 3600.0
    mail_poll_seconds: float = 1.0
    timer_seconds: float = 300.0
    milestone_days: int = 7
    digest_hour: int = 16
    # How long a mailer may hold an email before it counts as interrupted.
    lease_seconds: float = 300.0
    retention_days: int = 365

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return min(
            self.retry_seconds * 2 ** max(attempts - 1, 0), self.retry_max_seconds
        )


_FIELDS: dict[str, tuple[str, Any]] = {
    "smtp_host": ("NOTIFY_SMTP_HOST", str),
    "smtp_port": ("NOTIFY_SMTP_PORT", int),
    "smtp_tls": ("NOTIFY_SMTP_TLS", str),
    "smtp_username": ("NOTIFY_SMTP_USERNAME", str),
    "smtp_password": ("NOTIFY_SMTP_PASSWORD", str),
    "smtp_timeout": ("NOTIFY_SMTP_TIMEOUT", float),
    "smtp_ca_file": ("NOTIFY_SMTP_CA_FILE", str),
    "sender": ("NOTIFY_FROM", str),
    "app_url": ("NOTIFY_APP_URL", str),
    "emails_per_hour": ("NOTIFY_EMAILS_PER_HOUR", int),
    "resets_per_hour": ("NOTIFY_RESETS_PER_HOUR", int),
    "max_attempts": ("NOTIFY_MAX_ATTEMPTS", int),
    "retry_seconds": ("NOTIFY_RETRY_SECONDS", float),
    "retry_max_seconds": ("NOTIFY_RETRY_MAX_SECONDS", float),
    "mail_poll_seconds": ("NOTIFY_MAIL_POLL_SECONDS", float),
    "timer_seconds": ("NOTIFY_TIMER_SECONDS", float),
    "milestone_days": ("NOTIFY_MILESTONE_DAYS", int),
    "digest_hour": ("NOTIFY_DIGEST_HOUR", int),
    "lease_seconds": ("NOTIFY_LEASE_SECONDS", float),
    "retention_days": ("NOTIFY_RETENTION_DAYS", int),
}


def load(container_config: dict[str, Any] | None = None) -> Settings:
    """Settings from a nameko container config and the environment."""
    defaults = Settings()
    settings = Settings(
        **{
            field: config.setting(key, kind, getattr(defaults, field), container_config)
            for field, (key, kind) in _FIELDS.items()
        }
    )
    if settings.smtp_tls not in TLS_MODES:
        raise ValueError(f"NOTIFY_SMTP_TLS must be one of {', '.join(TLS_MODES)}")
    if (
        settings.retry_seconds <= 0
        or settings.retry_max_seconds < settings.retry_seconds
    ):
        # No wait at all would retry a refusing server in a tight loop.
        raise ValueError(
            "NOTIFY_RETRY_SECONDS must be above 0 and at most NOTIFY_RETRY_MAX_SECONDS"
        )
    if settings.max_attempts < 1:
        raise ValueError("NOTIFY_MAX_ATTEMPTS must be at least 1")
    if not 0 <= settings.milestone_days <= 60:
        raise ValueError("NOTIFY_MILESTONE_DAYS must be from 0 to 60")
    if not 0 <= settings.digest_hour <= 23:
        raise ValueError("NOTIFY_DIGEST_HOUR must be an hour from 0 to 23")
    if not 90 <= settings.retention_days <= 3650:
        # Under 90 days a pruned milestone reminder could be sent again.
        raise ValueError("NOTIFY_RETENTION_DAYS must be from 90 to 3650")
    return settings
