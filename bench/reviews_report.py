"""The reviews report benchmark: ``python -m bench.reviews_report``.

It seeds a trust of 20 schools and 5,000 staff (a fresh PostgreSQL database,
migrated like production), opens a trust-wide cycle through the service's own
code (one review each), spreads the reviews over every state, and adds 4
objectives and 3 observations per member of staff. Then it times, on the same
database, alternately:

1. the trust-wide cycle report as a trust admin asks for it: an RPC to the
   reviews service running in a nameko container on a fresh RabbitMQ vhost;
2. the same report's figures from one hand-written SQL query, run with
   psycopg2 directly;

and prints their medians and 95th percentiles, and the ratio of the medians.
The goals of issue 5: the report within 1 second and within 3 times the
plain query. The vhost and the database are removed at the end, also on
error or Ctrl-C. Results are also written to ``bench/results/reviews_report.json``.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402 (after monkey_patch)
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, date, datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psycopg2  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from bench.resources import (  # noqa: E402
    postgres_database,
    rabbit_vhost,
    raise_on_sigterm,
    run_tag,
)
from bench.stats import percentile  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPORT_LIMIT_S = 1.0
RATIO_LIMIT = 3.0

# The one query a person would write by hand for the report's figures.
PLAIN_QUERY = """
WITH states AS (
    SELECT org_id, state AS name, count(*) AS n
    FROM reviews WHERE cycle_id = %(cycle)s
    GROUP BY org_id, state
), statuses AS (
    SELECT r.org_id, o.status AS name, count(*) AS n
    FROM objectives o JOIN reviews r ON r.id = o.review_id
    WHERE r.cycle_id = %(cycle)s
    GROUP BY r.org_id, o.status
)
SELECT 'state', org_id, name, n FROM states
UNION ALL
SELECT 'status', org_id, name, n FROM statuses
"""

CYCLE = {
    "name": "Bench cycle",
    "starts_on": "2030-09-01",
    "ends_on": "2031-07-31",
    "objectives_due": "2030-10-31",
    "interim_due": "2031-02-28",
    "final_due": "2031-07-15",
}


def seed_directory(
    db: Any, schools: int, staff: int
) -> tuple[str, list[str], list[dict[str, Any]], Any]:
    """The reviews directory of a trust of ``schools`` schools and ``staff``
    staff (one line manager per 25, who has none), committed; answers the
    trust's id, the schools' ids, the people's rows and a trust admin."""
    from plumbing.identity import Identity
    from services.reviews.models import DirectoryOrganisation, DirectoryUser

    trust = str(uuid.uuid4())
    school_ids = [str(uuid.uuid4()) for _ in range(schools)]
    db.execute(
        insert(DirectoryOrganisation),
        [{"id": trust, "kind": "trust", "name": "Bench Trust"}]
        + [
            {
                "id": s,
                "kind": "school",
                "name": f"School {i:02}",
                "parent_trust_id": trust,
            }
            for i, s in enumerate(school_ids)
        ],
    )
    people: list[dict[str, Any]] = []
    per_school = staff // schools
    for school in school_ids:
        managers = [str(uuid.uuid4()) for _ in range(max(1, per_school // 25))]
        for index in range(per_school):
            user_id = managers[index] if index < len(managers) else str(uuid.uuid4())
            manager = None if index < len(managers) else managers[index % len(managers)]
            people.append(
                {
                    "id": user_id,
                    "org_id": school,
                    "line_manager_id": manager,
                    "given_name": "Staff",
                    "family_name": str(index),
                    "active": True,
                    "versions": {},
                }
            )
    db.execute(insert(DirectoryUser), people)
    db.commit()
    admin = Identity(
        user_id=str(uuid.uuid4()),
        org_id=trust,
        scopes={"trust_admin": [trust, *school_ids]},
    )
    return trust, school_ids, people, admin


def seed(db_url: str, schools: int, staff: int) -> dict[str, Any]:
    """The trust, its schools and staff, the cycle, objectives, observations."""
    from plumbing.database import ServiceSession, make_engine
    from services.reviews import cycles
    from services.reviews.models import (
        OBJECTIVE_STATUSES,
        OBJECTIVE_TYPES,
        OBSERVATION_TYPES,
        REVIEW_STATES,
        Objective,
        Observation,
    )

    engine = make_engine(db_url)
    factory = sessionmaker(bind=engine, class_=ServiceSession, expire_on_commit=False)
    now = datetime.now(UTC)
    with factory() as db:
        trust, _, _, admin = seed_directory(db, schools, staff)
        started = time.perf_counter()
        cycle = cycles.open_cycle(db, admin, dict(CYCLE, org_id=trust), now=now)
        open_seconds = time.perf_counter() - started

        states = "ARRAY[" + ",".join(f"'{s}'" for s in REVIEW_STATES) + "]"
        db.execute(
            text(
                f"UPDATE reviews SET state = ({states})"
                "[1 + abs(hashtext(id)) % :n] WHERE cycle_id = :cycle"
            ),
            {"n": len(REVIEW_STATES), "cycle": cycle["id"]},
        )
        reviews = db.execute(
            text("SELECT id, reviewee_id, reviewer_id, org_id FROM reviews")
        ).all()
        objectives = [
            {
                "id": str(uuid.uuid4()),
                "review_id": review.id,
                "type": OBJECTIVE_TYPES[n % len(OBJECTIVE_TYPES)],
                "description": "Objective",
                "success_criteria": "Criteria",
                "due_on": date(2031, 6, 30),
                "status": OBJECTIVE_STATUSES[(i + n) % len(OBJECTIVE_STATUSES)],
                "cpd_record_ids": [],
                "created_by": admin.user_id,
                "created_at": now,
                "updated_at": now,
            }
            for i, review in enumerate(reviews)
            for n in range(4)
        ]
        db.execute(insert(Objective), objectives)
        observations = [
            {
                "id": str(uuid.uuid4()),
                "org_id": review.org_id,
                "type": OBSERVATION_TYPES[n % len(OBSERVATION_TYPES)],
                "observer_id": review.reviewer_id or admin.user_id,
                "observed_id": review.reviewee_id,
                "observed_on": date(2030, 11, 1) + timedelta(days=n * 30),
                "focus": "Focus",
                "visibility": "reviewer",
                "shared_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for review in reviews
            for n in range(3)
        ]
        db.execute(insert(Observation), observations)
        db.commit()
        db.execute(text("ANALYZE"))
        db.commit()
    engine.dispose()
    return {
        "cycle_id": cycle["id"],
        "admin": admin,
        "reviews": len(reviews),
        "objectives": len(objectives),
        "observations": len(observations),
        "open_cycle_s": round(open_seconds, 2),
    }


def _plain(cursor: Any, cycle_id: str) -> float:
    """Seconds for the hand-written query, its rows fetched."""
    started = time.perf_counter()
    cursor.execute(PLAIN_QUERY, {"cycle": cycle_id})
    cursor.fetchall()
    return time.perf_counter() - started


def measure(schools: int = 20, staff: int = 5000, runs: int = 30) -> dict[str, Any]:
    """Seed, then time the report over RPC beside the plain query."""
    from nameko.containers import ServiceContainer
    from nameko.standalone.rpc import ServiceRpcProxy

    from plumbing import migrations
    from services.reviews.service import ReviewsService

    tag = run_tag()
    with (
        postgres_database("bench_reviews", tag) as db_url,
        rabbit_vhost(tag) as amqp_uri,
        tempfile.TemporaryDirectory() as workdir,
    ):
        migrations.upgrade("reviews", db_url)
        seeded = seed(db_url, schools, staff)
        config = {
            "AMQP_URI": amqp_uri,
            "REVIEWS_DATABASE_URL": db_url,
            "DATA_DIR": workdir,
            "serializer": "json",
        }
        container = ServiceContainer(ReviewsService, config)
        container.start()
        dsn = db_url.replace("postgresql+psycopg2://", "postgresql://")
        context = {"identity": seeded["admin"].to_json()}
        report_times: list[float] = []
        plain_times: list[float] = []
        connection = psycopg2.connect(dsn)
        try:
            with (
                ServiceRpcProxy("reviews", config, context_data=context) as proxy,
                connection.cursor() as cursor,
            ):
                for _ in range(3):  # warm-up: connections, caches, plans
                    report = proxy.get_cycle_report(seeded["cycle_id"])
                    _plain(cursor, seeded["cycle_id"])
                for _ in range(runs):
                    started = time.perf_counter()
                    report = proxy.get_cycle_report(seeded["cycle_id"])
                    report_times.append(time.perf_counter() - started)
                    plain_times.append(_plain(cursor, seeded["cycle_id"]))
        finally:
            connection.close()
            container.stop()
    report_median = statistics.median(report_times)
    plain_median = statistics.median(plain_times)
    ratio = report_median / plain_median if plain_median else float("inf")
    return {
        "seed": {k: v for k, v in seeded.items() if k != "admin"},
        "schools_in_report": len(report["organisations"]),
        "reviews_in_report": report["total"]["reviews"],
        "report_ms": {
            "median": round(report_median * 1000, 2),
            "p95": round(percentile(report_times, 0.95) * 1000, 2),
        },
        "plain_query_ms": {
            "median": round(plain_median * 1000, 2),
            "p95": round(percentile(plain_times, 0.95) * 1000, 2),
        },
        "ratio": round(ratio, 3),
        "verdicts": {
            f"report within {REPORT_LIMIT_S} s": report_median <= REPORT_LIMIT_S,
            f"report within {RATIO_LIMIT}x the plain query": ratio <= RATIO_LIMIT,
        },
        "runs": runs,
    }


def report_text(result: dict[str, Any]) -> str:
    seed_info = result["seed"]
    lines = [
        f"seeded: {seed_info['reviews']} reviews, {seed_info['objectives']} "
        f"objectives, {seed_info['observations']} observations "
        f"(open_cycle took {seed_info['open_cycle_s']} s)",
        f"report covers {result['schools_in_report']} organisations, "
        f"{result['reviews_in_report']} reviews; {result['runs']} runs each",
        "",
        f"{'':32}{'median ms':>12}{'p95 ms':>12}",
        f"{'trust-wide report (RPC)':32}{result['report_ms']['median']:>12}"
        f"{result['report_ms']['p95']:>12}",
        f"{'one hand-written SQL query':32}{result['plain_query_ms']['median']:>12}"
        f"{result['plain_query_ms']['p95']:>12}",
        f"{'ratio of medians':32}{result['ratio']:>12.3f}",
        "",
    ]
    for check, ok in result["verdicts"].items():
        lines.append(f"{'PASS' if ok else 'FAIL'}  {check}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--staff", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "reviews_report.json"
    )
    args = parser.parse_args(argv)
    try:
        with raise_on_sigterm():
            result = measure(args.schools, args.staff, args.runs)
    except KeyboardInterrupt:
        print("interrupted; the run's database and vhost were removed")
        return 130
    print(report_text(result))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if all(result["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
