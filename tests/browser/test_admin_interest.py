"""A subscriber's interest in the admin, in real Chromium: bars per topic with today's score as text, clicks
and reads on the timeline with a scanner's click taken back, the clicks per email, and no axe-core violations,
on a desktop and a phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect

from leadcapture import clock
from leadcapture.extensions import db
from tests.factories import make_demo_widget
from tests.fixtures.browser import LiveServer, describe, run_axe, sign_in
from tests.support.admin import add_account
from tests.support.app import Client
from tests.support.interest import SUBJECT, click_and_read
from tests.support.submissions import sign_up

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]

READER = "marieke.de.vries@example.com"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def reader(live_server: LiveServer) -> int:
    """A confirmed reader who followed links in a follow-up email (a scanner's burst among them) and read an
    article: daytrading scores 2 today, ETFs 1."""
    app = live_server.app
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    add_account(app)
    client: Client = app.test_client()  # type: ignore[assignment]
    subscriber_id = sign_up(client, READER)
    click_and_read(client, subscriber_id, START + timedelta(days=1))
    clock.freeze(START + timedelta(days=1, hours=6))
    return subscriber_id


def row(table: Locator, name: str) -> Locator:
    return table.get_by_role("row").filter(has=table.page.get_by_role("rowheader", name=name))


def bar_width(row: Locator) -> float:
    """How wide the row's bar is drawn, as a share of its track."""
    return float(
        row.evaluate(
            "r => r.querySelector('.bar-fill').getBoundingClientRect().width"
            " / r.querySelector('.bar-track').getBoundingClientRect().width"
        )
    )


def test_an_editor_reads_a_subscribers_interest_bars_signals_and_clicks_per_email(
    page: Page, live_server: LiveServer, reader: int
) -> None:
    sign_in(page, live_server, f"/admin/subscribers/{reader}")
    expect(page.get_by_role("heading", name=READER, level=1)).to_be_visible()

    bars = page.get_by_role("table", name="Interest per topic")
    expect(bars.get_by_role("rowheader")).to_have_text(["Daytrading daytrading", "ETFs etfs"])
    expect(row(bars, "Daytrading").get_by_role("cell")).to_have_text(["2", "30 days"])
    expect(row(bars, "ETFs").get_by_role("cell")).to_have_text(["1", "30 days"])
    assert bar_width(row(bars, "Daytrading")) == pytest.approx(1.0, abs=0.005)
    assert bar_width(row(bars, "ETFs")) == pytest.approx(0.5, abs=0.005)

    timeline = page.get_by_role("list", name="Answer history and interest")
    entries = timeline.get_by_role("listitem")
    expect(entries).to_have_count(3 + 5)  # the three answers given when signing up, then five signals
    taken_back = entries.filter(has_text="Click taken back")
    expect(taken_back).to_have_count(1)
    expect(taken_back).to_contain_text(f"a link about Daytrading in “{SUBJECT}”, judged automated (burst)")
    expect(entries.filter(has_text="Clicked a link about ETFs")).to_contain_text("2026-03-03 10:40 UTC")
    read = entries.filter(has_text="Read https://beleggen.example/daytraden/wat-is-het")
    expect(read).to_contain_text("(Daytrading)")
    expect(read.get_by_role("link", name="https://beleggen.example/daytraden/wat-is-het")).to_be_visible()

    emails = page.get_by_role("table", name="Emails")
    sequence = emails.get_by_role("row").filter(has_text=SUBJECT)
    clicks = sequence.get_by_role("cell").last
    expect(clicks).to_contain_text("2 by people")
    expect(clicks).to_contain_text("2 judged automated")
    expect(clicks).to_contain_text("(burst 2)")
    expect(clicks.get_by_title("burst: several links of the email within two seconds")).to_be_visible()
    assert run_axe(page) == [], describe(run_axe(page))

    page.set_viewport_size({"width": 390, "height": 844})
    expect(bars).to_be_visible()
    assert bar_width(row(bars, "ETFs")) == pytest.approx(0.5, abs=0.005)
    assert run_axe(page) == [], describe(run_axe(page))


@pytest.mark.usefixtures("reader")
def test_the_dashboard_counts_the_same_clicks_and_read_per_topic(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, "/admin/?period=7")
    topics = page.get_by_role("table", name="Clicks and reads per topic, last 7 days")
    expect(row(topics, "Daytrading").get_by_role("cell")).to_have_text(["1", "1", "1", "2 (burst 2)"])
    expect(row(topics, "ETFs").get_by_role("cell")).to_have_text(["1", "0", "1", "0"])
    assert bar_width(row(topics, "Daytrading")) == pytest.approx(1.0, abs=0.005)
    assert run_axe(page) == [], describe(run_axe(page))
