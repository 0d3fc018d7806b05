"""What a page embedding the widget costs the server: the definition read with and without an Origin, and
impressions counted by many pages at once. In-process, through the app's test client.

    python bench/public_path.py                      # SQLite, then PostgreSQL
    python bench/public_path.py --db sqlite --requests 3000

Definition (bar: with an Origin ≥ 0.8x of without): `GET /api/v1/widgets/daytrading-report?r=0` (as the
loader asks in a browser that remembers no reader), gzip accepted
as browsers do, with the Origin of an allowed page (what the loader sends) and without one (the baseline:
no origin check, no CORS headers), `--requests` of each, alternating request by request so drift in the
machine's load touches both alike; the ratio is of the requests per second at the median latency. It also
prints the definition's size as sent, gzipped and not.

Impressions (context, no bar): `--threads` threads, each its own client, post
`--impressions` impressions each at once (each from its own address); it prints impressions per second and the median and 99th percentile
latency, and fails unless every one was answered 204 and is counted on the dashboard.

Rate limits are on, as in production, and the widget cache is on. The database is a throwaway one, as in bench/timing.py.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import threading
import time
from datetime import date

from flask import Flask
from flask.testing import FlaskClient
from timing import database, seed_widget

from leadcapture import clock, create_app
from leadcapture.extensions import db
from leadcapture.services.insights import count_impressions

BAR = 0.8
WIDGET = "daytrading-report"
ORIGIN = "https://beleggen.example"
WIDGET_URL = f"/api/v1/widgets/{WIDGET}"
# As the loader asks in a browser that remembers no reader: most page views.
DEFINITION = f"{WIDGET_URL}?r=0"
IMPRESSIONS = f"{WIDGET_URL}/impressions"
GZIP = {"Accept-Encoding": "gzip, deflate, br"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--impressions", type=int, default=200, help="per thread")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    ok = True
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        with database(kind, args.postgres_url) as url:
            ok &= measure(kind, url, args)
    return 0 if ok else 1


def measure(kind: str, url: str, args: argparse.Namespace) -> bool:
    app = create_app(
        {
            "LEADCAPTURE_DATABASE_URL": url,
            "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
            "LEADCAPTURE_BASE_URL": "http://127.0.0.1:5000",
            "LEADCAPTURE_MAIL_URL": "outbox:",
            "WIDGET_CACHE_SECONDS": 60,
        }
    )
    logging.getLogger("leadcapture").setLevel(logging.WARNING)
    clock.freeze(clock.now())
    with app.app_context():
        db.create_all()
        seed_widget()
    client = app.test_client()
    plain = client.get(DEFINITION, headers={"Origin": ORIGIN})
    zipped = client.get(DEFINITION, headers={"Origin": ORIGIN, **GZIP})
    assert zipped.headers.get("Content-Encoding") == "gzip", "the definition is not gzipped"
    print(f"{kind}: definition {len(plain.data)} B, {len(zipped.data)} B as sent gzipped")

    def definition(headers: dict[str, str]) -> float:
        started = time.perf_counter()
        response = client.get(DEFINITION, headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.status_code
        return elapsed

    for _ in range(50):  # the first requests pay for imports and compiled statements
        definition(GZIP)
    without: list[float] = []
    with_origin: list[float] = []
    for _ in range(args.requests):
        # Alternating request by request, so the machine's load touches both alike.
        without.append(definition(GZIP))
        with_origin.append(definition({"Origin": ORIGIN, **GZIP}))
    ratio = statistics.median(without) / statistics.median(with_origin)
    for name, times in (("no Origin:  ", without), ("with Origin:", with_origin)):
        p90 = statistics.quantiles(times, n=10)[-1]
        rate = 1 / statistics.median(times)
        print(
            f"  definition GET, {name} {rate:6.0f} req/s (median {1000 / rate:.2f} ms, p90 {p90 * 1000:.2f} ms)"
        )
    verdict = "ok" if ratio >= BAR else "MISSED"
    print(f"  ratio {ratio:.2f}x (bar ≥ {BAR}x): {verdict}")

    counted = impressions(app, args.threads, args.impressions)
    clock.reset()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return ratio >= BAR and counted


def impressions(app: Flask, threads: int, posts: int) -> bool:
    latencies: list[float] = []
    statuses: list[int] = []
    start = threading.Barrier(threads + 1)

    def reader(number: int) -> None:
        client: FlaskClient = app.test_client()
        mine: list[tuple[int, float]] = []
        start.wait()
        for post in range(posts):
            started = time.perf_counter()
            # Each its own reader, as on a busy site: one address may count only so many a minute.
            address = f"10.{number}.{post // 256}.{post % 256}"
            status = client.post(
                IMPRESSIONS, headers={"Origin": ORIGIN}, environ_base={"REMOTE_ADDR": address}
            ).status_code
            mine.append((status, time.perf_counter() - started))
        statuses.extend(status for status, _ in mine)
        latencies.extend(elapsed for _, elapsed in mine)

    workers = [threading.Thread(target=reader, args=(number,)) for number in range(1, threads + 1)]
    for worker in workers:
        worker.start()
    start.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    with app.app_context():
        total = sum(count_impressions(date.min, date.max).values())
    answered = statuses.count(204)
    p50 = statistics.median(latencies) * 1000
    p99 = statistics.quantiles(latencies, n=100)[-1] * 1000
    print(
        f"  impressions, {threads} threads: {answered / elapsed:6.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
        f" {answered} of {len(statuses)} answered 204, {total} counted"
    )
    return answered == len(statuses) == total


if __name__ == "__main__":
    sys.exit(main())
