"""Sending throughput: the worker's whole path against a raw smtplib loop, and its memory against backlog size.

    python bench/sending.py                            # SQLite, then PostgreSQL
    python bench/sending.py --db sqlite --messages 2000
    python bench/sending.py --db sqlite --profile      # where a sending pass spends its time

SPEC §5: end-to-end sending (claim, render, MIME, SMTP, mark sent) ≥ 0.7 x a raw smtplib loop pushing
pre-built messages over one reused connection to the same loopback sink; memory flat in backlog size.

Both sides send to one sink: aiosmtpd's own `Sink` handler (accepts every message and discards it) in a
process of its own on loopback. Per database, for each round, N confirmation deliveries are written to a
freshly migrated database, and then, in separate child processes (order alternating between rounds):

- **smtplib**, the baseline: renders and serialises those N deliveries with leadcapture's own
  `build_message` and `wire_bytes` (untimed, so the messages are byte for byte like ours), then times
  `smtplib.SMTP.sendmail` of those bytes over one connection.
- **worker**: times one `leadcapture worker --once` pass (`scheduler.run_once` in a fresh process, so the
  process start is left out): claim with the lease, render and MIME (each message while the relay takes in
  the one before it), the look-up right before each message (still wanted, still leased), SMTP, and the
  sent marks, committed a group at a time.

Messages per second are compared as medians. Memory: the worker's peak RSS (and its growth over the process
before sending) with a backlog of `--messages` against one of `--backlog` (10,000) must stay within 1.5x:
the worker works in bounded batches. Exit status 1 when a bar is missed or a pass does not send everything.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import secrets
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
THROUGHPUT_BAR = 0.7
MEMORY_BAR = 1.5
MAIL_FROM = "Beleggen <nieuws@beleggen.example>"


@dataclass
class Pass:
    side: str  # "smtplib" or "worker"
    messages: int
    seconds: float
    peak_rss_kb: int
    rss_before_kb: int
    cpu_seconds: float = 0.0  # the timed side's own CPU while it sent
    sink_cpu_seconds: float | None = None  # the sink's CPU meanwhile, where /proc tells

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--messages", type=int, default=1000, help="deliveries per timed pass")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=10_000, help="the large backlog of the memory check")
    parser.add_argument("--no-memory", action="store_true", help="skip the large-backlog pass")
    parser.add_argument(
        "--profile", action="store_true", help="print a pyinstrument profile of one worker pass"
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin connection; the bench creates and drops its own database through it",
    )
    # Internal: the child processes.
    parser.add_argument("--child", choices=["seed", "smtplib", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args)

    failures: list[str] = []
    with sink() as (mail_url, sink_pid):
        for name in ["sqlite", "postgresql"] if args.db == "both" else [args.db]:
            with fresh_database(name, args.postgres_url) as env:
                env["LEADCAPTURE_MAIL_URL"] = mail_url
                failures += bench(name, env, args, sink_pid)
    for failure in failures:
        print(f"FAIL {failure}")
    return 1 if failures else 0


def bench(name: str, env: dict[str, str], args: argparse.Namespace, sink_pid: int) -> list[str]:
    print(f"{name}: migrating a fresh database", flush=True)
    subprocess.run(
        [sys.executable, "-m", "leadcapture.cli", "db", "upgrade"], env=env, check=True, capture_output=True
    )
    baseline: list[Pass] = []
    worker: list[Pass] = []
    for round_number in range(args.rounds):
        sides = ["smtplib", "worker"] if round_number % 2 == 0 else ["worker", "smtplib"]
        for side in sides:
            run_child(env, "seed", args.messages)
            sink_before = cpu_seconds_of(sink_pid)
            result = run_child(env, side, args.messages)
            sink_after = cpu_seconds_of(sink_pid)
            if sink_before is not None and sink_after is not None:
                result.sink_cpu_seconds = sink_after - sink_before
            (baseline if side == "smtplib" else worker).append(result)
            # The baseline holds every pre-built message at once; only the worker's memory is of interest.
            memory = f"   peak RSS {result.peak_rss_kb / 1024:6.1f} MiB" if side == "worker" else ""
            print(
                f"{name} round {round_number + 1} {side:8} {result.messages} messages in {result.seconds:6.2f} s"
                f" = {result.rate:7.1f} msg/s   CPU per message: {cpu_per_message(result)}{memory}",
                flush=True,
            )
    base_rate = statistics.median(p.rate for p in baseline)
    our_rate = statistics.median(p.rate for p in worker)
    ratio = our_rate / base_rate
    failures = []
    print(
        f"{name:10}  smtplib {base_rate:7.1f} msg/s   worker {our_rate:7.1f} msg/s   "
        f"ratio {ratio:.2f}x (bar ≥ {THROUGHPUT_BAR}x)",
        flush=True,
    )
    if ratio < THROUGHPUT_BAR:
        failures.append(f"{name}: sending ratio {ratio:.2f}x < {THROUGHPUT_BAR}x")

    if args.profile:
        run_child(env, "seed", args.messages)
        run_child(env, "worker", args.messages, extra=["--profile"], show=True)

    if not args.no_memory:
        small = max(worker, key=lambda p: p.peak_rss_kb)
        run_child(env, "seed", args.backlog)
        large = run_child(env, "worker", args.backlog)
        growth_small = small.peak_rss_kb - small.rss_before_kb
        growth_large = large.peak_rss_kb - large.rss_before_kb
        memory_ratio = large.peak_rss_kb / small.peak_rss_kb
        print(
            f"{name:10}  peak RSS at backlog {small.messages}: {small.peak_rss_kb / 1024:.1f} MiB "
            f"(+{growth_small / 1024:.1f} while sending)   at {large.messages}: {large.peak_rss_kb / 1024:.1f} MiB "
            f"(+{growth_large / 1024:.1f})   ratio {memory_ratio:.2f}x (bar ≤ {MEMORY_BAR}x); "
            f"{large.rate:.1f} msg/s",
            flush=True,
        )
        if memory_ratio > MEMORY_BAR:
            failures.append(f"{name}: peak RSS grew {memory_ratio:.2f}x with the backlog (> {MEMORY_BAR}x)")
    return failures


def cpu_per_message(result: Pass) -> str:
    own = f"{result.side} {result.cpu_seconds / result.messages * 1000:.2f} ms"
    if result.sink_cpu_seconds is None:
        return own
    return f"{own}, sink {result.sink_cpu_seconds / result.messages * 1000:.2f} ms"


def cpu_seconds_of(pid: int) -> float | None:
    """A process's CPU time so far (user and system), from /proc; None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(
    env: dict[str, str], side: str, count: int, *, extra: list[str] | None = None, show: bool = False
) -> Pass:
    command = [sys.executable, __file__, "--child", side, "--count", str(count), *(extra or [])]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if show:
        print(done.stdout.rsplit("\n", 2)[0], flush=True)
    if done.returncode != 0:
        raise SystemExit(
            f"{side} child failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return Pass(side=side, **result)


# -- the children


def child(args: argparse.Namespace) -> int:
    from leadcapture import create_app

    app = create_app()
    with app.app_context():
        if args.child == "seed":
            seed(args.count)
            print(json.dumps({"messages": args.count, "seconds": 1, "peak_rss_kb": 0, "rss_before_kb": 0}))
            return 0
        if args.child == "smtplib":
            result = send_with_smtplib(args.count)
        else:
            result = send_with_worker(app, args.count, profile="--profile" in sys.argv)
    print(json.dumps(result))
    return 0


def seed(count: int) -> None:
    """Empty the outbox and write `count` due confirmations for as many readers, as capture would."""
    from sqlalchemy import delete, insert, select

    from leadcapture.extensions import db
    from leadcapture.models import (
        Delivery,
        DeliveryKind,
        DeliveryStatus,
        Report,
        StreamPause,
        Submission,
        Subscriber,
        SubscriberStatus,
    )

    now = datetime.now(UTC)
    for model in (Delivery, Submission, Subscriber, Report, StreamPause):
        db.session.execute(delete(model))
    report_id = db.session.scalars(
        insert(Report)
        .values(
            slug="daytrading-guide",
            title={"nl": "Daytraden voor beginners", "en": "Daytrading for beginners"},
            description={"nl": "Een gratis rapport.", "en": "A free report."},
            created_at=now,
            updated_at=now,
        )
        .returning(Report.id)
    ).one()
    chunk = 2000
    for start in range(0, count, chunk):
        numbers = range(start, min(start + chunk, count))
        db.session.execute(
            insert(Subscriber),
            [
                {
                    "email": f"reader{n}@example.com",
                    "status": SubscriberStatus.PENDING,
                    "locale": "nl",
                    "marketing_consent": False,
                    "created_at": now,
                    "status_changed_at": now,
                }
                for n in numbers
            ],
        )
    subscribers = db.session.execute(select(Subscriber.id, Subscriber.email).order_by(Subscriber.id)).all()
    for start in range(0, count, chunk):
        db.session.execute(
            insert(Submission),
            [
                {
                    "subscriber_id": subscriber_id,
                    "report_id": report_id,
                    "page_url": "https://beleggen.example/daytraden",
                    "marketing_consent": False,
                    "created_at": now,
                }
                for subscriber_id, _ in subscribers[start : start + chunk]
            ],
        )
    submissions = {
        row[0]: row[1] for row in db.session.execute(select(Submission.subscriber_id, Submission.id))
    }
    for start in range(0, count, chunk):
        db.session.execute(
            insert(Delivery),
            [
                {
                    "subscriber_id": subscriber_id,
                    "kind": DeliveryKind.CONFIRM,
                    "idempotency_key": f"confirm:submission:{submissions[subscriber_id]}",
                    "message_id": f"<{secrets.token_hex(16)}.confirm@beleggen.example>",
                    "to_address": email,
                    "payload": {"submission_id": submissions[subscriber_id]},
                    "status": DeliveryStatus.PENDING,
                    "due_at": now,
                    "priority": 0,
                    "attempts": 0,
                    "created_at": now,
                }
                for subscriber_id, email in subscribers[start : start + chunk]
            ],
        )
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


def send_with_smtplib(count: int) -> dict[str, Any]:
    """Pre-build the outbox's messages exactly as the worker would, then push them over one connection."""
    from sqlalchemy import select

    from leadcapture.config import current
    from leadcapture.extensions import db
    from leadcapture.mail.transport import wire_bytes
    from leadcapture.models import Delivery
    from leadcapture.services.emails import build_message

    settings = current()
    deliveries = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    messages = [
        (wire_bytes(build_message(delivery), international=False), delivery.to_address)
        for delivery in deliveries
    ]
    assert len(messages) == count
    db.session.rollback()
    envelope_from = settings.mail_from.addr_spec
    gc.collect()
    before = rss_kb()
    started, cpu = time.perf_counter(), time.process_time()
    with smtplib.SMTP(settings.mail.host, settings.mail.port, timeout=30) as smtp:
        for message, to in messages:
            smtp.sendmail(envelope_from, [to], message)
    seconds = time.perf_counter() - started
    return {
        "messages": count,
        "seconds": seconds,
        "peak_rss_kb": peak_rss_kb(),
        "rss_before_kb": before,
        "cpu_seconds": time.process_time() - cpu,
    }


def send_with_worker(app: Any, count: int, *, profile: bool) -> dict[str, Any]:
    """One `leadcapture worker --once` pass over the backlog, timed from inside the process."""
    from sqlalchemy import func, select

    from leadcapture.extensions import db
    from leadcapture.models import Delivery, DeliveryStatus
    from leadcapture.scheduler import run_once

    db.session.execute(select(1))  # connect before the clock starts, as a running worker has
    db.session.remove()
    gc.collect()
    before = rss_kb()
    profiler: Any = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    started, cpu = time.perf_counter(), time.process_time()
    done = run_once(app)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    peak = peak_rss_kb()
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    sent = db.session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.SENT))
    db.session.remove()
    if sent != count:
        raise SystemExit(f"the worker sent {sent} of {count} ({done})")
    return {
        "messages": count,
        "seconds": seconds,
        "peak_rss_kb": peak,
        "rss_before_kb": before,
        "cpu_seconds": cpu_seconds,
    }


