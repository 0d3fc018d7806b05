"""Scheduler ticks at 10k and at 1M enrollments: an idle tick and a tick with 500 due must cost the same.

    python bench/scheduler.py                           # 10,000 then 1,000,000 enrollments (PostgreSQL)
    python bench/scheduler.py --small 5000 --large 200000 --reps 9

SPEC §5: an idle tick and a tick claiming 500 due rows cost the same at 1M enrollments as at 10k (ratio ≤ 1.5):
every due-row query is index-backed.

Two throwaway PostgreSQL databases are migrated (`leadcapture db upgrade`) and bulk-loaded with INSERT …
SELECT generate_series, one to the small size and one to the large: one six-step sequence, one confirmed,
opted-in subscriber per enrollment with the sign-up it came in through and two current answers (their refresh look-ups due over the next 90
days), enrollments mostly active with their next step due over the next 30 days (three in ten completed or
exited), and two old sent or cancelled deliveries per enrollment, so the outbox is large too. After VACUUM
ANALYZE, with the clock frozen on a weekday morning and mail `outbox:`, it times `scheduler.run_once` (what
`leadcapture worker --once` runs: every sweep one pass), alternating between the two databases so that a
machine slowing down or speeding up meanwhile weighs on both alike:

- **500 due**: an UPDATE (untimed) makes 500 randomly chosen active enrollments due a minute ago, never the
  same subscriber twice; the tick writes their 500 steps to the outbox, renders and "sends" them. A tick that
  does not send exactly 500 fails the bench.
- **idle**: right after, nothing is due; timed five times a round, being short enough for a stall of the
  machine to swing it.

The first round is a warm-up. It prints the medians side by side and their ratios, and EXPLAIN of every
distinct statement a due tick ran at the large size; a sequential scan of a table that grows with the
audience fails the bench, as does a ratio above 1.5.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import make_url

BAR = 1.5
DUE = 500
# An idle tick takes tens of milliseconds, so one stall of a shared machine moves a median of three by half:
# a few per round cost little and steady it.
IDLE_PER_ROUND = 5
STEPS = 6
# A Tuesday, 11:00 in Amsterdam: inside sending hours, so pacing holds nothing back.
NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
# Tables whose size follows the audience; a sequential scan of one of them makes a tick grow with it.
GROWING = ("subscribers", "enrollments", "deliveries", "answers", "submissions", "consent_events")


@dataclass
class Scale:
    enrollments: int
    idle: list[float] = field(default_factory=list)
    due: list[float] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)  # statement -> EXPLAIN

    @property
    def idle_ms(self) -> float:
        return statistics.median(self.idle) * 1000

    @property
    def due_ms(self) -> float:
        return statistics.median(self.due) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000, help="enrollments at the small size")
    parser.add_argument("--large", type=int, default=1_000_000, help="enrollments at the large size")
    parser.add_argument("--reps", type=int, default=3, help="timed ticks of each kind per size")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print a pyinstrument profile of one tick with 500 due, small size only",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    args = parser.parse_args()
    started = time.monotonic()
    if args.profile:
        return profile(args.postgres_url, args.small)
    with fresh_database(args.postgres_url) as small_env, fresh_database(args.postgres_url) as large_env:
        scales = [Scale(args.small), Scale(args.large)]
        apps = [make_app(small_env), make_app(large_env)]
        try:
            for scale, app in zip(scales, apps, strict=True):
                load(app, scale.enrollments)
            measure(apps, scales, args.reps)
        finally:
            for app in apps:
                close(app)
    failures = report(scales)
    print(f"whole run: {time.monotonic() - started:.0f} s")
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


def profile(postgres_url: str, size: int) -> int:
    """One warm-up tick with 500 due, then one under pyinstrument, at one size."""
    from pyinstrument import Profiler

    with fresh_database(postgres_url) as env:
        app = make_app(env)
        try:
            load(app, size)
            scale = Scale(size)
            batch = due_candidates(app, size, 2)
            warm_up, profiled = batch[:DUE], batch[DUE:]
            due_tick(app, scale, warm_up, record=False)
            profiler = Profiler(interval=0.0005)
            profiler.start()
            seconds = due_tick(app, scale, profiled, record=False)
            profiler.stop()
        finally:
            close(app)
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    print(f"tick with {DUE} due: {seconds * 1000:.0f} ms under the profiler")
    return 0


def make_app(env: dict[str, str]) -> Flask:
    """The app on one database, migrated with `leadcapture db upgrade`; the clock frozen at NOW."""
    from leadcapture import clock, create_app

    subprocess.run(
        [sys.executable, "-m", "leadcapture.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    app = create_app({key: value for key, value in env.items() if key.startswith("LEADCAPTURE_")})
    # One line per queued delivery would be 500 lines a tick; the figures are what this run prints.
    logging.getLogger("leadcapture").setLevel(logging.WARNING)
    clock.freeze(NOW)
    return app


def close(app: Flask) -> None:
    from leadcapture import clock
    from leadcapture.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    clock.reset()


# -- the data


def load(app: Flask, size: int) -> None:
    """Grow the database to `size` enrollments (and as many subscribers, and twice as many deliveries)."""
    from leadcapture.extensions import db

    started = time.monotonic()
    with app.app_context():
        connection = db.session.connection()
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        have = connection.execute(text("SELECT count(*) FROM subscribers")).scalar_one()
        if have == 0:
            insert_sequence(connection)
            insert_questions(connection)
            insert_report(connection)
        report_id = connection.execute(text("SELECT min(id) FROM reports")).scalar_one()
        sequence_id, first_step = connection.execute(
            text(
                "SELECT s.id, min(st.id) FROM sequences s JOIN sequence_steps st ON st.sequence_id = s.id GROUP BY s.id"
            )
        ).one()
        bounds = {
            "first": have + 1,
            "last": size,
            "now": NOW,
            "sequence": sequence_id,
            "step": first_step,
            "report": report_id,
        }
        connection.execute(
            text(
                """
                INSERT INTO subscribers (email, status, locale, marketing_consent, created_at, confirmed_at,
                                         status_changed_at, refresh_due_at)
                SELECT 'reader' || g || '@example.com', 'confirmed', 'nl', true, :now - interval '60 days',
                       :now - interval '60 days', :now - interval '60 days',
                       :now + (1 + g % 90) * interval '1 day'
                FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS g
                """
            ),
            bounds,
        )
        # Seven in ten active with a step waiting over the next 30 days, the rest completed or exited.
        connection.execute(
            text(
                """
                INSERT INTO enrollments (subscriber_id, sequence_id, state, steps_done, next_due_at, last_step_at,
                                         leaving, entered_at, left_at, exit_reason)
                SELECT s.id, :sequence,
                       CASE WHEN s.id % 10 < 7 THEN 'active' WHEN s.id % 10 < 9 THEN 'completed' ELSE 'exited' END,
                       CASE WHEN s.id % 10 < 7 THEN s.id % 4 ELSE 6 END,
                       CASE WHEN s.id % 10 < 7
                            THEN :now + (1 + s.id % 30) * interval '1 day' + (s.id % 1440) * interval '1 minute'
                       END,
                       :now - interval '11 days', false, :now - interval '60 days',
                       CASE WHEN s.id % 10 = 9 THEN :now - interval '5 days' END,
                       CASE WHEN s.id % 10 = 9 THEN 'answers changed' END
                FROM subscribers s
                WHERE s.id BETWEEN CAST(:first AS bigint) AND CAST(:last AS bigint)
                """
            ),
            bounds,
        )
        # Two old deliveries per enrollment, sent (one in five of the second cancelled), long enough ago
        # that the frequency cap lets the next step through.
        connection.execute(
            text(
                """
                INSERT INTO deliveries (subscriber_id, enrollment_id, kind, idempotency_key, message_id,
                                        to_address, payload, status, due_at, priority, attempts, created_at,
                                        sent_at, subject)
                SELECT e.subscriber_id, e.id, 'sequence', 'bench:' || e.id || ':' || k,
                       '<bench.' || e.id || '.' || k || '@beleggen.example>',
                       'reader' || e.subscriber_id || '@example.com',
                       jsonb_build_object('enrollment_id', e.id, 'step_id', :step),
                       CASE WHEN k = 2 AND e.id % 5 = 0 THEN 'cancelled' ELSE 'sent' END,
                       :now - (10 + k) * interval '1 day', 0, 1, :now - interval '40 days',
                       CASE WHEN k = 2 AND e.id % 5 = 0 THEN NULL ELSE :now - (10 + k) * interval '1 day' END,
                       'Stap ' || k
                FROM enrollments e CROSS JOIN generate_series(1, 2) AS k
                WHERE e.subscriber_id BETWEEN CAST(:first AS bigint) AND CAST(:last AS bigint)
                """
            ),
            bounds,
        )
        # The sign-up each subscriber came in through: the purge of unconfirmed sign-ups looks for recent ones.
        connection.execute(
            text(
                """
                INSERT INTO submissions (subscriber_id, report_id, page_url, marketing_consent, created_at,
                                         confirmed_at)
                SELECT s.id, :report, 'https://beleggen.example/artikel', true, s.created_at, s.confirmed_at
                FROM subscribers s
                WHERE s.id BETWEEN CAST(:first AS bigint) AND CAST(:last AS bigint)
                """
            ),
            bounds,
        )
        # Two answers per subscriber, fresh: the step's context reads the current ones.
        connection.execute(
            text(
                """
                INSERT INTO answers (subscriber_id, question_id, value, source, question_text, locale, answered_at)
                SELECT s.id, q.id, to_jsonb(CASE WHEN q.key = 'is_investor' THEN 'yes' ELSE 'none' END),
                       'widget', 'Vraag ' || q.key, 'nl', :now - interval '20 days'
                FROM subscribers s CROSS JOIN questions q
                WHERE s.id BETWEEN CAST(:first AS bigint) AND CAST(:last AS bigint)
                """
            ),
            bounds,
        )
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.execute(text("VACUUM ANALYZE"))
    print(f"loaded {size:,} enrollments in {time.monotonic() - started:.0f} s", flush=True)


def insert_sequence(connection: Connection) -> None:
    sequence_id = connection.execute(
        text(
            """
            INSERT INTO sequences (slug, name, audience, on_change, locale, fresh_only, priority, active,
                                   created_at, updated_at)
            VALUES ('bench-drip', 'Bench drip', '{}', 'switch', NULL, false, 0, true, :now, :now)
            RETURNING id
            """
        ),
        {"now": NOW},
    ).scalar_one()
    for position in range(STEPS):
        connection.execute(
            text(
                """
                INSERT INTO sequence_steps (sequence_id, key, position, delay_seconds, subject, body, updated_at)
                VALUES (:sequence, :key, :position, 86400, :subject, :body, :now)
                """
            ),
            {
                "sequence": sequence_id,
                "key": f"0{position + 1}.md",
                "position": position,
                "subject": f"Stap {position + 1}",
                "body": "Hallo{% if first_name %} {{ first_name }}{% endif %},\n\nDit is **stap "
                f"{position + 1}**.\n\n[Je voorkeuren]({{{{ links.preferences }}}})",
                "now": NOW,
            },
        )


def insert_report(connection: Connection) -> None:
    connection.execute(
        text(
            """
            INSERT INTO reports (slug, title, description, created_at, updated_at)
            VALUES ('bench-report', CAST(:title AS jsonb), CAST(:title AS jsonb), :now, :now)
            """
        ),
        {"title": '{"nl": "Beleggen voor beginners"}', "now": NOW},
    )


def insert_questions(connection: Connection) -> None:
    for key, kind in (("is_investor", "yes_no"), ("daytrading_experience", "choice")):
        connection.execute(
            text(
                """
                INSERT INTO questions (key, kind, text, fresh_for_days, created_at, updated_at)
                VALUES (:key, :kind, CAST(:text AS jsonb), 90, :now, :now)
                """
            ),
            {"key": key, "kind": kind, "text": f'{{"nl": "Vraag {key}?"}}', "now": NOW},
        )


# -- the measurements


def measure(apps: list[Flask], scales: list[Scale], reps: int) -> None:
    """Ticks on both databases in alternation, so a machine that slows down or speeds up meanwhile
    weighs on both sizes alike."""
    picks = [
        due_candidates(app, scale.enrollments, reps + 1) for app, scale in zip(apps, scales, strict=True)
    ]
    for rep in range(reps + 1):  # the first is a warm-up, and records the statements for EXPLAIN
        order = [0, 1] if rep % 2 == 0 else [1, 0]
        for index in order:
            app, scale = apps[index], scales[index]
            batch = picks[index][rep * DUE : (rep + 1) * DUE]
            due = due_tick(app, scale, batch, record=rep == 0)
            idle = [timed_tick(app) for _ in range(IDLE_PER_ROUND)]
            if rep > 0:
                scale.due.append(due)
                scale.idle.extend(idle)
    for scale in scales:
        print(
            f"{scale.enrollments:>10,} enrollments: idle tick {scale.idle_ms:7.1f} ms   "
            f"tick with {DUE} due {scale.due_ms:8.1f} ms   (medians of {len(scale.idle)} and {len(scale.due)})",
            flush=True,
        )


def due_candidates(app: Flask, size: int, ticks: int) -> list[int]:
    """Enrollments to make due, `DUE` per tick, each subscriber once."""
    from leadcapture.extensions import db

    with app.app_context():
        candidates = list(
            db.session.scalars(
                # Untouched so far: a subscriber sent a step at NOW would be held back by the frequency cap.
                text(
                    "SELECT id FROM enrollments"
                    " WHERE state = 'active' AND steps_done < :left AND last_step_at = :untouched"
                ),
                {"left": STEPS - 1, "untouched": NOW - timedelta(days=11)},
            )
        )
        db.session.rollback()
    return random.Random(size).sample(candidates, DUE * ticks)


def due_tick(app: Flask, scale: Scale, batch: list[int], *, record: bool) -> float:
    """Make `batch` due (untimed), then time one tick; it must send exactly that many."""
    from leadcapture.extensions import db

    with app.app_context():
        db.session.execute(
            text("UPDATE enrollments SET next_due_at = :due WHERE id = ANY(:ids)"),
            {"due": NOW - timedelta(minutes=1), "ids": batch},
        )
        db.session.commit()
        sent_before = sent_now(db.session.connection())
        db.session.rollback()
    if record:
        with recorded_statements(app) as statements:
            seconds = timed_tick(app)
        scale.plans = explain(app, statements)
    else:
        seconds = timed_tick(app)
    with app.app_context():
        sent = sent_now(db.session.connection()) - sent_before
        db.session.rollback()
    if sent != len(batch):
        raise SystemExit(f"a tick with {len(batch)} due sent {sent} (at {scale.enrollments:,} enrollments)")
    return seconds


def timed_tick(app: Flask) -> float:
    """What `leadcapture worker --once` runs: every sweep one pass."""
    from leadcapture.scheduler import run_once

    started = time.perf_counter()
    run_once(app)
    return time.perf_counter() - started


def sent_now(connection: Connection) -> int:
    count: int = connection.execute(
        text("SELECT count(*) FROM deliveries WHERE status = 'sent' AND sent_at = :now"), {"now": NOW}
    ).scalar_one()
    return count


@contextmanager
def recorded_statements(app: Flask) -> Iterator[dict[str, Any]]:
    """Every distinct statement the block runs, with the parameters of its first run."""
    from leadcapture.extensions import db

    statements: dict[str, Any] = {}

    def record(
        _conn: Connection, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        if not executemany:
            statements.setdefault(statement, parameters)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def explain(app: Flask, statements: dict[str, Any]) -> dict[str, str]:
    """EXPLAIN of each SELECT, UPDATE and DELETE (nothing is run: no ANALYZE)."""
    from leadcapture.extensions import db

    plans = {}
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for statement, parameters in statements.items():
                if not re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", statement, re.I):
                    continue
                cursor.execute("EXPLAIN " + statement, parameters)
                plans[statement] = "\n".join(row[0] for row in cursor.fetchall())
            raw.rollback()
        finally:
            raw.close()
    return plans


def sequential_scans(plan: str) -> list[str]:
    return [table for table in GROWING if re.search(rf"Seq Scan on {table}\b", plan)]


def report(scales: list[Scale]) -> list[str]:
    small, large = scales
    failures = []
    print()
    print(f"{'':24}{small.enrollments:>14,}{large.enrollments:>14,}   ratio (bar ≤ {BAR})")
    for label, a, b in (
        ("idle tick (ms)", small.idle_ms, large.idle_ms),
        (f"tick with {DUE} due (ms)", small.due_ms, large.due_ms),
    ):
        ratio = b / a
        print(f"{label:24}{a:14.1f}{b:14.1f}   {ratio:.2f}x")
        if ratio > BAR:
            failures.append(f"{label}: {ratio:.2f}x from {small.enrollments:,} to {large.enrollments:,}")
    print()
    print(f"EXPLAIN of the statements a tick with {DUE} due runs, at {large.enrollments:,} enrollments:")
    for statement, plan in large.plans.items():
        scans = sequential_scans(plan)
        flag = f"   <-- sequential scan of {', '.join(scans)}" if scans else ""
        one_line = re.sub(r"^SELECT .{60,}? FROM ", "SELECT … FROM ", re.sub(r"\s+", " ", statement).strip())
        print()
        print("  " + one_line[:300] + flag)
        print("    " + plan.replace("\n", "\n    "))
        if scans:
            failures.append(f"sequential scan of {', '.join(scans)}: {one_line[:120]}")
    return failures


@contextmanager
def fresh_database(postgres_url: str) -> Iterator[dict[str, str]]:
    """The environment for a throwaway PostgreSQL database, dropped afterwards."""
    name = f"leadcapture_bench_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        env.update(
            LEADCAPTURE_DATABASE_URL=make_url(postgres_url)
            .set(database=name)
            .render_as_string(hide_password=False),
            LEADCAPTURE_SECRET_KEY=secrets.token_hex(16),
            LEADCAPTURE_MAIL_URL="outbox:",
            LEADCAPTURE_MAIL_FROM="Beleggen <nieuws@beleggen.example>",
            LEADCAPTURE_BASE_URL="https://beleggen.example",
        )
        try:
            yield env
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
