"""What editors type is text wherever it ends up: saved through the admin's path, it reaches readers inert."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Delivery, DeliveryKind, DeliveryStatus, Question, Report, Sequence
from leadcapture.services import editing
from tests.factories import make_demo_widget, make_question, make_sequence
from tests.support.app import Client
from tests.support.sequences import START, subscribe, tick
from tests.support.submissions import ORIGIN

SCRIPT = "<script>alert(1)</script>"
IMAGE = '"><img src=x onerror=alert(1)>'
DAY = timedelta(days=1)


@pytest.fixture
def hostile(app: Flask) -> None:
    """Demo content whose every editor text is a markup payload, saved the way the admin saves."""
    clock.freeze(START)
    with app.app_context():
        make_question("is_investor", "yes_no", fresh_for_days=30)
        make_question("daytrading_experience", "choice", fresh_for_days=30)
        make_question("interests", "multi", fresh_for_days=30)
        make_demo_widget()
        make_sequence(
            "beginners", {"daytrading_experience": ["none", "some"]}, steps=(("01-welcome.md", DAY),)
        )
        db.session.flush()
        experience = db.session.scalars(select(Question).where(Question.key == "daytrading_experience")).one()
        document = editing.question_document(experience)
        document["text"] = {"nl": f"Ervaring {SCRIPT}", "en": f"Experience {SCRIPT}"}
        for option in document["options"]:
            option["label"] = {"nl": f"{option['value']} {IMAGE}", "en": f"{option['value']} {IMAGE}"}
        editing.save_question(document)
        report = db.session.scalars(select(Report)).one()
        document = editing.report_document(report)
        document["title"] = {"nl": f"Gids {SCRIPT}", "en": f"Guide {SCRIPT}"}
        editing.save_report(document, None)
        sequence = db.session.scalars(select(Sequence)).one()
        document, steps = editing.sequence_document(sequence)
        steps = [
            editing.StepText(file=step.file, subject=f"Stap {SCRIPT}", body=f"Hallo {IMAGE}\n\n{SCRIPT}")
            for step in steps
        ]
        editing.save_sequence(document, steps)
        db.session.commit()


def parts(app: Flask, kind: DeliveryKind) -> tuple[str, str, str]:
    """Subject, text part and HTML part of the newest sent email of one kind."""
    with app.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message)
            .where(Delivery.kind == kind, Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.id.desc())
        ).first()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(message["Subject"]), str(text.get_content()), str(html.get_content())


def assert_inert(html: str) -> None:
    assert "<script" not in html
    assert "<img" not in html


@pytest.mark.usefixtures("hostile")
def test_editor_texts_reach_the_widget_as_data(client: Client) -> None:
    definition: dict[str, Any] = client.get(
        "/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}
    ).get_json()
    question = next(q for q in definition["questions"] if q["key"] == "daytrading_experience")
    assert question["text"] == f"Ervaring {SCRIPT}"  # the widget sets it as text, never as markup
    assert all(option["label"].endswith(IMAGE) for option in question["options"])


@pytest.mark.drains_outbox
@pytest.mark.usefixtures("hostile")
def test_editor_texts_are_escaped_in_every_email_kind(
    app: Flask, client: Client, runner: FlaskCliRunner
) -> None:
    subscribe(client, "none")
    subject, text, html = parts(app, DeliveryKind.CONFIRM)
    assert_inert(html)
    subject, text, html = parts(app, DeliveryKind.REPORT)
    assert SCRIPT in subject
    assert SCRIPT in text
    assert_inert(html)
    assert "Gids &lt;script&gt;alert(1)&lt;/script&gt;" in html
    tick(runner, START + DAY)
    subject, text, html = parts(app, DeliveryKind.SEQUENCE)
    assert subject == f"Stap {SCRIPT}"
    assert_inert(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    tick(runner, START + 31 * DAY)  # the answer went stale: the refresh email asks again, labels as buttons
    subject, text, html = parts(app, DeliveryKind.REFRESH)
    assert_inert(html)
    assert "Ervaring &lt;script&gt;alert(1)&lt;/script&gt;" in html
    preferences = re.search(r"http://127\.0\.0\.1:5000(/preferences/[\w.\-]+)", text)
    assert preferences
    page = client.get(preferences.group(1)).text
    assert_inert(page)
    assert "Ervaring &lt;script&gt;alert(1)&lt;/script&gt;" in page
    answer = re.search(r"http://127\.0\.0\.1:5000(/answer/[\w.\-]+)", text)
    assert answer
    assert_inert(client.get(answer.group(1)).text)
