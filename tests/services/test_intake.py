"""Accepted submissions wait as intakes and are stored by the worker a batch at a time: a batch stores what one
submission at a time would, costs the same statements for five as for forty, and no submission can hold up
the others."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, func, select, update

from leadcapture import jobs
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
    Intake,
    Submission,
    Subscriber,
    SubscriberStatus,
    Widget,
)
from leadcapture.services import intake, sequences
from leadcapture.services.widgets import mail_reference, reader_ref
from tests.factories import give_answers, make_confirmed_subscriber, make_sequence
from tests.support.app import Client
from tests.support.sql import statements
from tests.support.submissions import post, valid_body

pytestmark = [pytest.mark.usefixtures("widget", "frozen_clock"), pytest.mark.keeps_intakes]

ANSWERS = {"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]}
CHANGED = {**ANSWERS, "daytrading_experience": "active"}


def waiting(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Intake)) or 0


def of(app: Flask, email: str) -> dict[str, Any]:
    """What is held on an address: status, current answers, submissions, emails by kind and their payloads,
    and the sequences that hold them."""
    with app.app_context():
        person = db.session.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()
        if person is None:
            return {}
        deliveries = db.session.scalars(
            select(Delivery).where(Delivery.subscriber_id == person.id).order_by(Delivery.id)
        ).all()
        return {
            "status": person.status,
            "answers": Counter(
                db.session.scalars(select(Answer.question_id).where(Answer.subscriber_id == person.id))
            ).total(),
            "submissions": db.session.scalar(
                select(func.count()).select_from(Submission).where(Submission.subscriber_id == person.id)
            ),
            "emails": Counter(delivery.kind for delivery in deliveries),
            "proposals": [delivery.payload.get("proposed") for delivery in deliveries],
            "sequences": sorted(
                enrollment.sequence.slug
                for enrollment in sequences.sequences_holding(person.id)
                if enrollment.state is EnrollmentState.ACTIVE
            ),
        }


@pytest.fixture
def known(app: Flask) -> dict[str, int]:
    """Carol (confirmed, in the beginners' sequence), Dave (unsubscribed) and Erin (bounced)."""
    with app.app_context():
        widget = db.session.scalars(select(Widget)).one()
        make_sequence("beginners", {"daytrading_experience": ["none"]})
        make_sequence("actives", {"daytrading_experience": ["active"]})
        ids = {}
        for name, status in (
            ("carol", SubscriberStatus.CONFIRMED),
            ("dave", SubscriberStatus.UNSUBSCRIBED),
            ("erin", SubscriberStatus.BOUNCED),
        ):
            person, _ = make_confirmed_subscriber(
                widget, email=f"{name}@example.com", marketing_consent=name == "carol"
            )
            give_answers(person, ANSWERS)
            person.status = status
            sequences.switch_sequences(person, reason="confirmed")
            ids[name] = person.id
        db.session.commit()
        return ids


@pytest.mark.parametrize("batch", [1, 200], ids=["one at a time", "one batch"])
def test_a_batch_stores_what_one_submission_at_a_time_stores(
    app: Flask, client: Client, known: dict[str, int], batch: int
) -> None:
    def submit(email: str, answers: dict[str, Any], **extra: Any) -> None:
        body = valid_body(email=email, answers=answers, consent={"report": True, "sequences": True}, **extra)
        assert post(client, body).status_code == 202

    submit("alice@example.com", ANSWERS)
    submit("alice@example.com", CHANGED)  # someone else typing her address: a proposal in the email only
    for _ in range(5):
        submit("frank@example.com", ANSWERS)
    with app.app_context():
        ref = mail_reference(known["carol"])
    submit("carol@example.com", CHANGED, ref=ref)  # from our email: hers
    submit("dave@example.com", ANSWERS)
    submit("erin@example.com", ANSWERS)
    assert of(app, "alice@example.com") == {}
    assert waiting(app) == 10

    with app.app_context():
        assert jobs.store_submissions(batch) == 10
    assert waiting(app) == 0

    assert of(app, "alice@example.com") == {
        "status": SubscriberStatus.PENDING,
        "answers": 3,
        "submissions": 2,
        "emails": {DeliveryKind.CONFIRM: 2},
        "proposals": [None, {"answers": {"daytrading_experience": "active"}}],
        "sequences": [],
    }
    frank = of(app, "frank@example.com")
    assert (frank["submissions"], frank["emails"]) == (5, {DeliveryKind.CONFIRM: 3})  # the daily cap
    carol = of(app, "carol@example.com")
    assert (carol["answers"], carol["emails"], carol["sequences"]) == (
        6,
        {DeliveryKind.REPORT: 1},
        ["actives"],
    )
    dave = of(app, "dave@example.com")
    assert (dave["status"], dave["emails"]) == (SubscriberStatus.UNSUBSCRIBED, {DeliveryKind.CONFIRM: 1})
    assert of(app, "erin@example.com")["submissions"] == 1  # the one she had before bouncing; nothing new


@pytest.mark.settings(LEADCAPTURE_RATE_LIMITS="off")
def test_storing_forty_costs_the_same_statements_as_storing_five(
    app: Flask, client: Client, known: dict[str, int]
) -> None:
    with app.app_context():
        ref = mail_reference(known["carol"])

    runs: list[int] = []

    def cost(count: int) -> int:
        runs.append(count)
        for n in range(count):
            if n in (1, 3):  # a proven reader changing answers and back, whose sequences move
                body = valid_body(email="carol@example.com", answers=CHANGED if n == 1 else ANSWERS)
                post(client, {**body, "ref": ref})
            else:
                post(client, valid_body(email=f"lezer{len(runs)}-{n}@example.com"))
        with app.app_context(), statements() as seen:
            assert intake.expand_intakes(count) == count
            db.session.commit()
        return len(seen)

    cost(5)  # Carol's first submission from this browser also records its time zone and reader
    assert cost(40) == cost(5)


def test_a_submission_that_cannot_be_stored_is_set_aside_and_the_rest_are_stored(
    app: Flask, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    for n in range(3):
        post(client, valid_body(email=f"lezer{n}@example.com"))
    with app.app_context():
        broken = db.session.scalars(select(Intake).order_by(Intake.id)).all()[1]
        broken.data = {name: value for name, value in broken.data.items() if name != "reader_ref"}
        broken_id = broken.id
        db.session.commit()
        assert jobs.store_submissions() == 3
        assert db.session.scalars(select(Subscriber.email).order_by(Subscriber.email)).all() == [
            "lezer0@example.com",
            "lezer2@example.com",
        ]
        left = db.session.scalars(select(Intake)).one()
        assert (left.id, left.failed_at is not None) == (broken_id, True)
        assert jobs.store_submissions() == 0  # set aside: not taken again
    assert f"submission intake {broken_id} could not be stored" in caplog.text


def test_the_submissions_of_a_widget_deleted_meanwhile_are_dropped(app: Flask, client: Client) -> None:
    post(client, valid_body())
    with app.app_context():
        db.session.execute(update(Intake).values(widget_id=9999))
        db.session.commit()
        assert jobs.store_submissions() == 1
        assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert waiting(app) == 0


def test_a_scripts_submission_is_kept_like_any_other_and_dropped_by_the_worker(
    app: Flask, client: Client, known: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    """Honeypot filled in, for a known address and a new one: the web process writes what it writes for a
    person; the worker stores only the person's, in the same batch, and sends the script's addresses nothing."""
    caplog.set_level("INFO", logger="leadcapture")
    before = of(app, "carol@example.com")
    post(client, valid_body(email="carol@example.com", answers=CHANGED, website="https://spam.example"))
    post(client, valid_body(email="victim@example.com", website="https://spam.example"))
    post(client, valid_body(email="reader@example.com"))
    assert waiting(app) == 3
    with app.app_context():
        assert jobs.store_submissions() == 3
    assert waiting(app) == 0
    assert of(app, "carol@example.com") == before
    assert of(app, "victim@example.com") == {}
    assert of(app, "reader@example.com")["submissions"] == 1
    assert caplog.text.count("looked automated") == 2


def test_a_returning_reader_erased_before_the_worker_came_is_not_brought_back(
    app: Flask, client: Client, known: dict[str, int]
) -> None:
    with app.app_context():
        carol = db.session.get_one(Subscriber, known["carol"])
        carol.reader_ref = reader = reader_ref(carol.email)
        db.session.commit()
    assert post(client, {**valid_body(), "email": None, "reader": reader, "answers": {}}).status_code == 202
    with app.app_context():
        db.session.execute(delete(Enrollment))
        db.session.execute(delete(Answer))
        db.session.execute(delete(Delivery))
        db.session.execute(delete(Submission))
        db.session.execute(delete(Subscriber).where(Subscriber.id == known["carol"]))
        db.session.commit()
        assert jobs.store_submissions() == 1
        assert db.session.scalars(select(Subscriber.email).order_by(Subscriber.email)).all() == [
            "dave@example.com",
            "erin@example.com",
        ]
