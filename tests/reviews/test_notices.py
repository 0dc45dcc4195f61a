"""What the notify service asks of reviews on its own account, through the
reviews service in its nameko container: the context of a review or an
observation, and the reviews whose next milestone is due. Nobody else may
ask."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta

import pytest
from nameko.exceptions import RemoteError
from sqlalchemy import delete, event, insert

from plumbing.errors import from_remote
from plumbing.identity import Identity, service_identity
from services.reviews import cycles, events, notices, observations, reviews
from services.reviews.models import DirectoryOrganisation, Review
from tests.service_support import outbox

from .conftest import CYCLE, T0
from .support import open_elm_cycle, review_at, review_of

NOTIFY = service_identity("notify")
MARKER = "MARKER-91c2-private-words"


def error_of(caught):
    error = from_remote(caught.value.value)
    assert error is not None, caught.value
    return error


def elm_reviews(db, world, cycle):
    """The four Elm reviews: Margo and Eve (no reviewer), Tom and Tina (Margo)."""
    people = (world.margo, world.elm_admin, world.tom, world.tina)
    found = reviews.list_reviews(
        db, world.elm_admin.identity, {"cycle_id": cycle["id"]}
    )
    by_reviewee = {r["reviewee_id"]: r for r in found["items"]}
    assert set(by_reviewee) == {p.id for p in people}
    return by_reviewee


# notification_context


def test_a_review_context_names_its_cycle_school_and_milestones(
    reviews_container, reviews_rpc, db, world
):
    """Tom's review: ids, state, cycle and school names, ISO milestones; no event."""
    cycle = open_elm_cycle(db, world)
    tom = review_at(db, world, cycle, "interim_review_done")
    before = outbox(db)
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        answer = service.notification_context(review_id=tom["id"])
    assert answer == {
        "review": {
            "id": tom["id"],
            "org_id": world.elm,
            "org_name": "Elm Primary",
            "cycle_id": cycle["id"],
            "cycle_name": "2030-31",
            "state": "interim_review_done",
            "reviewee_id": world.tom.id,
            "reviewer_id": world.margo.id,
            "milestones": {
                "objectives_due": "2030-10-31",
                "interim_due": "2031-02-28",
                "final_due": "2031-07-15",
            },
        }
    }
    # "Good start" is the interim notes review_at wrote.
    assert "Good start" not in json.dumps(answer)
    assert outbox(db) == before


def test_a_review_without_a_reviewer_or_known_school(
    reviews_container, reviews_rpc, db, world
):
    """Margo has no reviewer (None); a school missing from the directory is ""."""
    cycle = open_elm_cycle(db, world)
    margo = review_of(db, cycle, world.margo)
    db.execute(
        delete(DirectoryOrganisation).where(DirectoryOrganisation.id == world.elm)
    )
    db.commit()
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        review = service.notification_context(margo["id"])["review"]
        due = service.milestones_due("2030-10-31", 0)
    assert review["reviewer_id"] is None
    assert review["org_name"] == ""
    assert {item["org_name"] for item in due["items"]} == {""}


def test_an_observation_context_carries_no_free_text(
    reviews_container, reviews_rpc, db, world
):
    """Draft then shared and answered: who, when, type, visibility, shared;
    never the focus, strengths, areas, actions or the response."""
    made = observations.create_observation(
        db,
        world.margo.identity,
        {
            "type": "formal",
            "observed_id": world.tom.id,
            "observed_on": "2030-11-12",
            "visibility": "reviewer",
            "focus": MARKER,
            "strengths": MARKER,
            "areas_for_development": MARKER,
            "actions": MARKER,
        },
        now=T0,
    )
    expected = {
        "id": made["id"],
        "org_id": world.elm,
        "org_name": "Elm Primary",
        "observer_id": world.margo.id,
        "observed_id": world.tom.id,
        "observed_on": "2030-11-12",
        "type": "formal",
        "visibility": "reviewer",
        "shared": False,
    }
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        draft = service.notification_context(observation_id=made["id"])
    observations.share_observation(db, world.margo.identity, made["id"], now=T0)
    observations.acknowledge_observation(
        db, world.tom.identity, made["id"], MARKER, now=T0
    )
    before = outbox(db)
    with reviews_rpc(NOTIFY) as service:
        shared = service.notification_context(observation_id=made["id"])
    assert draft == {"observation": expected}
    assert shared == {"observation": dict(expected, shared=True)}
    assert MARKER not in json.dumps([draft, shared])
    assert outbox(db) == before


