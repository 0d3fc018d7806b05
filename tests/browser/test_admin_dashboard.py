"""The dashboard in real Chromium: a page on the publisher's site shows the widget, and an editor sees that
impression, the funnels and the answers drawn as bars, and switches the period."""

from __future__ import annotations

import pytest
from playwright.sync_api import Locator, Page, expect

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.i18n import translate
from tests.fixtures.browser import DEMO_SLUG, HostPage, LiveServer, describe, run_axe, sign_in
from tests.support.admin import add_account
from tests.support.insights import NOW, build_answers, build_funnels

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]


@pytest.fixture
def history(live_server: LiveServer) -> None:
    clock.freeze(NOW)
    with live_server.app.app_context():
        build_funnels()
        build_answers()
        db.session.commit()
    add_account(live_server.app)


def chart(page: Page, heading: str) -> Locator:
    return page.get_by_role("region", name=heading, exact=True).get_by_role("table")


def row(table: Locator, name: str) -> Locator:
    return table.get_by_role("row").filter(has=table.page.get_by_role("rowheader", name=name, exact=True))


def bar_width(row: Locator) -> float:
    """How wide the row's bar is drawn, as a share of its track."""
    return float(
        row.evaluate(
            "r => r.querySelector('.bar-fill').getBoundingClientRect().width"
            " / r.querySelector('.bar-track').getBoundingClientRect().width"
        )
    )


@pytest.mark.usefixtures("history")
def test_an_editor_reads_the_funnels_and_answers_and_changes_the_period(
    page: Page, host_page: HostPage, live_server: LiveServer
) -> None:
    page.goto(host_page.url())  # the publisher's article shows the widget: one impression today
    expect(
        page.locator("[data-leadcapture]").get_by_role("button", name=translate("nl", "widget.start"))
    ).to_be_visible()

    sign_in(page, live_server, "/admin/")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    demo = chart(page, DEMO_SLUG)
    expect(row(demo, "Impressions")).to_contain_text("1")
    alpha = chart(page, "alpha")
    expect(alpha.get_by_role("rowheader")).to_have_text(
        ["Impressions", "Submissions", "Confirmations", "Downloads"]
    )
    expect(row(alpha, "Impressions").get_by_role("cell")).to_have_text(["115", "\N{EN DASH}"])
    expect(row(alpha, "Submissions").get_by_role("cell")).to_have_text(["4", "3.5%"])
    expect(row(alpha, "Downloads").get_by_role("cell")).to_have_text(["2", "66.7%"])
    assert bar_width(row(alpha, "Impressions")) == pytest.approx(1.0, abs=0.005)
    assert bar_width(row(alpha, "Submissions")) == pytest.approx(4 / 115, abs=0.005)

    interests = chart(page, "Question interests?")
    expect(row(interests, "Crypto").get_by_role("cell")).to_have_text(["2", "66.7%"])
    assert bar_width(row(interests, "Crypto")) == pytest.approx(2 / 3, abs=0.005)
    assert bar_width(row(interests, "ETFs")) == 0
    expect(row(chart(page, "Question experience?"), "Veteran retired")).to_be_visible()

    page.get_by_label("Period").select_option(label="Last 7 days")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(live_server.url + "/admin/?period=7")
    alpha = chart(page, "alpha")
    expect(row(alpha, "Impressions").get_by_role("cell")).to_have_text(["15", "\N{EN DASH}"])
    expect(row(alpha, "Submissions").get_by_role("cell")).to_have_text(["3", "20.0%"])
    assert bar_width(row(alpha, "Submissions")) == pytest.approx(3 / 15, abs=0.005)
    expect(page.get_by_label("Period")).to_have_value("7")
    assert run_axe(page) == [], describe(run_axe(page))


@pytest.mark.usefixtures("history")
def test_an_editor_previewing_a_widget_adds_no_impression(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, "/admin/")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    with page.expect_response(lambda response: "/api/v1/widgets/alpha" in response.url) as fetched:
        page.goto(live_server.url + "/admin/widgets/alpha")
    assert fetched.value.status == 200
    expect(
        page.locator("[data-leadcapture]").get_by_role("button", name=translate("nl", "widget.start"))
    ).to_be_visible()
    page.goto(live_server.url + "/admin/?period=7")
    expect(row(chart(page, "alpha"), "Impressions").get_by_role("cell")).to_have_text(["15", "\N{EN DASH}"])
