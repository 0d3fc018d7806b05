"""Capture latency with the worker running: from a submission's 202 to its confirmation at the relay, and from
a known reader's changed answer to their enrollment in the sequence it now matches.

    python bench/capture_latency.py                          # SQLite, then PostgreSQL (about a minute each)
    python bench/capture_latency.py --db postgresql --rate 100 --seconds 30
    python bench/capture_latency.py --db sqlite --logs /tmp/latency    # keep the server's, worker's, sink's logs

SPEC §5 and issue 14: a 202 promises the submission is kept; the worker stores it and sends its confirmation
within 2 s of the 202 at p99, and a changed answer moves its subscriber to the sequence it now matches within
2 s. Per database, a throwaway database is migrated and the bundled content loaded (as bench/capture.py does);
`--readers` confirmed subscribers who opted in to marketing, answering daytrading_experience `none`, are
enrolled in daytrading-beginners. Then gunicorn (bench/capture.py's, 2 workers x 4 threads) and a real
`leadcapture worker` (not --once) start, the worker sending to bench/mail_sink.py on a free loopback port.

Client threads (keep-alive http.client connections) send submissions on a steady schedule, `--rate` a second
for `--seconds`, each one a new reader with a unique address (the body bench/capture.py sends). Spread among
them (one in each `--readers`th of the run, at a random point of it, so that they do not all meet the worker's
half-second sweep at the same phase), each known reader sends once, answering `active` and carrying the mail
reference (`ref`, the widget's `lc`) that proves the address is theirs, so the change applies without a
confirmation. A thread polls the database every 20 ms for the known readers' enrollments in daytrading-active.

Printed per database: the 202's own latency (p50/p99, context: the throughput bar is bench/capture.py's), and
the CPU of gunicorn, of the worker and of the whole machine while sending; 202 → confirmation arrived at the
sink (p50/p90/p99/max), split into 202 → stored (the confirmation's outbox row, `deliveries.created_at`, the
worker's clock) and stored → arrived; 202 → enrollment seen by the poll, and 202 → its `entered_at`; and how
often the worker's store and send sweeps ran, with the longest gap between two runs of each (from its log). Exit
status 1 when either p99 is over 2 s, a confirmation or an enrollment has not arrived `--timeout` seconds after
the last submission, an answer is not 202, or the server's or the worker's log holds an ERROR.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import logging
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, bindparam, create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capture import (
    ORIGIN,
    REPO,
    SUBMISSIONS,
    WIDGET,
    error_lines,
    fmt,
    free_port,
    fresh_database,
    gunicorn,
    leadcapture,
    machine_cpu,
    server_cpu,
    server_errors,
    submission_template,
)
from bench.mail_sink import arrivals

BAR_SECONDS = 2.0
THREADS = 8  # client threads, each with its own keep-alive connection
POLL_SECONDS = 0.02
BEFORE: dict[str, str | list[str]] = {
    "is_investor": "yes",
    "daytrading_experience": "none",
    "investment_interests": ["stocks"],
}
AFTER: dict[str, str | list[str]] = {**BEFORE, "daytrading_experience": "active"}
FROM_SEQUENCE, TO_SEQUENCE = "daytrading-beginners", "daytrading-active"
SWEEP_NAMES = ("store-submissions", "send-deliveries")
MAIL_FROM = "Beleggen <nieuwsbrief@beleggen.example>"
ENROLLED = text(
    "SELECT e.subscriber_id, e.entered_at FROM enrollments e JOIN sequences s ON s.id = e.sequence_id "
    "WHERE s.slug = :slug AND e.state = 'active' AND e.subscriber_id IN :ids"
).bindparams(bindparam("ids", expanding=True))
CONFIRMATIONS = text(
    "SELECT to_address, created_at FROM deliveries WHERE kind = 'confirm' AND to_address IN :addresses"
).bindparams(bindparam("addresses", expanding=True))


@dataclass(frozen=True)
class Reader:
    """A confirmed subscriber in FROM_SEQUENCE, and the mail reference our emails would give them."""

    id: int
    email: str
    ref: str


@dataclass(frozen=True)
class Job:
    """One submission to send: a new reader's (`email`) or a known reader's answer change (`reader`)."""

    body: bytes
    email: str | None = None
    reader: Reader | None = None


@dataclass
class Answer:
    job: Job
    status: int
    accepted_at: float  # wall clock, when the response had been read
    seconds: float  # request sent to response read


@dataclass
class Result:
    db: str
    answers: list[Answer] = field(default_factory=list)
    confirmation: list[float] = field(default_factory=list)  # 202 → arrived at the sink
    stored: list[float] = field(default_factory=list)  # 202 → outbox row written
    sent: list[float] = field(default_factory=list)  # outbox row written → arrived at the sink
    switch: list[float] = field(default_factory=list)  # 202 → enrollment in TO_SEQUENCE seen
    entered: list[float] = field(default_factory=list)  # 202 → that enrollment's entered_at
    behind: float = 0.0  # how far the client fell behind its schedule at worst
    load: float = 0.0  # the machine's load average over the last minute, when the sending ended
    # CPU while sending, in cores: gunicorn's processes, the worker's, the whole machine's
    cores: list[float | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # the worker's
    # When each sweep that did something finished, by sweep, from the worker's log
    sweeps: dict[str, list[datetime]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rate", type=float, default=50, help="new readers' submissions a second (50)")
    parser.add_argument("--seconds", type=float, default=20, help="how long to send them (20)")
    parser.add_argument("--readers", type=int, default=40, help="known readers changing an answer (40)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30,
        help="for the last confirmation and enrollment, after sending (30)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    parser.add_argument("--logs", type=Path, help="copy the server's, the worker's and the sink's logs here")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    results = []
    for name in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
        with fresh_database(name, args.postgres_url) as (database_url, workdir):
            results.append(bench(name, database_url, workdir, args))
    print()
    failed = False
    for result in results:
        for line in summary(result):
            print(line)
        if result.warnings:
            print(f"{'':12}{len(result.warnings)} warnings in the worker's log, the first:")
            for line in result.warnings[:3]:
                print(f"{'':14}{line[:200]}")
        for problem in result.problems:
            print(f"{'':12}FAILED: {problem}")
        failed |= bool(result.problems)
    return 1 if failed else 0


def bench(name: str, database_url: str, workdir: Path, args: argparse.Namespace) -> Result:
    result = Result(name)
    port = free_port()
    mail_log = workdir / "mail.log"
    with mail_sink(mail_log) as mail_url:
        env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
        env |= {
            "LEADCAPTURE_DATABASE_URL": database_url,
            "LEADCAPTURE_SECRET_KEY": secrets.token_hex(16),
            "LEADCAPTURE_BASE_URL": f"http://127.0.0.1:{port}",
            "LEADCAPTURE_MAIL_URL": mail_url,
            "LEADCAPTURE_MAIL_FROM": MAIL_FROM,
            "LEADCAPTURE_RATE_LIMITS": "off",
        }
        print(f"{name}: migrating, loading the content and {args.readers} known readers", flush=True)
        leadcapture(env, "db", "upgrade")
        leadcapture(env, "content", "load", str(REPO / "content"))
        readers = seed_readers(env, args.readers)
        engine = create_engine(database_url)
        seen: dict[int, float] = {}
        with (
            gunicorn(env, port, workdir / "gunicorn.log") as server,
            worker(env, workdir / "worker.log") as sweeper,
        ):
            jobs = schedule(
                submission_template(f"http://127.0.0.1:{port}"), readers, round(args.rate * args.seconds)
            )
            print(
                f"{name}: {len(jobs) - len(readers)} new readers at {args.rate:g}/s for {args.seconds:g} s, "
                f"{len(readers)} answer changes among them, {THREADS} client threads",
                flush=True,
            )
            stop = threading.Event()
            poller = threading.Thread(target=poll_enrollments, args=(engine, readers, seen, stop))
            poller.start()
            try:
                before = [server_cpu(server.pid), server_cpu(sweeper.pid), machine_cpu()]
                started = time.monotonic()
                # The new readers at --rate, the answer changes in between.
                result.answers, result.behind = send(
                    port, jobs, args.rate * len(jobs) / (len(jobs) - len(readers))
                )
                elapsed = time.monotonic() - started
                result.load = os.getloadavg()[0]
                after = [server_cpu(server.pid), server_cpu(sweeper.pid), machine_cpu()]
                result.cores = [
                    None if start is None or end is None else (end - start) / elapsed
                    for start, end in zip(before, after, strict=True)
                ]
                arrived = wait_for_mail(mail_log, result.answers, args.timeout)
                deadline = time.monotonic() + args.timeout
                while len(seen) < len(readers) and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS)
            finally:
                stop.set()
                poller.join()
        result.problems += server_errors(workdir / "gunicorn.log")
        worker_log = (workdir / "worker.log").read_text(errors="replace")
        result.problems += [f"worker log: {line}" for line in error_lines(worker_log)]
        # Not failures, but what a slow tail may come from (a sweep that failed and was retried, a missed tick).
        result.warnings = [line for line in worker_log.splitlines() if " WARNING " in line]
        result.sweeps = {name: sweep_times(worker_log, name) for name in SWEEP_NAMES}
        measure(result, engine, arrived, seen)
        engine.dispose()
    if args.logs is not None:
        args.logs.mkdir(parents=True, exist_ok=True)
        for log in ("gunicorn.log", "worker.log", "mail.log"):
            shutil.copy(workdir / log, args.logs / f"{name}-{log}")
    return result


def seed_readers(env: dict[str, str], count: int) -> list[Reader]:
    """`count` confirmed subscribers who opted in to marketing, answering BEFORE, enrolled in FROM_SEQUENCE."""
    from leadcapture import create_app
    from leadcapture.extensions import db
    from leadcapture.services.sequences import switch_sequences
    from leadcapture.services.widgets import get_widget, mail_reference, reader_ref
    from tests.factories import give_answers, make_confirmed_subscriber

    app = create_app({key: value for key, value in env.items() if key.startswith("LEADCAPTURE_")})
    logging.getLogger("leadcapture").setLevel(logging.WARNING)  # a line per enrollment otherwise
    with app.app_context():
        widget = get_widget(WIDGET)
        people = []
        for number in range(count):
            email = f"known-{number}@bench.example.com"
            person, _submission = make_confirmed_subscriber(widget, email=email, marketing_consent=True)
            person.reader_ref = reader_ref(email)
            give_answers(person, BEFORE)
            switch_sequences(person, reason="bench set-up")
            people.append(person)
        db.session.commit()
        readers = [Reader(person.id, person.email, mail_reference(person.id)) for person in people]
        enrolled = db.session.execute(ENROLLED, {"slug": FROM_SEQUENCE, "ids": [r.id for r in readers]}).all()
        db.session.remove()
        db.engine.dispose()
    if len(enrolled) != count:
        raise SystemExit(f"set-up: {len(enrolled)} of {count} known readers enrolled in {FROM_SEQUENCE}")
    return readers


def schedule(template: str, readers: Sequence[Reader], count: int) -> list[Job]:
    """`count` new readers' submissions with the known readers' answer changes spread evenly among them, each
    at a random place within its share of the run: evenly spaced, they would keep one phase against the
    worker's half-second sweep and every one would measure the same."""
    prefix = secrets.token_hex(4)
    jobs = [
        Job(template.replace("{email}", email).encode(), email=email)
        for email in (f"new-{prefix}-{number}@bench.example.com" for number in range(count))
    ]
    changed = json.loads(template)
    changed["answers"] = AFTER
    changed["consent"] = {"report": True, "sequences": True}
    share = count / max(len(readers), 1)
    places = [int((number + random.random()) * share) for number in range(len(readers))]
    for place, reader in sorted(zip(places, readers, strict=True), key=lambda pair: -pair[0]):
        body = json.dumps({**changed, "email": reader.email, "ref": reader.ref}).encode()
        jobs.insert(place, Job(body, reader=reader))
    return jobs


