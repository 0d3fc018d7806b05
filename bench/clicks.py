"""Click redirect throughput: GET /l/<token>, recording the click, against a bare redirect of the same app.

    python bench/clicks.py                                # SQLite, then PostgreSQL
    python bench/clicks.py --database postgresql --seconds 15
    python bench/clicks.py --database sqlite --profile    # where a click's time goes, in-process

SPEC §5 and issue 15: requests per second of `/l/<token>` (recording the click) ≥ 0.6 x a bare redirect route
of the same app and database, and its p99 under 20 ms at 16 connections. The ratio is taken at saturation
(every connection sends its next request the moment a response comes). The p99 is taken below it: at
saturation, latency is connections / rate (Little's law), so it says nothing the rate does not, and even
the bare redirect's p99 is several times 20 ms on a two-core machine. For the p99, each of the 16
connections pauses between requests so that together they offer about half the clicks' median rate, as
readers do, on the bare route and on first clicks of emails not clicked before. The baseline is
`GET /bench/redirect/<delivery>/<position>` (bench/capture_app.py): it reads the link from the sent email's
row by primary key and answers 302 with the same headers, the least a redirect whose target is kept in the
database must do. One gunicorn serves both (`bench.capture_app:app`, the server bench/capture.py runs, with its
helpers) on loopback against one freshly migrated database holding the demo content, an active sequence for
`interest: daytrading ≥ 3`, and `--emails` confirmed, opted-in subscribers with one sent sequence email each
(a day ago, so the `early` rule does not apply) of five tracked links: two under daytrading (one by its URL
rule, one named on the link), one under etfs, one under investing, one under none.

Every run takes a different link position, and every request of a run clicks a different email (wrk with
`bench/clicks.lua`, one thread, paths in order, a browser's User-Agent): so each measured click is a person's
first click on that link, of an email none of whose links was clicked in the seconds before, on a link with a
topic. It is recorded, judged a person's, and counted as interest: an interest event, the score updated, the
active audiences' thresholds compared (none is crossed: a subscriber clicks at most two daytrading links).
Runs alternate (bare, clicks, bare, …) after a warm-up of each, and the medians are compared. Then, as
context outside the ratio, a run that clicks the last run's links again: repeats, recorded and judged
`repeat`, counted as nothing. Then the two paced runs.

Afterwards the database must hold one click per answered or in-flight request, none of the first clicks judged
automated and every repeat judged `repeat`, and one interest event per first click. Exit status 1 when the
ratio or the paced p99 misses its bar or a check fails. `--profile` instead prints a pyinstrument profile of
`--profile-clicks` first clicks through the app's test client in one process (pyinstrument is not a
dependency: `pip install pyinstrument`), and of as many bare redirects.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import Engine, create_engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture import (
    REPO,
    THREADS,
    WORKERS,
    Run,
    count,
    fmt,
    free_port,
    fresh_database,
    gunicorn,
    leadcapture,
    run_wrk,
    server_errors,
)

LUA = Path(__file__).resolve().parent / "clicks.lua"
APP = "bench.capture_app:app"  # bench/capture_app.py BARE_REDIRECT_PATH
RATIO_BAR = 0.6
P99_BAR_MS = 20.0
WARMUP_SECONDS = 3
SETTLE_TIMEOUT = 10.0
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
# Where each email's five links lead, by position, with the topic named on the link (None: by URL rules).
LINKS: list[list[Any]] = [
    ["https://beleggen.example/daytraden/wat-is-het", None],
    ["https://beleggen.example/daytraden/risico", "daytrading"],
    ["https://beleggen.example/etf-gids/kosten", None],
    ["https://beleggen.example/beleggen/beginnen", None],
    ["https://elders.example/nieuws", None],
]
# The position each run clicks: warm-up and rounds each a link with a topic, never a third daytrading one.
FIRST_CLICK_POSITIONS = [0, 1, 2, 3]
KEEN: dict[str, object] = {"interest": {"topic": "daytrading", "at_least": 3}}
NAMES = {
    "bare": "bare",
    "clicks": "/l/ first",
    "repeats": "/l/ repeat",
    "bare paced": "bare paced",
    "clicks paced": "/l/ paced",
}


@dataclass
class Result:
    db: str
    baseline: list[Run] = field(default_factory=list)
    clicks: list[Run] = field(default_factory=list)
    repeats: list[Run] = field(default_factory=list)  # context only
    paced: list[Run] = field(default_factory=list)  # bare and clicks at half the clicks' rate, for latency
    problems: list[str] = field(default_factory=list)

    @property
    def baseline_rate(self) -> float:
        return statistics.median(run.rate for run in self.baseline)

    @property
    def click_rate(self) -> float:
        return statistics.median(run.rate for run in self.clicks)

    @property
    def ratio(self) -> float:
        return self.click_rate / self.baseline_rate

    @property
    def click_p99(self) -> float:
        """At saturation: context, as Little's law makes it connections / rate."""
        return statistics.median(run.p99_ms for run in self.clicks)

    @property
    def baseline_p99(self) -> float:
        return statistics.median(run.p99_ms for run in self.baseline)

    @property
    def paced_p99(self) -> float:
        """The p99 the bar applies to: clicks at half the rate the redirect sustains."""
        return next(run.p99_ms for run in self.paced if run.name == "clicks paced")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", "--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="bare/clicks rounds (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections (16)")
    parser.add_argument(
        "--emails", type=int, default=40_000, help="sent emails, one per subscriber; more than a run clicks"
    )
    parser.add_argument("--profile", action="store_true", help="profile clicks in-process instead")
    parser.add_argument("--profile-clicks", type=int, default=2000)
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None and not args.profile:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    if args.rounds + 1 > len(FIRST_CLICK_POSITIONS):
        parser.error(f"--rounds: at most {len(FIRST_CLICK_POSITIONS) - 1} (one link position per run)")

    results = []
    for name in ["sqlite", "postgresql"] if args.database == "both" else [args.database]:
        with fresh_database(name, args.postgres_url) as (database_url, workdir):
            if args.profile:
                profile(name, database_url, workdir, args.profile_clicks)
            else:
                assert wrk is not None
                results.append(bench(name, database_url, workdir, wrk, args))

    print()
    failed = False
    for result in results:
        print(summary_line(result))
        for problem in result.problems:
            print(f"{'':12}FAILED: {problem}")
        failed |= bool(result.problems) or result.ratio < RATIO_BAR or result.paced_p99 >= P99_BAR_MS
    return 1 if failed else 0


