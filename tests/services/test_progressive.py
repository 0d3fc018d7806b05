"""Progressive profiling on the server: a returning reader is known by a reference, never by their address,
and is asked only what is left to ask."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    DeliveryKind,
    EnrollmentState,
    Question,
    SignalSource,
    Subscriber,
    SubscriberStatus,
    Topic,
    Widget,
    WidgetQuestion,
)
from leadcapture.services.interests import record_signal
from leadcapture.services.widgets import mail_reference
from leadcapture.tokens import Purpose, TokenService, make_token
from tests.factories import make_demo_widget, make_question, make_sequence
from tests.support.app import Client
from tests.support.mail import untracked
from tests.support.sequences import START, enrollments, subscribe, tick
from tests.support.submissions import NOTHING, ORIGIN, counts, post, valid_body

DAY = timedelta(days=1)
DEFINITION = "/api/v1/widgets/daytrading-report"
ARTICLE_STEP = (
    "Read [the article](https://beleggen.example/artikel/daytraden?utm_source=mail&lc=stale) "
    "or [elsewhere](https://elders.example/pagina).\n\n[Change your answers]({{ links.preferences }})"
)


@pytest.fixture
def build(app: Flask) -> None:
    clock.freeze(START)
    with app.app_context():
        make_question("is_investor", "yes_no", fresh_for_days=90)
        make_question("daytrading_experience", "choice", fresh_for_days=30)
        make_question("interests", "multi", fresh_for_days=90)
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, body=ARTICLE_STEP)
        make_sequence("active", {"daytrading_experience": "active"}, body=ARTICLE_STEP)
        db.session.commit()


def reader_of(client: Client, **overrides: Any) -> str:
    response = post(client, valid_body(**overrides))
    assert response.status_code == 202
    reader: str = response.get_json()["reader"]
    return reader


def by_reader(reader: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"reader": reader, "answers": {}, "consent": {"report": True}}
    body.update(overrides)
    return body


def subscriber_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalars(select(Subscriber.id)).one())


def deliveries(app: Flask) -> list[DeliveryKind]:
    with app.app_context():
        return list(db.session.scalars(select(Delivery.kind).order_by(Delivery.id)))


def definition(client: Client, ref: str | None = None) -> dict[str, Any]:
    response = client.get(DEFINITION, query_string={"ref": ref} if ref else {}, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    data: dict[str, Any] = response.get_json()
    return data


def asked(data: dict[str, Any]) -> list[str]:
    return [question["key"] for question in data["questions"]]


@pytest.mark.usefixtures("build")
class TestReader:
    def test_one_reader_per_address_that_never_shows_the_address(self, client: Client) -> None:
        first = reader_of(client)
        assert reader_of(client, email="  LEZER@example.COM ") == first  # the normalised address
        other = reader_of(client, email="ander@example.com")
        assert other != first
        assert not re.search(r"lezer|example", first, re.IGNORECASE)

    @pytest.mark.drains_outbox
    def test_a_returning_reader_from_our_email_answers_without_the_address_and_switches_at_once(
        self, app: Flask, client: Client
    ) -> None:
        subscribe(client, "none")
        reader = reader_of(client)
        assert enrollments(app) == {"beginners": EnrollmentState.ACTIVE}

        response = post(
            client, by_reader(reader, answers={"daytrading_experience": "active"}, ref=mail_ref(app))
        )

        assert response.status_code == 202
        assert response.get_json() == {"status": "accepted", "reader": reader}
        assert enrollments(app) == {"beginners": EnrollmentState.EXITED, "active": EnrollmentState.ACTIVE}
        with app.app_context():
            latest = db.session.scalars(select(Answer).order_by(Answer.id.desc())).first()
            assert latest is not None
            assert latest.value == "active"
            assert latest.source is AnswerSource.WIDGET

    @pytest.mark.drains_outbox
    def test_nothing_left_to_answer_sends_the_report_straight_away(self, app: Flask, client: Client) -> None:
        subscribe(client, "none")
        reader = reader_of(client)
        before = deliveries(app).count(DeliveryKind.REPORT)
        assert post(client, by_reader(reader)).status_code == 202
        assert deliveries(app).count(DeliveryKind.REPORT) == before + 1

    def test_a_pending_reader_gets_the_confirmation_again(self, app: Flask, client: Client) -> None:
        reader = reader_of(client)
        assert post(client, by_reader(reader)).status_code == 202
        assert deliveries(app) == [DeliveryKind.CONFIRM, DeliveryKind.CONFIRM]

    def test_a_typed_address_wins_over_a_reader(self, app: Flask, client: Client) -> None:
        reader = reader_of(client)
        response = post(client, valid_body(email="ander@example.com", reader=reader))
        assert response.get_json()["reader"] != reader
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 2

    @pytest.mark.parametrize(
        "reader", ["A" * 43, "short", "A" * 42 + "!", "A" * 5000, "../../etc/passwd" + "A" * 27]
    )
    def test_an_unknown_or_malformed_reader_is_422_and_changes_nothing(
        self, app: Flask, client: Client, reader: str
    ) -> None:
        response = post(client, by_reader(reader, answers={"is_investor": "no"}))
        assert response.status_code == 422
        assert "reader" in response.get_json()["errors"]
        assert counts(app) == NOTHING

    def test_a_reader_still_gets_its_answers_checked(self, app: Flask, client: Client) -> None:
        reader = reader_of(client)
        before = counts(app)
        response = post(client, by_reader(reader, answers={"daytrading_experience": "expert"}))
        assert response.status_code == 422
        assert "answers.daytrading_experience" in response.get_json()["errors"]
        assert counts(app) == before

    def test_a_suppressed_reader_is_accepted_and_sent_nothing(self, app: Flask, client: Client) -> None:
        reader = reader_of(client)
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.BOUNCED
            db.session.commit()
        before = counts(app)
        assert post(client, by_reader(reader)).status_code == 202
        assert counts(app) == before

    def test_after_a_key_rotation_the_next_typed_address_gets_a_new_reader_that_works(
        self, app: Flask, client: Client
    ) -> None:
        old = reader_of(client)
        keys = app.config["SETTINGS"].secret_keys
        app.extensions["leadcapture.tokens"] = TokenService(["rotated-key-0123456789abcdef", *keys])
        new = reader_of(client)
        assert new != old
        assert post(client, by_reader(new)).status_code == 202
        assert post(client, by_reader(old)).status_code == 422


@pytest.mark.usefixtures("build")
class TestDefinitionForAKnownReader:
    def test_a_stranger_is_asked_everything(self, client: Client) -> None:
        data = definition(client)
        assert asked(data) == ["is_investor", "daytrading_experience", "interests"]
        assert [q["fresh_for_days"] for q in data["questions"]] == [90, 30, 90]
        assert datetime.fromisoformat(data["now"]) == START
        assert data["now"].endswith("Z")
        assert "reader" not in data

    @pytest.mark.drains_outbox
    def test_only_unanswered_or_stale_questions_for_a_reader_from_our_email(
        self, app: Flask, client: Client
    ) -> None:
        subscribe(client, "none")
        reader = reader_of(client)
        ref = mail_ref(app)

        clock.freeze(START + 29 * DAY)
        data = definition(client, ref)
        assert asked(data) == []
        assert data["reader"] == reader
        assert {"not_you", "reader", "reader_unnamed", "start_ready"} <= set(data["texts"])

        clock.freeze(START + 31 * DAY)
        data = definition(client, ref)
        assert asked(data) == ["daytrading_experience"]
        assert "multi" not in data["texts"]  # the hint for a question with several answers: none is asked

        clock.freeze(START + 91 * DAY)
        data = definition(client, ref)
        assert asked(data) == ["is_investor", "daytrading_experience", "interests"]
        assert data["texts"]["multi"]

    @pytest.mark.drains_outbox
    def test_a_question_added_to_the_widget_later_is_asked(self, app: Flask, client: Client) -> None:
        subscribe(client, "none")
        with app.app_context():
            widget = db.session.scalars(select(Widget)).one()
            widget.widget_questions.append(
                WidgetQuestion(question=make_question("horizon", "yes_no"), position=3)
            )
            db.session.commit()
        assert asked(definition(client, mail_ref(app))) == ["horizon"]

    @pytest.mark.drains_outbox
    @pytest.mark.parametrize("status", [SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED])
    def test_a_reference_to_someone_not_confirmed_is_a_stranger(
        self, app: Flask, client: Client, status: SubscriberStatus
    ) -> None:
        subscribe(client, "none")
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = status
            db.session.commit()
        data = definition(client, mail_ref(app))
        assert len(asked(data)) == 3
        assert "reader" not in data

    @pytest.mark.drains_outbox
    def test_forged_expired_or_foreign_references_are_strangers(self, app: Flask, client: Client) -> None:
        subscribe(client, "none")
        ref = mail_ref(app)
        with app.test_request_context():
            other_purpose = make_token(Purpose.PREFERENCES, {"s": subscriber_id(app)})
            not_an_id = make_token(Purpose.READER, {"s": "1 OR 1=1"})
        for bad in (ref[:-2] + "xx", other_purpose, not_an_id, "x" * 5000, "<script>"):
            data = definition(client, bad)
            assert len(asked(data)) == 3
            assert "reader" not in data
        clock.freeze(START + 400 * DAY)
        assert "reader" not in definition(client, ref)

    @pytest.mark.drains_outbox
    def test_reading_the_definition_changes_nothing(self, app: Flask, client: Client) -> None:
        subscribe(client, "none")
        before = counts(app)
        definition(client, mail_ref(app))
        assert counts(app) == before


def mail_ref(app: Flask) -> str:
    with app.test_request_context():
        return mail_reference(subscriber_id(app))


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("build")
def test_article_links_in_sequence_email_carry_the_reference_and_others_do_not(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    tick(runner, START + 2 * DAY)
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message).where(Delivery.kind == DeliveryKind.SEQUENCE)
        ).one()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    parts = [str(part.get_content()) for part in message.walk() if part.get_content_maintype() == "text"]
    assert len(parts) == 2
    for tracked in parts:
        part = untracked(tracked, client)
        (article,) = re.findall(r"https://beleggen\.example/artikel/daytraden\?[^\s\"<>)]+", part)
        query = parse_qs(urlsplit(article.replace("&amp;", "&")).query)
        assert query["utm_source"] == ["mail"]
        (ref,) = query["lc"]  # the editor's own `lc` is replaced, not repeated
        assert "https://elders.example/pagina" in part
        assert "elders.example/pagina?" not in part
        data = definition(client, ref)
        assert asked(data) == []
        assert data["reader"]


def keen_reader(app: Flask, topic: str, question: str, *, signals: int) -> None:
    """A topic about `question`, and `signals` articles of it read by the subscriber now."""
    with app.app_context():
        now = clock.now()
        about = Topic(
            key=topic,
            name={"nl": topic},
            urls=[],
            half_life_days=30,
            question_id=db.session.scalars(select(Question.id).where(Question.key == question)).one(),
            created_at=now,
            updated_at=now,
        )
        db.session.add(about)
        person = db.session.scalars(select(Subscriber)).one()
        for _ in range(signals):
            record_signal(person, about, SignalSource.READ)
        db.session.commit()


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("build")
def test_a_reader_keen_on_a_topic_is_asked_its_stale_question_first(app: Flask, client: Client) -> None:
    subscribe(client, "none")
    ref = mail_ref(app)
    clock.freeze(START + 91 * DAY)
    assert asked(definition(client, ref)) == ["is_investor", "daytrading_experience", "interests"]
    keen_reader(app, "etfs", "interests", signals=1)  # one article today: a score of 1, high
    assert asked(definition(client, ref)) == ["interests", "is_investor", "daytrading_experience"]
    clock.freeze(START + 92 * DAY)  # a day later the one article is not quite one signal's worth any more
    assert asked(definition(client, ref)) == ["is_investor", "daytrading_experience", "interests"]


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("build")
def test_a_reader_keen_on_a_topic_is_asked_its_unanswered_question_first(app: Flask, client: Client) -> None:
    subscribe(client, "none")
    with app.app_context():
        widget = db.session.scalars(select(Widget)).one()
        widget.widget_questions.append(WidgetQuestion(question=make_question("horizon", "yes_no"), position=3))
        db.session.commit()
    ref = mail_ref(app)
    clock.freeze(START + 31 * DAY)
    assert asked(definition(client, ref)) == ["daytrading_experience", "horizon"]
    keen_reader(app, "beleggen", "horizon", signals=3)
    assert asked(definition(client, ref)) == ["horizon", "daytrading_experience"]
    # Only what is left to ask is ordered: a fresh answer is not asked again, however keen the reader.
    keen_reader(app, "markten", "is_investor", signals=5)
    assert asked(definition(client, ref)) == ["horizon", "daytrading_experience"]
