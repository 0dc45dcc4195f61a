"""The notify service's entrypoints. The rules live in the domain modules
(handlers, contacts, messages, mailer, reminders, inbox, preferences,
outbound); each method here says who may call it and what it emits, and
hands over. Every RPC method but ``ping`` needs an identity."""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.messaging import consume

from plumbing.database import Database
from plumbing.envelope import validate_envelope
from plumbing.errors import (
    PlatformError,
    ServiceTimeout,
    ServiceUnavailable,
    ValidationFailed,
)
from plumbing.identity import (
    CallerIdentity,
    Identity,
    anonymous,
    authenticated,
    require_service,
)
from plumbing.logging import LogContext
from plumbing.rpc import ServiceRpc, rpc
from services.notify import (
    contacts,
    failures,
    handlers,
    inbox,
    outbound,
    preferences,
    reminders,
    retention,
)
from services.notify.dependencies import (
    Clock,
    NotifySettings,
    event_queue,
    settings_timer,
)
from services.notify.mailer import Mailer

entrypoint = rpc(expected_exceptions=PlatformError)

# After a failure (a service or the database down) the event goes back to
# the queue; this pause keeps a redelivery loop from spinning.
REQUEUE_PAUSE = 1.0


class NotifyService:
    """In-app notifications, email, reminders and digests."""

    name = "notify"

    db = Database("notify")
    caller = CallerIdentity()
    log = LogContext("notify")
    now = Clock()
    settings = NotifySettings()
    mailer = Mailer()
    attempts = failures.FailureCounter()
    training_rpc = ServiceRpc("training", as_service="notify")
    reviews_rpc = ServiceRpc("reviews", as_service="notify")
    # With the caller's identity: an admin's copy of their staff.
    auth_rpc = ServiceRpc("auth")

    # Events

    @consume(queue=event_queue(), requeue_on_error=True)
    def handle_event(self, payload: dict[str, Any]) -> None:
        """Every event of :data:`handlers.SUBSCRIPTIONS`: keep contacts, tell
        people. On a fault that passes (training, reviews or the database
        away) the event goes back to the queue; after repeated unexpected
        errors it is set aside in ``failed_events`` (see
        :mod:`services.notify.failures`); an invalid one is dropped and
        logged."""
        try:
            envelope = validate_envelope(payload)
        except ValidationFailed as error:
            self.log.error("notify_event_invalid", fields=error.fields)
            return
        envelope["event_id"] = str(envelope["event_id"])
        try:
            told = handlers.handle(
                self.db,
                envelope,
                now=self.now(),
                settings=self.settings,
                training=self.training_rpc,
                reviews=self.reviews_rpc,
            )
        except Exception as error:
            self.db.rollback()
            if not failures.is_transient(error):
                attempts = self.attempts.add(envelope["event_id"])
                if attempts >= failures.MAX_ATTEMPTS:
                    self._set_aside(envelope, error, attempts)
                    return
            self.log.warning(
                "notify_event_requeued",
                event_type=envelope["type"],
                event_id=envelope["event_id"],
                error=type(error).__name__,
            )
            eventlet.sleep(REQUEUE_PAUSE)
            raise
        self.attempts.forget(envelope["event_id"])
        self.log.info(
            "notify_event_handled",
            event_type=envelope["type"],
            event_id=envelope["event_id"],
            told=told,
            repeat=told is None,
        )
        if told:
            self.mailer.wake()

    def _set_aside(
        self, envelope: dict[str, Any], error: BaseException, attempts: int
    ) -> None:
        """Keep an event that keeps failing, and acknowledge it; if even that
        fails, it goes back to the queue."""
        failures.set_aside(self.db, envelope, error, attempts, now=self.now())
        self.attempts.forget(envelope["event_id"])
        self.log.error(
            "notify_event_set_aside",
            event_type=envelope["type"],
            event_id=envelope["event_id"],
            error=type(error).__name__,
            attempts=attempts,
        )

    # Reminders and digests

    @settings_timer(interval=300)
    def remind(self) -> None:
        """Every ``NOTIFY_TIMER_SECONDS``: session and milestone reminders,
        then digests, then deleting what is past the retention period
        (emits ``notify.retention_applied``). A service that does not answer
        is tried next time."""
        now = self.now()
        for name, job in (
            (
                "session",
                lambda: reminders.session_reminders(
                    self.db, self.training_rpc, now=now, settings=self.settings
                ),
            ),
            (
                "milestone",
                lambda: reminders.milestone_reminders(
                    self.db, self.reviews_rpc, now=now, settings=self.settings
                ),
            ),
            (
                "digest",
                lambda: reminders.send_digests(
                    self.db, now=now, settings=self.settings
                ),
            ),
        ):
            try:
                done = job()
            except (ServiceUnavailable, ServiceTimeout) as error:
                self.db.rollback()
                self.log.warning("reminders_postponed", job=name, error=error.code)
                continue
            if done:
                self.log.info("reminders_sent", job=name, count=done)
                self.mailer.wake()
        retention.prune(self.db, now=now, settings=self.settings)

    @entrypoint
    @anonymous
    def ping(self) -> dict[str, Any]:
        """Anyone: readiness check. Emits nothing."""
        return {"service": self.name, "ok": True}

    # From the auth service

    @entrypoint
    @authenticated
    def send_password_reset(
        self, caller: Identity, recipient: dict[str, Any], code: str, expires_at: str
    ) -> dict[str, Any]:
        """The auth service only: email a reset code. ``{"email_id"}``, None
        past the recipient's hourly limit. Emits ``notify.reset_code_queued``
        (without the code)."""
        require_service(self.db, caller, ["auth"], "notify.send_password_reset")
        answer = outbound.send_password_reset(
            self.db,
            {"recipient": recipient, "code": code, "expires_at": expires_at},
            now=self.now(),
            settings=self.settings,
        )
        self.mailer.wake()
        return answer

    @entrypoint
    @authenticated
    def send_invitations(
        self, caller: Identity, invitations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The auth service only: email each new user their invitation (with
        a code to set a password, if given). ``{"queued"}``. Emits
        ``notify.invitations_queued``."""
        require_service(self.db, caller, ["auth"], "notify.send_invitations")
        answer = outbound.send_invitations(
            self.db, invitations, now=self.now(), settings=self.settings
        )
        self.mailer.wake()
        return answer

    # A person's own notifications and choices

    @entrypoint
    @authenticated
    def list_notifications(
        self, caller: Identity, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Anyone: their own notifications, unread first, paged
        (``offset``, ``limit``, ``unread_only``). ``{items, total, unread}``."""
        return inbox.list_notifications(self.db, caller, query or {})

    @entrypoint
    @authenticated
    def mark_read(self, caller: Identity, notification_id: str) -> dict[str, Any]:
        """Anyone: mark one of their own notifications read. Another
        person's is NotFound (with ``authz.denied``)."""
        return inbox.mark_read(self.db, caller, notification_id, now=self.now())

    @entrypoint
    @authenticated
    def mark_all_read(self, caller: Identity) -> dict[str, Any]:
        """Anyone: mark all their notifications read. ``{marked}``."""
        return inbox.mark_all_read(self.db, caller, now=self.now())

    @entrypoint
    @authenticated
    def get_preferences(self, caller: Identity) -> dict[str, Any]:
        """Anyone: their email choices per category and digest choice."""
        return preferences.get_preferences(self.db, caller)

    @entrypoint
    @authenticated
    def update_preferences(
        self, caller: Identity, data: dict[str, Any]
    ) -> dict[str, Any]:
        """Anyone: change their choices (``email``: {category: bool},
        ``daily_digest``). Security cannot be turned off. Emits
        ``notify.preferences_updated``."""
        return preferences.update_preferences(self.db, caller, data, now=self.now())

    # School admins

    @entrypoint
    @authenticated
    def sync_contacts(self, caller: Identity) -> dict[str, Any]:
        """A school or trust admin: copy from auth (by RPC, as the admin) the
        organisations and staff their roles cover, for people created before
        notify first listened. ``{organisations, users}``. Emits
        ``notify.contacts_synced``."""
        return contacts.sync_from_auth(self.db, caller, self.auth_rpc, now=self.now())

    @entrypoint
    @authenticated
    def list_emails(
        self, caller: Identity, query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A school or trust admin: emails of their organisations in one
        state (``status``, default ``failed``), paged. Others get an empty
        list and an ``authz.denied`` event."""
        return outbound.list_emails(self.db, caller, query or {})

    @entrypoint
    @authenticated
    def requeue_email(self, caller: Identity, email_id: str) -> dict[str, Any]:
        """A school or trust admin of the email's organisation: queue a
        failed or suppressed email again. EMAIL_NOT_RETRYABLE for others.
        Emits ``notify.email_requeued``."""
        answer = outbound.requeue_email(self.db, caller, email_id, now=self.now())
        self.mailer.wake()
        return answer
