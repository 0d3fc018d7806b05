"""Subscribers in the admin, in real Chromium: an admin finds a reader, reads their answer timeline, downloads
what is held on them and erases them, typing the address to confirm."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Answer, Role, Subscriber, SubscriberStatus, Suppression
from leadcapture.services.subscribers import confirm_subscriber
from leadcapture.services.widgets import mail_reference
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.browser import LiveServer, sign_in
from tests.support.admin import ADMIN, add_account
from tests.support.submissions import post, valid_body

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]

READER = "marieke.de.vries@example.com"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def reader(live_server: LiveServer) -> None:
    """A reader who asked for the report, confirmed, and later changed an answer; and someone else."""
    app = live_server.app
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]})
        db.session.commit()
    add_account(app, ADMIN, Role.ADMIN)
    client = app.test_client()
    body = valid_body(email=READER, consent={"report": True, "sequences": True})
    assert post(client, body).status_code == 202
    assert post(client, valid_body(email="marten@example.com")).status_code == 202
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber).where(Subscriber.email == READER)).one()
        confirm_subscriber(
            make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": subscriber.submissions[0].id})
        )
        db.session.commit()
        reference = mail_reference(subscriber.id)
    clock.freeze(START + timedelta(days=5))
    body["answers"] = {**body["answers"], "daytrading_experience": "some"}
    body["ref"] = reference  # back from a link in our email, so the change counts
    assert post(client, body).status_code == 202


@pytest.mark.usefixtures("reader")
def test_an_admin_finds_a_subscriber_reads_the_timeline_and_erases_them(
    page: Page, live_server: LiveServer
) -> None:
    sign_in(page, live_server, "/admin/accounts/", ADMIN)
    expect(page.get_by_role("heading", name="Accounts", level=1)).to_be_visible()
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Subscribers").click()
    expect(page.get_by_role("heading", name="Subscribers", level=1)).to_be_visible()

    page.get_by_label("Email address contains").fill("DE.VRIES")
    page.keyboard.press("Enter")
    results = page.get_by_role("table", name="Addresses containing “de.vries”")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and one reader
    results.get_by_role("link", name=READER).click()

    expect(page.get_by_role("heading", name=READER, level=1)).to_be_visible()
    timeline = page.get_by_role("list", name="Answer history")
    entries = timeline.get_by_role("listitem")
    expect(entries).to_have_count(6)
    expect(entries.first).to_contain_text("Vraag is_investor?")
    expect(entries.first).to_contain_text("2026-03-02 09:30 UTC")
    change = entries.filter(has_text="changed from")
    expect(change).to_have_count(1)
    expect(change).to_contain_text("Vraag daytrading_experience?")
    expect(change.locator("del")).to_have_text("Nieuw (none)")  # old → new
    expect(change.locator("ins")).to_have_text("Geprobeerd (some)")
    expect(change).to_contain_text("2026-03-07 09:30 UTC")
    expect(page.get_by_role("table", name="Sequences")).to_contain_text("Sequence beginners")

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download everything held (JSON)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    document = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert document["profile"]["email"] == READER
    assert len(document["answers"]) == 6

    page.get_by_role("link", name="Erase this person…").click()
    expect(page.get_by_role("heading", name=f"Erase {READER}")).to_be_visible()
    confirm = page.get_by_label("Type the subscriber's email address to confirm")
    confirm.fill("marten@example.com")  # someone else's address is not a confirmation
    page.get_by_role("button", name="Erase permanently").click()
    expect(page.get_by_text("that is not this subscriber's address")).to_be_visible()
    expect(confirm).to_have_attribute("aria-invalid", "true")

    confirm.fill(READER)
    page.get_by_role("button", name="Erase permanently").click()
    expect(page.get_by_role("status")).to_contain_text("The subscriber was erased")
    page.get_by_label("Email address contains").fill("example.com")
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="marten@example.com")).to_be_visible()
    expect(page.get_by_role("link", name=READER)).to_have_count(0)

    with live_server.app.app_context():
        assert db.session.scalars(select(Subscriber).where(Subscriber.email == READER)).first() is None
        assert db.session.scalar(select(func.count()).select_from(Suppression)) == 1
        erased = db.session.scalars(select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ERASED))
        assert (
            db.session.scalar(
                select(func.count()).select_from(Answer).where(Answer.subscriber_id.in_(erased.all()))
            )
            == 0
        )
