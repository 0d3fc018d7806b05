"""A 202 is a promise (issue: capture at the relay's pace): with real processes, a web process killed right after
answering loses none of the submissions it accepted, a running worker stores them and sends their
confirmations, a changed answer moves its subscriber's sequences, and a worker killed while storing a batch
loses nothing and stores nothing twice."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, insert, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.jobs import store_submissions
from leadcapture.models import (
    ConsentEvent,
    DeliveryKind,
    EnrollmentState,
    Intake,
    Submission,
    Subscriber,
    Widget,
)
from leadcapture.models import Delivery as DeliveryModel
from leadcapture.services import sequences
from leadcapture.services.widgets import mail_reference, reader_ref
from tests.factories import give_answers, make_confirmed_subscriber, make_sequence
from tests.fixtures.smtp import SmtpSink
from tests.support.app import app_settings
from tests.support.network import free_port
from tests.support.submissions import ORIGIN, URL, form_token, valid_body

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 30.0  # a process imports the app and connects; slow on a loaded two-core machine
SETTLE_TIMEOUT = 30.0  # generous: what is promised within seconds, waited for without asserting a time

pytestmark = pytest.mark.usefixtures("widget")


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink) -> dict[str, Any]:
    return app_settings(database_url, LEADCAPTURE_MAIL_URL=smtp_sink.url, LEADCAPTURE_RATE_LIMITS="off")


class Process:
    """A child process in a session of its own (so a SIGKILL takes its children too); output to a file."""

    def __init__(self, args: list[str], settings: dict[str, Any], log: Path) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
        env.update({key: str(value) for key, value in settings.items() if key.startswith("LEADCAPTURE_")})
        env["PYTHONUNBUFFERED"] = "1"
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def processes(settings: dict[str, Any], tmp_path: Path) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(name: str, *args: str) -> Process:
        process = Process(list(args), settings, tmp_path / f"{name}.log")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.kill()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def count(app: Flask, model: type[Any]) -> int:
    with app.app_context():
        db.session.rollback()
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def held_in(app: Flask, subscriber_id: int) -> list[str]:
    with app.app_context():
        db.session.rollback()
        return sorted(
            enrollment.sequence.slug
            for enrollment in sequences.sequences_holding(subscriber_id)
            if enrollment.state is EnrollmentState.ACTIVE
        )


def test_a_killed_web_process_loses_no_accepted_submission_and_the_worker_sends_each_confirmation(
    app: Flask, smtp_sink: SmtpSink, processes: Callable[..., Process]
) -> None:
    answers = {"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]}
    with app.app_context():
        widget = db.session.scalars(select(Widget)).one()
        make_sequence("beginners", {"daytrading_experience": ["none"]})
        make_sequence("actives", {"daytrading_experience": ["active"]})
        carol, _ = make_confirmed_subscriber(widget, email="carol@example.com", marketing_consent=True)
        give_answers(carol, answers)
        sequences.switch_sequences(carol, reason="confirmed")
        carol_id, ref = carol.id, mail_reference(carol.id)
        db.session.commit()
    assert held_in(app, carol_id) == ["beginners"]

    port = free_port()
    web = processes("web", sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "wsgi:app")
    worker = processes("worker", sys.executable, "-m", "leadcapture.cli", "worker")
    wait_until(lambda: "worker running" in worker.output(), "the worker to start", START_TIMEOUT)

    def post(body: dict[str, Any]) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(
                "POST", URL, json.dumps(body), {"Content-Type": "application/json", "Origin": ORIGIN}
            )
            return connection.getresponse().status
        finally:
            connection.close()

    def serving() -> bool:
        try:
            return post({}) == 422
        except OSError:
            return False

    wait_until(serving, "the web process to answer", START_TIMEOUT)
    addresses = [f"lezer{n}@example.com" for n in range(20)]
    with app.app_context():
        bodies = [valid_body(email=address, form_token=form_token()) for address in addresses]
        change = valid_body(
            email="carol@example.com",
            answers={**answers, "daytrading_experience": "active"},
            ref=ref,
            form_token=form_token(),
        )
    assert [post(body) for body in [*bodies, change]] == [202] * 21
    web.kill()  # right after the last 202

    wait_until(lambda: held_in(app, carol_id) == ["actives"], "Carol's changed answer to move her")
    received = smtp_sink.wait_for(21, timeout=SETTLE_TIMEOUT)  # 20 confirmations, Carol's report
    by_kind = Counter((message.rcpt_tos, message.message["X-Leadcapture-Kind"]) for message in received)
    # Carol's first step in her new sequence waits a day.
    assert by_kind == Counter(
        {((address,), "confirm"): 1 for address in addresses} | {(("carol@example.com",), "report"): 1}
    )
    assert count(app, Intake) == 0
    assert "Traceback" not in worker.output(), worker.output()[-3000:]


def test_a_worker_killed_while_storing_loses_nothing_and_stores_nothing_twice(
    app: Flask, processes: Callable[..., Process]
) -> None:
    total = 20_000  # enough batches that the worker is killed in the middle of them
    with app.app_context():
        widget = db.session.scalars(select(Widget)).one()
        template = valid_body()
        addresses = [f"lezer{n}@example.com" for n in range(total)]
        db.session.execute(
            insert(Intake),
            [
                {
                    "widget_id": widget.id,
                    "received_at": clock.now(),
                    "email": address,
                    "data": {
                        "email": address,
                        "reader_ref": reader_ref(address),
                        "answers": template["answers"],
                        "wants_sequences": False,
                        "page_url": None,
                        "timezone": None,
                    },
                }
                for address in addresses
            ],
        )
        db.session.commit()

    doomed = processes("worker", sys.executable, "-m", "leadcapture.cli", "worker")
    wait_until(lambda: count(app, Subscriber) > 0, "the worker to store a first batch", START_TIMEOUT)
    doomed.kill()
    stored_before = count(app, Subscriber)
    assert stored_before < total, "the worker finished before it was killed: nothing was tested"

    with app.app_context():
        assert store_submissions() == total - stored_before
        for model in (Subscriber, Submission, ConsentEvent, DeliveryModel):
            assert db.session.scalar(select(func.count()).select_from(model)) == total, model.__name__
        assert set(db.session.scalars(select(DeliveryModel.kind))) == {DeliveryKind.CONFIRM}
        assert db.session.scalars(select(Subscriber.email).order_by(Subscriber.email)).all() == sorted(addresses)
    assert count(app, Intake) == 0