def test_unknown_ids_are_not_found(reviews_container, reviews_rpc, db, world):
    """An id of nothing is NOT_FOUND; notify may read any, so no authz.denied."""
    before = outbox(db)
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        for kwargs in (
            {"review_id": str(uuid.uuid4())},
            {"observation_id": str(uuid.uuid4())},
        ):
            with pytest.raises(RemoteError) as caught:
                service.notification_context(**kwargs)
            assert error_of(caught).code == "NOT_FOUND", kwargs
    assert outbox(db) == before


# milestones_due

NEXT = {
    "draft": ("objectives_due", "2030-10-31", ("margo", "tom")),
    "objectives_agreed": ("interim_due", "2031-02-28", ("margo",)),
    "interim_review_done": ("final_due", "2031-07-15", ("tom",)),
    "self_review_submitted": ("final_due", "2031-07-15", ("margo",)),
    "final_review_done": ("final_due", "2031-07-15", ("tom",)),
}


@pytest.mark.parametrize("state", list(NEXT))
def test_each_state_is_due_at_its_next_milestone(
    reviews_container, reviews_rpc, db, world, state
):
    """Tom's review, on the day of the milestone its state still needs: that
    milestone, and the people with a step to take before it."""
    cycle = open_elm_cycle(db, world)
    tom = review_at(db, world, cycle, state)
    milestone, due_on, takers = NEXT[state]
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        answer = service.milestones_due(due_on, 0)
    [item] = [i for i in answer["items"] if i["review_id"] == tom["id"]]
    assert item == {
        "review_id": tom["id"],
        "cycle_id": cycle["id"],
        "cycle_name": "2030-31",
        "org_id": world.elm,
        "org_name": "Elm Primary",
        "milestone": milestone,
        "due_on": due_on,
        "reviewee_id": world.tom.id,
        "user_ids": sorted(getattr(world, name).id for name in takers),
    }
    # The other three are drafts: due with their objectives, nothing later.
    assert answer["total"] == len(answer["items"]) == (4 if state == "draft" else 1)


def test_the_takers_agree_with_the_review_steps():
    """Past the draft, who is reminded is who takes the state's next step."""
    for state, (_, takers) in notices.NEXT_MILESTONE.items():
        [step] = [s for s in reviews.STEPS.values() if s.source == state]
        if state == "draft":
            assert takers == (reviews.REVIEWER, reviews.REVIEWEE)
        else:
            assert takers == (step.taken_by,), state


def test_draft_reviews_without_a_reviewer_remind_the_reviewee(
    reviews_container, reviews_rpc, db, world
):
    """Margo's and Eve's drafts have no reviewer: only they are listed."""
    cycle = open_elm_cycle(db, world)
    by_reviewee = elm_reviews(db, world, cycle)
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        answer = service.milestones_due("2030-10-31", 0)
    users = {item["review_id"]: item["user_ids"] for item in answer["items"]}
    for person in (world.margo, world.elm_admin):
        assert users[by_reviewee[person.id]["id"]] == [person.id]
    assert users[by_reviewee[world.tina.id]["id"]] == sorted(
        [world.margo.id, world.tina.id]
    )


@pytest.mark.parametrize("state", ["signed_off", "closed"])
def test_signed_off_and_closed_reviews_are_never_due(
    reviews_container, reviews_rpc, db, world, state
):
    """On the final milestone itself, a finished review is not listed."""
    cycle = open_elm_cycle(db, world)
    review_at(db, world, cycle, state)
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        answer = service.milestones_due("2031-07-15", 0)
    assert answer == {"items": [], "total": 0}


