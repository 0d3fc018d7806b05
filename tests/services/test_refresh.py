"""Interest refresh: answers age, stale ones are re-asked by email, and sequences follow the new answer."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    EnrollmentState,
    Question,
    SignalSource,
    Subscriber,
    Topic,
)
from leadcapture.services import refresh
from leadcapture.services.answers import answer_states
from leadcapture.services.interests import record_signal
from leadcapture.services.sequences import switch_sequences
from leadcapture.tokens import Purpose, make_token, read_token
from tests.factories import make_demo_widget, make_question, make_sequence, make_subscriber
from tests.support.app import Client
from tests.support.mail import sent
from tests.support.sequences import START, enrollments, subscribe, text_part, tick
from tests.support.sql import statements

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox

DAY = timedelta(days=1)


@pytest.fixture
def build(app: Flask) -> None:
    clock.freeze(START)
    with app.app_context():
        make_question("is_investor", "yes_no", fresh_for_days=30)
        make_question("daytrading_experience", "choice", fresh_for_days=30)
        make_question("interests", "multi", fresh_for_days=30)
        make_demo_widget()
        # One step a year out: enrollments stay active, and no step competes with a refresh email for the
        # one marketing email a day.
        later = (("01-welcome.md", 365 * DAY),)
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, steps=later)
        make_sequence("active", {"daytrading_experience": "active"}, steps=later)
        make_sequence(
            "fresh-beginners", {"daytrading_experience": ["none", "some"]}, fresh_only=True, steps=later
        )
        db.session.commit()


def refresh_mails(app: Flask) -> list[Delivery]:
    with app.app_context():
        rows = db.session.scalars(
            select(Delivery).where(Delivery.kind == DeliveryKind.REFRESH).order_by(Delivery.id)
        ).all()
        for row in rows:
            db.session.expunge(row)
        return list(rows)


def answer_links(app: Flask) -> list[str]:
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message)
            .where(Delivery.kind == DeliveryKind.REFRESH, Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.id.desc())
        ).first()
    return re.findall(r"http://127\.0\.0\.1:5000(/answer/[\w.\-]+)", text_part(raw))


@pytest.mark.usefixtures("build")
def test_a_stale_answer_is_re_asked_once_per_interval(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    tick(runner, START + 29 * DAY)
    assert refresh_mails(app) == []
    tick(runner, START + 31 * DAY)
    (mail,) = refresh_mails(app)
    assert mail.status is DeliveryStatus.SENT
    assert mail.subject == "Klopt dit nog?"
    with app.app_context():
        asked = db.session.get_one(Question, mail.payload["question_id"])
        assert asked.key == "daytrading_experience"  # a sequence's audience relies on it: asked first
    tick(runner, START + 45 * DAY)
    tick(runner, START + 60 * DAY)
    assert len(refresh_mails(app)) == 1  # at most one per 30-day interval
    tick(runner, START + 62 * DAY)
    assert len(refresh_mails(app)) == 2  # still stale after the interval: asked again


@pytest.mark.usefixtures("build")
def test_the_refresh_email_is_marketing_with_a_button_per_answer(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    tick(runner, START + 31 * DAY)
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == DeliveryKind.REFRESH)
        ).one()
    assert b"X-Leadcapture-Kind: refresh" in (raw or b"")
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in (raw or b"")
    links = answer_links(app)
    assert len(links) == 3  # none, some, active
    with app.app_context():
        values = [read_token(Purpose.ANSWER, link.removeprefix("/answer/"))["v"] for link in links]
    assert values == ["none", "some", "active"]


@pytest.mark.usefixtures("build")
def test_answering_from_the_email_switches_sequences_before_the_next_tick(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    tick(runner, START + 31 * DAY)
    active_link = answer_links(app)[2]
    for _ in range(3):  # scanners open every link: a GET records nothing
        page = client.get(active_link)
        assert page.status_code == 200
        assert b'<form method="post">' in page.data
    with app.app_context():
        assert db.session.scalars(select(Answer).where(Answer.source == AnswerSource.EMAIL)).all() == []
    assert enrollments(app)["beginners"] is EnrollmentState.ACTIVE

    client.sends_after_each_request = False  # no worker pass: the switch must not depend on one
    response = client.post(active_link)
    assert response.status_code == 200
    assert "Bedankt" in response.text
    with app.app_context():
        (given,) = db.session.scalars(select(Answer).where(Answer.source == AnswerSource.EMAIL)).all()
        assert (given.question.key, given.value) == ("daytrading_experience", "active")
    states = enrollments(app)
    assert states["beginners"] is EnrollmentState.EXITED
    assert states["active"] is EnrollmentState.ACTIVE
    # The page offers the next stale question that matters, with its own answer links.
    assert re.search(r'href="http://127\.0\.0\.1:5000/answer/', response.text)


@pytest.mark.usefixtures("build")
def test_an_altered_answer_link_is_refused(app: Flask, client: Client, runner: FlaskCliRunner) -> None:
    subscribe(client, "none")
    tick(runner, START + 31 * DAY)
    link = answer_links(app)[0]
    with app.app_context():
        payload = read_token(Purpose.ANSWER, link.removeprefix("/answer/"))
        other_question = db.session.scalars(select(Question.id).where(Question.key == "is_investor")).one()
        forged = [
            make_token(Purpose.ANSWER, {**payload, "q": other_question}),  # "none" is no answer to it
            make_token(Purpose.ANSWER, {**payload, "v": "expert"}),
            make_token(Purpose.ANSWER, {**payload, "s": payload["s"] + 1}),
            make_token(Purpose.PREFERENCES, payload),
        ]
        before = db.session.scalars(select(Answer.id)).all()
    for path in [link[:-4] + "AAAA", *("/answer/" + token for token in forged)]:
        assert client.post(path).status_code == 400
    with app.app_context():
        assert db.session.scalars(select(Answer.id)).all() == before


@pytest.mark.usefixtures("build")
def test_fresh_only_sequences_let_go_when_the_answer_goes_stale(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    assert enrollments(app)["fresh-beginners"] is EnrollmentState.ACTIVE
    tick(runner, START + 29 * DAY)
    assert enrollments(app)["fresh-beginners"] is EnrollmentState.ACTIVE
    tick(runner, START + 30 * DAY + timedelta(minutes=1))
    states = enrollments(app)
    assert states["fresh-beginners"] is EnrollmentState.EXITED
    assert states["beginners"] is EnrollmentState.ACTIVE  # not fresh_only: stale answers still count
    # Answering again makes the answer fresh, and the fresh_only sequence takes the subscriber back.
    link = answer_links(app)[0]
    client.post(link)
    assert enrollments(app)["fresh-beginners"] is EnrollmentState.ACTIVE


@pytest.mark.usefixtures("build")
def test_pausing_holds_follow_up_emails_for_thirty_days(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    with app.app_context():
        make_sequence("soon", {"is_investor": "yes"}, steps=(("01-welcome.md", DAY),))
        db.session.commit()
    subscribe(client, "none")
    with app.app_context():
        subscriber_id = db.session.scalars(select(Subscriber.id)).one()
        page = "/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber_id})
    assert client.post(page, data={"action": "pause"}).status_code == 200
    tick(runner, START + 10 * DAY)
    with app.app_context():
        sent = db.session.scalars(
            select(Delivery).where(
                Delivery.kind == DeliveryKind.SEQUENCE, Delivery.status == DeliveryStatus.SENT
            )
        ).all()
        assert sent == []
    tick(runner, START + 31 * DAY)
    with app.app_context():
        sent_at = db.session.scalars(
            select(Delivery.sent_at).where(
                Delivery.kind.in_([DeliveryKind.SEQUENCE, DeliveryKind.REFRESH]),
                Delivery.sent_at.is_not(None),
            )
        ).all()
        assert sent_at
        assert all(moment >= START + 30 * DAY for moment in sent_at)


@pytest.mark.usefixtures("build")
def test_export_shows_every_answer_change_with_old_and_new_value(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    tick(runner, START + 31 * DAY)
    client.post(answer_links(app)[2])
    result = runner.invoke(args=["subscribers", "export", "lezer@example.com"])
    history = [a for a in json.loads(result.output)["answers"] if a["question"] == "daytrading_experience"]
    assert [(a["previous_value"], a["value"], a["source"], a["changed"]) for a in history] == [
        (None, "none", "widget", True),
        ("none", "active", "email", True),
    ]


def test_refresh_interval_must_be_a_number_of_days(tmp_path: Path) -> None:
    from leadcapture import config
    from leadcapture.errors import ConfigError

    with pytest.raises(ConfigError, match="LEADCAPTURE_REFRESH_DAYS"):
        config.load({"LEADCAPTURE_REFRESH_DAYS": "soon"}, instance_path=tmp_path, relaxed=True)


def keen_on(app: Flask, topic: str, question: str, *, signals: int, half_life_days: int = 30) -> None:
    """A topic about `question`, and `signals` clicks on it by the subscriber now."""
    with app.app_context():
        now = clock.now()
        asked = db.session.scalars(select(Question).where(Question.key == question)).one()
        about = Topic(
            key=topic,
            name={"nl": topic},
            urls=[],
            half_life_days=half_life_days,
            question_id=asked.id,
            created_at=now,
            updated_at=now,
        )
        db.session.add(about)
        db.session.flush()
        person = db.session.scalars(select(Subscriber)).one()
        for _ in range(signals):
            record_signal(person, about, SignalSource.CLICK)
        db.session.commit()


def asked_keys(app: Flask) -> list[str]:
    with app.app_context():
        ids = [mail.payload["question_id"] for mail in refresh_mails(app)]
        return [db.session.get_one(Question, question_id).key for question_id in ids]


@pytest.mark.usefixtures("build")
def test_a_topic_the_subscriber_keeps_clicking_has_its_stale_question_re_asked_first(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    clock.freeze(START + 30 * DAY)
    keen_on(app, "etfs", "interests", signals=2)
    tick(runner, START + 31 * DAY)
    # Without the clicks, daytrading_experience (a sequence's audience relies on it) would go first.
    assert asked_keys(app) == ["interests"]
    tick(runner, START + 62 * DAY)
    assert asked_keys(app) == ["interests", "daytrading_experience"]  # the interest has faded by then


@pytest.mark.usefixtures("build")
def test_a_topic_whose_question_was_never_answered_has_it_asked_first_for_the_first_time(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    with app.app_context():
        make_question("risk", "multi", fresh_for_days=30)
        db.session.commit()
    subscribe(client, "none")
    clock.freeze(START + 30 * DAY)
    keen_on(app, "risico", "risk", signals=2)
    tick(runner, START + 31 * DAY)
    assert asked_keys(app) == ["risk"]
    (message,) = sent(app, DeliveryKind.REFRESH)
    assert message["Subject"] == "Een korte vraag"
    text = str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "Eén vraag, zodat de e-mails die je krijgt beter bij je passen." in text
    assert "Klopt nog" not in text
    # One link per option, each answering with that option alone; the first one answers the question.
    links = re.findall(r"http://127\.0\.0\.1:5000(/answer/[\w.\-]+)", text)
    assert len(links) == 3
    assert client.post(links[1]).status_code == 200
    with app.app_context():
        person = db.session.scalars(select(Subscriber)).one()
        assert answer_states(person.id)["risk"].value == ["etfs"]


@pytest.mark.usefixtures("build")
def test_interest_that_has_faded_below_one_signal_today_reorders_nothing(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    keen_on(app, "etfs", "interests", signals=4, half_life_days=7)  # 4 · ½^(31/7) ≈ 0.19 on day 31
    tick(runner, START + 31 * DAY)
    assert asked_keys(app) == ["daytrading_experience"]


@pytest.mark.usefixtures("build")
def test_the_refresh_sweep_costs_the_same_statements_for_five_as_for_forty_keen_subscribers(
    app: Flask,
) -> None:
    with app.app_context():
        questions = {question.key: question for question in db.session.scalars(select(Question))}
        topics = [
            Topic(
                key=key,
                name={"nl": key},
                urls=[],
                half_life_days=30,
                question_id=questions[question].id,
                created_at=START,
                updated_at=START,
            )
            for key, question in (("etfs", "interests"), ("beleggen", "is_investor"))
        ]
        db.session.add_all(topics)
        people = [
            make_subscriber(
                email=f"lezer{n}@example.com",
                timezone="Europe/Amsterdam",
                marketing_consent=True,
                answers={"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]},
            )
            for n in range(45)
        ]
        for person in people:
            switch_sequences(person, reason="confirmed")
        clock.freeze(START + 30 * DAY)
        for n, person in enumerate(people):
            for topic in topics[: n % 3]:
                for _ in range(2):  # two articles yesterday: 1.95 today, high
                    record_signal(person, topic, SignalSource.READ)
        db.session.commit()
        clock.freeze(START + 31 * DAY)
        costs = []
        for limit in (5, 40):
            with statements() as seen:
                assert refresh.enqueue_refresh_emails(limit) == limit
                db.session.flush()
            db.session.commit()
            costs.append(len(seen))
        assert costs[0] == costs[1]
    # Read nothing: daytrading_experience; etfs: interests; etfs and beleggen alike: is_investor (by topic key).
    assert Counter(asked_keys(app)) == {"daytrading_experience": 15, "interests": 15, "is_investor": 15}
