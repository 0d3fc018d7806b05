"""Deliveries leave through a real SMTP server: after commit, from the worker, and again after failures."""

from __future__ import annotations

import re
import sqlite3
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.jobs import send_due_deliveries
from leadcapture.models import (
    ConsentKind,
    Delivery,
    DeliveryStatus,
    StreamPause,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services import emails
from tests.fixtures.smtp import SmtpSink
from tests.support.app import Client, app_settings
from tests.support.submissions import post, valid_body


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink) -> dict[str, Any]:
    return app_settings(database_url, LEADCAPTURE_MAIL_URL=smtp_sink.url)


def delivery(app: Flask) -> Delivery:
    with app.app_context():
        row = db.session.scalars(select(Delivery).order_by(Delivery.id.desc())).first()
        assert row is not None
        db.session.expunge(row)
        return row


def confirm_path(text: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:5000(/confirm/[\w.\-]+)", text)
    assert match
    return match.group(1)


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("widget")
def test_the_journey_over_smtp(app: Flask, client: FlaskClient, smtp_sink: SmtpSink) -> None:
    post(client, valid_body())
    (confirm,) = smtp_sink.wait_for(1)
    assert confirm.rcpt_tos == ("lezer@example.com",)
    # VERP: a bounce comes back to an address naming the delivery; From stays the sender.
    assert confirm.mail_from == f"bounce+{delivery(app).id}@beleggen.example"
    assert confirm.message["From"].addresses[0].addr_spec == "nieuws@beleggen.example"
    assert confirm.message["X-Leadcapture-Kind"] == "confirm"
    assert confirm.message_id == delivery(app).message_id
    text = confirm.message.get_body(("plain",))
    assert text is not None
    client.post(confirm_path(text.get_content()))
    report = smtp_sink.wait_for(2)[1]
    assert report.message["X-Leadcapture-Kind"] == "report"
    assert "/download/" in str(report.message.get_body(("plain",)))
    assert delivery(app).status is DeliveryStatus.SENT


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("widget")
def test_a_temporary_failure_is_retried_by_the_worker_with_the_same_message_id(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner, smtp_sink: SmtpSink, frozen_clock: Any
) -> None:
    smtp_sink.fault("DATA", "451 4.3.0 try again later", times=1)
    post(client, valid_body())
    waiting = delivery(app)
    assert waiting.status is DeliveryStatus.PENDING
    assert waiting.attempts == 1
    assert waiting.due_at > frozen_clock
    assert smtp_sink.messages == []

    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert smtp_sink.messages == []  # not due yet

    later = (waiting.due_at + timedelta(seconds=1)).isoformat()
    result = runner.invoke(args=["worker", "--once", "--at", later])
    assert result.exit_code == 0, result.output
    (received,) = smtp_sink.wait_for(1)
    assert received.message_id == waiting.message_id
    assert delivery(app).status is DeliveryStatus.SENT


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("widget")
def test_a_hard_bounce_suppresses_the_address(app: Flask, client: FlaskClient, smtp_sink: SmtpSink) -> None:
    smtp_sink.fault("RCPT", "550 5.1.1 no such user")
    post(client, valid_body())
    assert delivery(app).status is DeliveryStatus.FAILED
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        assert subscriber.status is SubscriberStatus.BOUNCED
        assert subscriber.consent_events[-1].kind is ConsentKind.SUPPRESS
    smtp_sink.clear()
    post(client, valid_body())  # a bounced address gets nothing more
    with app.app_context():
        assert len(db.session.scalars(select(Delivery)).all()) == 1
    assert smtp_sink.messages == []


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("widget")
def test_a_policy_refusal_of_the_recipient_keeps_the_recipient_and_retries_the_message(
    app: Flask, client: FlaskClient, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_sink.fault("DATA", "550 5.7.26 unauthenticated mail is prohibited")
    post(client, valid_body())
    waiting = delivery(app)
    assert waiting.status is DeliveryStatus.PENDING
    assert waiting.due_at > clock.now()
    assert "5.7.26" in (waiting.last_error or "")
    # One recipient's refusal says nothing about the sender: no alert, no paused stream.
    assert "ALERT" not in caplog.text
    with app.app_context():
        assert db.session.scalars(select(Subscriber)).one().status is SubscriberStatus.PENDING
        assert db.session.scalars(select(StreamPause)).all() == []


@pytest.mark.usefixtures("widget")
def test_a_sender_that_died_mid_send_is_taken_over_after_its_lease(
    app: Flask, client: Client, runner: FlaskCliRunner, smtp_sink: SmtpSink, frozen_clock: Any
) -> None:
    post(client, valid_body())
    with app.app_context():
        row = db.session.scalars(select(Delivery)).one()
        row.status = DeliveryStatus.SENDING  # as a sender leaves it when killed between claim and send
        row.due_at = clock.now() + timedelta(minutes=5)
        db.session.commit()
    runner.invoke(args=["worker", "--once"])
    assert smtp_sink.messages == []  # the lease still holds
    clock.advance(timedelta(minutes=6))
    runner.invoke(args=["worker", "--once"])
    assert len(smtp_sink.wait_for(1)) == 1
    assert delivery(app).status is DeliveryStatus.SENT


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("widget")
def test_relay_down_leaves_the_submission_accepted_and_queued(
    app: Flask, client: FlaskClient, smtp_sink: SmtpSink
) -> None:
    smtp_sink.fault("EHLO", drop=True)
    assert post(client, valid_body()).status_code == 202
    waiting = delivery(app)
    assert waiting.status is DeliveryStatus.PENDING
    assert waiting.last_error is not None


@pytest.mark.parametrize("at", ["yesterday", "2026-03-01T09:00:00", "2026-13-01T00:00:00Z"])
def test_worker_refuses_a_malformed_at(runner: FlaskCliRunner, at: str) -> None:
    result = runner.invoke(args=["worker", "--once", "--at", at])
    assert result.exit_code == 2
    assert "--at" in result.output


@pytest.mark.usefixtures("widget")
def test_messages_render_after_the_claim_commits_and_one_that_cannot_fails_alone(
    app: Flask, client: Client, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    post(client, valid_body())
    post(client, valid_body(email="tweede@example.com"))
    with app.app_context():
        good, bad = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        bad.payload = {"submission_id": 999_999}  # its submission is gone: rendering it raises
        db.session.commit()
        good_id, bad_id = good.id, bad.id
    locked_while_rendering: list[bool] = []
    build_message = emails.build_message

    def rendering(row: Delivery, *args: Any) -> Any:
        locked_while_rendering.append(row_is_locked(row.id))
        return build_message(row, *args)

    monkeypatch.setattr(emails, "build_message", rendering)
    with app.app_context():
        assert send_due_deliveries() == 1
    assert locked_while_rendering == [False, False]
    (received,) = smtp_sink.wait_for(1)
    with app.app_context():
        sent, failed = db.session.get_one(Delivery, good_id), db.session.get_one(Delivery, bad_id)
        assert sent.status is DeliveryStatus.SENT
        assert sent.subject == received.message["Subject"]
        assert failed.status is DeliveryStatus.FAILED
        assert failed.attempts == 1
        assert failed.last_error is not None
        assert failed.last_error.startswith("render error")


def row_is_locked(delivery_id: int) -> bool:
    """Whether another transaction holds the delivery's row (PostgreSQL) or the write lock (SQLite) now."""
    if db.engine.dialect.name == "sqlite":
        other = sqlite3.connect(str(db.engine.url.database), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            other.close()
        return False
    with db.engine.connect() as other:
        try:
            other.execute(select(Delivery.id).where(Delivery.id == delivery_id).with_for_update(nowait=True))
        except OperationalError:
            return True
        finally:
            other.rollback()
    return False


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.usefixtures("widget")
def test_a_send_pass_leaves_every_pooled_connection_as_durable_as_before(
    app: Flask, client: Client, smtp_sink: SmtpSink
) -> None:
    """On PostgreSQL the sent marks commit without waiting for the disk, on their own connection only: what
    else the worker commits on a pooled connection afterwards (an unsubscribe it applies, a bounce) still
    waits for it."""
    for n in range(3):
        post(client, valid_body(email=f"reader{n}@example.com"))
    with app.app_context():
        assert send_due_deliveries() == 3
        assert len(smtp_sink.wait_for(3)) == 3
        pooled = db.engine.pool.checkedin()
        assert pooled >= 1  # the ledger's connection, at least
        connections = [db.engine.connect() for _ in range(pooled)]
        try:
            assert {c.exec_driver_sql("SHOW synchronous_commit").scalar() for c in connections} == {"on"}
        finally:
            for connection in connections:
                connection.close()
