"""A report link serves the file to whoever asks; the dashboard counts a download only when a person fetched it,
not a mail scanner opening the link as the email arrives."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.jobs import drain_outbox
from leadcapture.models import Delivery, DeliveryKind, Submission, Subscriber, SubscriberStatus
from leadcapture.services.insights import gather_insights
from leadcapture.services.outbox import enqueue_delivery
from tests.factories import PDF_BYTES, make_demo_widget

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture
def link(app: Flask, frozen_clock: datetime) -> str:
    """The download link of a report email sent at the frozen moment, as the reader received it."""
    with app.app_context():
        widget = make_demo_widget()
        now = clock.now()
        person = Subscriber(
            email="lezer@example.com",
            status=SubscriberStatus.CONFIRMED,
            locale="nl",
            created_at=now,
            confirmed_at=now,
            status_changed_at=now,
            timezone=None,
        )
        submission = Submission(
            subscriber=person,
            widget=widget,
            report=widget.report,
            marketing_consent=False,
            created_at=now,
            confirmed_at=now,
        )
        db.session.add_all([person, submission])
        db.session.flush()
        enqueue_delivery(
            person.id,
            person.email,
            DeliveryKind.REPORT,
            f"report:submission:{submission.id}",
            {"submission_id": submission.id},
        )
        db.session.commit()
        drain_outbox()
        raw = db.session.scalars(select(Delivery.raw_message)).one() or b""
    body = email.message_from_bytes(raw, policy=email.policy.default).get_body(("plain",))
    assert isinstance(body, EmailMessage)
    match = re.search(r"http://127\.0\.0\.1:5000(/download/[\w.\-]+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def downloads(app: Flask) -> int:
    """The dashboard's download count for the widget."""
    with app.app_context():
        (funnel,) = gather_insights(7).funnels
        return funnel.steps[-1].count


def fetch(client: FlaskClient, link: str, method: str = "GET", agent: str = BROWSER) -> bytes:
    response = client.open(link, method=method, headers={"User-Agent": agent})
    assert response.status_code == 200
    return response.data


def test_a_fetch_seconds_after_sending_is_a_scanner_and_counts_nothing(
    app: Flask, client: FlaskClient, link: str
) -> None:
    clock.advance(timedelta(seconds=3))
    assert fetch(client, link) == PDF_BYTES  # served all the same
    assert downloads(app) == 0


def test_a_fetch_minutes_later_counts_once(app: Flask, client: FlaskClient, link: str) -> None:
    clock.advance(timedelta(minutes=4))
    assert fetch(client, link) == PDF_BYTES
    assert downloads(app) == 1
    clock.advance(timedelta(days=2))
    assert fetch(client, link) == PDF_BYTES
    assert downloads(app) == 1
    with app.app_context():
        assert db.session.scalars(select(Submission.downloaded_at)).one() == clock.now() - timedelta(days=2)


def test_a_head_counts_nothing(app: Flask, client: FlaskClient, link: str) -> None:
    clock.advance(timedelta(minutes=4))
    assert fetch(client, link, "HEAD") == b""
    assert downloads(app) == 0


@pytest.mark.parametrize(
    "agent",
    [
        "",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "python-requests/2.32.3",
        "curl/8.5.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
        "Barracuda Sentinel (EE)",
    ],
)
def test_a_known_scanner_counts_nothing_whenever_it_comes(
    app: Flask, client: FlaskClient, link: str, agent: str
) -> None:
    clock.advance(timedelta(hours=1))
    assert fetch(client, link, agent=agent) == PDF_BYTES
    assert downloads(app) == 0
