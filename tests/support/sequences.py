"""Signing people up and moving time for sequence tests: build the sequences, subscribe, tick the worker."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    Enrollment,
    EnrollmentState,
    Subscriber,
)
from leadcapture.services.widgets import mail_reference
from tests.factories import make_demo_widget, make_sequence
from tests.support.app import Client
from tests.support.submissions import post, valid_body

# Monday 2 March 2026, 09:30 UTC = 10:30 in Amsterdam: within sending hours.
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def build(app: Flask, *, beginners: str = "switch", active: str = "switch", **extra: Any) -> None:
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, on_change=beginners, **extra)
        make_sequence("active", {"daytrading_experience": "active"}, on_change=active)
        db.session.commit()


def answers(experience: str) -> dict[str, Any]:
    return {"is_investor": "yes", "daytrading_experience": experience, "interests": ["stocks"]}


def subscribe(client: Client, experience: str = "none", *, sequences: bool = True) -> None:
    """Submit through the widget and confirm through the emailed link."""
    post(client, valid_body(answers=answers(experience), consent={"report": True, "sequences": sequences}))
    with client.application.app_context():
        raw = db.session.scalars(
            select(Delivery.raw_message)
            .where(Delivery.kind == DeliveryKind.CONFIRM)
            .order_by(Delivery.id.desc())
        ).first()
    match = re.search(r"http://127\.0\.0\.1:5000(/confirm/[\w.\-]+)", text_part(raw))
    assert match
    assert client.post(match.group(1)).status_code == 200


def text_part(raw: bytes | None) -> str:
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def answer(client: Client, experience: str) -> None:
    """A confirmed reader, back from a link in our email (its `lc` reference), answers again in the widget."""
    with client.application.test_request_context():
        subscriber = db.session.scalars(select(Subscriber.id).where(Subscriber.email == "lezer@example.com"))
        ref = mail_reference(subscriber.one())
    assert post(client, valid_body(answers=answers(experience), ref=ref)).status_code == 202


def tick(runner: FlaskCliRunner, at: datetime) -> None:
    result = runner.invoke(args=["worker", "--once", "--at", at.isoformat()])
    assert result.exit_code == 0, result.output


def enrollments(app: Flask) -> dict[str, EnrollmentState]:
    with app.app_context():
        return {e.sequence.slug: e.state for e in db.session.scalars(select(Enrollment))}
