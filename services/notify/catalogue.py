"""What the notify service can tell people: each kind of message with its
category, its title and its short in-app text (Jinja strings), and the
template files of its email.

An email is rendered from ``templates/<kind>.txt`` and ``<kind>.html`` when
they exist, else from ``templates/notice.txt`` and ``notice.html``, which
lay out the title, the text, the sessions and a link. Every template sees the
message's parameters, ``name`` (the recipient's given name), ``school`` and
``app_url``.
"""

from __future__ import annotations

from dataclasses import dataclass

# Categories a person may turn email off for. In-app notifications are
# always kept.
BOOKINGS = "bookings"
EVENTS = "events"
REMINDERS = "reminders"
REVIEWS = "reviews"
OBSERVATIONS = "observations"
ACCOUNT = "account"
# Security messages cannot be turned off, and never wait for a digest.
SECURITY = "security"
CATEGORIES = (BOOKINGS, EVENTS, REMINDERS, REVIEWS, OBSERVATIONS, ACCOUNT, SECURITY)
LOCKED_CATEGORIES = frozenset({SECURITY})

CATEGORY_LABELS = {
    BOOKINGS: "Your bookings and the requests you decide",
    EVENTS: "Changes to training you are booked on",
    REMINDERS: "Reminders of sessions, review milestones and follow-ups",
    REVIEWS: "Steps of your development reviews",
    OBSERVATIONS: "Observations shared with you",
    ACCOUNT: "Your account",
    SECURITY: "Security of your account (always sent)",
}


@dataclass(frozen=True)
class Kind:
    name: str
    category: str
    title: str
    text: str
    # Sent whatever the preferences and never in a digest (codes, security).
    immediate: bool = False
    # Told in the app only; the email is sent another way (the invitation).
    in_app_only: bool = False


