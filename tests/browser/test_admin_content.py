"""The question, report and widget pages in real Chromium: create a question and reorder its options, build a
widget that asks it and watch the real widget render it in the preview, copy the embed code, upload a report."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import Question, Report, Submission, Subscriber
from tests.factories import PDF_BYTES, make_demo_widget, make_report
from tests.fixtures.browser import LiveServer, console_messages, describe, run_axe, sign_in
from tests.support.admin import add_account

pytestmark = [
    pytest.mark.browser,
    pytest.mark.settings(WTF_CSRF_ENABLED=True, LEADCAPTURE_RATE_LIMITS="off"),
]


@pytest.fixture
def editor(live_server: LiveServer) -> None:
    add_account(live_server.app)
    with live_server.app.app_context():
        make_report("tea-guide")
        db.session.commit()


def flash(page: Page) -> Locator:
    return page.locator("p.flash[role=status]:not([hidden]):not(#unsaved)")


def option(page: Page, number: int) -> Locator:
    return page.get_by_role("group", name=f"Option {number}", exact=True)


def fill_option(page: Page, number: int, value: str, nl: str, en: str) -> None:
    row = option(page, number)
    row.get_by_label("Value").fill(value)
    row.get_by_label("Label, Dutch (nl)").fill(nl)
    row.get_by_label("Label, English (en)").fill(en)


def option_values(app: Flask, key: str) -> list[str]:
    with app.app_context():
        question = db.session.scalars(select(Question).where(Question.key == key)).one()
        return [option.value for option in question.active_options]


def count(app: Flask, model: type[Any]) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.usefixtures("editor")
def test_an_editor_builds_a_question_and_a_widget_and_previews_it(
    page: Page, live_server: LiveServer
) -> None:
    messages = console_messages(page)
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, "/admin/questions/new")
    expect(page.get_by_role("heading", name="New question", level=1)).to_be_visible()

    page.get_by_label("Key", exact=True).fill("tea_kind")
    page.get_by_label("Kind", exact=True).select_option("choice")
    text = page.get_by_role("group", name="Question text")
    text.get_by_label("Dutch (nl)").fill("Welke thee drink je het liefst?")
    text.get_by_label("English (en)").fill("Which tea do you like best?")
    fill_option(page, 1, "green", "Groene thee", "Green tea")
    fill_option(page, 2, "black", "Zwarte thee", "Black tea")
    page.get_by_role("button", name="Add an option").click()  # back from the server, typed values kept
    expect(option(page, 3)).to_be_visible()
    expect(option(page, 2).get_by_label("Value")).to_have_value("black")
    fill_option(page, 3, "oolong", "Oolong", "Oolong")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(flash(page)).to_have_text("created question tea_kind")
    assert option_values(live_server.app, "tea_kind") == ["green", "black", "oolong"]

    # Moved in place by the script: no round trip, focus stays on the button, the page says it is unsaved.
    move = option(page, 3).get_by_role("button", name="Move up: option oolong")
    move.click()
    expect(option(page, 2).get_by_label("Value")).to_have_value("oolong")
    expect(
        page.get_by_role("group", name="Option 2", exact=True).get_by_role(
            "button", name="Move up: option oolong"
        )
    ).to_be_focused()
    expect(page.locator("#unsaved")).to_be_visible()
    page.keyboard.press("Enter")  # the focused button moves it again, to the top
    expect(option(page, 1).get_by_label("Value")).to_have_value("oolong")
    assert option_values(live_server.app, "tea_kind") == ["green", "black", "oolong"]
    page.get_by_role("button", name="Save", exact=True).click()
    expect(flash(page)).to_have_text("updated question tea_kind (options)")
    assert option_values(live_server.app, "tea_kind") == ["oolong", "green", "black"]

    page.get_by_role("link", name="Widgets").click()
    page.get_by_role("link", name="New widget").click()
    page.get_by_label("Slug", exact=True).fill("tea-widget")
    page.get_by_label("Language", exact=True).select_option("en")
    page.get_by_label("Report", exact=True).select_option("tea-guide")
    page.get_by_label("Question to add").select_option("tea_kind")
    page.get_by_role("button", name="Add the question").click()
    expect(page.get_by_role("list", name="Questions")).to_contain_text("Which tea do you like best?")
    page.get_by_label("Allowed origins").fill("https://tea.example")
    page.get_by_role("group", name="Prompt: what the widget offers, above the start button").get_by_label(
        "English (en)"
    ).fill("Want our free tea guide?")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(flash(page)).to_have_text("created widget tea-widget")

    # The live preview is the real widget, fed by the API from this origin (not among its allowed ones).
    preview = page.locator(".widget-preview")
    expect(preview.get_by_text("Want our free tea guide?")).to_be_visible()
    preview.get_by_role("button", name=translate("en", "widget.start")).click()
    asked = preview.get_by_role("radiogroup", name="Which tea do you like best?")
    expect(asked).to_be_visible()
    labels = asked.locator("label").all_inner_texts()
    assert labels == ["Oolong", "Green tea", "Black tea"]
    preview.get_by_role("radio", name="Green tea").check()
    preview.get_by_role("button", name=translate("en", "widget.next")).click()
    preview.get_by_label(translate("en", "widget.email_label")).fill("reader@tea.example")
    preview.get_by_role(
        "checkbox", name=translate("en", "widget.consent_report", title="Report tea-guide")
    ).check()
    preview.get_by_role("button", name=translate("en", "widget.submit")).click()
    expect(preview.get_by_text(translate("en", "widget.success"))).to_be_visible()
    assert count(live_server.app, Subscriber) == 0  # a preview never sends
    assert count(live_server.app, Submission) == 0

    snippet = (
        f'<script async src="{live_server.url}/embed.js"></script><div data-leadcapture="tea-widget"></div>'
    )
    expect(page.get_by_label("Paste this where the widget should appear")).to_have_value(snippet)
    page.get_by_role("button", name="Copy the embed code").click()
    expect(page.locator("#admin-live")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == snippet
    assert [url for url in failed if not url.endswith("/favicon.ico")] == []
    assert not [
        message
        for message in messages
        if message.type == "error" and "favicon" not in message.location["url"]
    ]


@pytest.mark.usefixtures("editor")
def test_an_editor_uploads_a_report_and_a_wrong_file_is_refused(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, "/admin/reports/new")
    page.get_by_label("Slug", exact=True).fill("coffee-guide")
    page.get_by_role("group", name="Title", exact=True).get_by_label("English (en)").fill("All about coffee")
    page.get_by_label("One file for every language", exact=True).set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"just some notes"}
    )
    page.get_by_role("button", name="Save", exact=True).click()
    error = page.locator("#file-error")
    expect(error).to_contain_text("unsupported file type")
    expect(page.get_by_label("One file for every language", exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    assert count(live_server.app, Report) == 1  # only tea-guide

    expect(page.get_by_role("group", name="Title", exact=True).get_by_label("English (en)")).to_have_value(
        "All about coffee"
    )
    page.get_by_label("One file for every language", exact=True).set_input_files(
        {"name": "Coffee Guide.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(flash(page)).to_have_text("created report coffee-guide")
    every = page.get_by_role("row", name="Every language")
    expect(every).to_contain_text("Coffee-Guide.pdf")
    expect(every).to_contain_text(f"{len(PDF_BYTES)} bytes")
    expect(every).to_contain_text("application/pdf")

    dutch = PDF_BYTES.replace(b"test report", b"koffie")
    page.get_by_label("Dutch (nl) file", exact=True).set_input_files(
        {"name": "Koffie.pdf", "mimeType": "application/pdf", "buffer": dutch}
    )
    page.get_by_role("button", name="Save", exact=True).click()
    expect(flash(page)).to_have_text("updated report coffee-guide (file, file.nl, file.en)")
    expect(page.get_by_role("row", name="Dutch (nl)")).to_contain_text("Koffie.pdf")
    expect(page.get_by_role("row", name="English (en)")).to_contain_text("Coffee-Guide.pdf")
    with live_server.app.app_context():
        report = db.session.scalars(select(Report).where(Report.slug == "coffee-guide")).one()
        assert [(file.locale, file.data) for file in report.files] == [("nl", dutch), ("en", PDF_BYTES)]


@pytest.mark.usefixtures("editor")
def test_the_pages_have_no_axe_violations(page: Page, live_server: LiveServer) -> None:
    with live_server.app.app_context():
        make_demo_widget()
        db.session.commit()
    sign_in(page, live_server, "/admin/questions/new")
    page.get_by_role("button", name="Save", exact=True).click()  # with problems shown at their fields
    expect(page.locator("#key-error")).to_be_visible()
    pages = [
        "/admin/questions/new",
        "/admin/questions/",
        "/admin/questions/daytrading_experience",
        "/admin/reports/",
        "/admin/reports/new",
        "/admin/reports/tea-guide",
        "/admin/widgets/",
        "/admin/widgets/new",
        "/admin/widgets/daytrading-report",
    ]
    for path in pages:
        if path != "/admin/questions/new":
            page.goto(live_server.url + path)
        if path == "/admin/widgets/daytrading-report":
            expect(
                page.locator(".widget-preview").get_by_role("button", name="Ja, stuur mij het rapport")
            ).to_be_visible()
        violations = run_axe(page)
        assert not violations, f"axe-core on {path}:\n{describe(violations)}"
