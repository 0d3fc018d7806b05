"""`leadcapture demo` as a newcomer meets it: the article's publisher sends the emails, a link in them leads
back to the article where the widget knows the reader, and moving the clock brings what falls due at once."""

from __future__ import annotations

import email
import email.policy
import html
import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import Client as WsgiClient

from leadcapture import clock
from leadcapture.cli.demo import SENDER, SITE_NAME, _article_app, _prepare, demo_app
from leadcapture.extensions import db
from leadcapture.models import Delivery, DeliveryStatus
from tests.support.app import FROZEN_AT, SECRET, Client, DrainingClient
from tests.support.mail import untracked
from tests.support.submissions import form_token

BASE_URL = "http://127.0.0.1:5000"
ARTICLE = "http://127.0.0.1:5001"
SLUG = "daytrading-report"
ANSWERS = {"is_investor": "no", "daytrading_experience": "none", "investment_interests": ["stocks", "etfs"]}
ARTICLE_LINK = re.compile(re.escape(ARTICLE) + r"/\?lc=([\w.\-]+)")


@pytest.fixture
def demo(empty_url: str) -> Iterator[Flask]:
    """The demo's app on a database of its own, prepared as `leadcapture demo` prepares it; the clock stands
    on a Monday morning in Amsterdam, within the sending hours."""
    clock.freeze(FROZEN_AT)
    app = demo_app(
        BASE_URL,
        ARTICLE,
        {
            "TESTING": True,
            "WIDGET_CACHE_SECONDS": 0,
            "LEADCAPTURE_DATABASE_URL": empty_url,
            "LEADCAPTURE_SECRET_KEY": SECRET,
            "LEADCAPTURE_MAIL_URL": "outbox:",
        },
    )
    _prepare(app, article_origin=ARTICLE)
    app.test_client_class = DrainingClient  # as under `leadcapture demo`, whose worker sends at once
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def reader(demo: Flask) -> Client:
    """A reader who answered the widget on the demo article, asked for follow-up emails and confirmed."""
    client: Client = demo.test_client()  # type: ignore[assignment]
    body = {
        "email": "lezer@example.com",
        "answers": ANSWERS,
        "consent": {"report": True, "sequences": True},
        "page_url": f"{ARTICLE}/",
        "timezone": "Europe/Amsterdam",
        "form_token": form_token(SLUG),
    }
    response = client.post(f"/api/v1/widgets/{SLUG}/submissions", json=body, headers={"Origin": ARTICLE})
    assert response.status_code == 202, response.get_data(as_text=True)
    confirm = re.search(re.escape(BASE_URL) + r"(/confirm/[\w.\-]+)", text_of(inbox(demo)[-1]))
    assert confirm
    assert client.post(confirm.group(1)).status_code == 200
    return client