_KINDS = (
    # Training: the requester, or who decides the request.
    Kind(
        "booking_requested",
        BOOKINGS,
        "{{ who }} asks to attend {{ course }}",
        "{{ who }} asked for a place on {{ course }}. Please approve or "
        "decline the request.",
    ),
    Kind(
        "booking_approved",
        BOOKINGS,
        "Your request for {{ course }} was approved",
        "Your request for a place on {{ course }} was approved"
        "{% if stage == 'manager' and waiting_for_lead %}; a CPD lead decides "
        "next{% endif %}.",
    ),
    Kind(
        "booking_declined",
        BOOKINGS,
        "Your request for {{ course }} was declined",
        "Your request for a place on {{ course }} was declined."
        "{% if reason %} The reason given: {{ reason }}{% endif %}",
    ),
    Kind(
        "booking_expired",
        BOOKINGS,
        "Your request for {{ course }} expired",
        "Nobody decided your request for a place on {{ course }} before its "
        "deadline, so it has lapsed. You may ask again.",
    ),
    Kind(
        "booking_booked",
        BOOKINGS,
        "You are booked on {{ course }}",
        "You have a place on {{ course }}. The calendar invite is attached.",
    ),
    Kind(
        "booking_waitlisted",
        BOOKINGS,
        "You are on the waiting list for {{ course }}",
        "{{ course }} is full. You are number {{ position }} on the waiting "
        "list; we will tell you if a place opens.",
    ),
    Kind(
        "booking_promoted",
        BOOKINGS,
        "A place opened: you are booked on {{ course }}",
        "A place on {{ course }} opened and it is yours. The calendar invite "
        "is attached.",
    ),
    Kind(
        "booking_cancelled",
        BOOKINGS,
        "{% if reason == 'event_cancelled' %}{{ course }} was cancelled"
        "{% else %}Your place on {{ course }} was cancelled{% endif %}",
        "{% if reason == 'event_cancelled' %}{{ course }} will not run, so "
        "your place is cancelled.{% else %}Your place on {{ course }} was "
        "cancelled.{% endif %} The calendar cancellation is attached.",
    ),
    Kind(
        "event_updated",
        EVENTS,
        "{{ course }} has changed",
        "The details of {{ course }} changed. Please check the times and "
        "place below{% if has_invite %}; the updated invite is attached{% endif %}.",
    ),
    Kind(
        "session_reminder",
        REMINDERS,
        "Reminder: {{ course }} starts {{ starts }}",
        "{{ course }} starts {{ starts }}{% if place %} at {{ place }}{% endif %}.",
    ),
    Kind(
        "external_request_submitted",
        BOOKINGS,
        "{{ who }} asks to attend {{ course }}",
        "{{ who }} asked to attend {{ course }} ({{ provider }}, {{ dates }}). "
        "Please approve or decline the request.",
    ),
    Kind(
        "external_request_approved",
        BOOKINGS,
        "Your request for {{ course }} was approved",
        "Your request to attend {{ course }} ({{ provider }}, {{ dates }}) was "
        "approved{% if waiting_for_lead %}; a CPD lead decides next{% endif %}.",
    ),
    Kind(
        "external_request_declined",
        BOOKINGS,
        "Your request for {{ course }} was declined",
        "Your request to attend {{ course }} ({{ provider }}) was declined."
        "{% if reason %} The reason given: {{ reason }}{% endif %}",
    ),
    Kind(
        "external_request_expired",
        BOOKINGS,
        "Your request for {{ course }} expired",
        "Nobody decided your request to attend {{ course }} before it began, "
        "so it has lapsed.",
    ),
    Kind(
        "follow_up_requested",
        REMINDERS,
        "How has {{ course }} changed your practice?",
        "Some weeks have passed since {{ course }}. Please add your follow-up: "
        "what you have changed, and what difference it made.",
    ),
    # Reviews.
    Kind(
        "comment_added",
        REVIEWS,
        "{{ who }} commented on {{ whose }} {{ cycle }} review",
        "{{ who }} added a comment to {{ whose }} {{ cycle }} review.",
    ),
    Kind(
        "review_created",
        REVIEWS,
        "Your {{ cycle }} review has started",
        "Your development review for {{ cycle }} is open"
        "{% if reviewer %}; {{ reviewer }} is your reviewer{% endif %}. "
        "Objectives are due by {{ objectives_due }}.",
    ),
    Kind(
        "reviewer_assigned",
        REVIEWS,
        "You are reviewing {{ who }} in {{ cycle }}",
        "You are now the reviewer of {{ who }} for {{ cycle }}.",
    ),
    Kind(
        "objectives_agreed",
        REVIEWS,
        "Your objectives for {{ cycle }} were agreed",
        "The objectives of your {{ cycle }} review were agreed.",
    ),
    Kind(
        "interim_review_recorded",
        REVIEWS,
        "Your interim review for {{ cycle }} was recorded",
        "{{ who }} recorded the interim review of your {{ cycle }} review.",
    ),
    Kind(
        "self_review_submitted",
        REVIEWS,
        "{{ who }} submitted their self review",
        "{{ who }} submitted their self review for {{ cycle }}; the final "
        "review is yours to record.",
    ),
    Kind(
        "final_review_recorded",
        REVIEWS,
        "Your final review for {{ cycle }} is ready",
        "The final review of your {{ cycle }} review was recorded and waits "
        "for your sign-off.",
    ),
    Kind(
        "review_signed_off",
        REVIEWS,
        "{{ who }} signed off their {{ cycle }} review",
        "{{ who }} signed off their review for {{ cycle }}.",
    ),
    Kind(
        "review_closed",
        REVIEWS,
        "Your {{ cycle }} review was closed",
        "Your development review for {{ cycle }} is closed.",
    ),
    Kind(
        "milestone_reminder",
        REMINDERS,
        "{{ milestone }} due {{ due_on }}: {{ cycle }}",
        "{{ milestone }} of the {{ cycle }} review{% if who %} of {{ who }}"
        "{% endif %} is due by {{ due_on }} and still has a step for you.",
    ),
    Kind(
        "observation_shared",
        OBSERVATIONS,
        "{{ who }} shared an observation with you",
        "{{ who }} shared their {{ observation_type }} observation of "
        "{{ observed_on }} with you. Read it and add your response.",
    ),
    # Auth.
    Kind(
        "account_created",
        ACCOUNT,
        "Welcome to the CPD platform",
        "Your account {{ username }} at {{ school }} is ready.",
        in_app_only=True,
    ),
    Kind(
        "password_changed",
        SECURITY,
        "Your password was changed",
        "The password of your account {{ username }} was changed. If this "
        "was not you, tell your school's administrator now.",
        immediate=True,
    ),
    Kind(
        "account_locked",
        SECURITY,
        "Your account was locked",
        "Your account {{ username }} was locked after repeated failed "
        "sign-ins{% if until %} until {{ until }}{% endif %}. If this was "
        "not you, tell your school's administrator.",
        immediate=True,
    ),
    Kind(
        "sessions_revoked",
        SECURITY,
        "You were signed out everywhere",
        "An administrator ended every signed-in session of your account "
        "{{ username }}. Sign in again to go on. If you did not expect this, "
        "ask your school's administrator why.",
        immediate=True,
    ),
    Kind(
        "session_token_reused",
        SECURITY,
        "A sign-in of yours was ended to protect your account",
        "A sign-in of your account {{ username }} was ended because one of "
        "its old tokens was used again after it had been replaced, which "
        "can mean it was copied. Sign in again. If this keeps happening, "
        "change your password and tell your school's administrator.",
        immediate=True,
    ),
    Kind(
        "calendar_feed_created",
        SECURITY,
        "A new private calendar link was made",
        "A private calendar link to your training was made for your account; "
        "any earlier link stopped working. If this was not you, revoke it and "
        "tell your school's administrator.",
        immediate=True,
    ),
    Kind(
        "password_reset",
        SECURITY,
        "Your password reset code",
        "Use the code in this email to set a new password.",
        immediate=True,
    ),
    Kind(
        "invitation",
        ACCOUNT,
        "Your CPD platform account at {{ school }}",
        "An account was made for you.",
        immediate=True,
    ),
    Kind(
        "digest",
        ACCOUNT,
        "Your CPD digest: {{ count }} update{{ 's' if count != 1 else '' }}",
        "",
        immediate=True,
    ),
)

KINDS: dict[str, Kind] = {kind.name: kind for kind in _KINDS}

# Emails that carry a one-time code. Their bodies are kept only until the
# email is sent or given up on, they are never sent again by an admin, and
# never after the code has expired.
CODE_KINDS = frozenset({"password_reset", "invitation"})

MILESTONE_LABELS = {
    "objectives_due": "Agreeing objectives",
    "interim_due": "The interim review",
    "final_due": "The final review",
}