def send(port: int, jobs: list[Job], rate: float) -> tuple[list[Answer], float]:
    """Send job i at start + i / rate from THREADS keep-alive connections; the answers, and how many seconds
    the client fell behind its schedule at worst (a client that cannot keep up would measure too little)."""
    answers: list[Answer | None] = [None] * len(jobs)
    numbers = itertools.count()
    start = time.monotonic() + 0.2
    behind = [0.0] * THREADS
    headers = {"Content-Type": "application/json", "Origin": ORIGIN}

    def client(thread: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while (number := next(numbers)) < len(jobs):
                due = start + number / rate
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                else:
                    behind[thread] = max(behind[thread], -wait)
                sent = time.monotonic()
                connection.request("POST", SUBMISSIONS, body=jobs[number].body, headers=headers)
                response = connection.getresponse()
                response.read()
                answers[number] = Answer(jobs[number], response.status, time.time(), time.monotonic() - sent)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(thread,)) for thread in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [number for number, answer in enumerate(answers) if answer is None]
    if missing:
        raise SystemExit(f"{len(missing)} submissions got no answer (a client thread failed)")
    return [answer for answer in answers if answer is not None], max(behind)


def poll_enrollments(
    engine: Engine, readers: Sequence[Reader], seen: dict[int, float], stop: threading.Event
) -> None:
    """Note when each reader's enrollment in TO_SEQUENCE is first seen, looking every POLL_SECONDS."""
    ids = [reader.id for reader in readers]
    with engine.connect() as connection:
        while not stop.is_set() and len(seen) < len(ids):
            found = connection.execute(ENROLLED, {"slug": TO_SEQUENCE, "ids": ids}).scalars().all()
            connection.rollback()  # a fresh snapshot next time
            now = time.time()
            for subscriber_id in found:
                seen.setdefault(subscriber_id, now)
            stop.wait(POLL_SECONDS)