@pytest.mark.parametrize(
    ("today", "days", "due"),
    [
        ("2030-10-31", 0, True),  # due today
        ("2030-10-21", 10, True),  # due on the window's last day
        ("2030-09-01", 60, True),  # the widest window, to its last day
        ("2030-10-20", 10, False),  # due the day after the window
        ("2030-11-01", 60, False),  # already past
    ],
)
def test_the_window_runs_from_today_to_today_plus_days(
    reviews_container, reviews_rpc, db, world, today, days, due
):
    """The four Elm drafts, due 2030-10-31, are in the window or not at all."""
    cycle = open_elm_cycle(db, world)
    ids = {r["id"] for r in elm_reviews(db, world, cycle).values()}
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        answer = service.milestones_due(today, days)
    found = {item["review_id"] for item in answer["items"]}
    assert found == (ids if due else set())
    assert answer["total"] == len(found)


def test_pages_follow_the_due_date_then_the_review_id(
    reviews_container, reviews_rpc, db, world
):
    """Yew's two drafts (due 10-15) come before Elm's four (10-31); pages of
    four join up to the whole list, each with the total; past the end, none."""
    elm = open_elm_cycle(db, world)
    yew = cycles.open_cycle(
        db,
        world.yew_admin.identity,
        dict(CYCLE, org_id=world.yew, name="Yew 30-31", objectives_due="2030-10-15"),
        now=T0,
    )
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        whole = service.milestones_due("2030-10-01", 30, limit=1000)
        pages = [
            service.milestones_due("2030-10-01", 30, offset=offset, limit=4)
            for offset in (0, 4, 8)
        ]
    items = whole["items"]
    assert whole["total"] == 6
    assert [(i["due_on"], i["review_id"]) for i in items] == sorted(
        (i["due_on"], i["review_id"]) for i in items
    )
    assert [(i["cycle_id"], i["cycle_name"], i["org_name"]) for i in items] == [
        (yew["id"], "Yew 30-31", "Yew School")
    ] * 2 + [(elm["id"], "2030-31", "Elm Primary")] * 4
    assert [len(p["items"]) for p in pages] == [4, 2, 0]
    assert [p["total"] for p in pages] == [6, 6, 6]
    assert [i for p in pages for i in p["items"]] == items


def test_a_five_thousand_review_cycle_is_one_query_a_page(
    reviews_container, reviews_rpc, db, world
):
    """5,000 more reviews in the Elm cycle: each page of up to 1,000, total
    included, is a single SQL statement, and the service answers a full page."""
    cycle = open_elm_cycle(db, world)
    states = list(notices.NEXT_MILESTONE)
    db.execute(
        insert(Review),
        [
            {
                "id": str(uuid.uuid4()),
                "cycle_id": cycle["id"],
                "org_id": world.elm,
                "reviewee_id": str(uuid.uuid4()),
                "reviewer_id": world.margo.id,
                "state": states[n % len(states)],
                "created_at": T0,
                "updated_at": T0,
            }
            for n in range(5000)
        ],
    )
    db.commit()
    # From 10-31 (objectives) to 12-30: the drafts only.
    drafts = 4 + 1000
    statements = []
    engine = db.get_bind()

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        seen = []
        for offset in range(0, drafts + 1000, 1000):
            before = len(statements)
            page = notices.milestones_due(
                db, NOTIFY, "2030-10-31", 60, offset=offset, limit=1000
            )
            db.rollback()
            assert len(statements) - before == 1, offset
            assert page["total"] == drafts
            seen += page["items"]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len({item["review_id"] for item in seen}) == drafts
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        final = service.milestones_due("2031-07-15", 0, limit=1000)
    assert final["total"] == 3000 and len(final["items"]) == 1000


# Who may ask


def refused_callers(world):
    return {
        "school_admin": world.elm_admin.identity,
        "trust_admin": world.trust_admin.identity,
        "staff": world.tom.identity,
        "gateway": service_identity("gateway"),
        "training": service_identity("training"),
        # A user's call that says it is notify's is not notify's own.
        "user_as_notify": Identity(
            user_id=world.tom.id, org_id=world.elm, service="notify"
        ),
    }


