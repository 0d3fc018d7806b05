"""Every admin page and the dev inbox on a 390 px phone in real Chromium: nothing wider than the screen, the
page's own controls in view, long URLs wrapped, and no axe-core violations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import Delivery, DeliveryKind, Role, Subscriber, User
from leadcapture.scheduler import run_once
from leadcapture.services.subscribers import confirm_subscriber
from leadcapture.tokens import Purpose, make_token
from tests.factories import make_demo_widget, make_sequence
from tests.fixtures.browser import LiveServer, describe, run_axe, sign_in
from tests.support.admin import ADMIN, EDITOR, add_account
from tests.support.submissions import submission

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]

PHONE = {"width": 390, "height": 844}
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)  # 10:30 in Amsterdam, within sending hours
READER = "marieke.de.vries@example.com"
# No hyphen, space or other place a browser would break a line on its own.
LONG_URL = (
    "https://beleggen.example/artikel/" + "daytradenvoorbeginnersuitgelegd" * 8 + "?utm_campaign=" + "x" * 120
)
STEP = (
    "Hallo{% if first_name %} {{ first_name }}{% endif %},\n\n"
    f"Lees verder op {LONG_URL}\n\n[Of klik hier]({LONG_URL})\n\n"
    "[Pas je antwoorden aan]({{ links.preferences }})"
)


@dataclass(frozen=True)
class Site:
    reader: int
    admin: int
    sequence_email: int


@pytest.fixture
def site(live_server: LiveServer) -> Site:
    """A widget, a sequence whose step links a long URL, a confirmed reader who came from a page with a long
    URL and has received that step, and an editor and an admin."""
    app = live_server.app
    clock.freeze(START)
    with app.app_context():
        make_demo_widget()
        make_sequence("beginners", {}, steps=[("01-welcome.md", timedelta(minutes=5))], body=STEP)
        db.session.commit()
    add_account(app, EDITOR)
    add_account(app, ADMIN, Role.ADMIN)
    client = app.test_client()
    response = client.post(
        "/api/v1/widgets/daytrading-report/submissions",
        json=submission(email=READER, page_url=LONG_URL),
        headers={"Origin": "https://beleggen.example"},
    )
    assert response.status_code == 202
    with app.app_context():
        subscriber = db.session.scalars(select(Subscriber).where(Subscriber.email == READER)).one()
        reader = subscriber.id
        confirm_subscriber(make_token(Purpose.CONFIRM, {"s": reader, "sub": subscriber.submissions[0].id}))
        db.session.commit()
    clock.freeze(START + timedelta(minutes=10))
    assert all(done is not None for done in run_once(app).values())  # queues the step
    assert all(done is not None for done in run_once(app).values())  # sends it
    with app.app_context():
        sequence_email = db.session.scalars(
            select(Delivery.id).where(Delivery.kind == DeliveryKind.SEQUENCE, Delivery.sent_at.is_not(None))
        ).one()
        admin = db.session.scalars(select(User.id).where(User.email == ADMIN)).one()
        return Site(reader=reader, admin=admin, sequence_email=sequence_email)


def assert_fits_the_phone(page: Page, where: str) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{where} scrolls sideways: {width[0]} px wide on a {width[1]} px screen"


def assert_in_view(control: Locator, where: str) -> None:
    """Visible, and not cut off at either side of the screen."""
    expect(control).to_be_visible()
    box = control.bounding_box()
    assert box is not None
    assert box["x"] >= 0, f"{where}: {control} starts off screen"
    assert box["x"] + box["width"] <= PHONE["width"], f"{where}: {control} ends off screen"


def check(page: Page, path: str, control: Locator) -> None:
    """The page, once loaded with its stylesheets, fits the phone with its heading and `control` in view, and
    axe-core finds nothing."""
    expect(control).to_be_visible()
    page.wait_for_load_state("load")
    assert_fits_the_phone(page, path)
    assert_in_view(page.get_by_role("heading", level=1), path)
    assert_in_view(control, path)
    violations = run_axe(page)
    assert not violations, f"axe-core on {path}:\n{describe(violations)}"


def test_every_admin_page_fits_a_phone(page: Page, live_server: LiveServer, site: Site) -> None:
    page.set_viewport_size(PHONE)
    page.goto(live_server.url + "/admin/login")
    check(page, "/admin/login", page.get_by_role("button", name="Sign in"))
    sign_in(page, live_server, "/admin/", ADMIN)
    role = page.get_by_role
    pages = [
        ("/admin/", role("button", name="Show")),
        ("/admin/questions/", role("link", name="New question")),
        ("/admin/questions/new", role("button", name="Save", exact=True)),
        ("/admin/questions/daytrading_experience", role("button", name="Save", exact=True)),
        ("/admin/reports/", role("link", name="New report")),
        ("/admin/reports/new", role("button", name="Save", exact=True)),
        ("/admin/reports/daytrading-report-report", role("button", name="Save", exact=True)),
        ("/admin/widgets/", role("link", name="New widget")),
        ("/admin/widgets/new", role("button", name="Save", exact=True)),
        ("/admin/widgets/daytrading-report", role("button", name="Save", exact=True)),
        ("/admin/sequences/", role("link", name="New sequence")),
        ("/admin/sequences/new", role("button", name="Create sequence")),
        ("/admin/sequences/beginners", role("button", name="Save", exact=True)),
        ("/admin/sequences/beginners/switch-off", role("button", name="Switch off Sequence beginners")),
        ("/admin/journey", role("button", name="Show the journey")),
        ("/admin/subscribers/", role("button", name="Search")),
        (f"/admin/subscribers/{site.reader}", role("link", name="Erase this person…")),
        (f"/admin/subscribers/{site.reader}/erase", role("button", name="Erase permanently")),
        ("/admin/accounts/", role("button", name="Add account")),
        (f"/admin/accounts/{site.admin}", role("button", name="Save role")),
    ]
    for path, control in pages:
        page.goto(live_server.url + path)
        check(page, path, control)

    # The pages an editor's actions lead to: a step previewed, a journey shown.
    page.goto(live_server.url + "/admin/sequences/beginners")
    page.get_by_role("button", name="Preview step 1").click()
    preview = page.get_by_role("region", name="Preview of step 1")
    check(page, "a step preview", preview.locator("pre.email-text"))
    assert_in_view(preview.get_by_text(LONG_URL[:40]).first, "a step preview")
    page.goto(live_server.url + f"/admin/journey?email={READER}&change=is_investor%3Dno&change_day=1")
    check(page, "a journey with a change", page.get_by_role("heading", name=f"Journey of {READER}"))


def test_a_long_page_address_wraps_on_the_profile(page: Page, live_server: LiveServer, site: Site) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, live_server, f"/admin/subscribers/{site.reader}", EDITOR)
    addresses = page.get_by_role("link", name=LONG_URL)
    expect(addresses.first).to_be_visible()
    for index in range(addresses.count()):
        assert_in_view(addresses.nth(index), "the profile")
    assert_fits_the_phone(page, "the profile")


# Tracked, the long link would go out as a short /l/ link: untracked, the message shows it as written.
@pytest.mark.settings(LEADCAPTURE_TRACKING="off")
def test_the_dev_inbox_and_a_message_with_a_long_link_fit_a_phone(
    page: Page, live_server: LiveServer, site: Site
) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, live_server, "/admin/", EDITOR)  # outside the demo the inbox needs an editor
    page.goto(live_server.url + "/dev/inbox/")
    subject = "beginners 01-welcome.md"
    check(page, "/dev/inbox/", page.get_by_role("link", name=subject))

    page.get_by_role("link", name=subject).click()
    expect(page).to_have_url(f"{live_server.url}/dev/inbox/{site.sequence_email}")
    check(page, "a message", page.get_by_role("link", name="raw .eml"))
    text_part = page.locator("pre")
    assert_in_view(text_part, "a message")
    links = text_part.get_by_role("link", name=LONG_URL)
    expect(links).to_have_count(2)
    for index in range(2):
        assert_in_view(links.nth(index), "a message")
    html_part = page.frame_locator("iframe").get_by_role("link", name="Of klik hier")
    expect(html_part).to_be_visible()
