"""Erasing a person: everything held on them goes, only a keyed hash stays, and nothing queued still goes out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.errors import NotFound
from leadcapture.extensions import db
from leadcapture.jobs import drain_outbox, enqueue_due_steps, store_submissions
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    Intake,
    StreamPause,
    Subscriber,
    SubscriberStatus,
    Suppression,
    Topic,
)
from leadcapture.services.subscribers import erase_subscriber, erasure_hash
from leadcapture.services.widgets import mail_reference, reader_ref
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.smtp import SmtpSink
from tests.support.app import Client, IntakeClient, app_settings
from tests.support.erasure import START, answers, every_value, rows_of
from tests.support.interest import click_and_read, interest_rows
from tests.support.submissions import post, sign_up, valid_body

ERASED = "Erase.Me+news@Example.com"
ERASED_NORMAL = "erase.me+news@example.com"
OTHER = "ander@example.com"


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "smtp_sink" in request.fixturenames:
        extra["LEADCAPTURE_MAIL_URL"] = request.getfixturevalue("smtp_sink").url
    return app_settings(database_url, **extra)


@pytest.fixture
def people(app: Flask, client: Client) -> dict[str, int]:
    """Two confirmed readers with follow-up consent, each with answers (one changed), consent, a request,
    a sequence place and sent emails."""
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        db.session.commit()
    ids = {address: sign_up(client, address) for address in (ERASED, OTHER)}
    # A changed answer (from a link in our email, so it counts), so the history holds more than one row per
    # question.
    with app.test_request_context():
        ref = mail_reference(ids[ERASED])
    post(client, valid_body(email=ERASED, answers=answers("some"), ref=ref))
    return {"erased": ids[ERASED], "other": ids[OTHER]}


def test_erase_removes_everything_about_that_person_and_only_that_person(
    app: Flask, people: dict[str, int]
) -> None:
    erased, other = people["erased"], people["other"]
    before = rows_of(app, erased)
    assert all(before.values()), before  # there was something of every kind to erase
    assert before["answers"] == 6
    other_before = rows_of(app, other)

    with app.app_context():
        erasure = erase_subscriber(ERASED)
        db.session.commit()

    assert erasure.subscriber_id == erased
    assert erasure.removed["answers"] == 6
    assert rows_of(app, erased) == dict.fromkeys(before, 0)
    assert rows_of(app, other) == other_before
    with app.app_context():
        tombstone = db.session.get_one(Subscriber, erased)
        # Only an empty row keeps the id taken, so no later sign-up can answer an erased person's old links.
        assert tombstone.status is SubscriberStatus.ERASED
        assert (tombstone.timezone, tombstone.first_name, tombstone.reader_ref, tombstone.confirmed_at) == (
            None,
            None,
            None,
            None,
        )
        assert tombstone.marketing_consent is False
        assert "@" not in tombstone.email
        assert db.session.get_one(Subscriber, other).email == OTHER


def test_erase_removes_clicks_interest_events_and_scores_of_that_person_only(
    app: Flask, client: Client, people: dict[str, int]
) -> None:
    for person in ("erased", "other"):
        click_and_read(client, people[person], START + timedelta(days=2))
    with app.app_context():
        before = {person: interest_rows(people[person]) for person in people}
    assert before["erased"] == {"clicks": 4, "interest_events": 5, "interest_scores": 2}
    assert before["other"] == before["erased"]

    with app.app_context():
        erasure = erase_subscriber(ERASED)
        db.session.commit()
        assert (erasure.removed["clicks"], erasure.removed["interest events"]) == (4, 5)
        assert erasure.removed["interest scores"] == 2
        assert interest_rows(people["erased"]) == dict.fromkeys(before["erased"], 0)
        assert interest_rows(people["other"]) == before["other"]
        assert db.session.scalar(select(func.count()).select_from(Topic)) == 2  # the topics are content


def test_erase_also_removes_the_submissions_not_stored_yet(
    app: Flask, client: Client, people: dict[str, int]
) -> None:
    client.application.test_client_class = IntakeClient
    waiting = client.application.test_client()
    for address in (ERASED, OTHER):
        assert post(waiting, valid_body(email=address)).status_code == 202
    with app.app_context():
        erasure = erase_subscriber(ERASED)
        db.session.commit()
        assert erasure.removed["submissions not stored yet"] == 1
        assert db.session.scalars(select(Intake.email)).all() == [OTHER]
        store_submissions()
        assert db.session.scalar(select(func.count()).select_from(Subscriber).where(Subscriber.email == ERASED)) == 0


def test_only_a_keyed_hash_of_the_address_is_kept(app: Flask, people: dict[str, int]) -> None:
    with app.app_context():
        widget_reference = reader_ref(ERASED_NORMAL)
        erase_subscriber(ERASED)
        db.session.commit()
        suppression = db.session.scalars(select(Suppression)).one()
        assert suppression.reason == "erased"
        assert suppression.email_hash == erasure_hash(ERASED)
        assert suppression.email_hash == erasure_hash(" erase.me+NEWS@example.COM ")  # normalised first
        assert suppression.email_hash != widget_reference  # another purpose, another key
        assert ERASED_NORMAL not in suppression.email_hash
        assert len(suppression.email_hash) >= 43


def test_after_erasure_the_address_is_in_no_column_of_any_table(app: Flask, people: dict[str, int]) -> None:
    with app.app_context():
        widget_reference = db.session.get_one(Subscriber, people["erased"]).reader_ref
        assert widget_reference
        # A relay's reason for pausing a stream may quote the address.
        db.session.add(
            StreamPause(
                kind=DeliveryKind.SEQUENCE,
                paused_until=START + timedelta(hours=1),
                reason=f"550 5.7.1 <{ERASED_NORMAL.upper()}>: policy rejection",
            )
        )
        db.session.commit()
    needles = (ERASED_NORMAL, "erase.me", widget_reference.lower())
    assert any(needle in text for _t, _c, text in every_value(app) for needle in needles)  # the scan sees it

    with app.app_context():
        erase_subscriber(ERASED)
        db.session.commit()

    leftovers = [(table, column) for table, column, text in every_value(app) for n in needles if n in text]
    assert leftovers == []
    assert any(OTHER in text for _t, _c, text in every_value(app))  # the other person is all there
    with app.app_context():
        assert "policy rejection" in db.session.scalars(select(StreamPause.reason)).one()


@pytest.mark.drains_outbox
def test_nothing_still_queued_goes_out_to_an_erased_address(
    app: Flask, client: Client, smtp_sink: SmtpSink, people: dict[str, int]
) -> None:
    client.sends_after_each_request = False
    # A report asked for again (queued, not yet sent), and each reader's first sequence step falls due.
    post(client, valid_body(email=ERASED, answers=answers("some")))
    clock.freeze(START + timedelta(days=1, hours=1))
    with app.app_context():
        enqueue_due_steps()
        waiting = db.session.scalars(
            select(Delivery.to_address).where(Delivery.status == DeliveryStatus.PENDING)
        ).all()
    assert sorted(waiting) == sorted([ERASED_NORMAL, ERASED_NORMAL, OTHER])
    smtp_sink.clear()

    with app.app_context():
        erase_subscriber(ERASED)
        db.session.commit()
        drain_outbox()
    clock.freeze(START + timedelta(days=10))
    with app.app_context():
        enqueue_due_steps()
        drain_outbox()

    recipients = [message.rcpt_tos for message in smtp_sink.messages]
    assert all(ERASED_NORMAL not in message.raw.decode().lower() for message in smtp_sink.messages)
    assert (OTHER,) in recipients  # the worker did run: the other reader's step went out
    assert all(to == (OTHER,) for to in recipients)


@pytest.mark.drains_outbox
def test_signing_up_again_after_erasure_starts_afresh_with_double_opt_in(
    app: Flask, client: Client, smtp_sink: SmtpSink, people: dict[str, int]
) -> None:
    with app.app_context():
        erase_subscriber(ERASED)
        db.session.commit()
    smtp_sink.clear()

    assert post(client, valid_body(email=ERASED, answers=answers("active"))).status_code == 202

    with app.app_context():
        newcomer = db.session.scalars(select(Subscriber).where(Subscriber.email == ERASED_NORMAL)).one()
        assert newcomer.id != people["erased"]
        assert newcomer.status is SubscriberStatus.PENDING
        assert newcomer.marketing_consent is False
        assert [a.value for a in newcomer.answers if a.question.key == "daytrading_experience"] == ["active"]
        kinds = db.session.scalars(select(Delivery.kind).where(Delivery.subscriber_id == newcomer.id)).all()
        assert kinds == [DeliveryKind.CONFIRM]  # no report, no sequence before the new confirmation
        assert (
            db.session.scalar(
                select(func.count()).select_from(Enrollment).where(Enrollment.subscriber_id == newcomer.id)
            )
            == 0
        )
    [confirmation] = smtp_sink.messages
    assert confirmation.rcpt_tos == (ERASED_NORMAL,)
    assert confirmation.message["X-Leadcapture-Kind"] == "confirm"


def test_an_erased_persons_old_links_open_nothing_not_even_a_newcomers_page(
    app: Flask, client: Client, people: dict[str, int]
) -> None:
    old = people["erased"]
    with app.app_context():
        links = {
            "preferences": make_token(Purpose.PREFERENCES, {"s": old}),
            "unsubscribe": make_token(Purpose.UNSUBSCRIBE, {"s": old}),
        }
        erase_subscriber(ERASED)
        db.session.commit()
    post(client, valid_body(email="nieuw@example.com"))  # the next sign-up, on SQLite the next rowid

    for kind, token in links.items():
        response = client.get(f"/{kind}/{token}")
        assert response.status_code == 400, kind
        assert "nieuw@example.com" not in response.text
        assert "erased:" not in response.text


def test_erasing_an_unknown_address_is_a_clear_error_and_changes_nothing(
    app: Flask, people: dict[str, int]
) -> None:
    before = (rows_of(app, people["erased"]), rows_of(app, people["other"]))
    with app.app_context(), pytest.raises(NotFound):
        erase_subscriber("nobody@example.com")
    assert (rows_of(app, people["erased"]), rows_of(app, people["other"])) == before


def test_the_cli_asks_before_erasing_and_reports_what_went(
    app: Flask, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    declined = runner.invoke(args=["subscribers", "erase", ERASED], input="n\n")
    assert declined.exit_code == 1
    assert "Erase erase.me+news@example.com and everything held on them?" in declined.output
    assert rows_of(app, people["erased"])["answers"] == 6

    accepted = runner.invoke(args=["subscribers", "erase", ERASED], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "erased erase.me+news@example.com:" in accepted.output
    assert "6 answers" in accepted.output
    assert "suppression list" in accepted.output
    assert rows_of(app, people["erased"]) == dict.fromkeys(rows_of(app, people["erased"]), 0)

    again = runner.invoke(args=["subscribers", "erase", ERASED, "--yes"])
    assert again.exit_code == 1
    assert "erased before" in again.output
    export = runner.invoke(args=["subscribers", "export", ERASED])
    assert export.exit_code == 1


def test_the_cli_erases_without_asking_given_yes(
    app: Flask, runner: FlaskCliRunner, people: dict[str, int]
) -> None:
    result = runner.invoke(args=["subscribers", "erase", "--yes", f"  {ERASED.upper()}  "])
    assert result.exit_code == 0, result.output
    assert "?" not in result.output
    assert rows_of(app, people["erased"])["submissions"] == 0
    assert rows_of(app, people["other"])["submissions"] == 1


@pytest.mark.parametrize(
    "address",
    [
        "nobody@example.com",
        "%",
        "%@example.com",
        "_rase.me+news@example.com",
        "' OR '1'='1",
        "erase.me+news@example.com'; DROP TABLE subscribers; --",
        "erase.me+news@example.com\x00",
        "a" * 10_000 + "@example.com",
        "",
    ],
)
def test_the_cli_refuses_unknown_or_hostile_addresses_and_erases_no_one(
    app: Flask, runner: FlaskCliRunner, people: dict[str, int], address: str
) -> None:
    result = runner.invoke(args=["subscribers", "erase", "--yes", address])
    assert result.exit_code == 1
    assert "no subscriber with address" in result.output
    assert len(result.output) < 300
    assert rows_of(app, people["erased"])["answers"] == 6
    assert rows_of(app, people["other"])["answers"] == 3
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_erasing_twice_after_a_new_sign_up_keeps_one_hash(
    app: Flask, client: Client, people: dict[str, int]
) -> None:
    with app.app_context():
        erase_subscriber(ERASED)
        db.session.commit()
    post(client, valid_body(email=ERASED))
    with app.app_context():
        second = erase_subscriber(ERASED)
        db.session.commit()
        assert second.subscriber_id != people["erased"]
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 1
        assert (
            db.session.scalar(
                select(func.count())
                .select_from(Subscriber)
                .where(Subscriber.status == SubscriberStatus.ERASED)
            )
            == 2
        )
