"""What the gateway accepts and answers for the notification routes.

Request schemas refuse unknown fields and bound every value, so a bad
request is answered 422 before the notify service is asked; the service
validates again by its own rules (security email cannot be turned off, who
may see which emails). The answer schemas document the shapes of
:mod:`services.notify.inbox`, ``preferences`` and ``outbound`` for the
OpenAPI document and do not filter the answers. Every name starts with
``Notify`` so that the components apispec registers from here never clash
with those of the other route modules.

The categories and email states are the notify service's own
(``services.notify.catalogue`` and ``models``), repeated here because the
gateway imports no service's code.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

MAX_PAGE = 100
DEFAULT_PAGE = 20
# The notify service keeps ids of at most 36 characters (UUIDs).
MAX_ID = 36
CATEGORIES = (
    "bookings",
    "events",
    "reminders",
    "reviews",
    "observations",
    "account",
    "security",
)
EMAIL_STATES = (
    "queued",
    "sending",
    "sent",
    "failed",
    "held",
    "digested",
    "suppressed",
)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _offset() -> fields.Integer:
    return fields.Integer(load_default=0, validate=validate.Range(min=0, max=10**9))


def _limit() -> fields.Integer:
    return fields.Integer(
        load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE)
    )


# Requests


class NotifyInboxQuerySchema(_Strict):
    """A page of the caller's notifications, unread first."""

    offset = _offset()
    limit = _limit()
    unread_only = fields.Boolean(
        load_default=False, metadata={"description": "only those not yet read"}
    )


class NotifyPreferencesUpdateSchema(_Strict):
    """Some of the caller's choices; the others stay as they are.

    ``email`` maps a category to whether it is emailed; ``security`` cannot
    be turned off (422 from the notify service)."""

    daily_digest = fields.Boolean(
        metadata={"description": "one daily digest instead of single emails"}
    )
    email = fields.Dict(
        keys=fields.String(validate=validate.OneOf(CATEGORIES)),
        values=fields.Boolean(required=True),
    )


class NotifyEmailQuerySchema(_Strict):
    """A page of the emails of the organisations the caller administers."""

    status = fields.String(load_default="failed", validate=validate.OneOf(EMAIL_STATES))
    org_id = fields.String(
        validate=validate.Length(min=1, max=MAX_ID),
        metadata={"description": "one of the organisations the caller administers"},
    )
    offset = _offset()
    limit = _limit()


# Answers (documentation only)


class NotifySubjectSchema(Schema):
    type = fields.String()
    id = fields.String()


class NotifyNotificationSchema(Schema):
    id = fields.String()
    category = fields.String()
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    link = fields.String(allow_none=True)
    subject = fields.Nested(NotifySubjectSchema, allow_none=True)
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotifyNotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotifyNotificationSchema))
    total = fields.Integer()
    unread = fields.Integer(metadata={"description": "all unread, whatever the page"})
    offset = fields.Integer()
    limit = fields.Integer()


class NotifyMarkedSchema(Schema):
    marked = fields.Integer()


class NotifyContactsSyncedSchema(Schema):
    organisations = fields.Integer()
    users = fields.Integer()


class NotifyCategoryChoiceSchema(Schema):
    category = fields.String()
    label = fields.String()
    email = fields.Boolean()
    locked = fields.Boolean(metadata={"description": "always emailed (security)"})


class NotifyPreferencesSchema(Schema):
    daily_digest = fields.Boolean()
    categories = fields.List(fields.Nested(NotifyCategoryChoiceSchema))


class NotifyEmailSchema(Schema):
    id = fields.String()
    user_id = fields.String(allow_none=True)
    recipient_name = fields.String(allow_none=True)
    to = fields.String(allow_none=True)
    org_id = fields.String(allow_none=True)
    kind = fields.String()
    category = fields.String()
    subject = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.DateTime()
    next_attempt_at = fields.DateTime(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)


class NotifyEmailPageSchema(Schema):
    items = fields.List(fields.Nested(NotifyEmailSchema))
    total = fields.Integer()
    offset = fields.Integer()
    limit = fields.Integer()
