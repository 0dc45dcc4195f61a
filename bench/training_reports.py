"""Training reports benchmark: ``python -m bench.training_reports``.

Seeds a fresh, migrated training database with a trust of 20 schools, 5,000
staff, 2,000 events, 100,000 bookings (with their absences and cover),
100,000 CPD records, external requests and budgets, all in one academic year
(2030), by bulk ``COPY``. Then times, on the same database:

- the trust-wide CPD hours report (per school) and the trust-wide spend
  report, called as the training service calls them (its domain functions
  on a service session, the trust CPD lead as caller);
- beside each, one hand-written SQL query computing the same figures;

and prints the median of several runs of each, their ratio, and whether the
figures agree. The issue asks each report to come back within 1 second and
within 3 times the plain query. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg2

from bench.resources import postgres_database, raise_on_sigterm, run_tag

YEAR = 2030
FIRST_DAY = date(YEAR, 9, 1)
DEPARTMENTS = ("Maths", "English", "Science", "Humanities", "Arts", "SEND")
JOB_ROLES = ("teacher", "teacher", "teacher", "teaching_assistant", "leader")
TRUST = "trust-bench"

HOURS_SQL = """
SELECT org_id, sum(hours) AS hours, count(DISTINCT user_id) AS people,
       count(*) AS activities
FROM cpd_records
WHERE org_id = ANY(%(orgs)s) AND activity_date >= %(first)s
  AND activity_date < %(after)s
GROUP BY org_id
ORDER BY org_id
"""

HOURS_BY_PERSON_SQL = """
SELECT r.user_id, s.display_name, r.org_id, sum(r.hours) AS hours,
       count(*) AS activities
FROM cpd_records r LEFT JOIN staff s ON s.user_id = r.user_id
WHERE r.org_id = ANY(%(orgs)s) AND r.activity_date >= %(first)s
  AND r.activity_date < %(after)s
GROUP BY r.user_id, s.display_name, r.org_id
ORDER BY r.user_id
"""

SPEND_SQL = """
WITH costs AS (
    SELECT b.org_id, b.fee AS fees, 0 AS cover, b.travel_cost AS travel,
           e.starts_at <= %(now)s AS happened
    FROM bookings b JOIN events e ON e.id = b.event_id
    WHERE b.org_id = ANY(%(orgs)s) AND b.status = 'booked'
      AND e.starts_at >= %(start)s AND e.starts_at < %(end)s
    UNION ALL
    SELECT org_id, fee, 0, travel_cost, start_date <= %(today)s
    FROM external_requests
    WHERE org_id = ANY(%(orgs)s) AND status = 'approved'
      AND start_date >= %(first)s AND start_date < %(after)s
    UNION ALL
    SELECT org_id, 0, cover_cost, 0, start_date <= %(today)s FROM absences
    WHERE org_id = ANY(%(orgs)s) AND status = 'active'
      AND start_date >= %(first)s AND start_date < %(after)s
)
SELECT c.org_id, sum(c.fees) AS fees, sum(c.cover) AS cover,
       sum(c.travel) AS travel,
       sum(CASE WHEN c.happened THEN c.fees + c.cover + c.travel ELSE 0 END)
           AS spent,
       max(bu.amount) AS budget
