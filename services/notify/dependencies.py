"""Dependency providers of the notify service: the edges tests may replace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kombu import Queue, binding
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from plumbing import topology
from services.notify import settings as notify_settings
from services.notify.handlers import SUBSCRIPTIONS

QUEUE = "notify.incoming"


def event_queue() -> Queue:
    """The durable queue of every event notify acts on, bound to each
    source's exchange by event name. ``scripts.migrate`` declares it before
    anything publishes, so events sent while notify is down wait for it."""
    bindings = [
        binding(topology.exchange(source), routing_key=name)
        for source, names in SUBSCRIPTIONS.items()
        for name in names
    ]
    return Queue(QUEUE, bindings=bindings, durable=True)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(DependencyProvider):
    """Gives ``self.now()``: the current UTC time. Tests replace it."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return utc_now


class NotifySettings(DependencyProvider):
    """Gives ``self.settings``: :class:`services.notify.settings.Settings`
    from the container config and the environment."""

    def setup(self) -> None:
        self.settings = notify_settings.load(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> notify_settings.Settings:
        return self.settings


class SettingsTimer(Timer):
    """A timer whose interval is the ``NOTIFY_TIMER_SECONDS`` setting, read
    when the service starts (nameko's own takes a constant)."""

    def setup(self) -> None:
        self.interval = notify_settings.load(self.container.config).timer_seconds
        super().setup()


settings_timer = SettingsTimer.decorator
