"""Interest profiles: answers to a topic's question count as interest, from the moment the address is proven."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Enrollment, EnrollmentState, InterestEvent, Question, SignalSource, Topic
from leadcapture.services import interests
from tests.factories import make_sequence, make_subscriber
from tests.support.app import Client
from tests.support.content import load
from tests.support.sequences import START, build, subscribe
from tests.support.sql import statements
from tests.support.submissions import post, valid_body

SMALL, LARGE = 5, 40


@pytest.fixture
def topic(app: Flask) -> None:
    clock.freeze(START)
    build(app)
    with app.app_context():
        question = db.session.scalars(select(Question).where(Question.key == "daytrading_experience")).one()
        db.session.add(
            Topic(
                key="daytrading",
                name={"nl": "Daytraden"},
                urls=[],
                question=question,
                half_life_days=30,
                created_at=START,
                updated_at=START,
            )
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


def keen_people(count: int, *, at: datetime) -> list[int]:
    """Confirmed subscribers with a score of 3 on daytrading, placed in the sequence for the keen."""
    topic = db.session.scalars(select(Topic).where(Topic.key == "daytrading")).one()
    ids = []
    for n in range(count):
        person = make_subscriber(email=f"lezer{n}@example.com", timezone="Europe/Amsterdam", marketing_consent=True)
        for _ in range(3):
            interests.record_signal(person, topic, SignalSource.CLICK, occurred_at=at)
        ids.append(person.id)
    db.session.commit()
    return ids


@pytest.mark.usefixtures("topic")
def test_fading_interest_is_swept_in_batches_of_a_constant_cost_and_never_twice(app: Flask) -> None:
    with app.app_context():
        make_sequence("keen", {"interest": {"topic": "daytrading", "at_least": 2}})
        db.session.commit()
        ids = keen_people(SMALL + LARGE + 2, at=START)
        assert db.session.scalar(select(func.count()).select_from(Enrollment)) == len(ids)
        # Nothing has faded yet: a look finds no one, and marks the day as looked at.
        assert interests.recheck_fading_interest(SMALL) == 0
        db.session.commit()

        # 3 halves to 1.5 after a half-life: everyone is below 2 then.
        clock.freeze(START + timedelta(days=30))
        costs = []
        for limit in (SMALL, LARGE):
            with statements() as seen:
                assert interests.recheck_fading_interest(limit) == limit
            db.session.commit()
            costs.append(len(seen))
        assert costs[0] == costs[1]
        assert interests.recheck_fading_interest(LARGE) == 2
        db.session.commit()
        left = select(func.count()).where(Enrollment.state == EnrollmentState.EXITED)
        assert db.session.scalar(left) == len(ids)
        # The same day looked at again, or the next: nobody is moved twice.
        assert interests.recheck_fading_interest(LARGE) == 0
        clock.freeze(START + timedelta(days=31))
        assert interests.recheck_fading_interest(LARGE) == 0


def test_a_new_half_life_for_a_topic_rescales_every_score_on_it(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    clock.freeze(START)
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        topic = db.session.scalars(select(Topic).where(Topic.key == "daytrading")).one()
        person = make_subscriber(email="lezer@example.com", marketing_consent=True)
        for _ in range(3):
            interests.record_signal(person, topic, SignalSource.CLICK, occurred_at=START)
        db.session.commit()
        person_id = person.id
    clock.freeze(START + timedelta(days=30))
    with app.app_context():
        assert interests.profile(person_id)[0].score == pytest.approx(1.5)
    path = content_dir / "topics/daytrading.yaml"
    path.write_text(path.read_text("utf-8").replace("half_life_days: 30", "half_life_days: 15"), "utf-8")
    result = load(runner, content_dir)
    assert result.exit_code == 0, result.output
    assert "updated topic daytrading (half_life_days)" in result.output
    with app.app_context():
        assert interests.profile(person_id)[0].score == pytest.approx(0.75)
