"""A confirmation link proves only the request it belongs to.

Anyone can type an address that is already known here, pending or unsubscribed as well as confirmed. Their
answers, first name and ticked boxes must not become the owner's: the answers wait as a proposal in the email
to the address, and consent to follow-up emails comes only from the request whose link the owner clicks.
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
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
    Submission,
    Subscriber,
    Widget,
)
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


def request_report(client: Client, experience: str, *, follow_ups: bool, **extra: Any) -> None:
    body = submission(
        email=OWNER, answers=answers(experience), consent={"report": True, "sequences": follow_ups}, **extra
    )
    assert submit(client, body).status_code == 202


def mails(app: Flask, kind: DeliveryKind) -> list[str]:
    """The text parts of the emails of this kind, oldest first."""
    with app.app_context():
        raws = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == kind).order_by(Delivery.id)
        ).all()
    texts = []
    for raw in raws:
        message = email.message_from_bytes(raw or b"", policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        body = message.get_body(("plain",))
        assert body is not None
        texts.append(str(body.get_content()))
    return texts


def link(text: str, path: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:5000(/" + path + r"/[^\s]+)", text)
    assert match, f"no /{path}/ link in:\n{text}"
    return match.group(1)


def confirm_links(app: Flask) -> list[str]:
    return [link(text, "confirm") for text in mails(app, DeliveryKind.CONFIRM)]


def current(app: Flask) -> dict[str, Any]:
    with app.app_context():
        return {a.question.key: a.value for a in db.session.scalars(select(Answer).order_by(Answer.id))}


def person(app: Flask) -> Subscriber:
    with app.app_context():
        row = db.session.scalars(select(Subscriber)).one()
        db.session.expunge(row)
        return row


def enrollments(app: Flask) -> dict[str, EnrollmentState]:
    with app.app_context():
        return {e.sequence.slug: e.state for e in db.session.scalars(select(Enrollment))}


def confirm_events(app: Flask) -> list[tuple[list[str], Any]]:
    """Each confirmation: its purposes and the request it names."""
    with app.app_context():
        return [
            (event.purposes, event.wording.get("submission"))
            for event in db.session.scalars(
                select(ConsentEvent).where(ConsentEvent.kind == ConsentKind.CONFIRM).order_by(ConsentEvent.id)
            )
        ]


def submission_ids(app: Flask) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(Submission.id).order_by(Submission.id)))


def test_confirming_ones_own_request_grants_only_the_consent_it_asked_for(app: Flask, client: Client) -> None:
    request_report(client, "none", follow_ups=False)
    # Someone else types the same address and ticks the box for follow-up emails.
    request_report(client, "active", follow_ups=True)
    own, strangers = confirm_links(app)

    assert client.post(own).status_code == 200

    subscriber = person(app)
    assert subscriber.status.value == "confirmed"
    assert not subscriber.marketing_consent
    assert enrollments(app) == {}
    assert current(app)["daytrading_experience"] == "none"
    first, _ = submission_ids(app)
    assert confirm_events(app) == [(["report"], first)]
    # Both reports go to the inbox that just proved to be the owner's; the other request's answers reach it
    # only as a proposal with the link that applies them.
    own_report, other_report = mails(app, DeliveryKind.REPORT)
    assert "preferences" not in own_report
    assert "Nieuw → Actief" in other_report
    assert "?change=" in link(other_report, "preferences")

    # Clicking the other request's link is the owner agreeing to what that email showed.
    assert client.post(strangers).status_code == 200
    assert person(app).marketing_consent
    assert current(app)["daytrading_experience"] == "active"
    assert enrollments(app) == {"active": EnrollmentState.ACTIVE}
    assert confirm_events(app) == [(["report"], first), (["report", "sequences"], submission_ids(app)[1])]


def test_a_strangers_answers_for_a_pending_address_wait_and_the_owners_confirmation_keeps_the_owners(
    app: Flask, client: Client
) -> None:
    request_report(client, "none", follow_ups=True, first_name="Anna")
    request_report(client, "active", follow_ups=True, first_name="Mallory", timezone="Asia/Tokyo")

    assert current(app)["daytrading_experience"] == "none"
    subscriber = person(app)
    assert (subscriber.first_name, subscriber.timezone) == ("Anna", "Europe/Amsterdam")
    _, strangers_mail = mails(app, DeliveryKind.CONFIRM)
    assert "Nieuw → Actief" in strangers_mail
    assert "Anna → Mallory" in strangers_mail

    own, _ = confirm_links(app)
    assert client.post(own).status_code == 200

    assert current(app)["daytrading_experience"] == "none"
    assert person(app).first_name == "Anna"
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}


def test_the_owner_resubmitting_while_pending_gets_the_new_answers_by_confirming_the_new_email(
    app: Flask, client: Client
) -> None:
    request_report(client, "none", follow_ups=True)
    request_report(client, "active", follow_ups=True, page_url="https://beleggen.example/artikel/nieuw")
    _, new_mail = mails(app, DeliveryKind.CONFIRM)
    assert "Nieuw → Actief" in new_mail
    _, new = confirm_links(app)
    before = rows(app), current(app)

    # Mail scanners open every link, with GET and HEAD alike: nothing changes.
    for _ in range(2):
        assert client.get(new).status_code == 200
        assert client.head(new).status_code == 200
    assert (rows(app), current(app)) == before
    assert current(app)["daytrading_experience"] == "none"

    assert client.post(new).status_code == 200

    assert current(app)["daytrading_experience"] == "active"
    assert enrollments(app) == {"active": EnrollmentState.ACTIVE}
    with app.app_context():
        latest = db.session.scalars(select(Answer).order_by(Answer.id.desc())).first()
        assert latest is not None
        assert latest.source is AnswerSource.WIDGET
        assert latest.widget_id == db.session.scalars(select(Widget.id)).one()
        assert latest.page_url == "https://beleggen.example/artikel/nieuw"

    confirmed = rows(app), current(app), confirm_events(app)
    assert client.post(new).status_code == 200  # a second click changes nothing
    assert (rows(app), current(app), confirm_events(app)) == confirmed


def test_an_unsubscribed_owner_returning_with_follow_ups_enters_the_sequence_of_the_answers_just_given(
    app: Flask, client: Client
) -> None:
    request_report(client, "none", follow_ups=True)
    (first,) = confirm_links(app)
    client.post(first)
    assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}
    with app.test_request_context():
        unsubscribe = "/unsubscribe/" + make_token(Purpose.UNSUBSCRIBE, {"s": person(app).id})
    assert client.post(unsubscribe).status_code == 200
    assert person(app).status.value == "unsubscribed"

    request_report(client, "active", follow_ups=True)

    assert current(app)["daytrading_experience"] == "none"  # typed, so not proven theirs yet
    assert not person(app).marketing_consent
    _, returning = mails(app, DeliveryKind.CONFIRM)
    assert "Nieuw → Actief" in returning
    assert client.post(link(returning, "confirm")).status_code == 200

    subscriber = person(app)
    assert subscriber.status.value == "confirmed"
    assert subscriber.marketing_consent
    assert current(app)["daytrading_experience"] == "active"
    assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}


def test_a_stranger_changes_nothing_of_an_unsubscribed_address_without_the_owner(
    app: Flask, client: Client
) -> None:
    request_report(client, "none", follow_ups=True, first_name="Anna")
    (first,) = confirm_links(app)
    client.post(first)
    with app.test_request_context():
        unsubscribe = "/unsubscribe/" + make_token(Purpose.UNSUBSCRIBE, {"s": person(app).id})
    client.post(unsubscribe)
    before = current(app)

    request_report(client, "active", follow_ups=False, first_name="Mallory", timezone="Asia/Tokyo")

    assert current(app) == before
    subscriber = person(app)
    assert (subscriber.first_name, subscriber.timezone, subscriber.marketing_consent) == (
        "Anna",
        "Europe/Amsterdam",
        False,
    )
    report = mails(app, DeliveryKind.REPORT)[-1]
    assert "Nieuw → Actief" in report
    assert "?change=" in link(report, "preferences")