FROM costs c
LEFT JOIN budgets bu ON bu.org_id = c.org_id AND bu.year = %(year)s
GROUP BY c.org_id
ORDER BY c.org_id
"""


def _copy(
    cursor: Any, table: str, columns: Iterable[str], rows: Iterable[tuple]
) -> int:
    """Bulk-load rows with COPY (tab-separated, ``\\N`` for NULL)."""
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write(
            "\t".join("\\N" if value is None else str(value) for value in row) + "\n"
        )
        count += 1
    buffer.seek(0)
    cursor.copy_from(buffer, table, columns=list(columns), null="\\N")
    return count


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def seed(dsn: str, schools: int, staff: int, bookings: int, records: int) -> list[str]:
    """Fill the database; returns the organisation ids (trust first)."""
    rng = random.Random(2030)
    now = datetime(YEAR, 8, 1, tzinfo=UTC).isoformat()
    school_ids = [f"school-{n:02d}" for n in range(schools)]
    people_per_school = staff // schools
    events_per_school = max(bookings // 50 // schools, 1)
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            _copy(
                cur,
                "organisations",
                (
                    "id",
                    "kind",
                    "name",
                    "parent_trust_id",
                    "timezone",
                    "cover_daily_rate",
                    "cpd_lead_approval",
                    "budget_policy",
                    "followup_weeks",
                ),
                [
                    (
                        TRUST,
                        "trust",
                        "Bench Trust",
                        None,
                        "Europe/London",
                        0,
                        "f",
                        "warn",
                        6,
                    )
                ]
                + [
                    (s, "school", s, TRUST, "Europe/London", 180, "f", "warn", 6)
                    for s in school_ids
                ],
            )
            people = {
                school: [_id(rng) for _ in range(people_per_school)]
                for school in school_ids
            }
            _copy(
                cur,
                "staff",
                (
                    "user_id",
                    "org_id",
                    "line_manager_id",
                    "display_name",
                    "active",
                    "department",
                    "job_role",
                ),
                (
                    (
                        user,
                        school,
                        None,
                        f"Person {n}",
                        "t",
                        DEPARTMENTS[n % len(DEPARTMENTS)],
                        JOB_ROLES[n % len(JOB_ROLES)],
                    )
                    for school in school_ids
                    for n, user in enumerate(people[school])
                ),
            )
            _copy(
                cur,
                "budgets",
                ("org_id", "year", "amount"),
                ((school, YEAR, 60000) for school in school_ids),
            )
            courses = []
            events = []
            for school in school_ids:
                for c in range(10):
                    course = _id(rng)
                    courses.append(
                        (course, school, f"Course {c}", "", "internal", None, None)
                        + (3, 40 + 10 * c, None, "published", now, now)
                    )
                    for _ in range(max(events_per_school // 10, 1)):
                        start = datetime.combine(
                            FIRST_DAY + timedelta(days=rng.randrange(300)),
                            datetime.min.time(),
                            UTC,
                        ) + timedelta(hours=9)
                        events.append((_id(rng), course, school, start, 40 + 10 * c))
            _copy(
                cur,
                "courses",
                (
                    "id",
                    "org_id",
                    "title",
                    "description",
                    "provider_kind",
                    "provider_name",
                    "category",
                    "cpd_hours",
                    "fee",
                    "audience",
                    "status",
                    "created_at",
                    "updated_at",
                ),
                courses,
            )
            _copy(
                cur,
                "events",
                (
                    "id",
                    "course_id",
                    "org_id",
                    "status",
                    "capacity",
                    "facilitator",
                    "booking_deadline",
                    "starts_at",
                    "ends_at",
                    "created_at",
                    "updated_at",
                ),
                (
                    (e, c, s, "scheduled", 60, None, None, start)
                    + (start + timedelta(hours=3), now, now)
                    for e, c, s, start, _fee in events
                ),
            )
            _copy(
                cur,
                "sessions",
                ("id", "event_id", "starts_at", "ends_at", "venue", "online_link"),
                (
                    (_id(rng), e, start, start + timedelta(hours=3), "Hall", None)
                    for e, _c, _s, start, _fee in events
                ),
            )
            booking_rows = []
            absence_rows = []
            per_event = max(bookings // len(events), 1)
            for e, _c, school, start, fee in events:
                for user in rng.sample(people[school], per_event):
                    booking = _id(rng)
                    status = "booked" if rng.random() < 0.9 else "cancelled"
                    cover = rng.random() < 0.3
                    cover_cost = 90 if cover else 0
                    travel = rng.choice((0, 0, 5, 12))
                    booking_rows.append(
                        (booking, e, user, school, status, user, None, None)
                        + (None, None, None, fee, cover_cost, travel)
                        + ("t" if cover else "f", 0, now, now)
                    )
                    if status == "booked":
                        absence_rows.append(
                            (_id(rng), user, school, booking, None, start.date())
                            + (start.date(), 0.5, "Training", "t" if cover else "f")
                            + (cover_cost, "active", now)
                        )
            _copy(
                cur,
                "bookings",
                (
                    "id",
                    "event_id",
                    "user_id",
                    "org_id",
                    "status",
                    "requested_by",
                    "deadline",
                    "waitlist_position",
                    "manager_decided_by",
                    "lead_decided_by",
                    "decline_reason",
                    "fee",
                    "cover_cost",
                    "travel_cost",
                    "cover_needed",
                    "ical_sequence",
                    "created_at",
                    "updated_at",
                ),
                booking_rows,
            )
            _copy(
                cur,
                "absences",
                (
                    "id",
                    "user_id",
                    "org_id",
                    "booking_id",
                    "external_request_id",
                    "start_date",
                    "end_date",
                    "days",
                    "reason",
                    "cover_needed",
                    "cover_cost",
                    "status",
                    "created_at",
                ),
                absence_rows,
            )
            all_people = [(u, s) for s in school_ids for u in people[s]]
            _copy(
                cur,
                "external_requests",
                (
                    "id",
                    "user_id",
                    "org_id",
                    "provider",
                    "title",
                    "start_date",
                    "end_date",
                    "days",
                    "hours",
                    "fee",
                    "travel_cost",
                    "cover_needed",
                    "cover_cost",
                    "rationale",
                    "intended_impact",
                    "status",
                    "created_at",
                    "updated_at",
                ),
                (
                    (_id(rng), user, school, "Hub", "Conference")
                    + (day, day, 1, 6, 150, 30, "f", 0, "Why", "Impact")
                    + ("approved", now, now)
                    for user, school in rng.sample(
                        all_people, min(2000, len(all_people))
                    )
                    for day in [FIRST_DAY + timedelta(days=rng.randrange(300))]
                ),
            )
            kinds: tuple[tuple[str, str], ...] = (
                ("internal", "course"),
                ("external", "conference"),
            )
            kinds += (("informal", "reading"), ("informal", "webinar"))
            _copy(
                cur,
                "cpd_records",
                (
                    "id",
                    "user_id",
                    "org_id",
                    "kind",
                    "activity",
                    "title",
                    "activity_date",
                    "hours",
                    "reflection",
                    "evidence_links",
                    "booking_id",
                    "external_request_id",
                    "created_at",
                ),
                (
                    (_id(rng), user, school, kind, activity, "Activity")
                    + (FIRST_DAY + timedelta(days=rng.randrange(365)),)
                    + (rng.choice((1, 1.5, 2, 3, 6)), None, "[]", None, None, now)
                    for user, school in (rng.choice(all_people) for _ in range(records))
                    for kind, activity in [rng.choice(kinds)]
                ),
            )
            cur.execute("ANALYZE")
    finally:
        conn.close()
    return [TRUST, *school_ids]


def median_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Run once to warm up, then ``repeats`` times; the median and a result."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--staff", type=int, default=5000)
    parser.add_argument("--bookings", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    from sqlalchemy.orm import sessionmaker

    from plumbing import migrations
    from plumbing.database import ServiceSession, make_engine
    from plumbing.identity import Identity
    from services.training import reports

    with raise_on_sigterm(), postgres_database("bench_training", run_tag()) as url:
        migrations.upgrade("training", url)
        dsn = url.replace("postgresql+psycopg2://", "postgresql://")
        started = time.perf_counter()
        orgs = seed(dsn, args.schools, args.staff, args.bookings, args.records)
        print(f"seeded in {time.perf_counter() - started:.1f} s")

        engine = make_engine(url)
        db = sessionmaker(bind=engine, class_=ServiceSession)()
        lead = Identity("bench-lead", TRUST, scopes={"cpd_lead": orgs})
        now = datetime(YEAR, 12, 1, tzinfo=UTC)
        params = {
            "orgs": orgs,
            "first": FIRST_DAY,
            "after": date(YEAR + 1, 9, 1),
            "start": datetime(YEAR, 9, 1, tzinfo=UTC),
            "end": datetime(YEAR + 1, 9, 1, tzinfo=UTC),
            "year": YEAR,
            "now": now,
            "today": now.date(),
        }
        raw = psycopg2.connect(dsn)

        def plain(query: str) -> Callable[[], list[tuple]]:
            def run() -> list[tuple]:
                with raw.cursor() as cursor:
                    cursor.execute(query, params)
                    return cursor.fetchall()

            return run

        def report(name: str, **extra: Any) -> Callable[[], dict[str, Any]]:
            def run() -> dict[str, Any]:
                answer = reports.run_report(
                    db, lead, name, {"year": YEAR, **extra}, now=now
                )
                db.rollback()
                return answer

            return run

        try:
            rows = []
            hours_time, hours = median_seconds(
                report("hours", group_by="school"), args.repeats
            )
            hours_sql_time, hours_sql = median_seconds(plain(HOURS_SQL), args.repeats)
            agree = sum(Decimal(str(i["hours"])) for i in hours["items"]) == sum(
                row[1] for row in hours_sql
            )
            rows.append(("hours per school", hours_time, hours_sql_time, agree))

            person_time, person = median_seconds(
                report("hours", group_by="person"), args.repeats
            )
            person_sql_time, person_sql = median_seconds(
                plain(HOURS_BY_PERSON_SQL), args.repeats
            )
            agree = len(person["items"]) == len(person_sql)
            rows.append(("hours per person", person_time, person_sql_time, agree))

            spend_time, spend = median_seconds(report("spend"), args.repeats)
            spend_sql_time, spend_sql = median_seconds(plain(SPEND_SQL), args.repeats)
            total = sum(row[1] + row[2] + row[3] for row in spend_sql)
            agree = sum(Decimal(t["committed"]) for t in spend["trusts"]) == total
            rows.append(("spend per school", spend_time, spend_sql_time, agree))
        finally:
            raw.close()
            db.close()
            engine.dispose()

    print(
        f"{args.schools} schools, {args.staff} staff, {args.bookings} bookings, "
        f"{args.records} CPD records; median of {args.repeats} runs"
    )
    print(f"{'report':<18} {'report s':>9} {'plain SQL s':>12} {'ratio':>7}  agree")
    failed = False
    for name, report_s, sql_s, agree in rows:
        ratio = report_s / sql_s if sql_s else float("inf")
        print(f"{name:<18} {report_s:>9.4f} {sql_s:>12.4f} {ratio:>7.3f}  {agree}")
        failed |= report_s > 1.0 or ratio > 3.0 or not agree
    print("FAIL" if failed else "OK: each report within 1 s and 3x the plain query")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
