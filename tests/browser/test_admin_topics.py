"""The topic pages in real Chromium: an editor fixes a bad URL rule shown at its line and saves, looks up a
URL's topic, on a desktop screen and a 390 px phone, with no axe-core violations."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.services.content import load_content
from tests.fixtures.browser import LiveServer, fits, no_axe_violations, sign_in
from tests.support.admin import add_account

pytestmark = [pytest.mark.browser, pytest.mark.settings(WTF_CSRF_ENABLED=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo(live_server: LiveServer) -> None:
    with live_server.app.app_context():
        load_content(read_content(BUNDLED_CONTENT_DIR))
        db.session.commit()
    add_account(live_server.app)


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("viewport", [None, PHONE], ids=["desktop", "phone"])
def test_an_editor_fixes_a_rule_and_looks_up_a_url(
    page: Page, live_server: LiveServer, viewport: dict[str, int] | None
) -> None:
    if viewport:
        page.set_viewport_size(viewport)
    sign_in(page, live_server, "/admin/topics/")
    expect(page.get_by_role("navigation", name="Admin").get_by_role("link", name="Topics")).to_have_attribute(
        "aria-current", "page"
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("Topics")
    fits(page, "the topic list")
    no_axe_violations(page, "the topic list")

    page.get_by_label("URL of a page or link").fill("https://beleggen.example/etf-gids-2026/kosten?lc=x")
    page.get_by_role("button", name="Look it up").click()
    expect(page.get_by_role("status")).to_contain_text("falls under topic etfs")

    page.get_by_role("link", name="etfs").first.click()
    rules = page.get_by_label("URL rules")
    rules.fill("https://beleggen.example/etfs/\nbeleggen.example/trackers/")
    page.get_by_label("Half-life (days)").fill("45")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(rules).to_have_accessible_description(
        "One rule per line: a URL that covers itself and every page below it, e.g. "
        "https://beleggen.example/daytraden/. A * stands for any text within one part of the host name or one "
        "path segment, e.g. https://*.beleggen.example/*/daytraden/. 1 to 100 rules. "
        "Line 2: 'beleggen.example/trackers/' must be a URL starting with https:// or http:// "
        "(e.g. https://beleggen.example/daytraden/)."
    )
    expect(rules).to_have_attribute("aria-invalid", "true")
    fits(page, "the topic page with a problem")
    no_axe_violations(page, "the topic page with a problem")

    rules.fill("https://beleggen.example/etfs/\nhttps://beleggen.example/trackers/")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("status").first).to_have_text("updated topic etfs (urls, half_life_days)")
    expect(rules).to_have_value("https://beleggen.example/etfs/\nhttps://beleggen.example/trackers/")
    expect(page.get_by_label("Half-life (days)")).to_have_value("45")
    fits(page, "the topic page")
    no_axe_violations(page, "the topic page")
