"""The demo as a newcomer meets it, on a 390 px phone: `leadcapture demo` started as the README says, then the
whole journey a reader and an editor take through it, with the widget's look held to reviewed references."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.fixtures.browser import no_axe_violations
from tests.support.network import free_port
from tests.support.screenshots import check_against_reference

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
READER = "lezer@beleggersweek.example"
STARTED = "Press Ctrl-C to stop."


@dataclass
class Demo:
    app_url: str
    article_url: str
    editor: str
    password: str


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """`leadcapture demo` in its own process, on free ports, with its SQLite file in a temporary folder."""
    port, article_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADCAPTURE_")}
    env["LEADCAPTURE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'demo.sqlite'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leadcapture.cli",
            "demo",
            "--port",
            str(port),
            "--article-port",
            str(article_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while STARTED not in "".join(printed):
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the demo did not start:\n" + "".join(printed))
        printed.append(line)
    output = "".join(printed)
    admin = re.search(r"admin:\s+(\S+)\s+(\S+@\S+) / (\S+)", output)
    article = re.search(r"demo article \(another origin\):\s+(\S+)", output)
    assert admin, output
    assert article, output
    try:
        yield Demo(
            app_url=f"http://127.0.0.1:{port}",
            article_url=article.group(1),
            editor=admin.group(2),
            password=admin.group(3),
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=1, locale="nl-NL", reduced_motion="reduce"
    )
    page = context.new_page()
    yield page
    context.close()


def open_mail(page: Page, demo: Demo, kind: str) -> None:
    """Open the newest message of this kind in the dev inbox, waiting for the demo's worker to send it."""
    page.goto(f"{demo.app_url}/dev/inbox/")
    link = (
        page.locator("tr", has=page.locator("td", has_text=re.compile(f"^{kind}$"))).get_by_role("link").first
    )
    deadline = time.monotonic() + 30
    while not link.count():
        assert time.monotonic() < deadline, f"no {kind} message in the dev inbox"
        page.wait_for_timeout(500)
        page.goto(f"{demo.app_url}/dev/inbox/")
    link.click()


def text_link(page: Page, path: str) -> str:
    """The first link in the message's text part whose path starts with `path`."""
    text = page.locator("pre").first.inner_text()
    match = re.search(r"https?://\S*" + re.escape(path) + r"\S+", text)
    assert match, f"no {path} link in:\n{text}"
    return match.group(0)


def follow_text_link(page: Page, path: str) -> None:
    page.goto(text_link(page, path))


def test_the_demo_journey_on_a_phone(demo: Demo, phone: Page) -> None:
    page = phone
    shots: list[str] = []

    def snap(widget: Locator, name: str) -> None:
        page.wait_for_timeout(150)
        check_against_reference(widget.screenshot(animations="disabled", caret="hide"), name, shots)

    # The reader: the article, the widget's every state.
    page.goto(demo.article_url)
    widget = page.locator("[data-leadcapture]")
    expect(widget.get_by_role("button", name="Ja, stuur mij het rapport")).to_be_visible()
    widget.scroll_into_view_if_needed()
    snap(widget, "widget-intro")
    no_axe_violations(page, "the demo article")
    widget.get_by_role("button", name="Ja, stuur mij het rapport").click()

    widget.get_by_role("button", name="Volgende").click()
    expect(widget.get_by_text("Kies een antwoord.")).to_be_visible()
    snap(widget, "widget-question-error")
    widget.get_by_role("radio").first.check()
    expect(widget.get_by_text("Kies een antwoord.")).to_be_hidden()
    snap(widget, "widget-question-answered")
    widget.get_by_role("button", name="Volgende").click()
    while widget.get_by_role("button", name="Volgende").is_visible():
        choice = widget.get_by_role("radio")
        (choice if choice.count() else widget.get_by_role("checkbox")).first.check()
        widget.get_by_role("button", name="Volgende").click()

    widget.get_by_role("button", name="Stuur mij het rapport").click()
    snap(widget, "widget-email-errors")
    widget.get_by_role("textbox", name="Je e-mailadres").fill(READER)
    widget.get_by_role("checkbox", name=re.compile("Mail mij het rapport")).check()
    widget.get_by_role("checkbox", name=re.compile("vervolgmails|e-mails")).check()
    snap(widget, "widget-email-filled")
    no_axe_violations(page, "the widget's last step")
    widget.get_by_role("button", name="Stuur mij het rapport").click()
    expect(widget.get_by_text(re.compile("Bijna klaar"))).to_be_visible()
    snap(widget, "widget-sent")

    # Back on the article in the same browser: nothing left to ask, the address named, "Niet jij?" offered.
    page.reload()
    expect(widget.get_by_role("button", name="Naar het rapport")).to_be_visible()
    snap(widget, "widget-returning-intro")
    widget.get_by_role("button", name="Naar het rapport").click()
    expect(widget.get_by_role("button", name="Niet jij?")).to_be_visible()
    expect(widget.get_by_text("l•••r@beleggersweek.example")).to_be_visible()
    snap(widget, "widget-returning-last-step")
    no_axe_violations(page, "the widget for a returning reader")

    # The inbox, the confirmation, the report.
    open_mail(page, demo, "confirm")
    no_axe_violations(page, "a message in the dev inbox")
    follow_text_link(page, "/confirm/")
    no_axe_violations(page, "the confirmation page")
    page.get_by_role("button").first.click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    no_axe_violations(page, "the page after confirming")

    open_mail(page, demo, "report")
    follow_text_link(page, "/download/")
    no_axe_violations(page, "the download page")
    with page.expect_download() as download:
        page.get_by_role("button").first.click()
    assert download.value.suggested_filename == "daytraden-gids.pdf"  # the Dutch reader gets the Dutch file

    # The demo clock brings the first follow-up email (by the hour, as at night it waits for the morning);
    # the preference page is linked from it.
    page.goto(f"{demo.app_url}/dev/inbox/")
    for _hour in range(24):
        if page.locator("td", has_text=re.compile("^sequence$")).count():
            break
        page.get_by_role("button", name="+1 hour").click()
    open_mail(page, demo, "sequence")
    follow_text_link(page, "/preferences/")
    no_axe_violations(page, "the preference page")
    expect(page.get_by_role("heading", level=1)).to_be_visible()

    # The editor: a wrong password is an alert, the right one signs in.
    page.goto(f"{demo.app_url}/admin/")
    page.get_by_label(re.compile("Email", re.IGNORECASE)).fill(demo.editor)
    page.get_by_label(re.compile("Password", re.IGNORECASE)).fill(demo.password + "x")
    page.get_by_role("button", name=re.compile("Sign in", re.IGNORECASE)).click()
    expect(page.get_by_role("alert")).to_be_visible()
    no_axe_violations(page, "the sign-in page after a wrong password")
    page.get_by_label(re.compile("Email", re.IGNORECASE)).fill(demo.editor)
    page.get_by_label(re.compile("Password", re.IGNORECASE)).fill(demo.password)
    page.get_by_role("button", name=re.compile("Sign in", re.IGNORECASE)).click()
    expect(page.get_by_role("button", name=re.compile("Sign out", re.IGNORECASE))).to_be_visible()
    no_axe_violations(page, "the admin after signing in")

    assert not shots, "the widget no longer looks as reviewed:\n" + "\n".join(shots)
