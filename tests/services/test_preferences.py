"""The preference page: answers are seen and changed, and sequences follow in the same request."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.models import Answer, AnswerSource, Subscriber, SubscriberStatus
from leadcapture.services.preferences import describe_preferences
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_question, make_widget
from tests.support.app import Client
from tests.support.sequences import START, build, enrollments, subscribe

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox


@pytest.fixture
def page(app: Flask, client: Client) -> str:
    from leadcapture import clock

    clock.freeze(START)
    build(app)
    subscribe(client, "none")
    with app.app_context():
        subscriber_id = db.session.scalars(select(Subscriber.id)).one()
        return "/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber_id})


def answer_rows(app: Flask) -> list[tuple[str, object, AnswerSource]]:
    with app.app_context():
        return [
            (a.question.key, a.value, a.source)
            for a in db.session.scalars(select(Answer).order_by(Answer.id))
        ]


def test_get_shows_current_answers_and_sequences_and_changes_nothing(
    app: Flask, client: Client, page: str
) -> None:
    before = answer_rows(app)
    response = client.get(page)
    assert response.status_code == 200
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = response.text
    assert re.search(r'name="q:daytrading_experience" value="none" checked', html)
    assert not re.search(r'name="q:daytrading_experience" value="active" checked', html)
    assert "Sequence beginners" in html
    assert "/unsubscribe/" in html
    assert answer_rows(app) == before


def test_changing_an_answer_records_it_and_switches_sequences_at_once(
    app: Flask, client: Client, page: str
) -> None:
    response = client.post(page, data={"q:daytrading_experience": "active", "q:is_investor": "yes"})
    assert response.status_code == 200
    assert "Bewaard" in response.text
    rows = answer_rows(app)
    assert rows[-1] == ("daytrading_experience", "active", AnswerSource.PREFERENCES)
    assert [row for row in rows if row[2] is AnswerSource.PREFERENCES] == [
        rows[-1]
    ]  # unchanged ones not re-recorded
    assert {slug: state.value for slug, state in enrollments(app).items()} == {
        "beginners": "exited",
        "active": "active",
    }
    assert re.search(r'value="active" checked', response.text)


def test_multi_answers_are_stored_as_sorted_lists(app: Flask, client: Client, page: str) -> None:
    client.post(page, data={"q:interests": ["etfs", "crypto"]})
    assert answer_rows(app)[-1] == ("interests", ["crypto", "etfs"], AnswerSource.PREFERENCES)


@pytest.mark.parametrize(
    "form",
    [
        {"q:daytrading_experience": "expert"},
        {"q:daytrading_experience": ["none", "active"]},
        {"q:no_such_question": "yes"},
        {"q:daytrading_experience": ""},
        {"q:daytrading_experience": "active", "q:is_investor": "<script>"},
    ],
)
def test_invalid_answers_change_nothing(
    app: Flask, client: Client, page: str, form: dict[str, object]
) -> None:
    before = answer_rows(app)
    response = client.post(page, data=form)
    assert response.status_code == 400
    assert "<script>" not in response.text
    assert answer_rows(app) == before
    assert enrollments(app)["beginners"].value == "active"


def test_a_tampered_or_foreign_token_opens_nothing(app: Flask, client: Client, page: str) -> None:
    assert client.get(page[:-3] + "xyz").status_code == 400
    with app.app_context():
        unsubscribe_token = make_token(Purpose.UNSUBSCRIBE, {"s": 1})
    assert client.post("/preferences/" + unsubscribe_token, data={"q:is_investor": "no"}).status_code == 400


def test_a_bounced_subscriber_gets_no_page(app: Flask, client: Client, page: str) -> None:
    with app.app_context():
        db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.BOUNCED
        db.session.commit()
    assert client.get(page).status_code == 400


def test_questions_come_in_the_order_the_widgets_ask_them(app: Flask) -> None:
    with app.app_context():
        unasked = make_question("newsletter_topics", "multi")  # in no widget: after the others
        later = make_question("horizon", "choice")
        first = make_question("is_investor")
        make_widget("investor-first", questions=[first, later])
        person = Subscriber(
            email="lezer@example.com",
            status=SubscriberStatus.CONFIRMED,
            locale="nl",
            created_at=START,
            status_changed_at=START,
        )
        db.session.add(person)
        db.session.flush()
        keys = [choice.key for choice in describe_preferences(person).questions]
    assert keys == ["is_investor", "horizon", "newsletter_topics"]
    assert unasked.id < later.id < first.id  # the order they were created in is not the one shown
