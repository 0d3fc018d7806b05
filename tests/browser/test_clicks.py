"""Clicks in Chromium: a person following the links of a sequence email through the real redirect moves into
the sequence for the keen on the third daytrading click; a scanner fetching every link at once moves nothing."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from leadcapture import clock, jobs
from leadcapture.extensions import db
from leadcapture.models import (
    Click,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    Sequence,
    Topic,
    Widget,
)
from leadcapture.services.sequences import switch_sequences
from tests.factories import make_confirmed_subscriber, make_sequence
from tests.fixtures.browser import DEMO_SLUG, HostPage

pytestmark = pytest.mark.browser

START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # 10:30 in Amsterdam: within sending hours
ARTICLES = ("wat-is-het", "risico", "kosten")


def prepare(host: HostPage) -> str:
    """Daytrading articles on the publisher's site, a sequence email linking to them, one for the keen, and
    a confirmed subscriber whose email has been sent; the email's HTML part."""
    clock.freeze(START)
    for slug in ARTICLES:
        host.serve(f"/daytraden/{slug}", f"<!DOCTYPE html><title>{slug}</title><h1>{slug}</h1>")
    links = "\n".join(f"- [{slug}]({host.origin}/daytraden/{slug})" for slug in ARTICLES)
    app = host.live.app
    with app.app_context():
        db.session.add(
            Topic(
                key="daytrading",
                name={"nl": "Daytraden"},
                urls=[f"{host.origin}/daytraden/"],
                half_life_days=30,
                created_at=START,
                updated_at=START,
            )
        )
        make_sequence("news", {}, steps=[("01.md", timedelta(minutes=30))],
                      body=f"Lees verder:\n\n{links}\n\n[Voorkeuren]({{{{ links.preferences }}}})")  # fmt: skip
        make_sequence("keen", {"interest": {"topic": "daytrading", "at_least": 3}})
        person, _ = make_confirmed_subscriber(
            db.session.scalars(select(Widget).where(Widget.slug == DEMO_SLUG)).one(),
            timezone="Europe/Amsterdam",
            marketing_consent=True,
        )
        switch_sequences(person, reason="test")
        db.session.commit()
    clock.freeze(START + timedelta(hours=1))
    with app.app_context():
        jobs.enqueue_due_steps()
        jobs.drain_outbox()
        raw = db.session.scalars(
            select(Delivery.raw_message).where(
                Delivery.kind == DeliveryKind.SEQUENCE, Delivery.status == DeliveryStatus.SENT
            )
        ).one()
    message = email.message_from_bytes(raw or b"", policy=email.policy.default)
    html = message.get_body(("html",))
    assert html is not None
    return str(html.get_content())


def keen(host: HostPage) -> bool:
    with host.live.app.app_context():
        db.session.rollback()
        return (
            db.session.scalar(
                select(Enrollment.id).join(Sequence).where(Sequence.slug == "keen")
            )
            is not None
        )


def test_the_third_daytrading_click_in_chromium_enters_the_keen_sequence_and_a_scanner_burst_moves_nothing(
    page: Page, host_page: HostPage
) -> None:
    html = prepare(host_page)
    tracked = re.findall(r'href="(http://127\.0\.0\.1:\d+/l/[\w.\-]+)"', html)
    assert len(tracked) == 4  # three articles and the link no person sees

    # A secure email gateway fetches every link of the email at once, with a browser's user agent.
    clock.freeze(START + timedelta(hours=2))
    for url in tracked:
        assert page.request.get(url, max_redirects=0).status == 302
    assert not keen(host_page)
    with host_page.live.app.app_context():
        assert all(db.session.scalars(select(Click.automated)))

    # Later the person opens the email and follows its links one by one.
    page.set_content(html)
    for number, slug in enumerate(ARTICLES, start=1):
        clock.freeze(START + timedelta(hours=3, minutes=number))
        page.set_content(html)
        page.get_by_role("link", name=slug).click()
        expect(page).to_have_url(re.compile(rf"/daytraden/{slug}(\?lc=[\w.\-]+)?$"))
        expect(page.get_by_role("heading", name=slug)).to_be_visible()
        # Moved by the request that recorded the third click, before the browser got where it leads.
        assert keen(host_page) is (number == 3), number
    with host_page.live.app.app_context():
        reasons = list(db.session.scalars(select(Click.automated).order_by(Click.id)))
    assert reasons[-3:] == [None, None, None]