def wait_for_mail(log: Path, answers: list[Answer], timeout: float) -> dict[str, float]:
    """When each accepted new reader's confirmation arrived; waits up to `timeout` s for the last."""
    wanted = {answer.job.email for answer in answers if answer.job.email is not None and answer.status == 202}
    deadline = time.monotonic() + timeout
    while True:
        arrived = arrivals(log)
        if wanted <= arrived.keys() or time.monotonic() > deadline:
            return arrived
        time.sleep(0.1)


def measure(result: Result, engine: Engine, arrived: dict[str, float], seen: dict[int, float]) -> None:
    statuses: dict[int, int] = {}
    for answer in result.answers:
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
    if set(statuses) != {202}:
        result.problems.append(f"answers by status: {statuses} (every one should be 202)")
    new = {answer.job.email: answer for answer in result.answers if answer.job.email and answer.status == 202}
    changes = [answer for answer in result.answers if answer.job.reader is not None and answer.status == 202]
    with engine.connect() as connection:
        stored = {
            address.lower(): epoch(created)
            for address, created in connection.execute(CONFIRMATIONS, {"addresses": list(new)}).all()
        }
        ids = [answer.job.reader.id for answer in changes if answer.job.reader is not None]
        entered = {
            subscriber_id: epoch(moment)
            for subscriber_id, moment in connection.execute(ENROLLED, {"slug": TO_SEQUENCE, "ids": ids}).all()
        }
    for email, answer in new.items():
        if email in arrived:
            result.confirmation.append(arrived[email] - answer.accepted_at)
            if email in stored:
                result.stored.append(stored[email] - answer.accepted_at)
                result.sent.append(arrived[email] - stored[email])
    for answer in changes:
        assert answer.job.reader is not None
        if answer.job.reader.id in seen:
            result.switch.append(seen[answer.job.reader.id] - answer.accepted_at)
            result.entered.append(entered[answer.job.reader.id] - answer.accepted_at)
    if len(result.confirmation) < len(new):
        result.problems.append(
            f"{len(new) - len(result.confirmation)} of {len(new)} confirmations never arrived"
        )
    if len(result.switch) < len(changes):
        result.problems.append(
            f"{len(changes) - len(result.switch)} of {len(changes)} answer changes never reached {TO_SEQUENCE}"
        )
    for label, figures in (("confirmation", result.confirmation), ("answer change", result.switch)):
        if figures and percentile(figures, 99) > BAR_SECONDS:
            result.problems.append(f"{label} p99 {percentile(figures, 99):.2f} s (bar ≤ {BAR_SECONDS:g} s)")