def inbox(app: Flask) -> list[EmailMessage]:
    """What the dev inbox holds, oldest first."""
    with app.app_context():
        raws = db.session.scalars(
            select(Delivery.raw_message)
            .where(Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.sent_at, Delivery.id)
        ).all()
    messages = []
    for raw in raws:
        message = email.message_from_bytes(raw or b"", policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def kinds(app: Flask) -> list[str]:
    return [str(message["X-Leadcapture-Kind"]) for message in inbox(app)]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return "\n".join(str(part.get_content()).splitlines())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def move_clock(client: Client, by: str) -> None:
    """Press one of the dev inbox's clock buttons, as a person does: the page's form with its CSRF token."""
    page = client.get("/dev/inbox/").get_data(as_text=True)
    assert f'value="{by}">+1 {by}</button>' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = client.post("/dev/inbox/clock", data={"by": by, "csrf_token": token.group(1)})
    assert response.status_code == 302


def definition(client: Client, ref: str | None = None) -> dict[str, Any]:
    """The widget definition as the loader on the demo article asks for it."""
    query = {"ref": ref} if ref else {}
    response = client.get(f"/api/v1/widgets/{SLUG}", query_string=query, headers={"Origin": ARTICLE})
    assert response.status_code == 200
    data: dict[str, Any] = response.get_json()
    return data


def asked(data: dict[str, Any]) -> list[str]:
    return [question["key"] for question in data["questions"]]


def test_the_article_and_its_emails_carry_the_publishers_name(demo: Flask, reader: Client) -> None:
    page = WsgiClient(_article_app(demo, BASE_URL)).get("/en").get_data(as_text=True)
    assert f'<a class="brand" href="/">{SITE_NAME}</a>' in page
    assert f"© 2026 {SITE_NAME}." in page

    reader.sends_after_each_request = False  # from here on only the demo's own worker sends
    move_clock(reader, "hour")
    messages = inbox(demo)
    assert kinds(demo) == ["confirm", "report", "sequence"]
    for message in messages:
        assert message["From"].addresses == (SENDER,)
        assert str(message["Message-ID"]).endswith("@beleggersweek.example>")
        for body in (text_of(message), html_of(message)):
            assert SITE_NAME in body
            assert "leadcapture" not in body.lower()
    text = text_of(messages[-1])
    assert f"Groet,\n{SITE_NAME}" in text  # the welcome step's signature
    assert f"Je ontvangt deze e-mail omdat je je op {SITE_NAME} aanmeldde voor vervolgmails." in text
    assert f"Verstuurd door {SITE_NAME} ({SENDER.addr_spec})." in text


def test_a_link_in_a_demo_email_brings_the_reader_back_to_the_article_known(
    demo: Flask, reader: Client
) -> None:
    report = inbox(demo)[-1]
    assert report["X-Leadcapture-Kind"] == "report"
    link = ARTICLE_LINK.search(text_of(report))
    assert link, text_of(report)
    href = re.search(r'href="(' + re.escape(ARTICLE) + r'/\?lc=[^"]+)"', html_of(report))
    assert href
    assert html.unescape(href.group(1)) == link.group(0)

    article = WsgiClient(_article_app(demo, BASE_URL)).get("/", query_string={"lc": link.group(1)})
    assert article.status_code == 200
    assert f'data-leadcapture="{SLUG}"' in article.get_data(as_text=True)

    stranger = definition(reader)
    assert asked(stranger) == ["is_investor", "daytrading_experience", "investment_interests"]
    assert "reader" not in stranger
    known = definition(reader, link.group(1))
    assert known["reader"]
    assert asked(known) == []

    reader.sends_after_each_request = False
    for _month in range(3):
        move_clock(reader, "month")
    assert asked(definition(reader, link.group(1))) == ["daytrading_experience", "investment_interests"]
    step = next(message for message in reversed(inbox(demo)) if message["X-Leadcapture-Kind"] == "sequence")
    # Through the click redirect, which leads to the article with the reference.
    assert ARTICLE_LINK.search(untracked(text_of(step), reader)), text_of(step)


def test_moving_the_demo_clock_sends_sequence_steps_and_refresh_emails_at_once(
    demo: Flask, reader: Client
) -> None:
    reader.sends_after_each_request = False  # from here on only the demo's own worker sends
    assert kinds(demo) == ["confirm", "report"]

    move_clock(reader, "hour")
    assert kinds(demo)[-1:] == ["sequence"]
    move_clock(reader, "day")
    assert kinds(demo)[-1:] == ["sequence"]
    move_clock(reader, "week")
    assert kinds(demo) == ["confirm", "report", "sequence", "sequence", "sequence"]

    move_clock(reader, "month")  # day 38: every answer is still fresh
    assert kinds(demo)[-1] == "sequence"
    move_clock(reader, "month")  # day 68: the interests, fresh for 60 days, have gone stale
    assert kinds(demo)[-1] == "refresh"
    refresh = text_of(inbox(demo)[-1])
    assert "Waar wil je meer over weten?" in refresh
    assert re.search(re.escape(BASE_URL) + r"/answer/[\w.\-]+", refresh)
