"""Interest profiles: answers to a topic's question count as interest, from the moment the address is proven."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import InterestEvent, Question, SignalSource, Topic
from leadcapture.services import interests
from tests.support.app import Client
from tests.support.sequences import START, build, subscribe
from tests.support.submissions import post, valid_body


@pytest.fixture
def topic(app: Flask) -> None:
    clock.freeze(START)
    build(app)
    with app.app_context():
        question = db.session.scalars(select(Question).where(Question.key == "daytrading_experience")).one()
        db.session.add(
            Topic(key="daytrading", name={"nl": "Daytraden"}, urls=[], question=question, half_life_days=30,
                  created_at=START, updated_at=START)  # fmt: skip
        )
        db.session.commit()


def events(app: Flask) -> list[tuple[SignalSource, float]]:
    with app.app_context():
        return [(event.source, event.weight) for event in db.session.scalars(select(InterestEvent).order_by(InterestEvent.id))]


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("topic")
def test_answering_a_topics_question_counts_once_the_address_is_confirmed(app: Flask, client: Client) -> None:
    post(client, valid_body(answers={"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]}))
    assert events(app) == []  # anyone can type an address
    subscribe(client, "none")
    assert events(app) == [(SignalSource.ANSWER, 1.0)]
    with app.app_context():
        assert [(item.topic.key, item.score) for item in interests.profile(1)] == [("daytrading", 1.0)]
