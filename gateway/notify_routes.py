"""The notify service's HTTP face: a mixin of routes under
``/api/v1/notifications`` that the gateway service class takes among its
bases.

Each route validates its input and asks the notify service, which takes the
caller from the RPC's context: everyone reaches only their own
notifications and choices (another person's notification is 404
``NOT_FOUND``), and only school and trust admins see the emails of their
organisations (anyone else gets an empty list).

There is no ``GET /notifications/{id}``: the static paths beside it
(``preferences``, ``emails``, ``read-all``) would otherwise read as ids.
"""

from __future__ import annotations

from typing import Any

from gateway.dependencies import GatewayRpc
from gateway.http import route
from gateway.notify_schemas import (
    NotifyContactsSyncedSchema,
    NotifyEmailPageSchema,
    NotifyEmailQuerySchema,
    NotifyEmailSchema,
    NotifyInboxQuerySchema,
    NotifyMarkedSchema,
    NotifyNotificationPageSchema,
    NotifyNotificationSchema,
    NotifyPreferencesSchema,
    NotifyPreferencesUpdateSchema,
)
from plumbing.identity import Identity

PREFIX = "/api/v1/notifications"
TAG = "notifications"


class NotifyRoutes:
    """In-app notifications, email choices and the admins' view of emails
    that did not go; mixed into :class:`gateway.service.GatewayService`."""

    notify_rpc = GatewayRpc("notify")

    # The caller's own notifications

    @route(
        "GET",
        PREFIX,
        query=NotifyInboxQuerySchema,
        response=NotifyNotificationPageSchema,
        tag=TAG,
    )
    def list_notifications(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The caller's notifications, unread first, newest first within each.

        ``unread`` counts every unread one, whatever the page (``limit`` at
        most 100, default 20).
        """
        return self.notify_rpc.list_notifications(query)

    @route(
        "POST",
        f"{PREFIX}/read-all",
        response=NotifyMarkedSchema,
        tag=TAG,
    )
    def mark_all_notifications_read(self, request: Any, caller: Identity) -> Any:
        """Mark every unread notification of the caller read; ``marked`` counts them."""
        return self.notify_rpc.mark_all_read()

    @route(
        "POST",
        f"{PREFIX}/<notification_id>/read",
        response=NotifyNotificationSchema,
        tag=TAG,
    )
    def mark_notification_read(
        self, request: Any, caller: Identity, notification_id: str
    ) -> Any:
        """Mark one of the caller's notifications read; anyone else's is 404."""
        return self.notify_rpc.mark_read(notification_id)

    # The caller's choices

    @route(
        "GET",
        f"{PREFIX}/preferences",
        response=NotifyPreferencesSchema,
        tag=TAG,
    )
    def get_notification_preferences(self, request: Any, caller: Identity) -> Any:
        """Whether each category is emailed, and the daily digest choice."""
        return self.notify_rpc.get_preferences()

    @route(
        "PUT",
        f"{PREFIX}/preferences",
        body=NotifyPreferencesUpdateSchema,
        response=NotifyPreferencesSchema,
        tag=TAG,
    )
    def update_notification_preferences(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Change some choices; those not sent stay as they are.

        In-app notifications are always kept. Turning ``security`` email off
        is refused with 422 ``VALIDATION_FAILED``; turning the digest off
        sends what was held for it.
        """
        return self.notify_rpc.update_preferences(body)

    # School and trust admins

    @route(
        "GET",
        f"{PREFIX}/emails",
        query=NotifyEmailQuerySchema,
        response=NotifyEmailPageSchema,
        tag=TAG,
    )
    def list_notification_emails(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Emails of the organisations the caller administers, in one state.

        ``status`` defaults to ``failed``; newest first. Anyone but a school
        or trust admin gets an empty list.
        """
        return self.notify_rpc.list_emails(query)

    @route(
        "POST",
        f"{PREFIX}/emails/<email_id>/requeue",
        response=NotifyEmailSchema,
        tag=TAG,
    )
    def requeue_notification_email(
        self, request: Any, caller: Identity, email_id: str
    ) -> Any:
        """Queue a failed or suppressed email again, its attempts counted afresh.

        For an admin of the email's organisation (404 for anyone else); 409
        ``EMAIL_NOT_RETRYABLE`` for an email in any other state.
        """
        return self.notify_rpc.requeue_email(email_id)

    @route(
        "POST",
        f"{PREFIX}/contacts/sync",
        response=NotifyContactsSyncedSchema,
        tag=TAG,
    )
    def sync_notify_contacts(self, request: Any, caller: Identity) -> Any:
        """Copy the names and addresses of the admin's staff from auth into
        notify (for people created before notify first ran); 404 for anyone
        who administers no organisation."""
        return self.notify_rpc.sync_contacts()