def rss_kb() -> int:
    """The resident set now; also restarts the peak count, so the peak covers only what follows.

    Start-up is not what is measured: importing the app briefly takes far more memory than sending does
    (argon2's 64 MiB dummy hash), and that spike would hide any growth with the backlog.
    """
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux ≥ 4.0)
    return _status_kb("VmRSS")


def peak_rss_kb() -> int:
    return _status_kb("VmHWM")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


# -- the sink and the databases


@contextmanager
def sink() -> Iterator[tuple[str, int]]:
    """aiosmtpd's discarding Sink handler in a process of its own on a free loopback port: its URL and pid."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-c",
        "aiosmtpd.handlers.Sink",
        "-l",
        f"127.0.0.1:{port}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as probe:
                    probe.noop()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the aiosmtpd sink did not start") from None
                time.sleep(0.1)
        yield f"smtp://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[dict[str, str]]:
    """The environment of a throwaway database (a temporary SQLite file, or a PostgreSQL database dropped
    afterwards)."""
    base = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    base.update(
        LEADCAPTURE_SECRET_KEY=secrets.token_hex(16),
        LEADCAPTURE_MAIL_FROM=MAIL_FROM,
        LEADCAPTURE_BASE_URL="https://beleggen.example",
    )
    with tempfile.TemporaryDirectory(prefix="leadcapture-bench-") as scratch:
        if kind == "sqlite":
            yield {**base, "LEADCAPTURE_DATABASE_URL": f"sqlite:///{Path(scratch) / 'bench.sqlite'}"}
            return
        name = f"leadcapture_bench_{secrets.token_hex(4)}"
        admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
                yield {**base, "LEADCAPTURE_DATABASE_URL": url}
            finally:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


if __name__ == "__main__":
    sys.exit(main())
