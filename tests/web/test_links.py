"""The links in emails: confirm and download. A GET shows; only a POST changes anything."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    ConsentKind,
    DeliveryKind,
    Subscriber,
    SubscriberStatus,
)
from tests.factories import PDF_BYTES, make_report, make_widget
from tests.support.mail import link_in, sent
from tests.support.submissions import post, valid_body

# What these tests check is the mail a running worker sends after each request.
pytestmark = pytest.mark.drains_outbox


def subscriber(app: Flask) -> Subscriber:
    with app.app_context():
        row = db.session.scalars(select(Subscriber)).one()
        db.session.expunge(row)
        return row


@pytest.mark.usefixtures("widget")
class TestConfirm:
    def test_get_shows_a_button_and_changes_nothing(self, app: Flask, client: FlaskClient) -> None:
        post(client, valid_body())
        confirm = link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm")
        for _ in range(3):  # mail scanners open every link, sometimes more than once
            page = client.get(confirm)
            assert page.status_code == 200
            assert b'<form method="post">' in page.data
            assert b"Bevestig mijn adres" in page.data
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert subscriber(app).status is SubscriberStatus.PENDING
        assert sent(app, DeliveryKind.REPORT) == []

    def test_post_confirms_once_and_sends_the_report(self, app: Flask, client: FlaskClient) -> None:
        post(client, valid_body(consent={"report": True, "sequences": True}))
        confirm = link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm")
        for _ in range(2):
            response = client.post(confirm)
            assert response.status_code == 200
            assert b"Bedankt, je adres is bevestigd" in response.data
        person = subscriber(app)
        assert person.status is SubscriberStatus.CONFIRMED
        assert person.marketing_consent
        (report_mail,) = sent(app, DeliveryKind.REPORT)
        assert report_mail["To"] == "lezer@example.com"
        with app.app_context():
            kinds = [e.kind for e in db.session.get_one(Subscriber, person.id).consent_events]
        assert kinds == [ConsentKind.REQUEST, ConsentKind.CONFIRM]

    def test_without_follow_up_consent_confirming_does_not_opt_in(
        self, app: Flask, client: FlaskClient
    ) -> None:
        post(client, valid_body())
        client.post(link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm"))
        assert not subscriber(app).marketing_consent

    def test_tampered_token_shows_a_friendly_page_and_changes_nothing(
        self, app: Flask, client: FlaskClient
    ) -> None:
        post(client, valid_body())
        confirm = link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm")
        for bad in (confirm[:-3] + "abc", "/confirm/nonsense", "/confirm/" + "x" * 5000, confirm + "%00"):
            response = client.post(bad)
            assert response.status_code in (400, 404)
        assert subscriber(app).status is SubscriberStatus.PENDING

    def test_a_download_token_does_not_confirm(self, app: Flask, client: FlaskClient) -> None:
        post(client, valid_body())
        with app.app_context():
            db.session.scalars(select(Subscriber)).one().status = SubscriberStatus.CONFIRMED
            db.session.commit()
        post(client, valid_body())
        download = link_in(sent(app, DeliveryKind.REPORT)[0], "download")
        assert client.post(download.replace("/download/", "/confirm/")).status_code == 400

    def test_expired_token_shows_a_page_and_changes_nothing(
        self, app: Flask, client: FlaskClient, frozen_clock: object
    ) -> None:
        post(client, valid_body())
        confirm = link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm")
        clock.advance(timedelta(days=15))
        response = client.post(confirm)
        assert response.status_code == 410
        assert subscriber(app).status is SubscriberStatus.PENDING


@pytest.mark.usefixtures("widget")
class TestDownload:
    def confirmed_download(self, app: Flask, client: FlaskClient) -> str:
        post(client, valid_body())
        client.post(link_in(sent(app, DeliveryKind.CONFIRM)[0], "confirm"))
        return link_in(sent(app, DeliveryKind.REPORT)[-1], "download")

    def test_shows_a_page_whose_button_serves_the_file_as_an_attachment(
        self, app: Flask, client: FlaskClient
    ) -> None:
        download = self.confirmed_download(app, client)
        page = client.get(download)
        assert (page.status_code, page.mimetype) == (200, "text/html")
        assert b'<form method="post">' in page.data
        response = client.post(download)
        assert response.status_code == 200
        assert response.data == PDF_BYTES
        assert response.mimetype == "application/pdf"
        assert response.headers["Content-Disposition"].startswith("attachment;")

    def test_token_for_one_report_cannot_fetch_another(self, app: Flask, client: FlaskClient) -> None:
        download = self.confirmed_download(app, client)
        with app.app_context():
            other = make_widget("other", report=make_report("other-report", b"%PDF-1.4 secret"))
            db.session.commit()
            other_report_id = other.report_id
        token = download.removeprefix("/download/")
        with app.app_context():
            from leadcapture.tokens import Purpose, make_token, read_token

            payload = read_token(Purpose.DOWNLOAD, token)
            forged = make_token(Purpose.DOWNLOAD, {**payload, "r": other_report_id})
        for method in ("GET", "POST"):
            response = client.open("/download/" + forged, method=method)
            assert response.status_code == 400
            assert b"secret" not in response.data
            tampered = client.open(download[:-2] + "xx", method=method)
            assert tampered.status_code == 400

    def test_expired_link_offers_a_fresh_one(
        self, app: Flask, client: FlaskClient, frozen_clock: object
    ) -> None:
        download = self.confirmed_download(app, client)
        clock.advance(timedelta(days=31))
        page = client.get(download)
        assert page.status_code == 410
        assert b'<form method="post">' in page.data
        assert len(sent(app, DeliveryKind.REPORT)) == 1  # the GET sent nothing
        for _ in range(2):  # one fresh link a day, however often the button is pressed
            assert client.post(download).status_code == 200
        fresh = sent(app, DeliveryKind.REPORT)
        assert len(fresh) == 2
        new_link = link_in(fresh[-1], "download")
        assert client.post(new_link).data == PDF_BYTES


def footer(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return "\n".join(str(body.get_content()).splitlines()).split("\n-- \n", 1)[1]


@pytest.mark.usefixtures("widget")
def test_the_footer_links_to_the_app_when_no_site_of_its_own_is_configured(
    app: Flask, client: FlaskClient
) -> None:
    post(client, valid_body())
    assert "http://127.0.0.1:5000" in footer(sent(app, DeliveryKind.CONFIRM)[0]).splitlines()


@pytest.mark.usefixtures("widget")
@pytest.mark.settings(LEADCAPTURE_SITE_URL="https://beleggen.example/")
def test_the_footer_links_to_the_publishers_site_with_the_readers_reference(
    app: Flask, client: FlaskClient
) -> None:
    post(client, valid_body())
    confirmation = sent(app, DeliveryKind.CONFIRM)[0]
    assert client.post(link_in(confirmation, "confirm")).status_code == 200
    report = footer(sent(app, DeliveryKind.REPORT)[0])
    link = re.search(r"^https://beleggen\.example/\?lc=([\w.\-]+)$", report, re.MULTILINE)
    assert link

    definition = client.get(
        "/api/v1/widgets/daytrading-report",
        query_string={"ref": link.group(1)},
        headers={"Origin": "https://beleggen.example"},
    )
    assert definition.get_json()["reader"]
    assert definition.get_json()["questions"] == []
