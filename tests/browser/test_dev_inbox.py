"""The dev inbox in real Chromium: new email appears while the page is open, without reloading it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from leadcapture.extensions import db
from tests.factories import make_demo_widget
from tests.fixtures.browser import LiveServer, describe, run_axe, sign_in
from tests.support.admin import add_account
from tests.support.submissions import submission, submit

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]


@pytest.mark.drains_outbox
def test_new_email_shows_up_in_the_open_inbox_and_is_announced(page: Page, live_server: LiveServer) -> None:
    with live_server.app.app_context():
        make_demo_widget()
        db.session.commit()
    add_account(live_server.app)
    sign_in(page, live_server, "/admin/")  # outside the demo the inbox needs an editor
    page.goto(live_server.url + "/dev/inbox/")
    expect(page.get_by_text("Nothing sent yet.")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_role("link", name="check again").focus()

    assert submit(live_server.app.test_client(), submission()).status_code == 202  # sends the confirmation

    inbox = page.get_by_role("region", name="Sent emails")
    # The page looks again every 5 seconds; until then it still shows its "nothing sent yet" row.
    expect(inbox.get_by_role("cell", name="lezer@example.com")).to_be_visible(timeout=15_000)
    expect(inbox.get_by_role("row")).to_have_count(2)  # the header and the new email
    expect(page.get_by_role("status")).to_have_text("1 new email")
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.get_by_role("link", name="check again")).to_be_focused()
    violations = run_axe(page)
    assert not violations, describe(violations)
