"""The reviews service's entrypoints. The rules live in the domain modules
(cycles, reviews, objectives, observations, evidence, comments, reports,
directory, notices); each method here says who may call it and what it
emits, and hands over. Every entrypoint but ``ping`` needs an identity."""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.events import event_handler

from plumbing.database import Database
from plumbing.envelope import validate_envelope
from plumbing.errors import PlatformError, ValidationFailed
from plumbing.identity import CallerIdentity, Identity, anonymous, authenticated
from plumbing.logging import LogContext
from plumbing.rpc import ServiceRpc, rpc
from services.reviews import (
    comments,
    cycles,
    directory,
    evidence,
    notices,
    objectives,
    observations,
    reports,
    reviews,
)
from services.reviews.dependencies import Clock, Evidence

entrypoint = rpc(expected_exceptions=PlatformError)

# After a failure (say the database is down) the event goes back to the queue;
# this pause keeps a redelivery loop from spinning.
REQUEUE_PAUSE = 1.0


def directory_handler(event_type: str) -> Any:
    """Consume one auth event type; on error the message is requeued, not lost."""
    return event_handler("auth", event_type, requeue_on_error=True)


class ReviewsService:
    """Review cycles, reviews, objectives, observations, evidence, comments,
    reports."""

    name = "reviews"

    db = Database("reviews")
    caller = CallerIdentity()
    log = LogContext("reviews")
    now = Clock()
    evidence = Evidence()
    auth_rpc = ServiceRpc("auth")

    # Staff directory, from auth's events

    def _apply(self, payload: dict[str, Any]) -> None:
        try:
            envelope = validate_envelope(payload)
        except ValidationFailed as error:
            # It can never be applied: keep it out of the loop, say so.
            self.log.error("directory_event_invalid", fields=error.fields)
            return
        envelope["event_id"] = str(envelope["event_id"])
        try:
            applied = directory.apply_event(self.db, envelope, now=self.now())
        except Exception as error:
            self.log.warning(
                "directory_event_requeued",
                event_type=envelope["type"],
                error=type(error).__name__,
            )
            self.db.rollback()
            eventlet.sleep(REQUEUE_PAUSE)
            raise
        self.log.info(
            "directory_event_applied",
            event_type=envelope["type"],
            event_id=envelope["event_id"],
            repeat=not applied,
        )

    @directory_handler("organisation_created")
    def handle_organisation_created(self, payload: dict[str, Any]) -> None:
        """Keep the new trust or school (with its trust) in the directory."""
        self._apply(payload)

    @directory_handler("user_created")
    def handle_user_created(self, payload: dict[str, Any]) -> None:
        """Keep the new user's organisation, line manager and name."""
        self._apply(payload)

    @directory_handler("user_updated")
    def handle_user_updated(self, payload: dict[str, Any]) -> None:
        """Apply the changed fields (a new line manager, a move of school)."""
        self._apply(payload)

    @directory_handler("user_deactivated")
    def handle_user_deactivated(self, payload: dict[str, Any]) -> None:
        """A deactivated user gets no review in cycles opened later."""
        self._apply(payload)

    @directory_handler("user_reactivated")
    def handle_user_reactivated(self, payload: dict[str, Any]) -> None:
        """A reactivated user is staff again."""
        self._apply(payload)

    @entrypoint
    @anonymous
    def ping(self) -> dict[str, Any]:
        """Anyone: readiness check. Emits nothing."""
        return {"service": self.name, "ok": True}

    @entrypoint
    @authenticated
    def sync_directory(self, caller: Identity) -> dict[str, Any]:
        """A school or trust admin: copy from auth (by RPC, as the admin) the
        organisations and staff their roles cover, line managers included.
        Answers ``{organisations, users}``. Emits
        ``reviews.staff_directory_synced``."""
        return directory.sync_from_auth(self.db, caller, self.auth_rpc, now=self.now())

    # Cycles

    @entrypoint
    @authenticated
    def open_cycle(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """A school admin (school cycle) or trust admin (trust-wide cycle) of
        ``data.org_id``: open a cycle and give each active member of staff a
        review by their line manager. Emits ``reviews.cycle_opened`` and
        ``reviews.review_created`` per review. MILESTONE_OUTSIDE_CYCLE."""
        return cycles.open_cycle(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def list_cycles(self, caller: Identity) -> dict[str, Any]:
        """Anyone: ``{items}``, the cycles they administer or take part in."""
        return cycles.list_cycles(self.db, caller)

    @entrypoint
    @authenticated
    def get_cycle(self, caller: Identity, cycle_id: str) -> dict[str, Any]:
        """Admins over the cycle and its participants; else NotFound."""
        return cycles.get_cycle(self.db, caller, cycle_id)

    @entrypoint
    @authenticated
    def add_review(
        self, caller: Identity, cycle_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """An admin of the cycle's organisation: a review for a member of
        staff who joined later. Emits ``reviews.review_created``."""
        return cycles.add_review(self.db, caller, cycle_id, data, now=self.now())

    @entrypoint
    @authenticated
    def assign_reviewer(
        self, caller: Identity, review_id: str, reviewer_id: str
    ) -> dict[str, Any]:
        """An admin over the review: name another reviewer (never the
        reviewee). Emits ``reviews.reviewer_assigned``."""
        return cycles.assign_reviewer(
            self.db, caller, review_id, reviewer_id, now=self.now()
        )

    # Reviews

    @entrypoint
    @authenticated
    def list_reviews(
        self, caller: Identity, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Anyone: ``{items, total, offset, limit}`` of the reviews they are
        reviewed in, review, or administer; filters ``cycle_id``, ``org_id``,
        ``state``. Emits nothing."""
        return reviews.list_reviews(self.db, caller, params)

    @entrypoint
    @authenticated
    def get_review(self, caller: Identity, review_id: str) -> dict[str, Any]:
        """Reviewee, reviewer, admins over it: the review with objectives and
        steps. Emits nothing; others get NotFound and ``authz.denied``."""
        return reviews.get_review(self.db, caller, review_id)

    @entrypoint
    @authenticated
    def take_review_step(
        self, caller: Identity, review_id: str, step: str, text: str | None = None
    ) -> dict[str, Any]:
        """Move a review on. ``step`` and who takes it: ``agree_objectives``,
        ``record_interim_review`` (notes), ``record_final_review`` (notes):
        the reviewer; ``submit_self_review`` (text, else the saved draft),
        ``sign_off`` (comment): the reviewee; ``close``: the reviewer or an
        admin; ``reopen`` (reason): an admin. Emits the step's event.
        NOT_YOUR_STEP, INVALID_TRANSITION, SELF_REVIEW_LOCKED."""
        if step not in reviews.STEPS:
            raise ValidationFailed(
                fields={"step": [f"One of {sorted(reviews.STEPS)}."]}
            )
        return reviews.take_step(self.db, caller, review_id, step, text, now=self.now())

    @entrypoint
    @authenticated
    def save_self_review(
        self, caller: Identity, review_id: str, text: str
    ) -> dict[str, Any]:
        """The reviewee: keep a draft of the self review until it is
        submitted. Emits ``reviews.self_review_saved``. SELF_REVIEW_LOCKED."""
        return reviews.save_self_review(
            self.db, caller, review_id, text, now=self.now()
        )

    # Objectives

    @entrypoint
    @authenticated
    def add_objective(
        self, caller: Identity, review_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The reviewer (until the interim review) or the reviewee (while a
        draft). Emits ``reviews.objective_added``. OBJECTIVES_LOCKED."""
        return objectives.add_objective(
            self.db, caller, review_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def update_objective(
        self, caller: Identity, objective_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """As add_objective; also links CPD record ids. Emits
        ``reviews.objective_updated``."""
        return objectives.update_objective(
            self.db, caller, objective_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def get_objective(self, caller: Identity, objective_id: str) -> dict[str, Any]:
        """Whoever may read the review: the objective with its progress."""
        return objectives.get_objective(self.db, caller, objective_id)

    @entrypoint
    @authenticated
    def record_progress(
        self, caller: Identity, objective_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The reviewer or reviewee, until sign-off: ``{on, status, note}``.
        Emits ``reviews.progress_recorded``."""
        return objectives.record_progress(
            self.db, caller, objective_id, data, now=self.now()
        )

    # Observations

    @entrypoint
    @authenticated
    def create_observation(
        self, caller: Identity, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A colleague, admin or reviewer of the observed: a draft
        observation. Emits ``reviews.observation_created``."""
        return observations.create_observation(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def update_observation(
        self, caller: Identity, observation_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        """The observer, while a draft. Emits ``reviews.observation_updated``."""
        return observations.update_observation(
            self.db, caller, observation_id, data, now=self.now()
        )

    @entrypoint
    @authenticated
    def share_observation(
        self, caller: Identity, observation_id: str
    ) -> dict[str, Any]:
        """The observer. Emits ``reviews.observation_shared``."""
        return observations.share_observation(
            self.db, caller, observation_id, now=self.now()
        )

    @entrypoint
    @authenticated
    def acknowledge_observation(
        self, caller: Identity, observation_id: str, response: str | None = None
    ) -> dict[str, Any]:
        """The observed teacher, once shared; optionally with a response.
        Emits ``reviews.observation_acknowledged``."""
        return observations.acknowledge_observation(
            self.db, caller, observation_id, response, now=self.now()
        )

    @entrypoint
    @authenticated
    def get_observation(self, caller: Identity, observation_id: str) -> dict[str, Any]:
        """Whoever its visibility allows. A read by anyone but the observer
        emits ``reviews.observation_viewed`` and is listed to the teacher."""
        return observations.get_observation(
            self.db, caller, observation_id, now=self.now()
        )

    @entrypoint
    @authenticated
    def list_observations(
        self, caller: Identity, observed_id: str | None = None
    ) -> dict[str, Any]:
        """Anyone: ``{items}``, summaries without free text of what they may
        read. Emits nothing (a list is not a view)."""
        return observations.list_observations(self.db, caller, observed_id)

    @entrypoint
    @authenticated
    def list_observation_views(
        self, caller: Identity, observation_id: str
    ) -> dict[str, Any]:
        """The observed teacher or the observer: ``{items}`` of who read it."""
        return observations.list_observation_views(self.db, caller, observation_id)

    # Evidence

    @entrypoint
    @authenticated
    def upload_evidence(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """The reviewer or reviewee (review, objective) or the observer or
        observed (observation): ``{target_type, target_id, filename,
        content_base64, sha256?, title?}``. Emits ``reviews.evidence_uploaded``.
        UPLOAD_TOO_LARGE, UPLOAD_TYPE_NOT_ALLOWED, UPLOAD_CHECKSUM_MISMATCH."""
        return evidence.upload_evidence(
            self.db, caller, data, self.evidence, now=self.now()
        )

    @entrypoint
    @authenticated
    def link_evidence(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """As upload_evidence, for ``{target_type, target_id, url, title?}``.
        Emits ``reviews.evidence_linked``."""
        return evidence.link_evidence(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def list_evidence(
        self, caller: Identity, target_type: str, target_id: str
    ) -> dict[str, Any]:
        """Whoever may read the target: ``{items}``."""
        return evidence.list_evidence(self.db, caller, target_type, target_id)

    @entrypoint
    @authenticated
    def download_evidence(self, caller: Identity, evidence_id: str) -> dict[str, Any]:
        """Whoever may read the target: the file as ``content_base64``,
        checked against its SHA-256. Emits ``reviews.evidence_downloaded``."""
        return evidence.download_evidence(self.db, caller, evidence_id, self.evidence)

    # Comments

    @entrypoint
    @authenticated
    def add_comment(self, caller: Identity, data: dict[str, Any]) -> dict[str, Any]:
        """Whoever may read the review: ``{target_type, target_id, text,
        visibility, parent_id?}``; only reviewers write ``reviewers``
        comments. Emits ``reviews.comment_added``."""
        return comments.add_comment(self.db, caller, data, now=self.now())

    @entrypoint
    @authenticated
    def list_comments(
        self, caller: Identity, target_type: str, target_id: str
    ) -> dict[str, Any]:
        """Whoever may read the review; the reviewee sees shared ones only."""
        return comments.list_comments(self.db, caller, target_type, target_id)

    # Reports

    @entrypoint
    @authenticated
    def get_cycle_report(self, caller: Identity, cycle_id: str) -> dict[str, Any]:
        """School admins (their schools) and trust admins (the trust): reviews
        per state, overdue, objectives per status. Emits nothing."""
        return reports.cycle_report(self.db, caller, cycle_id, today=self.now().date())

    @entrypoint
    @authenticated
    def export_cycle_report(self, caller: Identity, cycle_id: str) -> dict[str, Any]:
        """As get_cycle_report, as ``{filename, content_type, csv}``. Emits
        ``reviews.report_exported``."""
        return reports.export_cycle_report(self.db, caller, cycle_id, now=self.now())

    # Notices (for the notify service)

    @entrypoint
    @authenticated
    def notification_context(
        self,
        caller: Identity,
        review_id: str | None = None,
        observation_id: str | None = None,
    ) -> dict[str, Any]:
        """The notify service on its own account, else Forbidden after
        ``authz.denied``: for exactly one of the ids, ``{"review": {id,
        org_id, org_name, cycle_id, cycle_name, state, reviewee_id,
        reviewer_id, milestones: {objectives_due, interim_due, final_due}}}``
        or ``{"observation": {id, org_id, org_name, observer_id, observed_id,
        observed_on, type, visibility, shared}}``; no free text. Emits
        nothing."""
        return notices.notification_context(
            self.db, caller, review_id=review_id, observation_id=observation_id
        )

    @entrypoint
    @authenticated
    def milestones_due(
        self,
        caller: Identity,
        today: str,
        days: int,
        offset: int = 0,
        limit: int = notices.DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """The notify service on its own account, else Forbidden after
        ``authz.denied``: ``{items, total}`` of the reviews whose next
        milestone falls from ``today`` to ``today + days`` (0 to 60), each
        ``{review_id, cycle_id, cycle_name, org_id, org_name, milestone,
        due_on, reviewee_id, user_ids}`` (who still has a step to take); by ``due_on``,
        ``review_id``; ``limit`` 1 to 1000. Emits nothing."""
        return notices.milestones_due(
            self.db, caller, today, days, offset=offset, limit=limit
        )
