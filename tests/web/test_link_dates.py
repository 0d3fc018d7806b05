"""Links in emails that are too old, or dated after the server's clock: a page saying so, never an error."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Answer, Delivery, Submission, Subscriber, SubscriberStatus
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget

EXPIRED_TITLE = b"Deze link is verlopen"


@pytest.fixture
def links(app: Flask, frozen_clock: object) -> dict[str, str]:
    """One link of every kind for a confirmed subscriber, made at the frozen moment."""
    with app.app_context():
        widget = make_demo_widget()
        now = clock.now()
        person = Subscriber(
            email="lezer@example.com",
            status=SubscriberStatus.PENDING,
            locale="nl",
            created_at=now,
            status_changed_at=now,
            timezone=None,
        )
        submission = Submission(
            subscriber=person, widget=widget, report=widget.report, marketing_consent=False, created_at=now
        )
        db.session.add_all([person, submission])
        db.session.flush()
        question = widget.widget_questions[0].question
        made = {
            "confirm": make_token(Purpose.CONFIRM, {"s": person.id, "sub": submission.id}),
            "download": make_token(
                Purpose.DOWNLOAD, {"s": person.id, "r": widget.report_id, "sub": submission.id}
            ),
            "unsubscribe": make_token(Purpose.UNSUBSCRIBE, {"s": person.id}),
            "preferences": make_token(Purpose.PREFERENCES, {"s": person.id}),
            "answer": make_token(Purpose.ANSWER, {"s": person.id, "q": question.id, "v": "yes"}),
        }
        db.session.commit()
    return {kind: f"/{kind}/{token}" for kind, token in made.items()}


def rows(app: Flask) -> tuple[int, int, int, str]:
    with app.app_context():
        return (
            db.session.scalar(select(func.count(Answer.id))) or 0,
            db.session.scalar(select(func.count(Submission.confirmed_at))) or 0,
            db.session.scalar(select(func.count(Delivery.id))) or 0,
            db.session.scalars(select(Subscriber.status)).one().value,
        )


EXPIRING = ("confirm", "download", "answer")


@pytest.mark.parametrize(
    "moved",
    [pytest.param(timedelta(days=366), id="expired"), pytest.param(timedelta(days=-1), id="future-dated")],
)
def test_every_link_too_old_or_from_the_future_shows_a_page(
    app: Flask, client: FlaskClient, links: dict[str, str], moved: timedelta
) -> None:
    before = rows(app)
    clock.advance(moved)  # a negative move: the links were signed under a clock ahead of this one
    for kind in EXPIRING:
        for method in ("GET", "HEAD"):
            response = client.open(links[kind], method=method)
            assert response.status_code == 410, (kind, method)
        page = client.get(links[kind], headers={"Accept-Language": "nl"})
        assert EXPIRED_TITLE in page.data, kind
    assert rows(app) == before
    # Unsubscribe and preference links never expire: they keep working, whenever they were made.
    for kind in ("unsubscribe", "preferences"):
        assert client.get(links[kind]).status_code == 200, kind


def test_an_expired_answer_link_leads_to_the_preference_page_and_records_nothing(
    app: Flask, client: FlaskClient, links: dict[str, str]
) -> None:
    before = rows(app)
    clock.advance(timedelta(days=366))
    page = client.get(links["answer"])
    assert page.status_code == 410
    assert b'href="/preferences/' in page.data
    fresh = page.data.split(b'href="', 1)[1].split(b'"', 1)[0].decode()
    assert client.get(fresh).status_code == 200  # where every question can be answered afresh
    assert client.post(links["answer"]).status_code == 410
    assert rows(app) == before


def test_an_expired_answer_link_of_an_erased_person_does_not_work(
    app: Flask, client: FlaskClient, links: dict[str, str]
) -> None:
    with app.app_context():
        db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.ERASED
        db.session.commit()
    clock.advance(timedelta(days=366))
    page = client.get(links["answer"])
    assert page.status_code == 400
    assert b"/preferences/" not in page.data
