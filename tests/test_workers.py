"""Workers against one database (SPEC §5 correctness): several worker processes send every due delivery
exactly once, a worker killed mid-batch loses nothing and duplicates at most its message in flight, SMTP
faults leave deliveries waiting with their Message-ID or stop them for good, and an unsubscribe that
commits while a worker is busy wins over the rest of the backlog.

Worker processes run `python -m leadcapture.cli worker` against the test app's database and a sink on
loopback; the fault tests drive `leadcapture worker --once --at …` in-process to stay quick.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, update

from leadcapture import clock, create_app
from leadcapture.extensions import db
from leadcapture.jobs import drain_outbox, send_due_deliveries
from leadcapture.models import (
    BounceEvent,
    BounceKind,
    BounceSource,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    StreamPause,
    Submission,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.outbox import enqueue_delivery
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_report, make_sequence
from tests.fixtures.smtp import SmtpSink
from tests.support.app import Client, CliRunner, app_settings
from tests.support.network import free_port

WORKER = [sys.executable, "-m", "leadcapture.cli", "worker"]
START_TIMEOUT = 30.0  # a worker process imports the app and connects; slow on a loaded two-core machine
STOP_TIMEOUT = 15.0  # SIGTERM lets the batch in hand finish, then the process must be gone


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink, request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("settings")
    return app_settings(database_url, LEADCAPTURE_MAIL_URL=smtp_sink.url, **(marker.kwargs if marker else {}))


# -- worker processes


class WorkerProcess:
    """One `leadcapture worker` process; its stdout and stderr go to a file, never to a pipe."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                WORKER + args, env=env, cwd=log.parent, stdout=output, stderr=subprocess.STDOUT
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_running(self) -> None:
        """Until the scheduler runs (and SIGTERM is handled): the worker prints a line first."""
        wait_until(lambda: "worker running" in self.output(), START_TIMEOUT, f"{self.log.name} to start")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.log.name} did not exit within {timeout} s:\n{self.output()[-3000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        self.process.send_signal(sig)
        return self.wait(timeout)

    def attempted(self) -> int:
        """Deliveries this worker claimed and attempted, from its `sweep send-deliveries: N` log lines."""
        return sum(int(n) for n in re.findall(r"sweep send-deliveries: (\d+)", self.output()))


class Workers:
    """Starts worker processes on the test app's database; whatever still runs is killed after the test."""

    def __init__(self, settings: dict[str, Any], directory: Path) -> None:
        self._env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
        self._env.update(
            {key: str(value) for key, value in settings.items() if key.startswith("LEADCAPTURE_")}
        )
        self._env["PYTHONUNBUFFERED"] = "1"  # "worker running" must reach the log file at once
        self._directory = directory
        self._started: list[WorkerProcess] = []

    def start(self, mail_url: str, *args: str) -> WorkerProcess:
        log = self._directory / f"worker-{len(self._started) + 1}.log"
        worker = WorkerProcess(list(args), {**self._env, "LEADCAPTURE_MAIL_URL": mail_url}, log)
        self._started.append(worker)
        return worker

    def run_once(self, mail_url: str, at: datetime, timeout: float = 60.0) -> WorkerProcess:
        worker = self.start(mail_url, "--once", "--at", at.isoformat())
        assert worker.wait(timeout) == 0, worker.output()
        return worker

    def kill_all(self) -> None:
        for worker in self._started:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait(10)


@pytest.fixture
def workers(settings: dict[str, Any], tmp_path: Path) -> Iterator[Workers]:
    directory = tmp_path / "workers"
    directory.mkdir()
    started = Workers(settings, directory)
    try:
        yield started
    finally:
        started.kill_all()


# -- a relay that has the message before the sender hears so


class SlowAckHandler:
    """Keeps each message as soon as its data is in, then waits `ack_delay` before answering 250.

    This is the window in which a sender that dies leaves a duplicate behind: the relay has the message, the
    outbox does not know. (The sink fixture's DATA stall comes *before* it keeps the message, so a sender
    killed during it leaves nothing behind to duplicate.)
    """

    def __init__(self) -> None:
        self.ack_delay = 0.0
        self._lock = threading.Lock()
        self._message_ids: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        match = re.search(rb"^Message-ID:\s*(<[^>]+>)", envelope.original_content or b"", re.I | re.M)
        with self._lock:
            self._message_ids.append(match.group(1).decode() if match else "")
        await asyncio.sleep(self.ack_delay)
        return "250 2.0.0 OK: queued"

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(self._message_ids)


@pytest.fixture
def slow_ack_sink() -> Iterator[tuple[str, SlowAckHandler]]:
    handler = SlowAckHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}", handler
    finally:
        controller.stop()


# -- data


def seed_confirmations(
    app: Flask,
    count: int,
    *,
    prefix: str = "reader",
    due_at: datetime | None = None,
    domain: str = "example.com",
) -> list[str]:
    """`count` readers who asked for a report, each with a confirmation due in the outbox; their Message-IDs."""
    with app.app_context():
        now = clock.now()
        report = make_report(f"{prefix}-report")
        readers = [
            Subscriber(
                email=f"{prefix}{n}@{domain}",
                status=SubscriberStatus.PENDING,
                locale="nl",
                marketing_consent=False,
                created_at=now,
                status_changed_at=now,
            )
            for n in range(count)
        ]
        submissions = [
            Submission(subscriber=reader, report=report, marketing_consent=False, created_at=now)
            for reader in readers
        ]
        db.session.add_all(submissions)
        db.session.flush()
        for submission in submissions:
            enqueue_delivery(
                submission.subscriber_id,
                submission.subscriber.email,
                DeliveryKind.CONFIRM,
                f"confirm:submission:{submission.id}",
                {"submission_id": submission.id},
                due_at=due_at,
            )
        db.session.commit()
        ids = list(
            db.session.scalars(
                select(Delivery.message_id)
                .join(Subscriber, Delivery.subscriber_id == Subscriber.id)
                .where(Subscriber.email.startswith(prefix))
            )
        )
    assert len(ids) == count
    return ids


def deliveries(app: Flask) -> dict[str, Delivery]:
    """Every delivery by recipient, detached."""
    with app.app_context():
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        db.session.expunge_all()
    return {row.to_address: row for row in rows}


def statuses(app: Flask) -> Counter[DeliveryStatus]:
    with app.app_context():
        rows = db.session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return Counter(dict(rows.all()))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# -- several workers, one database


def test_three_workers_send_every_due_delivery_exactly_once(
    app: Flask, smtp_sink: SmtpSink, workers: Workers
) -> None:
    started = [workers.start(smtp_sink.url) for _ in range(3)]
    for worker in started:
        worker.wait_until_running()
    # One commit makes a thousand deliveries due under three idle workers at once.
    ids = seed_confirmations(app, 1000)

    smtp_sink.wait_for(1000, timeout=90)
    wait_until(
        lambda: statuses(app) == Counter({DeliveryStatus.SENT: 1000}), 30, "every delivery marked sent"
    )
    time.sleep(1.5)  # another tick of every worker: nothing more may arrive
    assert smtp_sink.message_ids() == Counter(dict.fromkeys(ids, 1))
    with app.app_context():
        # Each claim counts an attempt: a row claimed by two workers would show 2.
        assert set(db.session.scalars(select(Delivery.attempts))) == {1}

    assert [worker.stop() for worker in started] == [0, 0, 0]
    attempted = [worker.attempted() for worker in started]
    assert sum(attempted) == 1000, attempted
    assert sum(1 for n in attempted if n) >= 2, f"only one worker did any work: {attempted}"
    for worker in started:
        assert "Traceback" not in worker.output(), worker.output()[-3000:]


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_at_most_its_message_in_flight(
    app: Flask, slow_ack_sink: tuple[str, SlowAckHandler], workers: Workers
) -> None:
    url, relay = slow_ack_sink
    ids = seed_confirmations(app, 30)
    relay.ack_delay = 0.1
    doomed = workers.start(url)
    wait_until(lambda: relay.message_ids().total() >= 5, 60, "the first worker to send five messages")
    assert doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    relay.ack_delay = 0.0
    before = relay.message_ids()
    left = statuses(app)
    assert left[DeliveryStatus.SENDING] > 0, left  # its batch is still leased to the dead worker

    workers.run_once(url, clock.now() + timedelta(minutes=6))  # past the 5-minute lease

    received = relay.message_ids()
    assert set(received) == set(ids)  # nothing lost, nothing sent under another Message-ID
    duplicated = {message_id: n for message_id, n in received.items() if n > 1}
    assert len(duplicated) <= 1, duplicated
    assert set(duplicated.values()) <= {2}
    # Only a message the dead worker had handed over can come twice.
    assert set(duplicated) <= set(before)
    assert statuses(app) == Counter({DeliveryStatus.SENT: 30})


# -- SMTP faults, through `leadcapture worker --once --at`


def tick(runner: FlaskCliRunner, at: datetime) -> None:
    result = runner.invoke(args=["worker", "--once", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output


@pytest.fixture
def other_runner(settings: dict[str, Any]) -> Iterator[Callable[[str], FlaskCliRunner]]:
    """`leadcapture worker` with a different LEADCAPTURE_MAIL_URL, on the same database."""
    apps: list[Flask] = []

    def make(mail_url: str) -> FlaskCliRunner:
        other = create_app({**settings, "LEADCAPTURE_MAIL_URL": mail_url})
        apps.append(other)
        return CliRunner(other)

    yield make
    for other in apps:
        with other.app_context():
            db.engine.dispose()


def retry_moment(app: Flask) -> datetime:
    """Just after the last waiting delivery falls due again."""
    with app.app_context():
        latest = db.session.scalar(
            select(func.max(Delivery.due_at)).where(Delivery.status == DeliveryStatus.PENDING)
        )
    assert latest is not None
    return latest + timedelta(seconds=1)


TRANSIENT = {
    "t421": "421 4.7.0 too many connections, closing",
    "t450": "450 4.2.1 mailbox busy",
    "t451": "451 4.3.0 local error, try later",
    "t452": "452 4.5.3 too many recipients",
}


def test_transient_rcpt_replies_wait_and_go_out_later_with_the_same_message_id(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink
) -> None:
    ids = dict(
        zip(TRANSIENT, [seed_confirmations(app, 1, prefix=name)[0] for name in TRANSIENT], strict=True)
    )
    for name, reply in TRANSIENT.items():
        smtp_sink.fault("RCPT", reply, address=f"{name}0@example.com", times=1)
    now = clock.now() + timedelta(seconds=1)

    tick(runner, now)
    assert smtp_sink.messages == []
    for name, row in deliveries(app).items():
        assert row.status is DeliveryStatus.PENDING, name
        assert row.attempts == 1
        assert TRANSIENT[name.removesuffix("0@example.com")][:3] in (row.last_error or ""), row.last_error
        assert row.due_at > now  # backoff

    tick(runner, now + timedelta(seconds=30))  # not due yet: nothing happens
    assert smtp_sink.messages == []

    tick(runner, retry_moment(app))
    smtp_sink.wait_for(4)
    assert smtp_sink.message_ids() == Counter(dict.fromkeys(ids.values(), 1))
    assert {row.status for row in deliveries(app).values()} == {DeliveryStatus.SENT}
    with app.app_context():
        assert set(db.session.scalars(select(Subscriber.status))) == {SubscriberStatus.PENDING}


def test_an_unknown_mailbox_fails_the_delivery_and_suppresses_the_address(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink
) -> None:
    seed_confirmations(app, 1, prefix="gone")
    with app.app_context():
        gone = db.session.scalars(select(Subscriber)).one()
        submission = gone.submissions[0]
        # The report would follow later: the bounce must cancel it too.
        enqueue_delivery(
            gone.id,
            gone.email,
            DeliveryKind.REPORT,
            f"report:submission:{submission.id}",
            {"submission_id": submission.id},
            due_at=clock.now() + timedelta(hours=1),
        )
        db.session.commit()
    smtp_sink.fault("RCPT", "550 5.1.1 no such user", address="gone0@example.com")

    tick(runner, clock.now() + timedelta(seconds=1))
    tick(runner, clock.now() + timedelta(hours=2))
    assert smtp_sink.messages == []
    with app.app_context():
        rows = {row.kind: row for row in db.session.scalars(select(Delivery))}
        assert rows[DeliveryKind.CONFIRM].status is DeliveryStatus.FAILED
        assert "5.1.1" in (rows[DeliveryKind.CONFIRM].last_error or "")
        assert rows[DeliveryKind.REPORT].status is DeliveryStatus.CANCELLED
        subscriber = db.session.scalars(select(Subscriber)).one()
        assert subscriber.status is SubscriberStatus.BOUNCED
        assert subscriber.consent_events[-1].kind is ConsentKind.SUPPRESS


def test_a_refused_sender_pauses_the_stream_keeps_the_message_and_the_recipient(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    (refused,) = seed_confirmations(app, 1, prefix="first")
    smtp_sink.fault("MAIL", "550 5.7.1 sender not authorised for this relay", times=1)
    now = clock.now() + timedelta(seconds=1)

    tick(runner, now)
    assert "ALERT" in caplog.text
    assert "confirm" in caplog.text
    row = deliveries(app)["first0@example.com"]
    assert row.status is DeliveryStatus.PENDING
    assert row.message_id == refused
    assert "5.7.1" in (row.last_error or "")
    with app.app_context():
        assert db.session.scalars(select(Subscriber.status)).one() is SubscriberStatus.PENDING
        pause = db.session.get_one(StreamPause, DeliveryKind.CONFIRM)
        paused_until = pause.paused_until
    assert paused_until > now

    # While paused, no confirmation goes out, not even a newer one; other streams are not held back.
    (held,) = seed_confirmations(app, 1, prefix="second", due_at=now)
    with app.app_context():
        reader = db.session.scalars(select(Subscriber).where(Subscriber.email == "second0@example.com")).one()
        enqueue_delivery(
            reader.id,
            reader.email,
            DeliveryKind.REPORT,
            "report:submission:second",
            {"submission_id": reader.submissions[0].id},
            due_at=now,
        )
        db.session.commit()
    tick(runner, now + timedelta(minutes=1))
    (report,) = smtp_sink.wait_for(1)
    assert report.message["X-Leadcapture-Kind"] == "report"
    with app.app_context():
        waiting = set(
            db.session.scalars(select(Delivery.message_id).where(Delivery.status == DeliveryStatus.PENDING))
        )
    assert waiting == {refused, held}

    tick(runner, paused_until + timedelta(seconds=1))
    smtp_sink.wait_for(3)
    assert smtp_sink.message_ids() == Counter({refused: 1, held: 1, report.message_id: 1})
    with app.app_context():
        # The first message through lifts the pause.
        assert db.session.get(StreamPause, DeliveryKind.CONFIRM) is None


def test_a_policy_refusal_of_one_recipient_holds_back_only_that_recipient(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    # Anyone can sign up an address whose server answers 5.7.1: that must not hold up other readers' mail.
    (refused,) = seed_confirmations(app, 1, prefix="refused")
    smtp_sink.fault("RCPT", "550 5.7.1 recipient rejected by policy", address="refused0@example.com")
    now = clock.now() + timedelta(seconds=1)

    tick(runner, now)
    row = deliveries(app)["refused0@example.com"]
    assert row.status is DeliveryStatus.PENDING
    assert row.due_at > now  # retried on its own schedule
    assert "5.7.1" in (row.last_error or "")
    (other,) = seed_confirmations(app, 1, prefix="other", due_at=now)
    tick(runner, now + timedelta(seconds=30))  # before the refused message is retried

    assert smtp_sink.message_ids() == Counter({other: 1})
    assert "ALERT" not in caplog.text
    with app.app_context():
        assert db.session.get(StreamPause, DeliveryKind.CONFIRM) is None
        refused_reader = db.session.scalars(
            select(Subscriber).where(Subscriber.email == "refused0@example.com")
        ).one()
        assert refused_reader.status is SubscriberStatus.PENDING
        recorded = db.session.execute(select(BounceEvent.kind, BounceEvent.source, BounceEvent.status_code))
        assert recorded.all() == [(BounceKind.SOFT, BounceSource.SMTP, "5.7.1")]
    assert refused not in smtp_sink.message_ids()


def test_a_recipient_refused_three_times_within_seven_days_is_suppressed_as_bounced(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink
) -> None:
    seed_confirmations(app, 1, prefix="refused")
    smtp_sink.fault("DATA", "550 5.7.1 message refused by recipient policy", address="refused0@example.com")

    tick(runner, clock.now() + timedelta(seconds=1))
    tick(runner, retry_moment(app))
    assert deliveries(app)["refused0@example.com"].status is DeliveryStatus.PENDING
    tick(runner, retry_moment(app))

    assert smtp_sink.messages == []
    row = deliveries(app)["refused0@example.com"]
    assert row.status is DeliveryStatus.CANCELLED
    assert row.attempts == 3
    with app.app_context():
        reader = db.session.scalars(select(Subscriber)).one()
        assert reader.status is SubscriberStatus.BOUNCED
        assert reader.consent_events[-1].kind is ConsentKind.SUPPRESS
        assert db.session.scalar(select(func.count()).select_from(BounceEvent)) == 3


@pytest.mark.parametrize(
    ("domains", "paused"), [(["a.example", "b.example", "c.example"], True), (["a.example"] * 3, False)]
)
def test_the_same_refusal_from_three_recipient_domains_within_minutes_pauses_the_stream(
    app: Flask,
    runner: FlaskCliRunner,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
    domains: list[str],
    paused: bool,
) -> None:
    now = clock.now() + timedelta(seconds=1)
    for n, domain in enumerate(domains):
        seed_confirmations(
            app, 1, prefix=f"refused{n}-", due_at=now - timedelta(seconds=10 - n), domain=domain
        )
        smtp_sink.fault(
            "RCPT", "554 5.7.1 Service unavailable; client host blocked", address=f"refused{n}-0@{domain}"
        )

    tick(runner, now)
    (waiting,) = seed_confirmations(app, 1, prefix="later", due_at=now)
    tick(runner, now + timedelta(seconds=30))  # before the refused messages are retried

    with app.app_context():
        pause = db.session.get(StreamPause, DeliveryKind.CONFIRM)
    if paused:
        # Three receiving systems refusing us alike within minutes is about us: hold the stream and alert.
        assert pause is not None
        assert "ALERT" in caplog.text
        assert smtp_sink.messages == []
        assert deliveries(app)["later0@example.com"].status is DeliveryStatus.PENDING
    else:
        # One domain's policy, however often it says so, is that domain's business.
        assert pause is None
        assert "ALERT" not in caplog.text
        assert smtp_sink.message_ids() == Counter({waiting: 1})


@pytest.mark.parametrize("fault", ["refused", "timeout", "drop-after-data"])
def test_a_lost_connection_leaves_the_delivery_waiting_and_a_retry_sends_it_once(
    app: Flask,
    runner: FlaskCliRunner,
    other_runner: Callable[[str], FlaskCliRunner],
    smtp_sink: SmtpSink,
    fault: str,
) -> None:
    (message_id,) = seed_confirmations(app, 1)
    now = clock.now() + timedelta(seconds=1)
    started = time.monotonic()
    if fault == "refused":
        tick(other_runner(f"smtp://127.0.0.1:{free_port()}"), now)
        expected = "connect"
    elif fault == "timeout":
        # The relay answers the end of DATA after 2 s; the client gives up after 1 s and hangs up, so the
        # relay never keeps the message.
        smtp_sink.fault("DATA", stall=2.0, times=1)
        tick(other_runner(f"{smtp_sink.url}?timeout=1"), now)
        expected = "timed out"
    else:
        smtp_sink.fault("DATA", drop=True, times=1)
        tick(runner, now)
        expected = "DATA: SMTPServerDisconnected"
    row = deliveries(app)["reader0@example.com"]
    assert row.status is DeliveryStatus.PENDING
    assert expected in (row.last_error or ""), row.last_error
    assert row.due_at > now

    tick(runner, retry_moment(app))
    smtp_sink.wait_for(1)
    if fault == "timeout":
        # Past the stall: a copy the relay kept after all would be in by now.
        time.sleep(max(0.0, started + 2.5 - time.monotonic()))
    assert smtp_sink.message_ids() == Counter({message_id: 1})
    assert deliveries(app)["reader0@example.com"].status is DeliveryStatus.SENT


# -- an unsubscribe while a worker is busy


def enroll_with_due_steps(
    app: Flask, emails: list[str], due_at: datetime, *, sequence: str, steps: int
) -> dict[str, list[str]]:
    """Confirmed, opted-in subscribers in a sequence, with `steps` steps and their report due in the outbox;
    the Message-IDs of the steps."""
    with app.app_context():
        now = clock.now()
        sequence_row = make_sequence(sequence, {}, steps=[(f"{n}.md", timedelta(0)) for n in range(steps)])
        report = make_report(f"{sequence}-report")
        ids: dict[str, list[str]] = {}
        for email in emails:
            subscriber = Subscriber(
                email=email,
                status=SubscriberStatus.CONFIRMED,
                locale="nl",
                marketing_consent=True,
                created_at=now,
                confirmed_at=now,
                status_changed_at=now,
            )
            submission = Submission(
                subscriber=subscriber, report=report, marketing_consent=True, created_at=now, confirmed_at=now
            )
            enrollment = Enrollment(
                subscriber=subscriber,
                sequence=sequence_row,
                state=EnrollmentState.ACTIVE,
                steps_done=steps,
                entered_at=now,
            )
            db.session.add_all([submission, enrollment])
            db.session.flush()
            for step in sequence_row.steps:
                enqueue_delivery(
                    subscriber.id,
                    email,
                    DeliveryKind.SEQUENCE,
                    f"sequence:{enrollment.id}:{step.key}",
                    {"enrollment_id": enrollment.id, "step_id": step.id},
                    due_at=due_at,
                    enrollment_id=enrollment.id,
                )
            # Transactional: an unsubscribe withdraws marketing only, so the report still goes.
            enqueue_delivery(
                subscriber.id,
                email,
                DeliveryKind.REPORT,
                f"report:submission:{submission.id}",
                {"submission_id": submission.id},
                due_at=due_at,
            )
        db.session.commit()
        for email in emails:
            ids[email] = list(
                db.session.scalars(
                    select(Delivery.message_id).where(
                        Delivery.to_address == email, Delivery.kind == DeliveryKind.SEQUENCE
                    )
                )
            )
    return ids


def test_an_unsubscribe_committed_mid_batch_cancels_what_is_not_yet_claimed(
    app: Flask, client: Client, smtp_sink: SmtpSink, workers: Workers
) -> None:
    # Tomorrow at 10:00 UTC, within sending hours in Amsterdam, so pacing holds nothing back; the worker's
    # clock runs on from there.
    now = (clock.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    # More than one batch (100) of confirmations first, then the subscribers' steps and reports, due later.
    others = seed_confirmations(app, 110, due_at=now - timedelta(minutes=10))
    leaving = ["by-link@example.com", "by-hand@example.com"]
    steps = enroll_with_due_steps(app, leaving, now - timedelta(minutes=1), sequence="three-steps", steps=3)
    (staying,) = enroll_with_due_steps(
        app, ["stays@example.com"], now - timedelta(minutes=1), sequence="one-step", steps=1
    )["stays@example.com"]
    with app.app_context():
        by_link_id = db.session.scalars(
            select(Subscriber.id).where(Subscriber.email == "by-link@example.com")
        ).one()
    smtp_sink.fault("DATA", stall=0.02)  # the first batch lasts two seconds at least

    worker = workers.start(smtp_sink.url, "--at", now.isoformat())
    smtp_sink.wait_for(5, timeout=START_TIMEOUT)
    # One through the product's path (the RFC 8058 one-click POST), one behind the product's back: the
    # claim itself must notice that one.
    with app.app_context():
        token = make_token(Purpose.UNSUBSCRIBE, {"s": by_link_id})
        db.session.execute(
            update(Subscriber)
            .where(Subscriber.email == "by-hand@example.com")
            .values(status=SubscriberStatus.UNSUBSCRIBED, marketing_consent=False)
        )
        db.session.commit()
    assert client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert len(smtp_sink.messages) < 100, "the first batch was over before the unsubscribes committed"

    smtp_sink.wait_for(110 + 3 + 1, timeout=60)  # the confirmations, three reports, one step
    wait_until(
        lambda: not statuses(app).keys() & {DeliveryStatus.PENDING, DeliveryStatus.SENDING},
        30,
        "the outbox to settle",
    )
    assert worker.stop() == 0
    received = smtp_sink.message_ids()
    assert not received.keys() & {message_id for ids in steps.values() for message_id in ids}
    assert all(received[message_id] == 1 for message_id in [*others, staying])
    kinds = Counter(message.message["X-Leadcapture-Kind"] for message in smtp_sink.messages)
    assert kinds == Counter({"confirm": 110, "report": 3, "sequence": 1})
    with app.app_context():
        cancelled = db.session.scalars(
            select(Delivery.to_address).where(Delivery.status == DeliveryStatus.CANCELLED)
        ).all()
    assert Counter(cancelled) == Counter({"by-link@example.com": 3, "by-hand@example.com": 3})


# -- a slow relay: what was claimed minutes ago may no longer be wanted, or no longer be ours


class Sender(threading.Thread):
    """One sending pass of the worker in a thread of its own, with its own session, as a second process
    would run it; an exception in it fails the test at `finish()`."""

    def __init__(self, app: Flask, sweep: Callable[[], int] = send_due_deliveries) -> None:
        super().__init__(daemon=True)
        self._app = app
        self._sweep = sweep
        self.attempted = 0
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            with self._app.app_context():
                self.attempted = self._sweep()
        except BaseException as exc:  # re-raised in the test's thread
            self.error = exc

    def finish(self, timeout: float = 60.0) -> int:
        self.join(timeout)
        assert not self.is_alive(), "the sending pass did not finish"
        if self.error is not None:
            raise self.error
        return self.attempted


def test_nothing_is_handed_to_the_relay_after_an_unsubscribe_has_committed(
    app: Flask, client: Client, smtp_sink: SmtpSink
) -> None:
    # Within sending hours in Amsterdam, so pacing holds nothing back.
    clock.travel((clock.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0))
    emails = [f"reader{n}@example.com" for n in range(6)]
    steps = enroll_with_due_steps(
        app, emails, clock.now() - timedelta(minutes=1), sequence="one-step", steps=1
    )
    with app.app_context():
        tokens = [
            make_token(Purpose.UNSUBSCRIBE, {"s": subscriber_id})
            for subscriber_id in db.session.scalars(select(Subscriber.id).where(Subscriber.email.in_(emails)))
        ]
    smtp_sink.fault("DATA", stall=0.3)  # a slow relay: the batch of twelve takes about four seconds

    sender = Sender(app)
    smtp_sink.wait_for(1)
    for token in tokens:
        assert client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    committed = smtp_sink.message_ids()
    assert committed.total() < 12, "the batch was over before the unsubscribes committed"
    sender.finish()

    step_ids = {message_id for ids in steps.values() for message_id in ids}
    later = smtp_sink.message_ids() - committed
    # Only the message already in the relay's hands when the last unsubscribe committed may still arrive.
    assert len(later.keys() & step_ids) <= 1, later
    kinds = Counter(received.message["X-Leadcapture-Kind"] for received in smtp_sink.messages)
    assert kinds["report"] == 6  # transactional: the report still goes
    with app.app_context():
        cancelled = db.session.scalars(
            select(Delivery.last_error).where(Delivery.status == DeliveryStatus.CANCELLED)
        ).all()
    assert len(cancelled) == 6 - kinds["sequence"]
    assert set(cancelled) <= {"no marketing consent"}


def test_a_sender_whose_lease_ran_out_leaves_what_another_sender_took_over(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    ids = seed_confirmations(app, 8)
    with app.app_context():
        first_two = list(db.session.scalars(select(Delivery.id).order_by(Delivery.id).limit(2)))
    smtp_sink.fault("DATA", stall=0.3)

    first = Sender(app)
    smtp_sink.wait_for(1)  # the first message is in, the second in the relay's hands
    # The rest of the batch outlives its lease, as a hundred messages at three seconds each outlast five
    # minutes, and a second sender takes it over.
    with app.app_context():
        db.session.execute(
            update(Delivery)
            .where(Delivery.status == DeliveryStatus.SENDING, Delivery.id.not_in(first_two))
            .values(due_at=clock.now() - timedelta(seconds=1))
        )
        db.session.commit()
        drain_outbox()
    first.finish()
    with app.app_context():
        drain_outbox()  # anything the first sender handed back

    assert smtp_sink.message_ids() == Counter(dict.fromkeys(ids, 1))
    assert statuses(app) == Counter({DeliveryStatus.SENT: 8})


@pytest.mark.settings(SEND_LEASE_SECONDS=1)
def test_a_batch_slower_than_its_lease_is_never_taken_over_while_its_sender_works(
    app: Flask, smtp_sink: SmtpSink
) -> None:
    ids = seed_confirmations(app, 6)
    smtp_sink.fault("DATA", stall=0.4)  # 2.4 s for the batch, against a lease of 1 s

    first = Sender(app)
    smtp_sink.wait_for(1)
    second = 0
    with app.app_context():
        while first.is_alive():
            second += send_due_deliveries()
            db.session.remove()
            time.sleep(0.05)
    assert first.finish() == 6

    assert second == 0
    assert smtp_sink.message_ids() == Counter(dict.fromkeys(ids, 1))
    assert statuses(app) == Counter({DeliveryStatus.SENT: 6})
    with app.app_context():
        assert set(db.session.scalars(select(Delivery.attempts))) == {1}
