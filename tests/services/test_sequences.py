"""Sequences keyed to answers: entered on confirmation, switched the moment an answer changes, paced, and
stopped by an unsubscribe. Time moves with `worker --once --at`."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services.pacing import within_sending_hours
from tests.factories import make_demo_widget, make_sequence
from tests.support.app import Client
from tests.support.sequences import START, answer, build, enrollments, subscribe, tick

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox


@pytest.fixture
def start() -> datetime:
    clock.freeze(START)
    return START


def sent_subjects(app: Flask) -> list[str]:
    with app.app_context():
        return [
            subject or ""
            for subject in db.session.scalars(
                select(Delivery.subject)
                .where(Delivery.kind == DeliveryKind.SEQUENCE, Delivery.status == DeliveryStatus.SENT)
                .order_by(Delivery.sent_at, Delivery.id)
            )
        ]


def test_confirming_with_follow_up_consent_enters_the_matching_sequence_and_sends_its_steps_on_time(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}
    tick(runner, start + timedelta(hours=23))
    assert sent_subjects(app) == []
    tick(runner, start + timedelta(days=1, minutes=1))
    assert sent_subjects(app) == ["beginners 01-welcome.md"]
    tick(runner, start + timedelta(days=3, minutes=59))
    assert sent_subjects(app) == ["beginners 01-welcome.md"]
    tick(runner, start + timedelta(days=4, minutes=2))
    assert sent_subjects(app) == ["beginners 01-welcome.md", "beginners 02-next.md"]
    assert enrollments(app) == {"beginners": EnrollmentState.COMPLETED}
    tick(runner, start + timedelta(days=30))
    assert len(sent_subjects(app)) == 2


def test_no_follow_up_consent_means_no_sequence(app: Flask, client: Client, start: datetime) -> None:
    build(app)
    subscribe(client, "none", sequences=False)
    assert enrollments(app) == {}


def test_the_sequence_email_is_a_marketing_message_with_one_click_unsubscribe(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    tick(runner, start + timedelta(days=1, minutes=1))
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == DeliveryKind.SEQUENCE)
        ).one()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["X-Leadcapture-Kind"] == "sequence"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "beginners.beleggen.example" in message["List-Id"]
    unsubscribe = re.search(r"<http://127\.0\.0\.1:5000(/unsubscribe/[^>]+)>", message["List-Unsubscribe"])
    assert unsubscribe
    html = message.get_body(("html",))
    assert html is not None
    assert "<strong>01-welcome.md</strong>" in html.get_content()

    response = client.post(unsubscribe.group(1), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber)).one()
        assert subscriber.status is SubscriberStatus.UNSUBSCRIBED
        assert not subscriber.marketing_consent
        assert subscriber.consent_events[-1].kind is ConsentKind.WITHDRAW
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED}
    tick(runner, start + timedelta(days=10))
    assert sent_subjects(app) == ["beginners 01-welcome.md"]


def test_one_click_unsubscribe_is_idempotent_and_takes_multipart_too(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    with app.app_context():
        from leadcapture.tokens import Purpose, make_token

        subscriber_id = db.session.scalars(select(Subscriber.id)).one()
        path = "/unsubscribe/" + make_token(Purpose.UNSUBSCRIBE, {"s": subscriber_id})
    for _ in range(3):  # scanners open links; a GET changes nothing
        page = client.get(path)
        assert page.status_code == 200
        assert b'<form method="post">' in page.data
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}
    first = client.post(path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data")
    second = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert first.status_code == second.status_code == 200
    assert first.data == second.data
    with app.app_context():
        events = db.session.scalars(select(Subscriber)).one().consent_events
        assert [e.kind for e in events].count(ConsentKind.WITHDRAW) == 1
    assert client.post(path[:-4] + "AAAA").status_code == 400


def test_an_unsubscribe_committed_before_the_claim_wins(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    with app.app_context():
        from leadcapture import jobs

        clock.freeze(start + timedelta(days=1, minutes=1))
        jobs.enqueue_due_steps()  # the step is in the outbox, waiting to be claimed
        (waiting,) = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.SEQUENCE)).all()
        assert waiting.status is DeliveryStatus.PENDING
        subscriber = db.session.scalars(select(Subscriber)).one()
        subscriber.marketing_consent = False  # as an unsubscribe in another process would leave it
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        db.session.commit()
    tick(runner, start + timedelta(days=1, minutes=2))
    assert sent_subjects(app) == []
    with app.app_context():
        assert db.session.scalars(
            select(Delivery.status).where(Delivery.kind == DeliveryKind.SEQUENCE)
        ).one() is (DeliveryStatus.CANCELLED)


# A first step twelve hours after joining falls due at 22:30 Amsterdam time: outside sending hours, so it
# waits in the outbox for the morning.
EVENING_FIRST = (("01-welcome.md", timedelta(hours=12)), ("02-next.md", timedelta(days=3)))


def test_switch_moves_the_subscriber_in_the_same_request_and_drops_the_waiting_step(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="switch", steps=EVENING_FIRST)
    subscribe(client, "none")
    tick(runner, start + timedelta(hours=12, minutes=1))
    with app.app_context():
        (waiting,) = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.SEQUENCE)).all()
        assert waiting.status is DeliveryStatus.PENDING
        assert waiting.due_at == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)  # 08:00 CET
    answer(client, "active")
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}
    tick(runner, start + timedelta(days=10))
    tick(runner, start + timedelta(days=11))  # two steps overdue at once still go a day apart
    assert sent_subjects(app) == ["active 01-welcome.md", "active 02-next.md"]


# A one-step sequence whose only step falls due at 22:30 Amsterdam time: queued in the evening, it waits for
# the morning, and the enrollment has every step scheduled.
EVENING_LAST = (("01-welcome.md", timedelta(hours=12)),)


def test_switch_drops_a_waiting_last_step_too(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="switch", steps=EVENING_LAST)
    subscribe(client, "none")
    tick(runner, start + timedelta(hours=12, minutes=1))
    assert enrollments(app) == {"beginners": EnrollmentState.COMPLETED}
    answer(client, "active")
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}
    tick(runner, start + timedelta(days=10))
    assert "beginners 01-welcome.md" not in sent_subjects(app)
    with app.app_context():
        (left,) = [e for e in db.session.scalars(select(Enrollment)) if e.sequence.slug == "beginners"]
        (dropped,) = db.session.scalars(select(Delivery).where(Delivery.enrollment_id == left.id)).all()
        assert dropped.status is DeliveryStatus.CANCELLED


def test_finish_step_still_sends_a_waiting_last_step(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="finish_step", steps=EVENING_LAST)
    subscribe(client, "none")
    tick(runner, start + timedelta(hours=12, minutes=1))
    answer(client, "active")
    tick(runner, start + timedelta(days=1))
    assert "beginners 01-welcome.md" in sent_subjects(app)
    assert enrollments(app)["beginners"] is EnrollmentState.COMPLETED


def test_finish_step_sends_the_waiting_step_then_leaves(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="finish_step", steps=EVENING_FIRST)
    subscribe(client, "none")
    tick(runner, start + timedelta(hours=12, minutes=1))
    answer(client, "active")
    assert enrollments(app)["beginners"] is EnrollmentState.ACTIVE  # leaving once its step is out
    tick(runner, start + timedelta(days=1))
    assert "beginners 01-welcome.md" in sent_subjects(app)
    assert enrollments(app)["beginners"] is EnrollmentState.EXITED
    tick(runner, start + timedelta(days=10))
    assert "beginners 02-next.md" not in sent_subjects(app)


def test_finish_step_with_nothing_waiting_leaves_at_once(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="finish_step")
    subscribe(client, "none")
    answer(client, "active")
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}


def test_stay_keeps_the_subscriber_in_the_sequence(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, beginners="stay")
    subscribe(client, "none")
    answer(client, "active")
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE, "active": EnrollmentState.ACTIVE}


def test_coming_back_resumes_and_never_repeats_a_step(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app)
    subscribe(client, "none")
    tick(runner, start + timedelta(days=1, minutes=1))
    answer(client, "active")
    answer(client, "some")
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE, "active": EnrollmentState.EXITED}
    tick(runner, start + timedelta(days=20))
    subjects = sent_subjects(app)
    assert subjects.count("beginners 01-welcome.md") == 1
    assert subjects.count("beginners 02-next.md") == 1


def test_frequency_cap_lets_the_higher_priority_sequence_go_first(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    with app.app_context():
        make_demo_widget()
        one_step = (("01-welcome.md", timedelta(days=1)),)
        make_sequence("low", {"is_investor": "yes"}, steps=one_step, priority=0)
        make_sequence("high", {"is_investor": "yes"}, steps=one_step, priority=10)
        db.session.commit()
    subscribe(client, "none")
    tick(runner, start + timedelta(days=1, minutes=1))
    assert sent_subjects(app) == ["high 01-welcome.md"]
    tick(runner, start + timedelta(days=1, hours=12))
    assert sent_subjects(app) == ["high 01-welcome.md"]
    tick(runner, start + timedelta(days=2, minutes=2))
    assert sent_subjects(app) == ["high 01-welcome.md", "low 01-welcome.md"]


@pytest.mark.parametrize(
    ("due", "sent"),
    [
        # Saturday 28 March 2026, 03:00 in Amsterdam (CET, UTC+1): waits for 08:00 CET = 07:00 UTC.
        (datetime(2026, 3, 28, 2, 0, tzinfo=UTC), datetime(2026, 3, 28, 7, 0, tzinfo=UTC)),
        # Sunday 29 March, clocks went forward at 02:00: 08:00 CEST = 06:00 UTC.
        (datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        # Saturday 24 October 2026, 22:30 CEST: after hours, so Sunday 08:00, which is CET again (07:00 UTC).
        (datetime(2026, 10, 24, 20, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
        # Within hours: no wait.
        (datetime(2026, 3, 29, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 12, 0, tzinfo=UTC)),
    ],
)
def test_sending_hours_follow_local_time_across_dst(app: Flask, due: datetime, sent: datetime) -> None:
    with app.app_context():
        assert within_sending_hours(due, "Europe/Amsterdam") == sent


def test_a_step_due_at_night_goes_out_at_eight_local_time(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    clock.freeze(datetime(2026, 3, 27, 23, 0, tzinfo=UTC))  # Friday, midnight in Amsterdam
    build(app)
    subscribe(client, "none")
    tick(runner, datetime(2026, 3, 28, 23, 1, tzinfo=UTC))  # the step is due: 00:01 local on Sunday
    tick(runner, datetime(2026, 3, 29, 5, 59, tzinfo=UTC))  # 07:59 CEST
    assert sent_subjects(app) == []
    tick(runner, datetime(2026, 3, 29, 6, 0, tzinfo=UTC))  # 08:00 CEST, the first morning after DST
    assert sent_subjects(app) == ["beginners 01-welcome.md"]


def test_a_sequence_in_one_language_is_only_for_subscribers_in_that_language(
    app: Flask, client: Client, start: datetime
) -> None:
    with app.app_context():
        make_demo_widget()  # a Dutch widget: its readers are Dutch subscribers
        make_sequence("dutch", {"is_investor": "yes"}, locale="nl")
        make_sequence("english", {"is_investor": "yes"}, locale="en")
        make_sequence("anyone", {"is_investor": "yes"})
        db.session.commit()
    subscribe(client, "none")
    assert enrollments(app) == {"dutch": EnrollmentState.ACTIVE, "anyone": EnrollmentState.ACTIVE}


def test_a_step_removed_by_an_editor_is_not_sent(
    app: Flask, client: Client, runner: FlaskCliRunner, start: datetime
) -> None:
    build(app, steps=EVENING_FIRST)
    subscribe(client, "none")
    tick(runner, start + timedelta(hours=12, minutes=1))  # step 1 waits in the outbox for the morning
    with app.app_context():
        from leadcapture.models import SequenceStep

        db.session.delete(
            db.session.scalars(select(SequenceStep).where(SequenceStep.key == "01-welcome.md")).first()
        )
        db.session.commit()
    tick(runner, start + timedelta(days=1))
    with app.app_context():
        (row,) = db.session.scalars(select(Delivery).where(Delivery.kind == DeliveryKind.SEQUENCE)).all()
        assert row.status is DeliveryStatus.CANCELLED
        assert row.last_error == "the step was removed from its sequence"
