"""Segment counts over 1M subscribers: an audience with an interest rule counted in under a second.

    python bench/segments.py                          # 1,000,000 subscribers x 5 topics (PostgreSQL)
    python bench/segments.py --subscribers 20000      # a quick run
    python bench/segments.py --reps 9

SPEC §5 (broadcast) and issue 15: counting an audience with an interest rule over 1M subscribers x 5 topics on
PostgreSQL takes under 1 s, and its plan scans no table that grows with the audience sequentially.

A throwaway PostgreSQL database is migrated (`leadcapture db upgrade`) and loaded set-based (INSERT … SELECT
generate_series): `--subscribers` subscribers (nine in ten confirmed, nine in ten of those opted in to
marketing, four in five `nl`), five topics of half-lives from 7 to 90 days, a score on every topic for every
subscriber (exponentially distributed around a mean of 1 today, so that `at_least: 3` holds for about one in
twenty), and an answer to `is_investor` for three in five. After VACUUM ANALYZE, with the clock frozen, it
times `count_audience` (what the admin's live count calls) on the bench rule, `--reps` times after a warm-up,
checks its result against a count computed apart, and prints EXPLAIN (ANALYZE, BUFFERS) of every statement
it ran that reads subscribers, scores or answers. A few other rules follow as context (timed, checked and
explained, but not held to the bar). Exit status 1 when the median is 1 s or more, the count is wrong, or the
bench rule's plan has a sequential scan of a table that grows with the audience.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.scheduler import NOW, close, fresh_database, make_app, recorded_statements

BAR_SECONDS = 1.0
# key: (half-life in days, mean score today)
TOPICS = {
    "daytrading": (30, 1.0),
    "etfs": (60, 1.0),
    "crypto": (7, 0.6),
    "dividend": (90, 1.4),
    "pensions": (30, 0.8),
}
# Tables whose size follows the audience; a sequential scan of one makes a count grow with it.
GROWING = ("subscribers", "interest_scores", "answers", "interest_events", "clicks", "enrollments")
KEEN: dict[str, Any] = {"interest": {"topic": "daytrading", "at_least": 3}}


def scored(topic: str, comparison: str) -> str:
    """SQL: subscriber s has a score on `topic` today that compares so (":score" stands for it)."""
    score = "power(2, i.level - :day / t.half_life_days::float8)"
    return (
        "EXISTS (SELECT FROM interest_scores i JOIN topics t ON t.id = i.topic_id"
        f" WHERE i.subscriber_id = s.id AND t.key = '{topic}' AND {comparison.replace(':score', score)})"
    )


@dataclass(frozen=True)
class Case:
    label: str
    rule: dict[str, Any]
    locale: str | None
    bar: bool  # held to the bar, or context
    # The same condition in SQL on subscriber s, computing scores from levels apart from leadcapture (:factor
    # is 1 - interest.EPSILON, the margin audience.matches allows).
    check: str


KEEN_CHECK = scored("daytrading", ":score >= 3 * :factor")
CASES = [
    Case("daytrading ≥ 3, nl", KEEN, "nl", True, KEEN_CHECK),
    Case(
        "any of daytrading ≥ 3, etfs ≥ 4",
        {"any_of": [KEEN, {"interest": {"topic": "etfs", "at_least": 4}}]},
        None,
        False,
        f"({KEEN_CHECK} OR {scored('etfs', ':score >= 4 * :factor')})",
    ),
    Case(
        "is_investor: yes and daytrading ≥ 3",
        {"is_investor": "yes", **KEEN},
        None,
        False,
        KEEN_CHECK + " AND (SELECT a.value #>> '{}' FROM answers a WHERE a.subscriber_id = s.id"  # noqa: S608
        " ORDER BY a.id DESC LIMIT 1) = 'yes'",
    ),
    Case(
        "daytrading below 0.5",
        {"interest": {"topic": "daytrading", "below": 0.5}},
        None,
        False,
        f"NOT {scored('daytrading', ':score >= 0.5 * :factor')}",
    ),
]


@dataclass
class Measured:
    case: Case
    count: int = 0
    expected: int = 0
    seconds: list[float] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)  # statement -> EXPLAIN ANALYZE

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def scans(self) -> list[str]:
        return sorted({table for plan in self.plans.values() for table in sequential_scans(plan)})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1_000_000, help="subscribers (default 1,000,000)")
    parser.add_argument("--reps", type=int, default=5, help="timed counts per rule (default 5)")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    args = parser.parse_args()
    started = time.monotonic()
    with fresh_database(args.postgres_url) as env:
        app = make_app(env)
        try:
            load(app, args.subscribers)
            results = [measure(app, case, args.reps) for case in CASES]
        finally:
            close(app)
    failures = report(results, args.subscribers)
    print(f"whole run: {time.monotonic() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


# -- the data


def load(app: Flask, size: int) -> None:
    """`size` subscribers, a score on each of five topics for each, an answer for three in five."""
    from leadcapture import interest
    from leadcapture.extensions import db
    from leadcapture.models import Question, QuestionKind, QuestionOption, Topic

    started = time.monotonic()
    with app.app_context():
        question = Question(
            key="is_investor",
            kind=QuestionKind.YES_NO,
            text={"nl": "Beleg je al?", "en": "Do you invest?"},
            fresh_for_days=90,
            created_at=NOW,
            updated_at=NOW,
        )
        for position, value in enumerate(("yes", "no")):
            question.options.append(QuestionOption(value=value, label={"nl": value}, position=position))
        db.session.add(question)
        for key, (half_life, _) in TOPICS.items():
            db.session.add(
                Topic(
                    key=key,
                    name={"nl": key},
                    urls=[f"https://beleggen.example/{key}/"],
                    half_life_days=half_life,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        db.session.flush()
        connection = db.session.connection()
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        params = {"size": size, "now": NOW, "day": interest.day_number(NOW), "question": question.id}
        connection.execute(
            text(
                """
                INSERT INTO subscribers (email, status, locale, marketing_consent, created_at, confirmed_at,
                                         status_changed_at)
                SELECT 'reader' || g || '@example.com',
                       CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'confirmed' END,
                       CASE WHEN g % 5 = 0 THEN 'en' ELSE 'nl' END,
                       g % 10 <> 3, :now - interval '60 days',
                       CASE WHEN g % 10 <> 0 THEN :now - interval '60 days' END, :now - interval '60 days'
                FROM generate_series(1, CAST(:size AS bigint)) AS g
                """
            ),
            params,
        )
        connection.execute(text("SELECT setseed(0.15)"))
        # A score today drawn from an exponential distribution around the topic's mean, stored as its level
        # (leadcapture.interest: score = 2^(level - day / half-life)).
        for key, (_, mean) in TOPICS.items():
            connection.execute(
                text(
                    """
                    INSERT INTO interest_scores (subscriber_id, topic_id, level, updated_at)
                    SELECT s.id, t.id,
                           ln(greatest(-ln(1 - random()) * :mean, 1e-6)) / ln(2) + :day / t.half_life_days::float8,
                           :now
                    FROM subscribers s CROSS JOIN topics t
                    WHERE t.key = :key
                    """
                ),
                {**params, "key": key, "mean": mean},
            )
        connection.execute(
            text(
                """
                INSERT INTO answers (subscriber_id, question_id, value, source, question_text, locale, answered_at)
                SELECT s.id, :question, to_jsonb(CASE WHEN s.id % 3 = 0 THEN 'no' ELSE 'yes' END), 'widget',
                       'Beleg je al?', 'nl', :now - (s.id % 120) * interval '1 day'
                FROM subscribers s
                WHERE s.id % 5 < 3
                """
            ),
            params,
        )
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(text("VACUUM ANALYZE"))
    print(
        f"loaded {size:,} subscribers x {len(TOPICS)} topics of scores in {time.monotonic() - started:.0f} s",
        flush=True,
    )


# -- the measurements


def measure(app: Flask, case: Case, reps: int) -> Measured:
    """A warm-up count (its statements recorded for EXPLAIN ANALYZE), then `reps` timed ones."""
    from leadcapture.extensions import db
    from leadcapture.services.audiences import count_audience

    result = Measured(case)
    with recorded_statements(app) as statements, app.app_context():
        result.count = count_audience(case.rule, case.locale, fresh_only=False)
        db.session.rollback()
    for _ in range(reps):
        with app.app_context():
            started = time.perf_counter()
            count = count_audience(case.rule, case.locale, fresh_only=False)
            result.seconds.append(time.perf_counter() - started)
            db.session.rollback()
        assert count == result.count
    result.expected = expected_count(app, case)
    result.plans = explain(app, statements)
    return result


def expected_count(app: Flask, case: Case) -> int:
    """The count computed apart, in SQL of this file's own."""
    from leadcapture import interest
    from leadcapture.extensions import db

    query = (
        "SELECT count(*) FROM subscribers s WHERE s.status = 'confirmed' AND s.marketing_consent"  # noqa: S608
        f" AND (CAST(:locale AS text) IS NULL OR s.locale = :locale) AND {case.check}"
    )
    params = {"day": interest.day_number(NOW), "factor": 1 - interest.EPSILON, "locale": case.locale}
    with app.app_context():
        return int(db.session.execute(text(query), params).scalar_one())


