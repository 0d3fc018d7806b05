"""Submitting through the widget API as the widget does, and counting what a submission wrote."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Answer, ConsentEvent, Delivery, Enrollment, Submission, Subscriber
from leadcapture.tokens import Purpose, TokenService, make_token
from tests.support.app import SECRET, Client

ORIGIN = "https://beleggen.example"
SLUG = "daytrading-report"
URL = f"/api/v1/widgets/{SLUG}/submissions"


def form_token(slug: str = SLUG, *, age: timedelta = timedelta(minutes=1)) -> str:
    """The token a widget definition issued `age` ago, as a person's browser would send it back."""
    issued = clock.now() - age
    return TokenService([SECRET]).make(Purpose.FORM, {"w": slug, "t": issued.timestamp()})


def submission(**overrides: Any) -> dict[str, Any]:
    """A complete submission for the demo widget (tests.factories.make_demo_widget)."""
    body: dict[str, Any] = {
        "email": "lezer@example.com",
        "answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]},
        "consent": {"report": True, "sequences": True},
        "page_url": "https://beleggen.example/artikel/daytraden",
        "timezone": "Europe/Amsterdam",
        "form_token": form_token(),
    }
    body.update(overrides)
    return body


def submit(client: FlaskClient, body: Any = None, *, raw: str | None = None) -> Any:
    """POST a submission from the widget's allowed origin: a JSON body, or `raw` text sent as JSON."""
    headers = {"Origin": ORIGIN}
    if raw is not None:
        return client.post(URL, data=raw, content_type="application/json", headers=headers)
    return client.post(URL, json=submission() if body is None else body, headers=headers)


def rows(app: Flask) -> dict[str, int]:
    """How many rows a submission can write, per table."""
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Subscriber, Answer, ConsentEvent, Submission, Delivery, Enrollment)
        }


def valid_body(**overrides: Any) -> dict[str, Any]:
    """A complete submission for the demo widget that asks for the report only, no follow-up emails."""
    body: dict[str, Any] = {
        "email": "Lezer@Example.com",
        "answers": {"is_investor": "yes", "daytrading_experience": "none", "interests": ["crypto", "stocks"]},
        "consent": {"report": True, "sequences": False},
        "page_url": "https://beleggen.example/artikel/daytraden#reacties",
        "timezone": "Europe/Amsterdam",
        "form_token": form_token(),
    }
    body.update(overrides)
    return body


def post(client: FlaskClient, body: Any, *, origin: str | None = ORIGIN, **kwargs: Any) -> Any:
    """POST a submission; a body without a form token gets one, as the widget always sends it."""
    headers = {"Origin": origin} if origin else {}
    if "data" in kwargs:
        return client.post(URL, headers=headers, **kwargs)
    if isinstance(body, dict) and "form_token" not in body:
        body = {**body, "form_token": form_token()}
    return client.post(URL, json=body, headers=headers, **kwargs)


def counts(app: Flask) -> dict[str, int]:
    """How many rows a submission can write, per table, enrolments aside."""
    with app.app_context():
        return {
            model.__name__: db.session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Subscriber, Answer, ConsentEvent, Submission, Delivery)
        }


NOTHING = {"Subscriber": 0, "Answer": 0, "ConsentEvent": 0, "Submission": 0, "Delivery": 0}


def sign_up(client: Client, address: str) -> int:
    """Submit through the widget with follow-up consent, then press the confirm link's button."""
    body = valid_body(
        email=address,
        answers={"is_investor": "yes", "daytrading_experience": "none", "interests": ["stocks"]},
        consent={"report": True, "sequences": True},
    )
    assert post(client, body).status_code == 202
    with client.application.app_context():
        subscriber = db.session.scalars(select(Subscriber).order_by(Subscriber.id.desc())).first()
        assert subscriber is not None
        token = make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": subscriber.submissions[-1].id})
        subscriber_id = subscriber.id
    assert client.post(f"/confirm/{token}").status_code == 200
    return subscriber_id
