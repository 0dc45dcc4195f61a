"""The reviews routes under ``/api/v1/reviews``, as a mixin of the gateway.

Each route validates its input, and the reviews service (``reviews_rpc``)
decides who may do what; its error codes come back as problem documents.

Evidence files are uploaded as the raw request body (any content type; the
reviews service judges the type by the bytes) to
``POST /api/v1/reviews/evidence/files?target_type=&target_id=&filename=``,
with a limit of its own, ``REVIEWS_MAX_UPLOAD_BYTES`` (default 5 MB), checked
before the body is read in full; JSON bodies keep the gateway's 1 MB limit.
Downloads answer the file's bytes with its type, ``nosniff`` and its SHA-256.
"""

from __future__ import annotations

import base64
import os
import re
from datetime import date
from typing import Any

from werkzeug.wrappers import Response

from gateway.dependencies import GatewayRpc
from gateway.http import read_body, route
from gateway.reviews_schemas import (
    ReviewAcknowledgeSchema,
    ReviewAddSchema,
    ReviewCommentCreateSchema,
    ReviewCommentListSchema,
    ReviewCommentQuerySchema,
    ReviewCommentSchema,
    ReviewCycleCreateSchema,
    ReviewCycleListSchema,
    ReviewCycleReportSchema,
    ReviewCycleSchema,
    ReviewDirectorySyncSchema,
    ReviewEvidenceLinkSchema,
    ReviewEvidenceListSchema,
    ReviewEvidenceQuerySchema,
    ReviewEvidenceSchema,
    ReviewEvidenceUploadQuerySchema,
    ReviewListQuerySchema,
    ReviewObjectiveCreateSchema,
    ReviewObjectiveSchema,
    ReviewObjectiveUpdateSchema,
    ReviewObservationCreateSchema,
    ReviewObservationListSchema,
    ReviewObservationQuerySchema,
    ReviewObservationSchema,
    ReviewObservationUpdateSchema,
    ReviewPageSchema,
    ReviewProgressCreateSchema,
    ReviewProgressSchema,
    ReviewReviewerSchema,
    ReviewSchema,
    ReviewSelfReviewSchema,
    ReviewStepSchema,
    ReviewViewListSchema,
)
from plumbing.identity import Identity

PREFIX = "/api/v1/reviews"
TAG = "reviews"
DEFAULT_UPLOAD_LIMIT = 5 * 1024 * 1024
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")


