"""Bounces and complaints: VERP return paths, reports read from a mailbox, and the provider's signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import mailbox
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    BounceEvent,
    BounceKind,
    BounceSource,
    Delivery,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.bounces import parse_bounce_message
from leadcapture.services.subscribers import erase_subscriber
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.smtp import ReceivedMessage, SmtpSink
from tests.support.app import Client, app_settings
from tests.support.submissions import sign_up

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # a Monday morning: within sending hours
READER = "lezer@example.com"
SECRET = "provider-shared-secret-0123456789"
URL = "/api/v1/mail-events"


@pytest.fixture
def settings(database_url: str, smtp_sink: SmtpSink, request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("settings")
    extra = {"LEADCAPTURE_MAIL_EVENTS_SECRET": SECRET, **(marker.kwargs if marker else {})}
    return app_settings(database_url, LEADCAPTURE_MAIL_URL=smtp_sink.url, **extra)


@pytest.fixture
def report_mail(app: Flask, client: Client, smtp_sink: SmtpSink) -> ReceivedMessage:
    """A confirmed reader in a sequence; the report email they were sent, as the relay received it."""
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        db.session.commit()
    sign_up(client, READER)
    received = [m for m in smtp_sink.messages if m.message["X-Leadcapture-Kind"] == "report"]
    assert len(received) == 1
    return received[0]


def delivery_id(sent: ReceivedMessage) -> int:
    match = re.fullmatch(r"bounce\+(\d+)@beleggen\.example", sent.mail_from)
    assert match, sent.mail_from
    return int(match[1])


def sample(
    name: str,
    sent: ReceivedMessage,
    *,
    ref: str = "1",
    at: datetime = START,
    status: str = "5.1.1",
    recipient: str = READER,
    delivery: int | None = None,
) -> bytes:
    """A report from tests/fixtures/mail about `sent`, as it arrives in the bounce mailbox."""
    text = (FIXTURES / name).read_text()
    for placeholder, value in {
        "@@DELIVERY@@": str(delivery if delivery is not None else delivery_id(sent)),
        "@@MESSAGE_ID@@": sent.message_id,
        "@@RECIPIENT@@": recipient,
        "@@DATE@@": format_datetime(at),
        "@@REF@@": ref,
        "@@STATUS@@": status,
    }.items():
        text = text.replace(placeholder, value)
    return text.encode()


def maildir(tmp_path: Path, *messages: bytes) -> str:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for message in messages:
        box.add(message)
    return str(tmp_path / "Maildir")


def mbox(tmp_path: Path, *messages: bytes, name: str = "bounces.mbox") -> str:
    path = tmp_path / name
    box = mailbox.mbox(path)
    for message in messages:
        box.add(message)
    box.flush()
    box.close()
    return str(path)


def read(runner: FlaskCliRunner, source: str) -> str:
    result = runner.invoke(args=["bounces", "read", source])
    assert result.exit_code == 0, result.output
    return str(result.output)


def status_of(app: Flask, address: str = READER) -> SubscriberStatus:
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber).where(Subscriber.email == address)).one()
        return subscriber.status


def events(app: Flask) -> list[tuple[BounceKind, BounceSource, str | None]]:
    with app.app_context():
        rows = db.session.scalars(select(BounceEvent).order_by(BounceEvent.id)).all()
        return [(row.kind, row.source, row.status_code) for row in rows]


# --- VERP ---------------------------------------------------------------------------------------------


def test_each_message_leaves_with_its_own_verp_envelope_sender_and_the_sender_in_from(
    app: Flask, smtp_sink: SmtpSink, report_mail: ReceivedMessage
) -> None:
    assert len(smtp_sink.messages) == 2  # the confirmation, then the report
    with app.app_context():
        by_message_id = {d.message_id: d.id for d in db.session.scalars(select(Delivery))}
    for received in smtp_sink.messages:
        assert received.mail_from == f"bounce+{by_message_id[received.message_id]}@beleggen.example"
        assert received.message["From"].addresses[0].addr_spec == "nieuws@beleggen.example"
        assert received.message["Return-Path"] is None  # the receiving server adds it from the envelope
    assert len({m.mail_from for m in smtp_sink.messages}) == 2


@pytest.mark.settings(LEADCAPTURE_RETURN_PATH="bounces@mail.beleggen.example")
def test_the_verp_address_follows_the_configured_return_path(report_mail: ReceivedMessage) -> None:
    assert re.fullmatch(r"bounces\+\d+@mail\.beleggen\.example", report_mail.mail_from)


# --- Reading the bounce mailbox -----------------------------------------------------------------------


def test_a_hard_bounce_in_a_maildir_suppresses_the_address_and_ends_its_sequence(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    source = maildir(tmp_path, sample("dsn-hard-postfix.eml", report_mail))
    output = read(runner, source)

    assert f"delivery {delivery_id(report_mail)}: hard 5.1.1: hard bounce: subscriber suppressed" in output
    assert status_of(app) is SubscriberStatus.BOUNCED
    assert events(app) == [(BounceKind.HARD, BounceSource.DSN, "5.1.1")]
    with app.app_context():
        states = set(db.session.scalars(select(Enrollment.state)))
        assert states == {EnrollmentState.EXITED}
        waiting = db.session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.PENDING)
        )
        assert waiting == 0
        diagnostic = db.session.scalars(select(BounceEvent.diagnostic)).one()
        assert diagnostic is not None
        assert "User unknown" in diagnostic

    # The same mailbox read again (the report is still there) changes nothing.
    again = read(runner, source)
    assert "already recorded" in again
    assert "read 1 messages: 0 recorded, 1 already recorded" in again
    assert len(events(app)) == 1


def test_erasing_the_person_removes_their_bounce_records_with_the_address_in_them(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    read(runner, maildir(tmp_path, sample("dsn-hard-postfix.eml", report_mail)))
    assert len(events(app)) == 1
    exported = json.loads(runner.invoke(args=["subscribers", "export", READER]).output)
    (bounce,) = exported["bounces"]  # what is held on a person includes what servers reported
    assert (bounce["kind"], bounce["status_code"], bounce["source"]) == ("hard", "5.1.1", "dsn")
    assert bounce["message_id"] == report_mail.message["Message-ID"]
    with app.app_context():
        erase_subscriber(READER)
        db.session.commit()
    assert events(app) == []


def test_three_soft_bounces_within_seven_days_suppress(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    reports = [
        sample("dsn-soft-expired.eml", report_mail, ref=f"soft{day}", at=START + timedelta(days=day))
        for day in (0, 3, 6)
    ]
    clock.freeze(START + timedelta(days=6, hours=1))
    first = read(runner, mbox(tmp_path, *reports[:2], name="monday.mbox"))
    assert "soft bounce 2 of 3 within seven days" in first
    assert status_of(app) is SubscriberStatus.CONFIRMED

    output = read(runner, mbox(tmp_path, reports[2], name="sunday.mbox"))
    assert "soft bounce 3 within seven days: subscriber suppressed (bounced)" in output
    assert status_of(app) is SubscriberStatus.BOUNCED
    assert [kind for kind, _, _ in events(app)] == [BounceKind.SOFT] * 3


def test_three_soft_bounces_spread_over_eight_days_do_not_suppress(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    reports = [
        sample("dsn-soft-expired.eml", report_mail, ref=f"soft{day}", at=START + timedelta(days=day))
        for day in (0, 4, 8)
    ]
    clock.freeze(START + timedelta(days=9))
    output = read(runner, mbox(tmp_path, *reports))
    assert "read 3 messages: 3 recorded" in output
    assert "suppressed" not in output
    assert status_of(app) is SubscriberStatus.CONFIRMED


def test_the_same_soft_bounce_read_three_times_counts_once(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    report = sample("dsn-soft-expired.eml", report_mail)
    source = maildir(tmp_path, report, report)
    read(runner, source)
    read(runner, source)
    assert len(events(app)) == 1
    assert status_of(app) is SubscriberStatus.CONFIRMED


def test_a_complaint_suppresses_as_complained_found_by_the_original_message_id(
    app: Flask, runner: FlaskCliRunner, smtp_sink: SmtpSink, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    # The feedback loop writes to its own address, not the VERP one: the attached message ties it.
    output = read(runner, mbox(tmp_path, sample("arf-complaint.eml", report_mail)))
    assert "complaint: subscriber suppressed (complained)" in output
    assert status_of(app) is SubscriberStatus.COMPLAINED
    assert events(app) == [(BounceKind.COMPLAINT, BounceSource.ARF, None)]
    with app.app_context():
        assert db.session.scalars(select(Subscriber)).one().is_suppressed
    # No more mail to this address, whatever happens next.
    smtp_sink.clear()
    clock.freeze(START + timedelta(days=3))
    from leadcapture.jobs import drain_outbox, enqueue_due_steps

    with app.app_context():
        enqueue_due_steps()
        db.session.commit()
        drain_outbox()
    assert smtp_sink.messages == []


def test_a_delay_is_recorded_and_changes_nothing(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    output = read(runner, maildir(tmp_path, sample("dsn-delayed.eml", report_mail)))
    assert "delayed 4.7.1: recorded (delayed)" in output
    assert status_of(app) is SubscriberStatus.CONFIRMED
    assert events(app) == [(BounceKind.DELAYED, BounceSource.DSN, "4.7.1")]


def test_a_bounce_that_is_not_rfc_3464_is_still_recognised(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    output = read(runner, maildir(tmp_path, sample("qmail-hard.eml", report_mail)))
    assert "hard 5.1.1: hard bounce: subscriber suppressed (bounced)" in output
    assert status_of(app) is SubscriberStatus.BOUNCED


def test_messages_that_are_no_report_are_reported_and_skipped(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    broken_report = sample("dsn-hard-postfix.eml", report_mail, ref="2").replace(
        b"Content-Type: message/delivery-status", b"Content-Type: text/plain"
    )
    source = maildir(
        tmp_path,
        sample("out-of-office.eml", report_mail),
        b"\x00\xff\xfe not mail at all \x00",
        broken_report,
        sample("dsn-hard-postfix.eml", report_mail),
    )
    output = read(runner, source)
    assert output.count(": skipped: ") == 3
    assert "neither a bounce nor a complaint" in output
    assert "read 4 messages: 1 recorded, 0 already recorded, 0 unmatched, 3 skipped" in output
    assert status_of(app) is SubscriberStatus.BOUNCED


def test_a_forged_bounce_to_a_guessed_verp_address_suppresses_nobody(
    app: Flask, runner: FlaskCliRunner, report_mail: ReceivedMessage, tmp_path: Path
) -> None:
    # Anyone can write to bounce+<id>@: without the delivery's own recipient or Message-ID it counts for nothing.
    forged = sample("dsn-hard-postfix.eml", report_mail, recipient="someone-else@example.net").replace(
        report_mail.message_id.encode(), b"<forged@example.net>"
    )
    unknown = sample("dsn-hard-postfix.eml", report_mail, ref="2", delivery=999999).replace(
        report_mail.message_id.encode(), b"<unknown@example.net>"
    )
    output = read(runner, mbox(tmp_path, forged, unknown))
    assert output.count("no matching delivery: ignored") == 2
    assert "2 unmatched" in output
    assert status_of(app) is SubscriberStatus.CONFIRMED
    assert events(app) == []


def test_policy_full_mailbox_and_sender_failures_count_as_soft(
    app: Flask, report_mail: ReceivedMessage
) -> None:
    with app.app_context():
        for status, kind in {
            "5.1.1": BounceKind.HARD,
            "5.1.10": BounceKind.HARD,
            "5.2.2": BounceKind.SOFT,
            "5.7.1": BounceKind.SOFT,
            "5.1.8": BounceKind.SOFT,
            "4.2.2": BounceKind.SOFT,
        }.items():
            (report,) = parse_bounce_message(sample("dsn-hard-postfix.eml", report_mail, status=status))
            assert (status, report.kind) == (status, kind)


def test_a_missing_source_is_an_error(runner: FlaskCliRunner, tmp_path: Path, app: Flask) -> None:
    result = runner.invoke(args=["bounces", "read", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert "no such Maildir or mbox file" in result.output
    (tmp_path / "plain-dir").mkdir()
    result = runner.invoke(args=["bounces", "read", str(tmp_path / "plain-dir")])
    assert result.exit_code != 0
    assert "not a Maildir" in result.output


# --- The provider webhook -----------------------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Leadcapture-Signature": f"sha256={digest}", "Content-Type": "application/json"}


def event_body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def test_a_signed_bounce_event_suppresses_and_unknown_ids_are_counted(
    app: Flask, client: Client, report_mail: ReceivedMessage
) -> None:
    body = event_body(
        {
            "type": "bounce",
            "message_id": report_mail.message_id,
            "recipient": READER,
            "status": "5.1.1",
            "time": "2026-03-02T09:31:00+00:00",
        },
        {"type": "complaint", "message_id": "<not-ours@elsewhere.example>"},
    )
    response = client.post(URL, data=body, headers=signed(body))
    assert response.status_code == 200
    assert response.get_json() == {"recorded": 1, "duplicates": 0, "ignored": 1}
    assert status_of(app) is SubscriberStatus.BOUNCED
    assert events(app) == [(BounceKind.HARD, BounceSource.WEBHOOK, "5.1.1")]

    # The provider retries the same delivery: counted once.
    again = client.post(URL, data=body, headers=signed(body))
    assert again.get_json() == {"recorded": 0, "duplicates": 1, "ignored": 1}
    assert len(events(app)) == 1


def test_soft_bounce_complaint_and_delay_events(
    app: Flask, client: Client, report_mail: ReceivedMessage
) -> None:
    body = event_body({"type": "delayed", "message_id": report_mail.message_id, "status": "4.4.7"})
    assert client.post(URL, data=body, headers=signed(body)).get_json()["recorded"] == 1
    assert status_of(app) is SubscriberStatus.CONFIRMED
    body = event_body(
        *(
            {"type": "soft_bounce", "message_id": report_mail.message_id, "time": f"2026-03-0{day}T10:00:00Z"}
            for day in (2, 3)
        )
    )
    assert client.post(URL, data=body, headers=signed(body)).get_json()["recorded"] == 2
    assert status_of(app) is SubscriberStatus.CONFIRMED
    body = event_body({"type": "complaint", "message_id": report_mail.message_id})
    assert client.post(URL, data=body, headers=signed(body)).get_json()["recorded"] == 1
    assert status_of(app) is SubscriberStatus.COMPLAINED


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Leadcapture-Signature": "sha256=" + "0" * 64},
        {"X-Leadcapture-Signature": "sha1=abc"},
        {"X-Leadcapture-Signature": "garbage"},
        "wrong secret",
    ],
    ids=["missing", "wrong", "other-scheme", "garbage", "wrong-secret"],
)
def test_an_unsigned_or_badly_signed_event_is_refused(
    app: Flask, client: Client, report_mail: ReceivedMessage, headers: Any
) -> None:
    body = event_body({"type": "bounce", "message_id": report_mail.message_id})
    if headers == "wrong secret":
        headers = signed(body, "another-secret-of-enough-length")
    response = client.post(URL, data=body, headers=headers)
    assert response.status_code == 401
    assert "errors" in response.get_json()
    assert events(app) == []
    assert status_of(app) is SubscriberStatus.CONFIRMED


def test_a_replayed_signature_on_an_altered_body_is_refused(
    app: Flask, client: Client, report_mail: ReceivedMessage
) -> None:
    original = event_body({"type": "delayed", "message_id": report_mail.message_id})
    assert client.post(URL, data=original, headers=signed(original)).status_code == 200
    altered = original.replace(b'"delayed"', b'"complaint"')
    response = client.post(URL, data=altered, headers=signed(original))
    assert response.status_code == 401
    assert status_of(app) is SubscriberStatus.CONFIRMED
    assert [kind for kind, _, _ in events(app)] == [BounceKind.DELAYED]


@pytest.mark.settings(LEADCAPTURE_MAIL_EVENTS_SECRET="")
def test_without_a_secret_there_is_no_webhook(app: Flask, client: Client) -> None:
    body = event_body({"type": "bounce", "message_id": "<a@b.example>"})
    response = client.post(URL, data=body, headers=signed(body))
    assert response.status_code == 404
    assert "errors" in response.get_json()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (b"not json", 400, "body"),
        (b"[1, 2]", 400, "events"),
        (b'{"events": "all of them"}', 400, "events"),
        (b"[" * 5000 + b"]" * 5000, 400, None),
        (b'{"events": [42]}', 422, "events[0]"),
        (
            b'{"events": [{"type": "<script>alert(1)</script>", "message_id": "<a@b.example>"}]}',
            422,
            "events[0].type",
        ),
        (b'{"events": [{"type": "bounce", "message_id": "\\"><img src=x onerror=alert(1)>"}]}', 422, None),
        (b'{"events": [{"type": "bounce", "message_id": ["<a@b.example>"]}]}', 422, "events[0].message_id"),
        (b'{"events": [{"type": "bounce", "message_id": "<a@b.example>", "status": "9.9.9"}]}', 422, None),
        (b'{"events": [{"type": "bounce", "message_id": "<a@b.example>", "recipient": 7}]}', 422, None),
        (
            b'{"events": [{"type": "bounce", "message_id": "<a@b.example>", "time": "2026-03-02T10:00"}]}',
            422,
            None,
        ),
        (b'{"events": [{"type": "bounce", "message_id": "<a@b.example>", "time": 1e309}]}', 422, None),
    ],
)
def test_hostile_json_gets_a_clear_error_and_stores_nothing(
    app: Flask, client: Client, report_mail: ReceivedMessage, body: bytes, status: int, field: str | None
) -> None:
    # A valid event first, so a batch is refused whole: nothing of it is stored.
    if body.startswith(b'{"events": ['):
        good = json.dumps({"type": "bounce", "message_id": report_mail.message_id}).encode()
        body = body.replace(b'{"events": [', b'{"events": [' + good + b", ", 1)
        field = field and field.replace("events[0]", "events[1]")
    response = client.post(URL, data=body, headers=signed(body))
    assert response.status_code == status
    errors = response.get_json()["errors"]
    assert errors
    if field:
        assert field in errors
    assert events(app) == []
    assert status_of(app) is SubscriberStatus.CONFIRMED


def test_an_oversized_body_is_refused(app: Flask, client: Client, report_mail: ReceivedMessage) -> None:
    padding = [{"type": "delayed", "message_id": f"<{i:0>200}@x.example>"} for i in range(1400)]
    body = event_body(*padding)
    assert len(body) > 256 * 1024
    response = client.post(URL, data=body, headers=signed(body))
    assert response.status_code == 413
    assert "errors" in response.get_json()
    assert events(app) == []


def test_the_webhook_is_in_the_openapi_document(client: Client) -> None:
    document = client.get("/api/openapi.json").get_json()
    operation = document["paths"]["/api/v1/mail-events"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "404", "413", "422"}
    assert document["components"]["schemas"]["MailEvent"]["properties"]["type"]["enum"] == [
        "bounce",
        "soft_bounce",
        "complaint",
        "delayed",
    ]
