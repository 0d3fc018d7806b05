"""Answers given under an address the browser has not proven wait for the address's owner.

Anyone can type a confirmed subscriber's address into a widget (and is then handed that address's `reader`).
What they answer must not change the subscriber's answers or sequences until the owner confirms it through
the link in the email that goes to the address; a reader proven by our own email's `lc` reference answers at
once.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
    Subscriber,
    Widget,
)
from leadcapture.services.widgets import mail_reference
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.support.app import Client
from tests.support.submissions import rows, submission, submit

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
OWNER = "lezer@example.com"


@pytest.fixture(autouse=True)
def content(app: Flask) -> None:
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        make_sequence("active", {"daytrading_experience": "active"})
        db.session.commit()


def answers(experience: str) -> dict[str, Any]:
    return {"is_investor": "yes", "daytrading_experience": experience, "interests": ["stocks"]}


def last_mail(app: Flask, kind: DeliveryKind) -> str:
    """The text part of the newest email of this kind."""
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == kind).order_by(Delivery.id.desc())
        ).first()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def link(text: str, path: str) -> str | None:
    match = re.search(r"http://127\.0\.0\.1:5000(/" + path + r"/[^\s]+)", text)
    return match.group(1) if match else None


@pytest.fixture
def owner(app: Flask, client: Client) -> str:
    """A confirmed subscriber in the beginners sequence; returns their reader."""
    response = submit(client, submission(email=OWNER, answers=answers("none")))
    confirm = link(last_mail(app, DeliveryKind.CONFIRM), "confirm")
    assert confirm
    assert client.post(confirm).status_code == 200
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}
    reader: str = response.get_json()["reader"]
    return reader


def enrollments(app: Flask) -> dict[str, EnrollmentState]:
    with app.app_context():
        return {e.sequence.slug: e.state for e in db.session.scalars(select(Enrollment))}


def current(app: Flask) -> dict[str, tuple[Any, AnswerSource]]:
    with app.app_context():
        return {
            a.question.key: (a.value, a.source)
            for a in db.session.scalars(select(Answer).order_by(Answer.id))
        }


def report_count(app: Flask) -> int:
    with app.app_context():
        return len(db.session.scalars(select(Delivery.id).where(Delivery.kind == DeliveryKind.REPORT)).all())


def stranger_bodies(reader: str) -> list[dict[str, Any]]:
    typed = submission(email="  LEZER@example.com", answers=answers("active"), timezone="Asia/Tokyo")
    by_reader = submission(answers={"daytrading_experience": "active"}, reader=reader, timezone="Asia/Tokyo")
    del by_reader["email"]
    return [typed, by_reader]


@pytest.mark.parametrize("how", ["typed address", "reader"])
def test_a_stranger_changes_no_answer_and_no_sequence_and_only_the_owner_is_emailed(
    app: Flask, client: Client, owner: str, how: str
) -> None:
    before, reports = current(app), report_count(app)
    body = stranger_bodies(owner)[0 if how == "typed address" else 1]

    response = submit(client, body)

    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "reader": owner}
    assert current(app) == before
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}
    with app.app_context():
        assert db.session.scalars(select(Subscriber.timezone)).one() == "Europe/Amsterdam"
    assert report_count(app) == reports + 1
    mail = last_mail(app, DeliveryKind.REPORT)
    assert "Nieuw → Actief" in mail  # the answer that would change, in the subscriber's language
    assert link(mail, "preferences")


def test_the_emailed_link_shows_the_change_on_get_and_applies_it_on_post(
    app: Flask, client: Client, owner: str
) -> None:
    submit(client, stranger_bodies(owner)[0])
    change = link(last_mail(app, DeliveryKind.REPORT), "preferences")
    assert change
    assert "?change=" in change
    before = rows(app), current(app)

    shown = client.get(change)
    assert shown.status_code == 200
    assert "Nieuw → <strong>Actief</strong>" in shown.text
    assert 'value="apply_change"' in shown.text
    assert client.head(change).status_code == 200
    assert (rows(app), current(app)) == before
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}

    applied = client.post(change, data={"action": "apply_change"})
    assert applied.status_code == 200
    assert 'value="apply_change"' not in applied.text
    assert current(app)["daytrading_experience"] == ("active", AnswerSource.WIDGET)
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}
    with app.app_context():
        latest = db.session.scalars(select(Answer).order_by(Answer.id.desc())).first()
        assert latest is not None
        assert latest.widget_id == db.session.scalars(select(Widget.id)).one()
        assert latest.page_url == "https://beleggen.example/artikel/daytraden"

    answered = rows(app)
    assert client.post(change, data={"action": "apply_change"}).status_code == 200  # idempotent
    assert rows(app) == answered


def test_answers_the_subscriber_already_gives_propose_nothing(app: Flask, client: Client, owner: str) -> None:
    before = current(app)
    assert submit(client, submission(email=OWNER, answers=answers("none"))).status_code == 202
    assert current(app) == before
    mail = last_mail(app, DeliveryKind.REPORT)
    assert link(mail, "download")
    assert not link(mail, "preferences")


def test_a_reader_proven_by_our_email_answers_at_once(app: Flask, client: Client, owner: str) -> None:
    with app.test_request_context():
        ref = mail_reference(db.session.scalars(select(Subscriber.id)).one())
    body = submission(answers={"daytrading_experience": "active"}, reader=owner, ref=ref)
    del body["email"]

    response = submit(client, body)

    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "reader": owner}
    assert current(app)["daytrading_experience"] == ("active", AnswerSource.WIDGET)
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}
    assert not link(last_mail(app, DeliveryKind.REPORT), "preferences")


def test_a_reference_to_someone_else_proves_nothing(app: Flask, client: Client, owner: str) -> None:
    assert submit(client, submission(email="ander@example.com", answers=answers("none"))).status_code == 202
    with app.test_request_context():
        other = db.session.scalars(select(Subscriber.id).where(Subscriber.email == "ander@example.com")).one()
        ref = mail_reference(other)
    before = current(app)
    body = submission(email=OWNER, answers=answers("active"), ref=ref)
    assert submit(client, body).status_code == 202
    assert current(app) == before
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}


@pytest.mark.parametrize("ref", ["forged", "x" * 5000, 7])
def test_a_bad_reference_is_refused_or_proves_nothing(
    app: Flask, client: Client, owner: str, ref: Any
) -> None:
    before = current(app)
    response = submit(client, submission(email=OWNER, answers=answers("active"), ref=ref))
    assert response.status_code in (202, 400)
    assert current(app) == before
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}


def test_a_change_link_for_someone_else_or_forged_does_not_work(
    app: Flask, client: Client, owner: str
) -> None:
    submit(client, stranger_bodies(owner)[0])
    change = link(last_mail(app, DeliveryKind.REPORT), "preferences")
    assert change
    page, _, token = change.partition("?change=")
    with app.test_request_context():
        delivery = db.session.scalars(select(Delivery.id).order_by(Delivery.id.desc())).first()
        foreign = make_token(Purpose.CHANGE, {"s": 999, "d": delivery})
    before = rows(app), current(app)
    for bad in (token[:-3] + "xyz", foreign):
        assert client.post(f"{page}?change={bad}", data={"action": "apply_change"}).status_code == 400
    assert (rows(app), current(app)) == before