def sweep_times(log: str, name: str) -> list[datetime]:
    """When each run of the sweep that did something ended, from the worker's `sweep NAME: N` log lines."""
    return [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")  # noqa: DTZ007 - only differences are used
        for line in log.splitlines()
        if f"sweep {name}: " in line
    ]


def sweep_line(times: Sequence[datetime]) -> str:
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    return f"{len(times)} runs, longest gap {max(gaps):.2f} s" if gaps else f"{len(times)} runs"


def epoch(moment: datetime | str) -> float:
    """A UTC time from the database (naive on SQLite) in seconds since the epoch."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def spread(values: Sequence[float], scale: float = 1.0, unit: str = "s") -> str:
    if not values:
        return "none"
    digits = 2 if unit == "s" else 1
    return "  ".join(
        f"{label} {percentile(values, p) * scale:5.{digits}f} {unit}"
        for label, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
    )


def summary(result: Result) -> list[str]:
    seconds = [answer.seconds for answer in result.answers]
    return [
        f"{result.db}  {len(result.answers)} submissions, 202 in p50 {statistics.median(seconds) * 1000:.1f} ms "
        f"p99 {percentile(seconds, 99) * 1000:.1f} ms (client at worst {result.behind * 1000:.0f} ms behind its "
        "schedule)",
        f"{'':12}CPU while sending: gunicorn {fmt(result.cores[0])}, worker {fmt(result.cores[1])}, "
        f"machine {fmt(result.cores[2])} of {os.cpu_count()} cores; load average {result.load:.1f}",
        f"{'':12}worker: "
        + "; ".join(f"{name} {sweep_line(times)}" for name, times in result.sweeps.items()),
        f"{'':12}202 → confirmation at the relay   {spread(result.confirmation)}   (bar p99 ≤ {BAR_SECONDS:g} s)",
        f"{'':12}  202 → stored (outbox row)       {spread(result.stored)}",
        f"{'':12}  stored → at the relay           {spread(result.sent)}",
        f"{'':12}202 → seen in {TO_SEQUENCE:<19}{spread(result.switch)}   (bar p99 ≤ {BAR_SECONDS:g} s)",
        f"{'':12}  202 → its entered_at            {spread(result.entered)}",
    ]


@contextmanager
def mail_sink(log: Path) -> Iterator[str]:
    """bench/mail_sink.py in a process of its own on a free loopback port; its smtp:// URL."""
    port = free_port()
    command = [sys.executable, "-m", "bench.mail_sink", "--port", str(port), "--log", str(log)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with http_probe(port):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the mail sink did not start") from None
                time.sleep(0.1)
        yield f"smtp://127.0.0.1:{port}?timeout=10"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)


@contextmanager
def http_probe(port: int) -> Iterator[None]:
    """A connection to the port that is closed again at once."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=2):
        yield


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`leadcapture worker`, running until the block ends (SIGTERM: it finishes its sweeps and stops)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "leadcapture.cli", "worker"],
            cwd=REPO,
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "worker running" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"leadcapture worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    sys.exit(main())
