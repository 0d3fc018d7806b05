"""Privacy over time: sign-ups never confirmed are purged after the retention window, consent records keep
only the network part of an IP address, and the export holds everything we keep. Time moves with
`worker --once --at`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    ConsentEvent,
    Delivery,
    DeliveryKind,
    SignalSource,
    Submission,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from leadcapture.services.interests import record_signal
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.support.app import Client
from tests.support.erasure import START, answers, every_value, rows_of
from tests.support.interest import click_and_read, follow, interest_rows, link_path, sent_email, topic
from tests.support.submissions import post, sign_up, valid_body

UNCONFIRMED = "nooit.bevestigd@example.com"
CONFIRMED = "wel.bevestigd@example.com"
LATER = "later.aangemeld@example.com"


def tick(runner: FlaskCliRunner, at: datetime) -> None:
    result = runner.invoke(args=["worker", "--once", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output


def subscriber_id(app: Flask, address: str) -> int | None:
    with app.app_context():
        return db.session.scalar(select(Subscriber.id).where(Subscriber.email == address))


def kept(rows: dict[str, int]) -> dict[str, int]:
    """A confirmed reader's rows but their emails, of which the sequence keeps sending more as time moves."""
    return {table: count for table, count in rows.items() if table != "deliveries"}


def pending_sign_up(client: Client, address: str) -> int:
    assert post(client, valid_body(email=address, answers=answers("none"))).status_code == 202
    found = subscriber_id(client.application, address)
    assert found is not None
    return found


@pytest.fixture
def people(app: Flask, client: Client) -> dict[str, int]:
    """On day 0 one reader signs up and never confirms and one confirms; on day 10 another signs up."""
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        db.session.commit()
    ids = {"unconfirmed": pending_sign_up(client, UNCONFIRMED), "confirmed": sign_up(client, CONFIRMED)}
    clock.freeze(START + timedelta(days=10))
    ids["later"] = pending_sign_up(client, LATER)
    return ids


