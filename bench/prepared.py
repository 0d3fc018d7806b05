"""What the raw-cursor path (leadcapture/prepared.py) saves, in one process on PostgreSQL.

    python bench/prepared.py
    python bench/prepared.py --submissions 500 --messages 5000

The paths it serves, each timed with Prepared as written and with every Prepared statement run through
`Connection.execute` instead (plain Core), in alternating blocks so drift in the machine's load touches both:

- **submission**: `POST …/submissions` of a new reader through the app's test client (rate limits off),
  which runs the insert of its intake;
- **sender**: the two statements the sender runs per message, the look-up right before the relay and the
  sent mark (here on one autocommit connection, for a row not held, so nothing changes between runs).

It prints wall and CPU time per submission and per message, medians over `--rounds` (3) blocks of each, and
Core's ratio to Prepared. CPU time is this process's: what SQLAlchemy's bookkeeping costs, apart from the wait
for the database. bench/capture.py and bench/sending.py show what it does to throughput end to end.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import ORIGIN, URL, WIDGET, database, seed_widget
from leadcapture import clock, create_app
from leadcapture.extensions import db
from leadcapture.prepared import Prepared
from leadcapture.services import outbox
from leadcapture.tokens import Purpose, make_token


@contextmanager
def plain_core() -> Iterator[None]:
    """Every Prepared statement run through Connection.execute, as the code would without the raw cursor."""

    def scalar(self: Prepared, sql: Connection, params: Mapping[str, Any]) -> Any:
        result = sql.execute(self.statement, dict(params))
        return result.scalar() if result.returns_rows else None

    def first(self: Prepared, sql: Connection, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        found = sql.execute(self.statement, dict(params)).first()
        return None if found is None else tuple(found)

    def rowcount(self: Prepared, sql: Connection, params: Mapping[str, Any]) -> int:
        return int(sql.execute(self.statement, dict(params)).rowcount)

    def execute(self: Prepared, sql: Connection, params: Mapping[str, Any]) -> None:
        sql.execute(self.statement, dict(params))

    replaced = {"scalar": scalar, "first": first, "rowcount": rowcount, "execute": execute}
    kept = {name: getattr(Prepared, name) for name in replaced}
    for name, method in replaced.items():
        setattr(Prepared, name, method)
    try:
        yield
    finally:
        for name, method in kept.items():
            setattr(Prepared, name, method)


def timed(step: Callable[[], None], count: int, core: bool) -> tuple[float, float]:
    """Milliseconds of wall and CPU time per step, after a few untimed ones."""
    with plain_core() if core else nullcontext():
        for _ in range(10):
            step()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            step()
        return (time.perf_counter() - wall) / count * 1000, (time.process_time() - cpu) / count * 1000


def compare(name: str, step: Callable[[], None], count: int, rounds: int) -> None:
    figures: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for round_ in range(rounds):
        for core in (False, True) if round_ % 2 == 0 else (True, False):
            figures[core].append(timed(step, count, core))
    medians = {
        core: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for core, runs in figures.items()
    }
    (wall, cpu), (core_wall, core_cpu) = medians[False], medians[True]
    print(
        f"{name:<11} Prepared wall {wall:6.3f} ms  cpu {cpu:6.3f} ms   "
        f"Core wall {core_wall:6.3f} ms  cpu {core_cpu:6.3f} ms   "
        f"Core/Prepared wall {core_wall / wall:.2f}x  cpu {core_cpu / cpu:.2f}x",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submissions", type=int, default=300, help="submissions per timed block")
    parser.add_argument("--messages", type=int, default=2000, help="sender look-ups and marks per timed block")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with database("postgresql", args.postgres_url) as url:
        app = create_app(
            {
                "LEADCAPTURE_DATABASE_URL": url,
                "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
                "LEADCAPTURE_BASE_URL": "http://127.0.0.1:5000",
                "LEADCAPTURE_MAIL_URL": "outbox:",
                "LEADCAPTURE_RATE_LIMITS": "off",
            }
        )
        logging.getLogger("leadcapture").setLevel(logging.WARNING)
        clock.freeze(clock.now())
        client = app.test_client()
        with app.app_context():
            db.create_all()
            seed_widget()
            issued = (clock.now() - timedelta(minutes=5)).timestamp()
            token = make_token(Purpose.FORM, {"w": WIDGET, "t": issued})
            definition = client.get(f"/api/v1/widgets/{WIDGET}", headers={"Origin": ORIGIN}).get_json()
        answers = {
            question["key"]: [question["options"][0]["value"]]
            if question["kind"] == "multi"
            else question["options"][0]["value"]
            for question in definition["questions"]
        }
        sent = 0

        def submit() -> None:
            nonlocal sent
            sent += 1
            body = {
                "email": f"reader-{sent}@bench.example",
                "answers": answers,
                "consent": {"report": True},
                "page_url": f"{ORIGIN}/artikel",
                "form_token": token,
            }
            response = client.post(URL, json=body, headers={"Origin": ORIGIN})
            assert response.status_code == 202, response.get_data(as_text=True)

        compare("submission", submit, args.submissions, args.rounds)
        with app.app_context(), db.engine.connect() as sql:
            sql.execution_options(isolation_level="AUTOCOMMIT")
            values = {
                "delivery_id": 0,
                "token": "0" * 32,
                "now": clock.now(),
                "rendered_subject": "Subject",
                "rendered_links": None,
            }

            def send() -> None:
                outbox._STILL_OURS.first(sql, values)
                outbox._MARK_SENT.first(sql, values)

            compare("sender", send, args.messages, args.rounds)
        clock.reset()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