def upload_limit() -> int:
    """``REVIEWS_MAX_UPLOAD_BYTES``, the same setting the reviews service uses."""
    raw = os.environ.get("REVIEWS_MAX_UPLOAD_BYTES")
    return int(raw) if raw else DEFAULT_UPLOAD_LIMIT


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Dates back to ISO text, so the values travel as JSON over RPC."""
    return {
        key: value.isoformat() if isinstance(value, date) else value
        for key, value in values.items()
    }


def attachment(filename: str) -> str:
    safe = _UNSAFE_FILENAME.sub("_", filename) or "download"
    return f'attachment; filename="{safe}"'


class ReviewsRoutes:
    """Review cycles, reviews, objectives, observations, evidence, comments
    and reports. Mixed into :class:`gateway.service.GatewayService`."""

    reviews_rpc = GatewayRpc("reviews")

    # Staff directory

    @route(
        "POST",
        f"{PREFIX}/directory/sync",
        response=ReviewDirectorySyncSchema,
        tag=TAG,
    )
    def sync_review_directory(self, request: Any, caller: Identity) -> Any:
        """Copy from auth the staff and line managers the admin's roles cover.

        For people created before the reviews service first ran; later
        changes reach it through auth's events.
        """
        return self.reviews_rpc.sync_directory()

    # Cycles and reports

    @route("GET", f"{PREFIX}/cycles", response=ReviewCycleListSchema, tag=TAG)
    def list_review_cycles(self, request: Any, caller: Identity) -> Any:
        """The cycles the caller administers or takes part in."""
        return self.reviews_rpc.list_cycles()

    @route(
        "POST",
        f"{PREFIX}/cycles",
        body=ReviewCycleCreateSchema,
        response=ReviewCycleSchema,
        status=201,
        tag=TAG,
    )
    def open_review_cycle(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Open a cycle; each active member of staff gets a review.

        A school admin for their school, a trust admin for the whole trust.
        422 ``MILESTONE_OUTSIDE_CYCLE`` for a milestone outside the dates.
        """
        return self.reviews_rpc.open_cycle(plain(body))

    @route("GET", f"{PREFIX}/cycles/<cycle_id>", response=ReviewCycleSchema, tag=TAG)
    def get_review_cycle(self, request: Any, caller: Identity, cycle_id: str) -> Any:
        """One cycle: its admins and the people reviewed or reviewing in it."""
        return self.reviews_rpc.get_cycle(cycle_id)

    @route(
        "POST",
        f"{PREFIX}/cycles/<cycle_id>/reviews",
        body=ReviewAddSchema,
        response=ReviewSchema,
        status=201,
        tag=TAG,
    )
    def add_review(
        self, request: Any, caller: Identity, cycle_id: str, body: dict[str, Any]
    ) -> Any:
        """Add a review for someone who joined after the cycle opened (admin)."""
        return self.reviews_rpc.add_review(cycle_id, body)

    @route(
        "GET",
        f"{PREFIX}/cycles/<cycle_id>/report",
        response=ReviewCycleReportSchema,
        tag=TAG,
    )
    def get_review_cycle_report(
        self, request: Any, caller: Identity, cycle_id: str
    ) -> Any:
        """Reviews per state, overdue against milestones, objectives by status.

        School admins see their school, trust admins the whole trust.
        """
        return self.reviews_rpc.get_cycle_report(cycle_id)

    @route(
        "GET",
        f"{PREFIX}/cycles/<cycle_id>/report.csv",
        tag=TAG,
        content_type="text/csv",
    )
    def export_review_cycle_report(
        self, request: Any, caller: Identity, cycle_id: str
    ) -> Response:
        """The cycle report as CSV, one row per school and a total row."""
        exported = self.reviews_rpc.export_cycle_report(cycle_id)
        response = Response(exported["csv"], mimetype="text/csv")
        response.headers["Content-Disposition"] = attachment(exported["filename"])
        return response

    # Reviews

    @route(
        "GET",
        f"{PREFIX}/reviews",
        query=ReviewListQuerySchema,
        response=ReviewPageSchema,
        tag=TAG,
    )
    def list_reviews(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Reviews the caller is reviewed in, reviews, or administers."""
        return self.reviews_rpc.list_reviews(query)

    @route("GET", f"{PREFIX}/reviews/<review_id>", response=ReviewSchema, tag=TAG)
    def get_review(self, request: Any, caller: Identity, review_id: str) -> Any:
        """One review with its objectives and the history of its steps."""
        return self.reviews_rpc.get_review(review_id)

    @route(
        "PUT",
        f"{PREFIX}/reviews/<review_id>/reviewer",
        body=ReviewReviewerSchema,
        response=ReviewSchema,
        tag=TAG,
    )
    def assign_reviewer(
        self, request: Any, caller: Identity, review_id: str, body: dict[str, Any]
    ) -> Any:
        """Name another reviewer (admin); never the reviewee."""
        return self.reviews_rpc.assign_reviewer(review_id, body["reviewer_id"])

    @route(
        "POST",
        f"{PREFIX}/reviews/<review_id>/steps",
        body=ReviewStepSchema,
        response=ReviewSchema,
        tag=TAG,
    )
    def take_review_step(
        self, request: Any, caller: Identity, review_id: str, body: dict[str, Any]
    ) -> Any:
        """Move the review on by one step, taken by the right person.

        409 ``INVALID_TRANSITION`` out of order, 403 ``NOT_YOUR_STEP`` for
        someone else's step, 409 ``SELF_REVIEW_LOCKED`` once submitted.
        """
        return self.reviews_rpc.take_review_step(
            review_id, body["step"], body.get("text")
        )

    @route(
        "PUT",
        f"{PREFIX}/reviews/<review_id>/self-review",
        body=ReviewSelfReviewSchema,
        response=ReviewSchema,
        tag=TAG,
    )
    def save_self_review(
        self, request: Any, caller: Identity, review_id: str, body: dict[str, Any]
    ) -> Any:
        """The reviewee saves a draft of their self review until they submit it."""
        return self.reviews_rpc.save_self_review(review_id, body["text"])

    # Objectives

    @route(
        "POST",
        f"{PREFIX}/reviews/<review_id>/objectives",
        body=ReviewObjectiveCreateSchema,
        response=ReviewObjectiveSchema,
        status=201,
        tag=TAG,
    )
    def add_objective(
        self, request: Any, caller: Identity, review_id: str, body: dict[str, Any]
    ) -> Any:
        """Add an objective: the reviewer, or the reviewee while it is a draft."""
        return self.reviews_rpc.add_objective(review_id, plain(body))

    @route(
        "GET",
        f"{PREFIX}/objectives/<objective_id>",
        response=ReviewObjectiveSchema,
        tag=TAG,
    )
    def get_objective(self, request: Any, caller: Identity, objective_id: str) -> Any:
        """One objective with its progress updates."""
        return self.reviews_rpc.get_objective(objective_id)

    @route(
        "PATCH",
        f"{PREFIX}/objectives/<objective_id>",
        body=ReviewObjectiveUpdateSchema,
        response=ReviewObjectiveSchema,
        tag=TAG,
    )
    def update_objective(
        self, request: Any, caller: Identity, objective_id: str, body: dict[str, Any]
    ) -> Any:
        """Change an objective or the CPD record ids linked to it."""
        return self.reviews_rpc.update_objective(objective_id, plain(body))

    @route(
        "POST",
        f"{PREFIX}/objectives/<objective_id>/progress",
        body=ReviewProgressCreateSchema,
        response=ReviewProgressSchema,
        status=201,
        tag=TAG,
    )
    def record_progress(
        self, request: Any, caller: Identity, objective_id: str, body: dict[str, Any]
    ) -> Any:
        """Record progress on an objective (reviewer or reviewee)."""
        return self.reviews_rpc.record_progress(objective_id, plain(body))

    # Observations

    @route(
        "GET",
        f"{PREFIX}/observations",
        query=ReviewObservationQuerySchema,
        response=ReviewObservationListSchema,
        tag=TAG,
    )
    def list_observations(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Summaries, without free text, of the observations the caller may read."""
        return self.reviews_rpc.list_observations(query.get("observed_id"))

    @route(
        "POST",
        f"{PREFIX}/observations",
        body=ReviewObservationCreateSchema,
        response=ReviewObservationSchema,
        status=201,
        tag=TAG,
    )
    def create_observation(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Record an observation of a colleague; a draft until shared."""
        return self.reviews_rpc.create_observation(plain(body))

    @route(
        "GET",
        f"{PREFIX}/observations/<observation_id>",
        response=ReviewObservationSchema,
        tag=TAG,
    )
    def get_observation(
        self, request: Any, caller: Identity, observation_id: str
    ) -> Any:
        """One observation; a read by anyone but its observer is recorded."""
        return self.reviews_rpc.get_observation(observation_id)

    @route(
        "PATCH",
        f"{PREFIX}/observations/<observation_id>",
        body=ReviewObservationUpdateSchema,
        response=ReviewObservationSchema,
        tag=TAG,
    )
    def update_observation(
        self, request: Any, caller: Identity, observation_id: str, body: dict[str, Any]
    ) -> Any:
        """The observer edits a draft observation."""
        return self.reviews_rpc.update_observation(observation_id, plain(body))

    @route(
        "POST",
        f"{PREFIX}/observations/<observation_id>/share",
        response=ReviewObservationSchema,
        tag=TAG,
    )
    def share_observation(
        self, request: Any, caller: Identity, observation_id: str
    ) -> Any:
        """The observer shares the observation with the observed teacher."""
        return self.reviews_rpc.share_observation(observation_id)

    @route(
        "POST",
        f"{PREFIX}/observations/<observation_id>/acknowledge",
        body=ReviewAcknowledgeSchema,
        response=ReviewObservationSchema,
        tag=TAG,
    )
    def acknowledge_observation(
        self, request: Any, caller: Identity, observation_id: str, body: dict[str, Any]
    ) -> Any:
        """The observed teacher acknowledges it, optionally with a response."""
        return self.reviews_rpc.acknowledge_observation(
            observation_id, body.get("response")
        )

    @route(
        "GET",
        f"{PREFIX}/observations/<observation_id>/views",
        response=ReviewViewListSchema,
        tag=TAG,
    )
    def list_observation_views(
        self, request: Any, caller: Identity, observation_id: str
    ) -> Any:
        """Who read the observation and when (the observed teacher, the observer)."""
        return self.reviews_rpc.list_observation_views(observation_id)

    # Evidence

    @route(
        "GET",
        f"{PREFIX}/evidence",
        query=ReviewEvidenceQuerySchema,
        response=ReviewEvidenceListSchema,
        tag=TAG,
    )
    def list_evidence(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The evidence of a review, objective or observation."""
        return self.reviews_rpc.list_evidence(query["target_type"], query["target_id"])

    @route(
        "POST",
        f"{PREFIX}/evidence/files",
        query=ReviewEvidenceUploadQuerySchema,
        response=ReviewEvidenceSchema,
        status=201,
        tag=TAG,
    )
    def upload_evidence(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """Upload a file as the raw request body (up to REVIEWS_MAX_UPLOAD_BYTES).

        The type is judged by the content: PDF, images, Office documents and
        plain text. 413 ``PAYLOAD_TOO_LARGE``, 415 ``UPLOAD_TYPE_NOT_ALLOWED``.
        """
        content = read_body(request, upload_limit())
        data = dict(query, content_base64=base64.b64encode(content).decode("ascii"))
        return self.reviews_rpc.upload_evidence(data)

    @route(
        "POST",
        f"{PREFIX}/evidence/links",
        body=ReviewEvidenceLinkSchema,
        response=ReviewEvidenceSchema,
        status=201,
        tag=TAG,
    )
    def link_evidence(
        self, request: Any, caller: Identity, body: dict[str, Any]
    ) -> Any:
        """Attach a link to a review, objective or observation."""
        return self.reviews_rpc.link_evidence(body)

    @route(
        "GET",
        f"{PREFIX}/evidence/<evidence_id>/content",
        tag=TAG,
        content_type="application/octet-stream",
    )
    def download_evidence(
        self, request: Any, caller: Identity, evidence_id: str
    ) -> Response:
        """The file, for whoever may read what it is attached to."""
        found = self.reviews_rpc.download_evidence(evidence_id)
        response = Response(
            base64.b64decode(found["content_base64"]), mimetype=found["content_type"]
        )
        response.headers["Content-Disposition"] = attachment(found["filename"])
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Checksum-SHA256"] = found["sha256"]
        return response

    # Comments

    @route(
        "GET",
        f"{PREFIX}/comments",
        query=ReviewCommentQuerySchema,
        response=ReviewCommentListSchema,
        tag=TAG,
    )
    def list_comments(
        self, request: Any, caller: Identity, query: dict[str, Any]
    ) -> Any:
        """The comments on a review or objective that the caller may read."""
        return self.reviews_rpc.list_comments(query["target_type"], query["target_id"])

    @route(
        "POST",
        f"{PREFIX}/comments",
        body=ReviewCommentCreateSchema,
        response=ReviewCommentSchema,
        status=201,
        tag=TAG,
    )
    def add_comment(self, request: Any, caller: Identity, body: dict[str, Any]) -> Any:
        """Comment, shared with the reviewee or private to reviewers."""
        return self.reviews_rpc.add_comment(body)