def test_an_unconfirmed_sign_up_is_kept_29_days_and_gone_after_31(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    unconfirmed = people["unconfirmed"]
    before = {name: rows_of(app, person) for name, person in people.items()}
    assert before["unconfirmed"]["answers"] == 3
    assert before["unconfirmed"]["consent_events"] == 1
    assert before["unconfirmed"]["deliveries"] == 1  # the confirmation email

    tick(runner, START + timedelta(days=29))
    assert rows_of(app, unconfirmed) == before["unconfirmed"]
    assert rows_of(app, people["later"]) == before["later"]
    assert subscriber_id(app, UNCONFIRMED) == unconfirmed
    assert kept(rows_of(app, people["confirmed"])) == kept(before["confirmed"])

    tick(runner, START + timedelta(days=31))
    assert rows_of(app, unconfirmed) == dict.fromkeys(before["unconfirmed"], 0)
    assert subscriber_id(app, UNCONFIRMED) is None
    assert not any(UNCONFIRMED in text for _table, _column, text in every_value(app))
    # Everyone else is untouched: the confirmed reader from the same day, the later sign-up still in its window.
    assert kept(rows_of(app, people["confirmed"])) == kept(before["confirmed"])
    assert rows_of(app, people["later"]) == before["later"]
    with app.app_context():
        assert db.session.get_one(Subscriber, people["confirmed"]).status is SubscriberStatus.CONFIRMED
        assert db.session.get_one(Subscriber, people["later"]).status is SubscriberStatus.PENDING
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0  # purged, not suppressed

    tick(runner, START + timedelta(days=41))  # the later sign-up's window ends in turn
    assert subscriber_id(app, LATER) is None
    assert subscriber_id(app, CONFIRMED) == people["confirmed"]
    assert rows_of(app, people["confirmed"])["answers"] == 3


def test_the_purge_removes_the_clicks_interest_events_and_scores_of_an_unconfirmed_sign_up(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    unconfirmed, confirmed = people["unconfirmed"], people["confirmed"]
    click_and_read(client, confirmed, START + timedelta(days=11))
    with app.app_context():
        # However they came about (a click on a forwarded email counts for the person it was sent to), rows
        # of interest held on someone who never confirmed go with the rest.
        person = db.session.get_one(Subscriber, unconfirmed)
        sent_at = START + timedelta(days=11)
        email = sent_email(
            person, [("https://elders.example/etf", "etfs")], subject="Doorgestuurd", sent_at=sent_at
        )
        record_signal(person, topic("daytrading"), SignalSource.ANSWER)
        db.session.commit()
        path = link_path(email.id, 0)
    follow(client, path, START + timedelta(days=12))
    with app.app_context():
        before = {"unconfirmed": interest_rows(unconfirmed), "confirmed": interest_rows(confirmed)}
    assert before["unconfirmed"] == {"clicks": 1, "interest_events": 1, "interest_scores": 1}
    assert before["confirmed"] == {"clicks": 4, "interest_events": 5, "interest_scores": 2}

    tick(runner, START + timedelta(days=31))
    assert subscriber_id(app, UNCONFIRMED) is None
    with app.app_context():
        assert interest_rows(unconfirmed) == dict.fromkeys(before["unconfirmed"], 0)
        assert interest_rows(confirmed) == before["confirmed"]


@pytest.mark.settings(LEADCAPTURE_UNCONFIRMED_RETENTION_DAYS="7")  # purged while its link has not expired
def test_the_old_confirmation_link_of_a_purged_sign_up_opens_nothing_and_the_address_may_sign_up_afresh(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    clock.freeze(START)
    with app.app_context():
        submission = db.session.scalars(
            select(Submission).where(Submission.subscriber_id == people["unconfirmed"])
        ).one()
        token = make_token(Purpose.CONFIRM, {"s": people["unconfirmed"], "sub": submission.id})
    tick(runner, START + timedelta(days=8))

    clock.freeze(START + timedelta(days=8, hours=1))
    for method in (client.get, client.post):
        response = method(f"/confirm/{token}")
        assert response.status_code == 400  # the page for a link with nothing behind it
        assert "erased:" not in response.text
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(ConsentEvent)
                .where(ConsentEvent.subscriber_id == people["unconfirmed"])
            )
            == 0
        )

    newcomer = pending_sign_up(client, UNCONFIRMED)
    assert newcomer != people["unconfirmed"]  # no id is handed out twice
    with app.app_context():
        kinds = db.session.scalars(select(Delivery.kind).where(Delivery.subscriber_id == newcomer)).all()
        assert kinds == [DeliveryKind.CONFIRM]  # a purged address is not suppressed: a fresh opt-in goes out
        assert db.session.get_one(Subscriber, newcomer).status is SubscriberStatus.PENDING


def test_a_sign_up_confirmed_on_day_29_is_never_purged(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    clock.freeze(START + timedelta(days=29))
    with app.app_context():
        submission = db.session.scalars(
            select(Submission).where(Submission.subscriber_id == people["unconfirmed"])
        ).one()
        token = make_token(Purpose.CONFIRM, {"s": people["unconfirmed"], "sub": submission.id})
    assert client.post(f"/confirm/{token}").status_code == 200

    tick(runner, START + timedelta(days=90))
    assert subscriber_id(app, UNCONFIRMED) == people["unconfirmed"]
    rows = rows_of(app, people["unconfirmed"])
    assert rows["answers"] == 3
    assert rows["submissions"] == 1


def test_asking_for_a_report_again_restarts_the_window(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    clock.freeze(START + timedelta(days=20))
    assert post(client, valid_body(email=UNCONFIRMED, answers=answers("some"))).status_code == 202

    tick(runner, START + timedelta(days=31))
    assert (
        subscriber_id(app, UNCONFIRMED) == people["unconfirmed"]
    )  # the newest confirmation link still works

    tick(runner, START + timedelta(days=51))
    assert subscriber_id(app, UNCONFIRMED) is None


@pytest.mark.settings(LEADCAPTURE_UNCONFIRMED_RETENTION_DAYS="7")
def test_the_retention_window_is_configurable(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    tick(runner, START + timedelta(days=6))
    assert subscriber_id(app, UNCONFIRMED) is not None
    tick(runner, START + timedelta(days=8))
    assert subscriber_id(app, UNCONFIRMED) is None
    assert subscriber_id(app, LATER) is not None  # signed up on day 10
    assert subscriber_id(app, CONFIRMED) is not None


@pytest.mark.settings(LEADCAPTURE_RATE_LIMITS="off")  # a hundred sign-ups from one test client
def test_the_purge_runs_in_batches_until_every_expired_sign_up_is_gone(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    for number in range(105):  # more than one batch of 100
        pending_sign_up(client, f"lezer{number}@example.com")
    tick(runner, START + timedelta(days=31))
    with app.app_context():
        left = db.session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.status == SubscriberStatus.PENDING)
        )
        assert left == 0
        assert db.session.scalar(select(func.count()).select_from(Submission)) == 0


@pytest.mark.parametrize(
    ("remote", "stored"),
    [("203.0.113.77", "203.0.113.0/24"), ("2001:db8:1234:5678:9abc::1", "2001:db8:1234::/48")],
)
def test_consent_records_keep_only_the_network_part_of_the_ip_address(
    app: Flask, client: Client, remote: str, stored: str
) -> None:
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    response = post(client, valid_body(), environ_base={"REMOTE_ADDR": remote})
    assert response.status_code == 202
    with app.app_context():
        (event,) = db.session.scalars(select(ConsentEvent)).all()
        assert event.ip_address == stored
    # Nor is the whole address anywhere else held on the person.
    leaked = [(t, c) for t, c, text in every_value(app) if remote in text and t != "rate_limit_counters"]
    assert leaked == []


def test_export_holds_every_kind_of_record_of_a_confirmed_reader(
    app: Flask, client: Client, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    clock.freeze(START + timedelta(days=1, hours=1))
    tick(runner, START + timedelta(days=1, hours=1))  # the first sequence email falls due and goes out
    result = runner.invoke(args=["subscribers", "export", CONFIRMED.upper()])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.output)
    assert set(data) == {
        "profile",
        "answers",
        "consent_events",
        "submissions",
        "enrollments",
        "deliveries",
        "bounces",
        "clicks",
        "interest_events",
        "interest_scores",
    }
    assert data["profile"]["email"] == CONFIRMED
    assert data["profile"]["status"] == "confirmed"
    assert data["profile"]["confirmed_at"]
    assert {a["question"] for a in data["answers"]} == {"is_investor", "daytrading_experience", "interests"}
    assert [e["kind"] for e in data["consent_events"]] == ["request", "confirm"]
    assert data["consent_events"][0]["ip_address"] == "127.0.0.0/24"
    assert data["consent_events"][0]["wording"]["consent_sequences"]
    (request,) = data["submissions"]
    assert request["report"]
    assert request["confirmed_at"]
    (enrollment,) = data["enrollments"]
    assert enrollment["sequence"] == "beginners"
    kinds = [d["kind"] for d in data["deliveries"]]
    assert kinds[:2] == ["confirm", "report"]
    assert "sequence" in kinds
    assert all(d["to_address"] == CONFIRMED for d in data["deliveries"])
    # Nothing held on the person is missing: every row about them shows up in the export.
    rows = rows_of(app, people["confirmed"])
    assert len(data["answers"]) == rows["answers"]
    assert len(data["consent_events"]) == rows["consent_events"]
    assert len(data["submissions"]) == rows["submissions"]
    assert len(data["enrollments"]) == rows["enrollments"]
    assert len(data["deliveries"]) == rows["deliveries"]
    # And nothing about anyone else.
    assert UNCONFIRMED not in result.output
    assert LATER not in result.output
