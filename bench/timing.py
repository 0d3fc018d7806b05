"""Does the time a submission takes tell whether its address is known? Medians per address state, in-process.

    python bench/timing.py                      # SQLite, then PostgreSQL
    python bench/timing.py --db sqlite --samples 400

SPEC §3.4: a submission answers `202` with the same body whatever the address's state; the time it takes must
not tell them apart either. For each state (a new address; one pending, confirmed, unsubscribed, bounced;
one that has had its three confirmations today; and a bot's submission with the honeypot filled in) this
posts `--samples` submissions through the app's test client, each for a different address in that state and
from a different IP address, interleaving the states round-robin so drift in the machine's load touches them
all alike. It prints the median and the 90th percentile per state and each median's ratio to the new
address's. Exit status 1 when a median is off by more than `--tolerance` (default 0.1, i.e. outside 0.91x to
1.1x). The addresses in each state are made by submitting and storing them as the worker does, before the
timed submissions; those are kept as intakes and not stored, as no worker runs. Rate limits are on, as in production; the clock the limits count with is frozen and
moved on a minute every 500 submissions, so the widget's limit never answers 429. The database is a
throwaway one (a temporary SQLite file, or `leadcapture_timing_…` on the local PostgreSQL, dropped
afterwards) holding the tests' demo widget.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from leadcapture import clock, create_app, jobs
from leadcapture.extensions import db
from leadcapture.models import Subscriber, SubscriberStatus
from leadcapture.tokens import Purpose, make_token

WIDGET = "daytrading-report"
ORIGIN = "https://beleggen.example"
URL = f"/api/v1/widgets/{WIDGET}/submissions"
STATES = ("new", "pending", "confirmed", "unsubscribed", "bounced", "capped", "bot")
SET_STATUS = {
    "pending": SubscriberStatus.PENDING,
    "confirmed": SubscriberStatus.CONFIRMED,
    "unsubscribed": SubscriberStatus.UNSUBSCRIBED,
    "bounced": SubscriberStatus.BOUNCED,
    "capped": SubscriberStatus.PENDING,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    failed = False
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        with database(kind, args.postgres_url) as url:
            failed |= not measure(kind, url, args.samples, args.tolerance)
    return 1 if failed else 0


@contextmanager
def database(kind: str, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'timing.sqlite'}"
        return
    name = f"leadcapture_timing_{secrets.token_hex(4)}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(kind: str, url: str, samples: int, tolerance: float) -> bool:
    settings: dict[str, Any] = {
        "LEADCAPTURE_DATABASE_URL": url,
        "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
        "LEADCAPTURE_BASE_URL": "http://127.0.0.1:5000",
        "LEADCAPTURE_MAIL_URL": "outbox:",
        "WIDGET_CACHE_SECONDS": 60,
    }
    app = create_app(settings)
    logging.getLogger("leadcapture").setLevel(logging.WARNING)
    clock.freeze(clock.now())
    client = app.test_client()
    sent = 0
    with app.app_context():
        db.create_all()
        seed_widget()
        token = make_token(Purpose.FORM, {"w": WIDGET, "t": (clock.now() - timedelta(minutes=5)).timestamp()})
        definition = client.get(f"/api/v1/widgets/{WIDGET}", headers={"Origin": ORIGIN}).get_json()
    answers: dict[str, Any] = {}
    for question in definition["questions"]:
        first = question["options"][0]["value"]
        answers[question["key"]] = [first] if question["kind"] == "multi" else first

    def body(address: str, **extra: Any) -> dict[str, Any]:
        return {
            "email": address,
            "answers": answers,
            "consent": {"report": True},
            "page_url": f"{ORIGIN}/artikel",
            "timezone": "Europe/Amsterdam",
            "form_token": token,
            **extra,
        }

    def submit(address: str, **extra: Any) -> float:
        nonlocal sent
        sent += 1
        if sent % 500 == 0:
            clock.advance(timedelta(seconds=61))
        ip = f"10.{sent // 65536 % 256}.{sent // 256 % 256}.{sent % 256}"
        started = time.perf_counter()
        response = client.post(
            URL, json=body(address, **extra), headers={"Origin": ORIGIN}, environ_base={"REMOTE_ADDR": ip}
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 202, response.get_data(as_text=True)
        return elapsed

    address = {state: [f"{state}-{n}@timing.example" for n in range(samples)] for state in STATES}
    # Every known address signed up once; those meant to be capped three times (their confirmations today).
    for state, status in SET_STATUS.items():
        for each in address[state]:
            for _ in range(3 if state == "capped" else 1):
                submit(each)
        with app.app_context():
            jobs.store_submissions()
            db.session.execute(
                update(Subscriber).where(Subscriber.email.in_(address[state])).values(status=status)
            )
            db.session.commit()
    for warm in range(20):  # the first requests pay for imports and compiled statements
        submit(f"warm-{warm}@timing.example")
    times: dict[str, list[float]] = {state: [] for state in STATES}
    for n in range(samples):
        for state in STATES:
            extra = {"website": "https://spam.example"} if state == "bot" else {}
            times[state].append(submit(address[state][n], **extra))

    clock.reset()
    base = statistics.median(times["new"])
    print(f"{kind}: {samples} submissions per state")
    print(f"  {'state':<13} {'median ms':>10} {'p90 ms':>8} {'ratio':>6}")
    ok = True
    for state in STATES:
        median = statistics.median(times[state])
        p90 = statistics.quantiles(times[state], n=10)[-1]
        ratio = median / base
        flag = "" if 1 / (1 + tolerance) <= ratio <= 1 + tolerance else "  <- distinguishable"
        ok &= not flag
        print(f"  {state:<13} {median * 1000:>10.2f} {p90 * 1000:>8.2f} {ratio:>6.2f}{flag}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return ok


def seed_widget() -> None:
    """The demo widget of the tests: three questions, one allowed origin."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.factories import make_demo_widget

    make_demo_widget(WIDGET, allowed_origins=[ORIGIN])
    db.session.commit()


if __name__ == "__main__":
    sys.exit(main())