def explain(app: Flask, statements: dict[str, Any]) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement that reads a table growing with the audience."""
    from leadcapture.extensions import db

    plans = {}
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement, parameters in statements.items():
                if not re.search(rf"\b({'|'.join(GROWING)})\b", statement):
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                plans[statement] = "\n".join(row[0] for row in cursor.fetchall())
            raw.rollback()
        finally:
            raw.close()
    return plans


def sequential_scans(plan: str) -> list[str]:
    return [table for table in GROWING if re.search(rf"Seq Scan on {table}\b", plan)]


def report(results: list[Measured], size: int) -> list[str]:
    failures = []
    print()
    print(f"count_audience over {size:,} subscribers x {len(TOPICS)} topics (median of the timed counts):")
    for result in results:
        verdict = "" if not result.case.bar else "ok" if result.median_ms < BAR_SECONDS * 1000 else "MISSED"
        bar = f"(bar < {BAR_SECONDS * 1000:.0f} ms: {verdict})" if result.case.bar else "(context)"
        scans = result.scans()
        print(
            f"  {result.case.label:38}{result.median_ms:9.1f} ms   count {result.count:>9,}"
            f"   {bar}{'   sequential scan of ' + ', '.join(scans) if scans else ''}"
        )
        if result.count != result.expected:
            failures.append(f"{result.case.label}: counted {result.count}, computed apart {result.expected}")
        if result.case.bar and result.median_ms >= BAR_SECONDS * 1000:
            failures.append(f"{result.case.label}: {result.median_ms:.0f} ms (bar < {BAR_SECONDS:g} s)")
        if result.case.bar and scans:
            failures.append(f"{result.case.label}: sequential scan of {', '.join(scans)}")
    for result in results:
        print()
        print(f"EXPLAIN (ANALYZE, BUFFERS), {result.case.label}: {result.case.rule}")
        for statement, plan in result.plans.items():
            flag = "   <-- SEQUENTIAL SCAN" if sequential_scans(plan) else ""
            one_line = re.sub(r"\s+", " ", statement).strip()
            print("  " + one_line[:400] + flag)
            print("    " + plan.replace("\n", "\n    "))
    print()
    return failures


if __name__ == "__main__":
    sys.exit(main())
