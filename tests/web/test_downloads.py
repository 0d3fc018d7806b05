"""A report link shows a page; its button hands out the report's file in the reader's language. The dashboard
counts a download only when a person pressed it, not a mail scanner opening the link as the email arrives."""

from __future__ import annotations

import email
import email.policy
import http.client
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.jobs import drain_outbox
from leadcapture.models import Delivery, DeliveryKind, Submission
from leadcapture.services.insights import gather_insights
from leadcapture.services.outbox import enqueue_delivery
from tests.factories import PDF_BYTES, make_confirmed_subscriber, make_demo_widget, make_report
from tests.fixtures.browser import LiveServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
DUTCH = PDF_BYTES.replace(b"test report", b"Nederlands rapport")
ENGLISH = PDF_BYTES.replace(b"test report", b"English report")
EPUB = b"PK\x03\x04 an English e-book"


def send_report(
    reader_locale: str = "nl", widget_locale: str = "nl", files: dict[str | None, bytes] | None = None
) -> str:
    """Send the report email to a confirmed reader, as the worker does; the download path it links to."""
    widget = make_demo_widget(locale=widget_locale)
    if files is not None:
        widget.report = make_report("guide", files=files)
    person, submission = make_confirmed_subscriber(widget, locale=reader_locale)
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
    match = re.search(r"https?://[^/\s]+(/download/[\w.\-]+)", body.get_content())
    assert match, body.get_content()
    return match.group(1)


@pytest.fixture
def link(app: Flask, frozen_clock: datetime) -> str:
    """The download link of a report email sent at the frozen moment, as the reader received it."""
    with app.app_context():
        return send_report()


def downloads(app: Flask) -> int:
    """The dashboard's download count for the widget."""
    with app.app_context():
        (funnel,) = gather_insights(7).funnels
        return funnel.steps[-1].count


def press(client: FlaskClient, link: str, agent: str = BROWSER) -> bytes:
    """The button on the download page."""
    response = client.post(link, headers={"User-Agent": agent})
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return response.data


# --- what the link shows and hands out ---------------------------------------------------------------------


def test_the_link_shows_a_page_whose_button_hands_out_the_file(
    app: Flask, client: FlaskClient, link: str
) -> None:
    clock.advance(timedelta(minutes=4))
    for method in ("GET", "HEAD"):
        page = client.open(link, method=method, headers={"User-Agent": BROWSER})
        assert (page.status_code, page.mimetype) == (200, "text/html")
    page = client.get(link, headers={"User-Agent": BROWSER})
    assert '<form method="post">' in page.text
    assert "Download het rapport" in page.text
    assert "daytrading-report-report.pdf" in page.text
    assert PDF_BYTES not in page.data
    assert downloads(app) == 0
    with app.app_context():
        assert db.session.scalars(select(Submission.downloaded_at)).one() is None

    assert press(client, link) == PDF_BYTES
    assert downloads(app) == 1


@pytest.mark.parametrize(
    ("reader", "widget", "files", "expected", "name", "content_type"),
    [
        ("nl", "en", {"nl": DUTCH, "en": ENGLISH}, DUTCH, "guide-nl.pdf", "application/pdf"),
        ("en", "nl", {"nl": DUTCH, "en": EPUB}, EPUB, "guide-en.epub", "application/epub+zip"),
        # No file in the reader's language: the one in the widget's, where the reader asked for it.
        ("en", "nl", {"nl": DUTCH}, DUTCH, "guide-nl.pdf", "application/pdf"),
        # Neither: the first listed.
        ("nl", "nl", {"en": EPUB}, EPUB, "guide-en.epub", "application/epub+zip"),
        ("en", "en", {None: DUTCH}, DUTCH, "guide.pdf", "application/pdf"),
    ],
)
def test_the_reader_gets_the_file_in_their_language(
    app: Flask,
    client: FlaskClient,
    reader: str,
    widget: str,
    files: dict[str | None, bytes],
    expected: bytes,
    name: str,
    content_type: str,
) -> None:
    with app.app_context():
        link = send_report(reader, widget, files)
        for file in db.session.scalars(select(Submission)).one().report.files:
            if file.data == EPUB:
                file.filename, file.content_type = "guide-en.epub", "application/epub+zip"
        db.session.commit()
    assert name in client.get(link).text
    response = client.post(link, headers={"User-Agent": BROWSER})
    assert response.data == expected
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == f"attachment; filename={name}"


# --- what counts as a download --------------------------------------------------------------------------------


def test_a_press_seconds_after_sending_is_a_scanner_and_counts_nothing(
    app: Flask, client: FlaskClient, link: str
) -> None:
    clock.advance(timedelta(seconds=3))
    assert press(client, link) == PDF_BYTES  # handed out all the same
    assert downloads(app) == 0


def test_a_press_minutes_later_counts_once(app: Flask, client: FlaskClient, link: str) -> None:
    clock.advance(timedelta(minutes=4))
    assert press(client, link) == PDF_BYTES
    assert downloads(app) == 1
    clock.advance(timedelta(days=2))
    assert press(client, link) == PDF_BYTES
    assert downloads(app) == 1
    with app.app_context():
        assert db.session.scalars(select(Submission.downloaded_at)).one() == clock.now() - timedelta(days=2)


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
    assert press(client, link, agent) == PDF_BYTES
    assert downloads(app) == 0


# --- through a real HTTP server ---------------------------------------------------------------------------------


def test_the_page_and_the_file_carry_one_date_header(live_server: LiveServer) -> None:
    """Werkzeug's server (like gunicorn) writes Date itself; one from the app would be a second."""
    with live_server.app.app_context():
        path = send_report()
    for method in ("GET", "HEAD", "POST"):
        connection = http.client.HTTPConnection(urlsplit(live_server.url).netloc, timeout=10)
        try:
            connection.request(method, path, headers={"User-Agent": BROWSER})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200, (method, body)
        assert len(response.headers.get_all("Date") or []) == 1, (method, response.headers.items())
        if method == "POST":
            assert body == PDF_BYTES
