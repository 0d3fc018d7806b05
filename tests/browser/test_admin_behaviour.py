"""Behaviour in the editor's pages, in real Chromium: the journey preview's click and read what-ifs, and the
sequence editor's interest rows and a group kept as written, on a desktop screen and a 390 px phone, with no
axe-core violations."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Sequence
from leadcapture.services import editing
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.browser import LiveServer, fits, no_axe_violations, sign_in
from tests.support.admin import add_account

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]

PHONE = {"width": 390, "height": 844}
GROUPED = {
    "daytrading_experience": ["none", "some"],
    "any_of": [{"interest": {"topic": "daytrading", "at_least": 3}}, {"is_investor": "yes"}],
}


@pytest.fixture
def content(live_server: LiveServer) -> None:
    clock.freeze(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    with live_server.app.app_context():
        make_demo_widget()
        editing.save_topic(
            {"key": "daytrading", "name": {"en": "Daytrading"}, "urls": ["https://beleggen.example/daytraden/"]}
        )
        make_sequence("beginners", {"daytrading_experience": ["none", "some"]}, priority=5)
        make_sequence(
            "hot",
            {"interest": {"topic": "daytrading", "at_least": 3}},
            steps=(("01-hot.md", timedelta(hours=2)), ("02-hot.md", timedelta(days=30))),
            priority=9,
        )
        make_sequence("grouped", GROUPED)
        db.session.commit()
    add_account(live_server.app)


def keep(page: Page, name: str) -> None:
    """A full-page screenshot under LEADCAPTURE_TEST_SCREENSHOTS, when set, to look at by eye."""
    folder = os.environ.get("LEADCAPTURE_TEST_SCREENSHOTS")
    if folder:
        page.screenshot(path=f"{folder}/{name}.png", full_page=True)


@pytest.mark.usefixtures("content")
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_an_editor_sees_clicks_take_a_reader_into_a_sequence_and_fading_interest_let_them_go(
    page: Page, live_server: LiveServer, viewport: dict[str, int] | None
) -> None:
    if viewport:
        page.set_viewport_size(viewport)
    sign_in(page, live_server, "/admin/journey")
    page.get_by_label("Question daytrading_experience? (daytrading_experience)").select_option("none")
    page.get_by_label("Time zone").select_option("Europe/Amsterdam")
    page.get_by_label("What-if 1: the reader").select_option(label="clicks daytrading links")
    page.get_by_label("What-if 1: how many").fill("4")
    page.get_by_label("What-if 1: on day").fill("2")
    page.get_by_role("button", name="Show the journey").click()

    expect(page.get_by_text("If the reader clicks 4 daytrading links on day 2")).to_be_visible()
    compared = page.get_by_role("table", name="Both timelines in one, in time order")
    rows = compared.get_by_role("row")
    expect(rows.filter(has_text="clicks a daytrading link: interest 2.00 → 3.00")).to_contain_text(
        "Wed 04 Mar 2026, 10:30 CET"
    )
    entered = rows.filter(has_text="enters: interest in daytrading changed")
    expect(entered.filter(has_text="Sequence hot")).to_contain_text("New with the change")
    expect(entered.filter(has_text="Sequence grouped")).to_contain_text("New with the change")  # any_of
    expect(rows.filter(has_text="hot 01-hot.md")).to_contain_text("Wed 04 Mar 2026, 12:30 CET")
    # 4 · ½^(13/30) < 3: on 17 March (UTC) the worker's look at fading interest lets them go.
    expect(rows.filter(has_text="interest in daytrading decays to 2.96: below 3")).to_contain_text(
        "Tue 17 Mar 2026, 01:00 CET"
    )
    expect(page.get_by_label("What-if 1: how many")).to_have_value("4")  # kept for the next round
    fits(page, "the journey with a behaviour what-if")
    no_axe_violations(page, "the journey with a behaviour what-if")
    keep(page, f"journey-behaviour-{'phone' if viewport else 'desktop'}")


@pytest.mark.usefixtures("content")
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_an_editor_sees_a_group_as_written_and_changes_an_interest_condition(
    page: Page, live_server: LiveServer, viewport: dict[str, int] | None
) -> None:
    if viewport:
        page.set_viewport_size(viewport)
    sign_in(page, live_server, "/admin/sequences/grouped")
    written = page.get_by_role("region", name="Also in the rule, as written in the file")
    expect(written).to_contain_text("any_of:")
    expect(written).to_contain_text("topic: daytrading")
    expect(page.get_by_label("Topic of interest condition 1")).to_have_value("")
    fits(page, "the sequence editor with a group")
    no_axe_violations(page, "the sequence editor with a group")
    keep(page, f"sequence-group-{'phone' if viewport else 'desktop'}")
    page.get_by_role("button", name="Save", exact=True).last.click()
    expect(page.get_by_role("status").first).to_have_text("Nothing changed.")

    page.goto(f"{live_server.url}/admin/sequences/hot")
    interest = page.get_by_role("group", name="Interest in topics")
    expect(interest.get_by_label("Topic of interest condition 1")).to_have_value("daytrading")
    interest.get_by_label("Score of interest condition 1").select_option("below")
    interest.get_by_label("Number of interest condition 1").fill("2")
    expect(page.locator("#audience-count")).to_have_text("0 subscribers match now")
    fits(page, "the sequence editor with interest rows")
    no_axe_violations(page, "the sequence editor with interest rows")
    keep(page, f"sequence-interest-{'phone' if viewport else 'desktop'}")
    page.get_by_role("button", name="Save", exact=True).last.click()
    expect(page.get_by_role("status").first).to_contain_text("updated sequence hot")
    expect(page.get_by_label("Score of interest condition 1")).to_have_value("below")
    expect(page.get_by_label("Topic of interest condition 2")).to_have_value("")
    with live_server.app.app_context():
        saved = db.session.scalars(select(Sequence).where(Sequence.slug == "hot")).one()
        assert saved.audience == {"interest": {"topic": "daytrading", "below": 2}}
        grouped = db.session.scalars(select(Sequence).where(Sequence.slug == "grouped")).one()
        assert grouped.audience == GROUPED