def environment(database_url: str, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    return env | {
        "LEADCAPTURE_DATABASE_URL": database_url,
        "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
        "LEADCAPTURE_BASE_URL": f"http://127.0.0.1:{port}",
        "LEADCAPTURE_MAIL_URL": "outbox:",
        "LEADCAPTURE_RATE_LIMITS": "off",
    }


def bench(name: str, database_url: str, workdir: Path, wrk: str, args: argparse.Namespace) -> Result:
    result = Result(name)
    port = free_port()
    env = environment(database_url, port)
    print(f"{name}: migrating and seeding a fresh database ({args.emails:,} sent emails)", flush=True)
    app = seeded_app(env, args.emails)
    engine = create_engine(database_url)
    try:
        with gunicorn(env, port, workdir / "gunicorn.log") as server:
            runner = WrkRunner(wrk, f"http://127.0.0.1:{port}", args.connections, server, workdir)
            print(
                f"{name}: warm-up, then {args.rounds} x ({args.seconds:g} s bare, {args.seconds:g} s clicks), "
                f"{args.connections} connections, gunicorn {WORKERS} workers x {THREADS} threads, {APP}",
                flush=True,
            )
            ids = delivery_ids(app)
            positions = iter(FIRST_CLICK_POSITIONS)
            runs = []
            position = next(positions)
            runs.append(runner("bare", bare_paths(ids, position), WARMUP_SECONDS))
            runs.append(runner("clicks", click_paths(app, ids, position), WARMUP_SECONDS))
            settle(engine, runs)
            for _ in range(args.rounds):
                position = next(positions)
                clicked = click_paths(app, ids, position)
                for kind, paths, kept in (
                    ("bare", bare_paths(ids, position), result.baseline),
                    ("clicks", clicked, result.clicks),
                ):
                    run = runner(kind, paths, args.seconds)
                    runs.append(run)
                    settle(engine, runs)
                    print(run_line(run), flush=True)
                    kept.append(run)
            # Context: the links the last run clicked, clicked again in the same order (wrk's check of the
            # script before it connects takes the first path of a list without sending it).
            run = runner("repeats", clicked[1 : runs[-1].sent + 1], args.seconds)
            runs.append(run)
            settle(engine, runs)
            print(run_line(run), flush=True)
            result.repeats.append(run)
            # Latency below saturation: each connection pauses between requests so that together they offer
            # about half the clicks' median rate, on links of emails not clicked before.
            pause_ms = round(args.connections / (result.click_rate / 2) * 1000)
            unclicked = clicked[runs[-2].sent + 1 :]
            for kind, paths in (("bare paced", bare_paths(ids, position)), ("clicks paced", unclicked)):
                run = runner(kind, paths, args.seconds, pause_ms)
                runs.append(run)
                settle(engine, runs)
                print(run_line(run), flush=True)
                result.paced.append(run)
        result.problems += server_errors(workdir / "gunicorn.log")
        result.problems += verify(engine, runs)
    finally:
        engine.dispose()
        close(app)
    return result


# -- the data


def seeded_app(env: dict[str, str], emails: int) -> Flask:
    """The database migrated and seeded, and the app on it in this process, to make tokens with."""
    from leadcapture import create_app

    prepare(env)
    app = create_app({key: value for key, value in env.items() if key.startswith("LEADCAPTURE_")})
    seed(app, emails)
    return app


def prepare(env: dict[str, str]) -> None:
    leadcapture(env, "db", "upgrade")
    leadcapture(env, "content", "load", str(REPO / "content"))


def seed(app: Flask, emails: int) -> None:
    """The interest sequence, and `emails` confirmed subscribers with one email each, sent a day ago."""
    from leadcapture import clock
    from leadcapture.extensions import db
    from leadcapture.models import Delivery, DeliveryKind, DeliveryStatus, Subscriber, SubscriberStatus
    from tests.factories import make_sequence

    now = clock.now()
    sent_at = now - timedelta(days=1)
    with app.app_context():
        make_sequence("bench-keen", KEEN)
        db.session.execute(
            insert(Subscriber),
            [
                {
                    "email": f"reader{number}@example.com",
                    "status": SubscriberStatus.CONFIRMED,
                    "locale": "nl",
                    "marketing_consent": True,
                    "created_at": now - timedelta(days=60),
                    "confirmed_at": now - timedelta(days=60),
                    "status_changed_at": now - timedelta(days=60),
                }
                for number in range(1, emails + 1)
            ],
        )
        first = db.session.scalar(text("SELECT min(id) FROM subscribers WHERE email LIKE 'reader%'"))
        db.session.execute(
            insert(Delivery),
            [
                {
                    "subscriber_id": first + number,
                    "kind": DeliveryKind.SEQUENCE,
                    "idempotency_key": f"bench:{number}",
                    "message_id": f"<bench.{number}@beleggen.example>",
                    "to_address": f"reader{number + 1}@example.com",
                    "payload": {},
                    "status": DeliveryStatus.SENT,
                    "due_at": sent_at,
                    "created_at": sent_at,
                    "sent_at": sent_at,
                    "subject": "Drie stukken over daytraden",
                    "links": LINKS,
                }
                for number in range(emails)
            ],
        )
        db.session.commit()


def close(app: Flask) -> None:
    from leadcapture.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def delivery_ids(app: Flask) -> list[int]:
    """The sent emails, in the order runs click them."""
    from leadcapture.extensions import db

    with app.app_context():
        query = text("SELECT id FROM deliveries WHERE idempotency_key LIKE 'bench:%' ORDER BY id")
        return list(db.session.scalars(query))


def click_paths(app: Flask, ids: list[int], position: int) -> list[str]:
    """`/l/<token>` of link `position` of each email."""
    from leadcapture.tokens import Purpose, make_token

    with app.app_context():
        return [f"/l/{make_token(Purpose.CLICK, {'d': delivery, 'n': position})}" for delivery in ids]


def bare_paths(ids: list[int], position: int) -> list[str]:
    """The baseline's path to link `position` of each email."""
    return [f"/bench/redirect/{delivery}/{position}" for delivery in ids]


# -- the runs


class WrkRunner:
    def __init__(
        self, wrk: str, base: str, connections: int, server: subprocess.Popen[bytes], workdir: Path
    ) -> None:
        self.wrk, self.base, self.connections = wrk, base, connections
        self.server, self.workdir = server, workdir

    def __call__(self, kind: str, paths: list[str], seconds: float, pause_ms: int = 0) -> Run:
        listing = self.workdir / f"paths-{kind.replace(' ', '-')}.txt"
        listing.write_text("\n".join(paths) + "\n")
        arguments = [str(listing), "302", BROWSER, str(pause_ms)]
        return run_wrk(self.wrk, LUA, self.base, self.connections, self.server, kind, seconds, arguments)


def recorded(runs: list[Run]) -> int:
    """Clicks the server records for these runs: answered, plus what wrk left in flight (it completes them)."""
    return sum(run.ok + run.in_flight for run in runs if not run.name.startswith("bare"))


def settle(engine: Engine, runs: list[Run]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline and count(engine, "SELECT count(*) FROM clicks") < recorded(runs):
        time.sleep(0.1)


def verify(engine: Engine, runs: list[Run]) -> list[str]:
    """One click per request; first clicks a person's, each counted once as interest; repeats judged so."""
    problems = []
    unexpected = sum(run.unexpected for run in runs)
    errors = sum(run.errors for run in runs)
    # Repeats may go round their list again: a link clicked twice before is a repeat still.
    wrapped = [run.name for run in runs if run.wrapped and run.name not in ("repeats", "bare paced")]
    if unexpected:
        problems.append(f"{unexpected} responses other than 302")
    if errors:
        problems.append(f"{errors} socket errors or timeouts")
    if wrapped:
        problems.append(f"runs clicked links of their list again ({', '.join(wrapped)}): raise --emails")
    first = sum(run.ok + run.in_flight for run in runs if run.name in ("clicks", "clicks paced"))
    repeats = sum(run.ok + run.in_flight for run in runs if run.name == "repeats")
    clicks = count(engine, "SELECT count(*) FROM clicks")
    by_person = count(engine, "SELECT count(*) FROM clicks WHERE automated IS NULL")
    judged_repeat = count(engine, "SELECT count(*) FROM clicks WHERE automated = 'repeat'")
    events = count(engine, "SELECT count(*) FROM interest_events")
    print(
        f"{'':12}check: {first} first clicks and {repeats} repeats answered or in flight; database holds "
        f"{clicks} clicks ({by_person} a person's, {judged_repeat} repeats), {events} interest events",
        flush=True,
    )
    if clicks != first + repeats:
        problems.append(f"{clicks} clicks recorded, not one per request ({first + repeats})")
    if by_person != first or judged_repeat != repeats:
        problems.append(
            f"{by_person} clicks judged a person's (wanted {first}), {judged_repeat} repeats ({repeats})"
        )
    if events != first:
        problems.append(f"{events} interest events, not one per first click ({first})")
    return problems


# -- printing


def run_line(run: Run) -> str:
    return (
        f"{'':12}{NAMES[run.name]:<13}{run.rate:7.0f} req/s   p50 {run.p50_ms:6.1f} ms   "
        f"p99 {run.p99_ms:7.1f} ms   CPU/request: server {fmt(run.cpu_ms(run.server_cores))} ms, "
        f"machine {fmt(run.cpu_ms(run.busy_cores))} ms   cores: server {fmt(run.server_cores)} "
        f"wrk {fmt(run.client_cores)} busy {fmt(run.busy_cores)}/{os.cpu_count()}"
    )


def summary_line(result: Result) -> str:
    repeats = f"  (repeats {result.repeats[0].rate:.0f} req/s)" if result.repeats else ""
    bare_paced = next(run for run in result.paced if run.name == "bare paced")
    clicks_paced = next(run for run in result.paced if run.name == "clicks paced")
    return (
        f"{result.db}  bare {result.baseline_rate:.0f} req/s  /l/ {result.click_rate:.0f} req/s  "
        f"ratio {result.ratio:.2f}x (bar ≥ {RATIO_BAR}x)\n{'':12}p99 at {clicks_paced.rate:.0f} req/s: "
        f"/l/ {result.paced_p99:.1f} ms, bare {bare_paced.p99_ms:.1f} ms (bar /l/ < {P99_BAR_MS:g} ms)  "
        f"p99 saturated: /l/ {result.click_p99:.1f} ms, bare {result.baseline_p99:.1f} ms{repeats}"
    )


# -- profiling


def profile(name: str, database_url: str, workdir: Path, clicks: int) -> None:
    """First clicks, then as many bare redirects, through the test client of the app gunicorn serves (its
    baseline route included), in this process, each under pyinstrument. The app logs to a file, as gunicorn's
    does."""
    from pyinstrument import Profiler

    from leadcapture import create_app

    env = environment(database_url, 5000)
    prepare(env)
    settings = {key: value for key, value in env.items() if key.startswith("LEADCAPTURE_")}
    os.environ.update(settings)  # bench.capture_app makes an app of its own when imported
    from bench.capture_app import BARE_REDIRECT_PATH, bare_redirect

    app = create_app(settings)
    app.add_url_rule(BARE_REDIRECT_PATH, "bench_bare_redirect", bare_redirect, methods=["GET"])
    log = (workdir / "app.log").open("w")
    for handler in logging.root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)
    seed(app, clicks + 100)
    try:
        client = app.test_client()
        ids = delivery_ids(app)
        for kind, paths in (("clicks", click_paths(app, ids, 0)), ("bare", bare_paths(ids, 0))):
            for path in paths[:100]:  # warm-up
                assert client.get(path, headers={"User-Agent": BROWSER}).status_code == 302
            profiler = Profiler(interval=0.0002)
            started = time.perf_counter()
            profiler.start()
            for path in paths[100:]:
                client.get(path, headers={"User-Agent": BROWSER})
            profiler.stop()
            seconds = time.perf_counter() - started
            print(profiler.output_text(unicode=True, color=False, show_all=False))
            each = seconds / clicks * 1000
            print(f"{name}: {clicks} {kind} in {seconds:.2f} s under the profiler, {each:.2f} ms each")
    finally:
        close(app)
        for handler in logging.root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
        log.close()


if __name__ == "__main__":
    sys.exit(main())