@pytest.mark.parametrize(
    "who",
    ["school_admin", "trust_admin", "staff", "gateway", "training", "user_as_notify"],
)
def test_only_notify_on_its_own_account_may_ask(
    reviews_container, reviews_rpc, db, world, who
):
    """Anyone else is FORBIDDEN, even with bad input, after authz.denied."""
    cycle = open_elm_cycle(db, world)
    tom = review_of(db, cycle, world.tom)
    caller = refused_callers(world)[who]
    reviews_container.start()
    with reviews_rpc(caller) as service:
        with pytest.raises(RemoteError) as context:
            service.notification_context(review_id=tom["id"])
        with pytest.raises(RemoteError) as due:
            service.milestones_due("2030-10-31", 60)
        with pytest.raises(RemoteError) as bad:
            service.milestones_due("not a date", 99)
    assert [error_of(c).code for c in (context, due, bad)] == ["FORBIDDEN"] * 3
    denied = outbox(db, events.AUTHZ_DENIED)
    assert [e["data"]["action"] for e in denied] == [
        "reviews.notification_context",
        "reviews.milestones_due",
        "reviews.milestones_due",
    ]
    assert {e["subject"]["type"] for e in denied} == {"service"}
    assert {e["actor"]["user_id"] for e in denied} == {caller.user_id}


def test_a_call_without_identity_is_unauthenticated(reviews_container, reviews_rpc):
    reviews_container.start()
    with reviews_rpc() as service:
        with pytest.raises(RemoteError) as caught:
            service.milestones_due("2030-10-31", 7)
    assert error_of(caught).code == "UNAUTHENTICATED"


BAD_INPUT = [
    ("notification_context", (), {}, {"review_id", "observation_id"}),
    (
        "notification_context",
        (),
        {"review_id": "a", "observation_id": "b"},
        {"review_id", "observation_id"},
    ),
    ("notification_context", (5,), {}, {"review_id"}),
    ("notification_context", (), {"observation_id": "x" * 37}, {"observation_id"}),
    ("milestones_due", ("2030-13-01", 7), {}, {"today"}),
    ("milestones_due", ("31/10/2030", 7), {}, {"today"}),
    ("milestones_due", ("2030-W44-4", 7), {}, {"today"}),
    ("milestones_due", (None, 7), {}, {"today"}),
    ("milestones_due", ("9999-12-31", 1), {}, {"today"}),
    ("milestones_due", ("2030-10-31", -1), {}, {"days"}),
    ("milestones_due", ("2030-10-31", 61), {}, {"days"}),
    ("milestones_due", ("2030-10-31", "7"), {}, {"days"}),
    ("milestones_due", ("2030-10-31", True), {}, {"days"}),
    ("milestones_due", ("2030-10-31", 7.5), {}, {"days"}),
    ("milestones_due", ("2030-10-31", 7), {"offset": -1}, {"offset"}),
    ("milestones_due", ("2030-10-31", 7), {"limit": 0}, {"limit"}),
    ("milestones_due", ("2030-10-31", 7), {"limit": 1001}, {"limit"}),
    (
        "milestones_due",
        ("nope", 99),
        {"offset": -1, "limit": None},
        {"today", "days", "offset", "limit"},
    ),
]


def test_bad_input_is_refused_by_field(reviews_container, reviews_rpc, db, world):
    """Each bad argument is VALIDATION_FAILED naming it; nothing is emitted."""
    before = outbox(db)
    reviews_container.start()
    with reviews_rpc(NOTIFY) as service:
        for method, args, kwargs, fields in BAD_INPUT:
            with pytest.raises(RemoteError) as caught:
                getattr(service, method)(*args, **kwargs)
            error = error_of(caught)
            assert (error.code, set(error.fields)) == ("VALIDATION_FAILED", fields), (
                method,
                args,
                kwargs,
            )
        # The edges themselves are fine.
        last = (date(2030, 10, 31) + timedelta(days=60)).isoformat()
        assert service.milestones_due(last, 0, 0, 1) == {"items": [], "total": 0}
        assert service.milestones_due("2030-10-31", 60, limit=1000)["total"] == 0
    assert outbox(db) == before
