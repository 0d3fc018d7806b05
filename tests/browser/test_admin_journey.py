"""The journey preview in real Chromium: an editor picks answers, reads the timeline, adds a what-if and sees
what it changes — all with plain forms, no script needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from leadcapture import clock
from leadcapture.extensions import db
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.browser import LiveServer, sign_in
from tests.support.admin import add_account

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]


@pytest.fixture
def content(live_server: LiveServer) -> None:
    clock.freeze(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    with live_server.app.app_context():
        make_demo_widget()
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, priority=5)
        make_sequence(
            "active",
            {"daytrading_experience": "active"},
            steps=(("01-risk.md", timedelta(minutes=10)), ("02-taxes.md", timedelta(days=2))),
        )
        db.session.commit()
    add_account(live_server.app)


@pytest.mark.usefixtures("content")
def test_an_editor_previews_a_journey_and_what_an_answer_change_does(
    page: Page, live_server: LiveServer
) -> None:
    sign_in(page, live_server, "/admin/journey")
    expect(page.get_by_role("heading", name="Journey preview", level=1)).to_be_visible()
    page.get_by_label("Question daytrading_experience? (daytrading_experience)").select_option("none")
    page.get_by_role("checkbox", name="Stocks").check()
    page.get_by_label("Time zone").select_option("Europe/Amsterdam")
    page.get_by_role("button", name="Show the journey").click()

    timeline = page.get_by_role("table", name="Timeline")
    expect(timeline).to_be_visible()
    rows = timeline.get_by_role("row")
    expect(rows.filter(has_text="beginners 01-welcome.md")).to_contain_text("Tue 03 Mar 2026, 10:30 CET")
    expect(rows.filter(has_text="beginners 02-next.md")).to_contain_text("Fri 06 Mar 2026, 10:30 CET")
    expect(page.get_by_text("2 emails in these weeks.")).to_be_visible()
    # The answers stay chosen for the next round.
    expect(page.get_by_role("checkbox", name="Stocks")).to_be_checked()

    page.get_by_label("Answer", exact=True).select_option("daytrading_experience=active")
    page.get_by_label("On day", exact=True).fill("2")
    page.get_by_role("button", name="Show the journey").click()

    compared = page.get_by_role("table", name="Both timelines in one, in time order")
    expect(compared).to_be_visible()
    expect(page.get_by_text("If daytrading_experience is answered “Active” on day 2")).to_be_visible()
    gone = compared.get_by_role("row").filter(has_text="beginners 02-next.md")
    expect(gone).to_contain_text("Gone with the change")
    new = compared.get_by_role("row").filter(has_text="active 01-risk.md")
    expect(new).to_contain_text("New with the change")
    expect(new).to_contain_text("Wed 04 Mar 2026, 10:40 CET")  # ten minutes after the answer
    same = compared.get_by_role("row").filter(has_text="beginners 01-welcome.md")
    expect(same.get_by_role("cell").last).to_have_text("Same")
    assert "/admin/journey?" in page.url  # a preview is a link an editor can share

    # A bad value is named next to its field, and the page says why nothing was shown.
    page.get_by_label("Weeks to show").fill("30")
    page.get_by_role("button", name="Show the journey").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose from 1 to 26 weeks.")
    expect(page.get_by_label("Weeks to show")).to_have_attribute("aria-invalid", "true")


@pytest.mark.usefixtures("content")
def test_the_editors_own_time_zone_comes_first(page: Page, live_server: LiveServer) -> None:
    browser = page.context.browser
    assert browser is not None
    context = browser.new_context(timezone_id="Asia/Tokyo")
    try:
        tokyo = context.new_page()
        sign_in(tokyo, live_server, "/admin/journey")
        zones = tokyo.get_by_label("Time zone").locator("option")
        expect(zones.first).to_have_attribute("value", "Asia/Tokyo")
        expect(zones.nth(1)).to_have_attribute("value", "UTC")
    finally:
        context.close()
