"""`leadcapture subscribers export` holds a person's interest: every click on a link in our emails with the
scanner rule that judged it, every signal of interest (a click taken back too), and the scores today."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Delivery
from tests.factories import make_demo_widget
from tests.support.app import Client
from tests.support.erasure import START
from tests.support.interest import DAYTRADING, SUBJECT, click_and_read, interest_rows
from tests.support.submissions import sign_up

READER = "lezer@example.com"
OTHER = "ander@example.com"


def export(runner: FlaskCliRunner, address: str) -> dict[str, Any]:
    result = runner.invoke(args=["subscribers", "export", address])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def build(app: Flask, client: Client) -> dict[str, int]:
    """Two confirmed readers, each clicking in an email of their own and reading an article."""
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    ids = {address: sign_up(client, address) for address in (READER, OTHER)}
    for address, subscriber_id in ids.items():
        click_and_read(client, subscriber_id, START + timedelta(days=1 if address == READER else 2))
    return ids


def test_the_export_holds_every_click_signal_and_score_of_that_person(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    ids = build(app, client)
    clock.freeze(START + timedelta(days=3))
    document = export(runner, READER)

    with app.app_context():
        message_id = db.session.scalars(
            select(Delivery.message_id).where(
                Delivery.subscriber_id == ids[READER], Delivery.subject == SUBJECT
            )
        ).one()
        rows = interest_rows(ids[READER])
    assert len(document["clicks"]) == rows["clicks"]
    assert len(document["interest_events"]) == rows["interest_events"]
    assert len(document["interest_scores"]) == rows["interest_scores"]

    assert [(click["position"], click["topic"], click["automated"]) for click in document["clicks"]] == [
        (0, "daytrading", "burst"),  # judged automated by the click after it
        (1, "daytrading", "burst"),
        (2, "etfs", None),
        (0, "daytrading", None),
    ]
    assert {click["message_id"] for click in document["clicks"]} == {message_id}
    assert document["clicks"][0]["url"] == DAYTRADING + "wat-is-het"
    assert document["clicks"][0]["clicked_at"] == "2026-03-03T10:30:00+00:00"

    events = [
        (event["source"], event["topic"], event["weight"], event["automated"])
        for event in document["interest_events"]
    ]
    assert events == [
        ("click", "daytrading", 1.0, "burst"),
        ("click", "daytrading", -1.0, "burst"),  # taken back, dated as the click it takes back
        ("click", "etfs", 1.0, None),
        ("click", "daytrading", 1.0, None),
        ("read", "daytrading", 1.0, None),
    ]
    taken_back = document["interest_events"][1]
    assert taken_back["occurred_at"] == document["interest_events"][0]["occurred_at"]
    assert taken_back["recorded_at"] == "2026-03-03T10:30:01+00:00"
    assert taken_back["message_id"] == message_id
    assert document["interest_events"][-1]["url"] == DAYTRADING + "wat-is-het"
    assert document["interest_events"][-1]["message_id"] is None

    # Two days after the signals, with a half-life of 30 days.
    faded = 0.5 ** (2 / 30)
    assert document["interest_scores"] == [
        {"topic": "daytrading", "score": round(2 * faded, 6), "on": "2026-03-05", "half_life_days": 30},
        {"topic": "etfs", "score": round(faded, 6), "on": "2026-03-05", "half_life_days": 30},
    ]
    # Nothing of the other reader's, whose clicks came a day later.
    assert "2026-03-04" not in json.dumps(document["clicks"]) + json.dumps(document["interest_events"])


def test_scores_in_the_export_are_todays(app: Flask, client: Client, runner: FlaskCliRunner) -> None:
    build(app, client)
    clock.freeze(START + timedelta(days=1, hours=12))
    assert [score["score"] for score in export(runner, READER)["interest_scores"]] == [2.0, 1.0]
    clock.freeze(START + timedelta(days=61, hours=12))  # two half-lives on
    later = export(runner, READER)["interest_scores"]
    assert [(score["topic"], score["score"], score["on"]) for score in later] == [
        ("daytrading", 0.5, "2026-05-02"),
        ("etfs", 0.25, "2026-05-02"),
    ]


def test_a_person_without_interest_exports_empty_lists(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    sign_up(client, READER)
    document = export(runner, READER)
    assert (document["clicks"], document["interest_events"], document["interest_scores"]) == ([], [], [])
