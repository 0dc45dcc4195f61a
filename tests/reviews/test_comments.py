"""Comment threads, shared with the reviewee or private to reviewers."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from plumbing.errors import NotFound, ValidationFailed
from services.reviews import comments, events
from tests.service_support import outbox

from .conftest import T0
from .support import add_objective, open_elm_cycle, review_of

TICKS = itertools.count()


def comment(db, person, target_type, target_id, text, **extra):
    data = {"target_type": target_type, "target_id": target_id, "text": text, **extra}
    now = T0 + timedelta(minutes=next(TICKS))
    return comments.add_comment(db, person.identity, data, now=now)


def test_private_comments_are_hidden_from_the_reviewee(db, world):
    """Margo's private note is read by her and Eve, not by Tom."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    comment(db, world.margo, "review", review["id"], "Shared note")
    comment(db, world.margo, "review", review["id"], "Private", visibility="reviewers")
    seen = {
        person.id: [
            c["text"]
            for c in comments.list_comments(
                db, person.identity, "review", review["id"]
            )["items"]
        ]
        for person in (world.tom, world.margo, world.elm_admin)
    }
    assert seen[world.tom.id] == ["Shared note"]
    assert (
        seen[world.margo.id] == seen[world.elm_admin.id] == ["Shared note", "Private"]
    )
    assert [e["data"]["visibility"] for e in outbox(db, events.COMMENT_ADDED)] == [
        "shared",
        "reviewers",
    ]


def test_replies_thread_on_an_objective(db, world):
    """Tom replies to Margo's comment on an objective; parent_id links them."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    objective = add_objective(db, world.margo, review)
    first = comment(db, world.margo, "objective", objective["id"], "How is it going?")
    reply = comment(
        db, world.tom, "objective", objective["id"], "Well", parent_id=first["id"]
    )
    assert reply["parent_id"] == first["id"]


def test_the_reviewee_cannot_write_or_reply_to_private_comments(db, world):
    """Tom asking for a private comment, or replying to one, is refused."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    hidden = comment(
        db, world.margo, "review", review["id"], "P", visibility="reviewers"
    )
    with pytest.raises(ValidationFailed):
        comment(db, world.tom, "review", review["id"], "Me", visibility="reviewers")
    with pytest.raises(ValidationFailed):
        comment(db, world.tom, "review", review["id"], "Re", parent_id=hidden["id"])


def test_outsiders_cannot_comment_or_read_comments(db, world):
    """Tina gets NotFound with authz.denied."""
    cycle = open_elm_cycle(db, world)
    review = review_of(db, cycle, world.tom)
    with pytest.raises(NotFound):
        comment(db, world.tina, "review", review["id"], "Hi")
    with pytest.raises(NotFound):
        comments.list_comments(db, world.tina.identity, "review", review["id"])
    assert len(outbox(db, events.AUTHZ_DENIED)) == 2
