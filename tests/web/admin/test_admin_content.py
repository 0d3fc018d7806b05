"""The admin's question, report and widget pages: gates, CSRF, saving, problems shown at their field, uploads,
editor text kept inert, and the widget preview's access to the API."""

from __future__ import annotations

import hashlib
import html
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import (
    Question,
    QuestionKind,
    Report,
    Submission,
    Subscriber,
    Widget,
)
from tests.factories import PDF_BYTES, make_demo_widget, make_question, make_report
from tests.support.admin import add_account, csrf_token, reword_problems, sign_in
from tests.support.submissions import ORIGIN, post, valid_body

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
BASE_URL = "http://127.0.0.1:5000"

pytestmark = pytest.mark.settings(WTF_CSRF_ENABLED=True)


@pytest.fixture
def editor(app: Flask, client: FlaskClient) -> FlaskClient:
    """The client, signed in as an editor (not an admin)."""
    add_account(app)
    assert sign_in(client).status_code == 302
    return client


@pytest.fixture
def demo(app: Flask) -> None:
    """The demo widget with its three questions and report."""
    with app.app_context():
        make_demo_widget()
        db.session.commit()


def save(client: FlaskClient, path: str, data: dict[str, Any]) -> Any:
    """POST a form the way the page would, with its CSRF token."""
    fields = {"csrf_token": csrf_token(client, path), **data}
    if not any(isinstance(value, FileStorage) for value in fields.values()):
        return client.post(path, data=fields)
    # Encoded here: the test client spools a large body to a file that it never closes.
    boundary, body = encode_multipart(MultiDict(fields))
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def flashed(client: FlaskClient, response: Any) -> list[str]:
    """The messages shown on the page a save redirects to."""
    assert response.status_code == 302, response.text
    page = client.get(response.headers["Location"]).text
    return [
        html.unescape(text) for text in re.findall(r'<p class="flash [a-z]+" role="[a-z]+">([^<]*)</p>', page)
    ]


def field_error(page: str, field_id: str) -> str:
    """The error shown at a field, checking that the field points at it for screen readers."""
    match = re.search(rf'<p class="error" id="{field_id}-error">([^<]*)</p>', page)
    assert match, f"no error at {field_id}"
    assert re.search(rf'aria-describedby="[^"]*{field_id}-error', page), (
        f"{field_id} does not point at its error"
    )
    return html.unescape(match.group(1))


def count(app: Flask, model: type[Any]) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def question_row(app: Flask, key: str) -> dict[str, Any]:
    with app.app_context():
        question = db.session.scalars(select(Question).where(Question.key == key)).one()
        return {
            "kind": question.kind,
            "text": dict(question.text),
            "fresh_for_days": question.fresh_for_days,
            "options": [(option.value, option.retired) for option in question.options],
            "labels": {option.value: dict(option.label) for option in question.options},
        }


def question_form(key: str = "likes_tea", **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "key": key,
        "kind": "choice",
        "text_nl": "Drink je thee?",
        "text_en": "Do you drink tea?",
        "fresh_for_days": "30",
        "option_value": ["green", "black", ""],
        "option_label_nl": ["Groene", "Zwarte", ""],
        "option_label_en": ["Green", "Black", ""],
        "action": "save",
    }
    data.update(overrides)
    return data


def edit_form(page: str) -> dict[str, Any]:
    """Every value of the form on `page`, as a browser would send it back unchanged (Save pressed)."""
    data: dict[str, Any] = {"action": "save"}
    for tag in re.findall(r"<input [^>]*>", page):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or 'type="file"' in tag or 'type="submit"' in tag or name.group(1) == "csrf_token":
            continue
        if 'type="checkbox"' in tag and " checked" not in tag:
            continue  # a browser sends only ticked boxes
        value = re.search(r'value="([^"]*)"', tag)
        data.setdefault(name.group(1), []).append(html.unescape(value.group(1)) if value else "")
    for name, body in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>\r?\n?([^<]*)</textarea>', page):
        data[name] = html.unescape(body)
    for name, options in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        chosen = re.search(r'<option selected value="([^"]*)"', options) or re.search(
            r'<option value="([^"]*)" selected', options
        )
        data[name] = html.unescape(chosen.group(1)) if chosen else ""
    return data


# --- gates ----------------------------------------------------------------------------------------------

PAGES = (
    "/admin/questions/",
    "/admin/questions/new",
    "/admin/questions/is_investor",
    "/admin/reports/",
    "/admin/reports/new",
    "/admin/reports/daytrading-report-report",
    "/admin/reports/daytrading-report-report/file",
    "/admin/widgets/",
    "/admin/widgets/new",
    "/admin/widgets/daytrading-report",
)


@pytest.mark.usefixtures("demo")
def test_every_page_needs_a_signed_in_account(client: FlaskClient) -> None:
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/admin/login?next=" + path)


@pytest.mark.usefixtures("demo")
def test_an_editor_sees_every_page(editor: FlaskClient) -> None:
    for path in PAGES:
        assert editor.get(path).status_code == 200, path
    assert editor.get("/admin/questions/no_such_question").status_code == 404
    assert editor.get("/admin/reports/no-such-report").status_code == 404
    assert editor.get("/admin/widgets/no-such-widget").status_code == 404


@pytest.mark.usefixtures("demo")
def test_the_navigation_shows_the_three_areas(editor: FlaskClient) -> None:
    page = editor.get("/admin/").text
    for path, label in (
        ("/admin/questions/", "Questions"),
        ("/admin/reports/", "Reports"),
        ("/admin/widgets/", "Widgets"),
    ):
        assert f'<a href="{path}">{label}</a>' in page


@pytest.mark.usefixtures("demo")
def test_saving_without_a_csrf_token_fails_and_changes_nothing(app: Flask, editor: FlaskClient) -> None:
    before = question_row(app, "is_investor")
    posts = {
        "/admin/questions/new": question_form(),
        "/admin/questions/is_investor": question_form("is_investor", kind="yes_no", text_en="Changed?"),
        "/admin/reports/new": {"slug": "new-report", "title_en": "New"},
        "/admin/widgets/new": {"slug": "new-widget", "report": "daytrading-report-report"},
        "/admin/widgets/daytrading-report": {"prompt_nl": "Anders", "action": "save"},
    }
    for path, data in posts.items():
        assert editor.post(path, data=data).status_code == 400, path
    assert question_row(app, "is_investor") == before
    assert count(app, Question) == 3
    assert count(app, Report) == 1
    assert count(app, Widget) == 1


# --- questions ------------------------------------------------------------------------------------------


def test_creating_a_question_saves_its_texts_and_options_in_order(app: Flask, editor: FlaskClient) -> None:
    response = save(editor, "/admin/questions/new", question_form())
    assert response.headers["Location"] == "/admin/questions/likes_tea"
    assert flashed(editor, response) == ["created question likes_tea"]
    row = question_row(app, "likes_tea")
    assert row["kind"] is QuestionKind.CHOICE
    assert row["text"] == {"nl": "Drink je thee?", "en": "Do you drink tea?"}
    assert row["fresh_for_days"] == 30
    assert row["options"] == [("green", False), ("black", False)]  # the blank row is left out
    assert row["labels"]["black"] == {"nl": "Zwarte", "en": "Black"}
    listing = editor.get("/admin/questions/").text
    assert '<a href="/admin/questions/likes_tea"><code>likes_tea</code></a>' in listing


def test_a_yes_no_question_left_without_options_gets_yes_and_no(app: Flask, editor: FlaskClient) -> None:
    data = question_form("likes_coffee", kind="yes_no", option_value=["", ""], option_label_nl=["", ""])
    data["option_label_en"] = ["", ""]
    assert flashed(editor, save(editor, "/admin/questions/new", data)) == ["created question likes_coffee"]
    row = question_row(app, "likes_coffee")
    assert row["options"] == [("yes", False), ("no", False)]
    assert row["labels"]["yes"] == {"nl": "Ja", "en": "Yes"}


def test_a_button_the_page_does_not_have_saves_nothing(app: Flask, editor: FlaskClient) -> None:
    for action in ("restore-green", "explode", "up-999"):
        response = save(editor, "/admin/questions/new", question_form(action=action))
        assert response.status_code == 200
    assert count(app, Question) == 0


@pytest.mark.usefixtures("demo")
def test_an_edit_flashes_what_changed_and_an_unchanged_save_says_so(app: Flask, editor: FlaskClient) -> None:
    path = "/admin/questions/daytrading_experience"
    data = edit_form(editor.get(path).text)
    assert data["option_value"] == ["none", "some", "active"]
    assert flashed(editor, save(editor, path, data)) == ["Nothing changed."]
    data["text_en"] = "How much do you trade?"
    data["option_label_en"][2] = "Every day"
    assert flashed(editor, save(editor, path, data)) == [
        "updated question daytrading_experience (text, options)"
    ]
    row = question_row(app, "daytrading_experience")
    assert row["text"]["en"] == "How much do you trade?"
    assert row["labels"]["active"]["en"] == "Every day"


@pytest.mark.usefixtures("demo")
def test_options_move_and_are_added_on_the_page_before_a_save(app: Flask, editor: FlaskClient) -> None:
    path = "/admin/questions/daytrading_experience"
    data = edit_form(editor.get(path).text)
    moved = save(editor, path, {**data, "action": "down-0"})
    assert moved.status_code == 200
    assert "Not saved yet" in moved.text
    moved_data = edit_form(moved.text)
    assert moved_data["option_value"] == ["some", "none", "active"]
    assert question_row(app, "daytrading_experience")["options"][0] == ("none", False)  # not saved yet
    added = edit_form(save(editor, path, {**moved_data, "action": "add"}).text)
    assert added["option_value"] == ["some", "none", "active", ""]
    added["option_value"][3] = "expert"
    added["option_label_nl"][3] = "Expert"
    added["option_label_en"][3] = "Expert"
    assert flashed(editor, save(editor, path, added)) == ["updated question daytrading_experience (options)"]
    values = [value for value, _ in question_row(app, "daytrading_experience")["options"]]
    assert values == ["some", "none", "active", "expert"]


@pytest.mark.usefixtures("demo")
def test_removing_an_answered_option_retires_it_and_an_unanswered_one_is_deleted(
    app: Flask, editor: FlaskClient
) -> None:
    assert post(editor, valid_body()).status_code == 202  # answers daytrading_experience: none
    path = "/admin/questions/daytrading_experience"
    page = editor.get(path).text
    assert 'aria-label="Retire: option none">Retire</button>' in page
    assert "Has answers: removing it retires it" in page
    assert 'aria-label="Remove: option some">Remove</button>' in page
    data = edit_form(page)
    for name in ("option_value", "option_label_nl", "option_label_en"):
        data[name] = data[name][2:]  # only "active" stays
    data["option_value"].append("new")
    data["option_label_nl"].append("Nieuw")
    data["option_label_en"].append("New")
    preview = save(editor, path, {**data, "action": "add"}).text
    assert "will be retired: answers keep it" in preview
    assert "will be deleted: no answer chose it" in preview
    assert flashed(editor, save(editor, path, data)) == ["updated question daytrading_experience (options)"]
    assert question_row(app, "daytrading_experience")["options"] == [
        ("active", False),
        ("new", False),
        ("none", True),
    ]
    page = editor.get(path).text
    assert re.search(r"<code>none</code> <span class=\"badge\">retired</span>", page)
    restored = edit_form(save(editor, path, {**edit_form(page), "action": "restore-none"}).text)
    assert restored["option_value"] == ["active", "new", "none"]
    save(editor, path, restored)
    assert ("none", False) in question_row(app, "daytrading_experience")["options"]


def test_bad_input_is_shown_at_its_field_and_nothing_is_stored(app: Flask, editor: FlaskClient) -> None:
    data = question_form(
        "Bad Key",
        text_nl="",
        text_en="",
        fresh_for_days="soon",
        option_value=["a b", "ok"],
        option_label_nl=["A", ""],
        option_label_en=["A", ""],
    )
    response = save(editor, "/admin/questions/new", data)
    assert response.status_code == 200
    page = response.text
    assert "is not valid" in field_error(page, "key")
    assert field_error(page, "text") == "Is required."
    assert "whole number of days" in field_error(page, "fresh_for_days")
    assert "Value: 'a b' is not valid" in html.unescape(page)
    assert 'id="option-0-error"' in page
    assert 'id="option-1-error"' in page
    assert count(app, Question) == 0
    assert 'value="Bad Key"' in page  # what was typed stays


@pytest.mark.usefixtures("demo")
def test_a_kind_change_that_answers_forbid_is_refused(app: Flask, editor: FlaskClient) -> None:
    post(editor, valid_body())
    path = "/admin/questions/daytrading_experience"
    data = {**edit_form(editor.get(path).text), "kind": "multi"}
    response = save(editor, path, data)
    assert response.status_code == 200
    assert "already has answers" in html.unescape(response.text)
    assert question_row(app, "daytrading_experience")["kind"] is QuestionKind.CHOICE


@pytest.mark.usefixtures("demo")
def test_a_question_edit_that_would_break_a_widget_is_refused(app: Flask, editor: FlaskClient) -> None:
    path = "/admin/questions/is_investor"
    data = {**edit_form(editor.get(path).text), "text_nl": ""}  # the Dutch widget asks it
    response = save(editor, path, data)
    assert response.status_code == 200
    assert "daytrading-report" in html.unescape(field_error(response.text, "text"))
    assert question_row(app, "is_investor")["text"]["nl"] == "Vraag is_investor?"


@pytest.mark.usefixtures("demo")
def test_a_question_changed_by_someone_else_since_it_was_opened_is_not_overwritten(
    app: Flask, editor: FlaskClient
) -> None:
    path = "/admin/questions/is_investor"
    mine = {**edit_form(editor.get(path).text), "text_en": "My wording", "fresh_for_days": "45"}
    theirs = {**edit_form(editor.get(path).text), "text_en": "Their wording"}
    assert flashed(editor, save(editor, path, theirs)) == ["updated question is_investor (text)"]

    response = save(editor, path, mine)
    assert response.status_code == 200
    page = html.unescape(response.text)
    assert "someone else saved this question since you opened it" in page
    assert field_error(response.text, "text") == "Changed by someone else since you opened it."
    assert field_error(response.text, "fresh_for_days") == "Changed by someone else since you opened it."
    # The editor's input is kept.
    assert 'value="My wording"' in page
    assert 'value="45"' in page
    assert question_row(app, "is_investor")["text"]["en"] == "Their wording"

    # Saved again from that page, knowingly: the editor's version replaces theirs.
    again = edit_form(response.text)
    assert flashed(editor, save(editor, path, again)) == [
        "updated question is_investor (text, fresh_for_days)"
    ]
    assert question_row(app, "is_investor")["text"]["en"] == "My wording"


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize("payload", XSS)
def test_question_texts_are_inert_in_the_admin_and_plain_text_in_the_widget(
    app: Flask, editor: FlaskClient, payload: str
) -> None:
    path = "/admin/questions/daytrading_experience"
    data = edit_form(editor.get(path).text)
    data["text_nl"] = payload
    data["option_label_nl"][0] = payload
    assert flashed(editor, save(editor, path, data)) == [
        "updated question daytrading_experience (text, options)"
    ]
    for page in (
        editor.get(path).text,
        editor.get("/admin/questions/").text,
        editor.get("/admin/widgets/daytrading-report").text,
    ):
        assert payload not in page
    assert escape(payload) in editor.get(path).text
    definition = editor.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()
    asked = next(
        question for question in definition["questions"] if question["key"] == "daytrading_experience"
    )
    assert asked["text"] == payload
    assert asked["options"][0]["label"] == payload


def test_a_hostile_form_with_thousands_of_rows_is_refused(app: Flask, editor: FlaskClient) -> None:
    rows = [f"v{index}" for index in range(5000)]
    data = question_form(option_value=rows, option_label_nl=rows, option_label_en=rows)
    response = save(editor, "/admin/questions/new", data)
    assert response.status_code == 200
    assert "needs 2 to 20 options, not 60" in field_error(response.text, "options")
    assert count(app, Question) == 0


# --- reports --------------------------------------------------------------------------------------------


def report_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "tea-guide",
        "title_nl": "Thee voor beginners",
        "title_en": "Tea for beginners",
        "description_nl": "",
        "description_en": "All about tea.",
    }
    data.update(overrides)
    return data


def upload(data: bytes = PDF_BYTES, name: str = "Tea Guide.pdf") -> FileStorage:
    return FileStorage(io.BytesIO(data), name)


def stored_files(app: Flask) -> list[tuple[str | None, str, bytes]]:
    with app.app_context():
        report = db.session.scalars(select(Report)).one()
        return [(file.locale, file.filename, file.data) for file in report.files]


def test_creating_a_report_stores_the_uploaded_file(app: Flask, editor: FlaskClient) -> None:
    response = save(editor, "/admin/reports/new", {**report_form(), "file": upload()})
    assert response.headers["Location"] == "/admin/reports/tea-guide"
    assert flashed(editor, response) == ["created report tea-guide"]
    assert stored_files(app) == [(None, "Tea-Guide.pdf", PDF_BYTES)]
    with app.app_context():
        report = db.session.scalars(select(Report)).one()
        assert report.files[0].content_type == "application/pdf"
        assert report.description == {"en": "All about tea."}
    page = editor.get("/admin/reports/tea-guide").text
    assert "Tea-Guide.pdf" in page
    assert f"{len(PDF_BYTES)} bytes" in page
    assert "application/pdf" in page
    assert "Every language" in page
    download = editor.get("/admin/reports/tea-guide/file")
    assert download.data == PDF_BYTES
    assert download.headers["Content-Disposition"] == "attachment; filename=Tea-Guide.pdf"
    assert editor.get("/admin/reports/tea-guide/file?locale=nl").status_code == 404
    assert "Tea-Guide.pdf" in editor.get("/admin/reports/").text


def test_editing_a_report_keeps_its_file_unless_one_is_uploaded(app: Flask, editor: FlaskClient) -> None:
    save(editor, "/admin/reports/new", {**report_form(), "file": upload()})
    response = save(editor, "/admin/reports/tea-guide", report_form(title_en="Tea, a guide"))
    assert flashed(editor, response) == ["updated report tea-guide (title)"]
    assert stored_files(app) == [(None, "Tea-Guide.pdf", PDF_BYTES)]
    replacement = PDF_BYTES.replace(b"test report", b"second edition")
    response = save(
        editor,
        "/admin/reports/tea-guide",
        {**report_form(title_en="Tea, a guide"), "file": upload(replacement, "v2.pdf")},
    )
    assert flashed(editor, response) == ["updated report tea-guide (file)"]
    assert stored_files(app) == [(None, "v2.pdf", replacement)]
    with app.app_context():
        assert (
            db.session.scalars(select(Report)).one().files[0].sha256
            == hashlib.sha256(replacement).hexdigest()
        )


def test_a_report_gets_a_file_per_language_and_loses_one(app: Flask, editor: FlaskClient) -> None:
    save(editor, "/admin/reports/new", {**report_form(), "file": upload()})
    dutch = PDF_BYTES.replace(b"test report", b"thee rapport")
    response = save(
        editor, "/admin/reports/tea-guide", {**report_form(), "file_nl": upload(dutch, "Thee.pdf")}
    )
    assert flashed(editor, response) == ["updated report tea-guide (file, file.nl, file.en)"]
    assert stored_files(app) == [("nl", "Thee.pdf", dutch), ("en", "Tea-Guide.pdf", PDF_BYTES)]
    page = editor.get("/admin/reports/tea-guide").text
    assert "Dutch (nl)" in page
    assert "English (en)" in page
    assert editor.get("/admin/reports/tea-guide/file?locale=nl").data == dutch
    assert editor.get("/admin/reports/tea-guide/file?locale=en").data == PDF_BYTES
    assert editor.get("/admin/reports/tea-guide/file").status_code == 404
    assert 'name="remove_en"' in page

    response = save(editor, "/admin/reports/tea-guide", {**report_form(), "remove_en": "y"})
    assert flashed(editor, response) == ["updated report tea-guide (file.en)"]
    assert stored_files(app) == [("nl", "Thee.pdf", dutch)]
    assert 'name="remove_nl"' not in editor.get("/admin/reports/tea-guide").text  # the last file stays


@pytest.mark.parametrize(
    ("file", "message"),
    [
        (None, "Is required."),
        ((b"MZ\x90\x00 not a report", "setup.exe"), "unsupported file type"),
        ((b"<html>not a pdf</html>", "guide.pdf"), "is not a PDF file"),
        ((b"", "empty.pdf"), "empty.pdf is empty"),
        ((b"%PDF-" + b"0" * 20 * 1024 * 1024, "huge.pdf"), "huge.pdf is 20.0 MiB; the limit is 20 MiB"),
    ],
    ids=["no file", "wrong type", "wrong content", "empty", "too big"],
)
def test_a_bad_upload_is_refused_clearly_and_nothing_is_stored(
    app: Flask, editor: FlaskClient, file: tuple[bytes, str] | None, message: str
) -> None:
    data = report_form() if file is None else {**report_form(), "file": upload(*file)}
    response = save(editor, "/admin/reports/new", data)
    assert response.status_code == 200
    assert message in field_error(response.text, "file")
    assert count(app, Report) == 0
    assert 'value="Tea for beginners"' in response.text


def test_an_upload_over_the_request_limit_gets_the_form_with_the_limit(
    app: Flask, editor: FlaskClient
) -> None:
    response = save(editor, "/admin/reports/new", {**report_form(), "file": upload(b"0" * 33 * 1024 * 1024)})
    assert response.status_code == 413
    assert "The file is too large: the limit is 20 MiB. Nothing was saved." in field_error(
        response.text, "file"
    )
    assert count(app, Report) == 0


@pytest.mark.parametrize("payload", XSS)
def test_report_texts_are_inert_in_the_admin_and_plain_text_in_the_widget(
    app: Flask, editor: FlaskClient, payload: str
) -> None:
    with app.app_context():
        make_demo_widget()
        db.session.commit()
    path = "/admin/reports/daytrading-report-report"
    data = report_form(title_nl=payload, description_nl=payload)
    assert flashed(editor, save(editor, path, data)) == [
        "updated report daytrading-report-report (title, description)"
    ]
    for page in (editor.get(path).text, editor.get("/admin/reports/").text):
        assert payload not in page
        assert escape(payload) in page
    definition = editor.get("/api/v1/widgets/daytrading-report", headers={"Origin": ORIGIN}).get_json()
    assert definition["report"] == {"title": payload, "description": payload}
    assert definition["texts"]["title"] == payload


# --- widgets --------------------------------------------------------------------------------------------


@pytest.fixture
def parts(app: Flask) -> None:
    """A report and questions to build widgets from."""
    with app.app_context():
        make_report("tea-guide")
        make_question("likes_tea", "yes_no")
        make_question("tea_kinds", "multi")
        make_question("tea_amount", "choice")
        make_question("coffee", "yes_no")
        db.session.commit()


def widget_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": "tea-widget",
        "locale": "en",
        "report": "tea-guide",
        "questions": ["likes_tea", "tea_kinds"],
        "allowed_origins": "https://tea.example\nhttp://localhost:5001\n",
        "prompt_en": "Want our tea guide?",
        "success_en": "Check your inbox!",
        "action": "save",
    }
    data.update(overrides)
    return data


def widget_row(app: Flask, slug: str = "tea-widget") -> dict[str, Any]:
    with app.app_context():
        widget = db.session.scalars(select(Widget).where(Widget.slug == slug)).one()
        return {
            "report": widget.report.slug,
            "locale": widget.locale,
            "questions": [question.key for question in widget.questions],
            "allowed_origins": list(widget.allowed_origins),
            "texts": dict(widget.texts),
        }


@pytest.mark.usefixtures("parts")
def test_creating_a_widget_saves_it_and_shows_the_embed_code_and_preview(
    app: Flask, editor: FlaskClient
) -> None:
    response = save(editor, "/admin/widgets/new", widget_form())
    assert response.headers["Location"] == "/admin/widgets/tea-widget"
    assert flashed(editor, response) == ["created widget tea-widget"]
    assert widget_row(app) == {
        "report": "tea-guide",
        "locale": "en",
        "questions": ["likes_tea", "tea_kinds"],
        "allowed_origins": ["https://tea.example", "http://localhost:5001"],
        "texts": {"prompt": {"en": "Want our tea guide?"}, "success": {"en": "Check your inbox!"}},
    }
    page = editor.get("/admin/widgets/tea-widget").text
    snippet = f'<script async src="{BASE_URL}/embed.js"></script><div data-leadcapture="tea-widget"></div>'
    assert escape(snippet) in page
    assert 'data-copy="snippet"' in page
    assert '<div class="widget-preview" data-leadcapture="tea-widget" data-preview></div>' in page
    assert '<script src="/embed.js" async></script>' in page
    assert "tea-widget" in editor.get("/admin/widgets/").text


@pytest.mark.usefixtures("parts")
@pytest.mark.settings(LEADCAPTURE_TRACKING="off")
def test_the_follow_up_box_placeholder_is_the_wording_readers_get(editor: FlaskClient) -> None:
    save(editor, "/admin/widgets/new", widget_form())
    page = editor.get("/admin/widgets/tea-widget").text
    assert str(escape(translate("en", "widget.consent_sequences_answers"))) in page
    assert str(escape(translate("en", "widget.consent_sequences"))) not in page


@pytest.mark.usefixtures("parts")
def test_widget_questions_are_picked_and_reordered_on_the_page(app: Flask, editor: FlaskClient) -> None:
    save(editor, "/admin/widgets/new", widget_form())
    path = "/admin/widgets/tea-widget"
    data = edit_form(editor.get(path).text)
    assert data["questions"] == ["likes_tea", "tea_kinds"]
    added = save(editor, path, {**data, "action": "add_question", "add_question": "tea_amount"})
    assert "Not saved yet" in added.text
    data = edit_form(added.text)
    assert data["questions"] == ["likes_tea", "tea_kinds", "tea_amount"]
    assert 'name="add_question"' not in added.text  # three is the most a widget asks
    data = edit_form(save(editor, path, {**data, "action": "up-2"}).text)
    data = edit_form(save(editor, path, {**data, "action": "remove-0"}).text)
    assert data["questions"] == ["tea_amount", "tea_kinds"]
    assert widget_row(app)["questions"] == ["likes_tea", "tea_kinds"]  # nothing saved yet
    assert flashed(editor, save(editor, path, data)) == ["updated widget tea-widget (questions)"]
    assert widget_row(app)["questions"] == ["tea_amount", "tea_kinds"]
    assert flashed(editor, save(editor, path, data)) == ["Nothing changed."]


WIDGET_PROBLEMS = [
    ({"slug": "Tea Widget"}, "slug", "is not valid"),
    ({"report": ""}, "report", "is not valid"),
    ({"report": "no-such-report"}, "report", "Unknown report 'no-such-report'"),
    ({"questions": []}, "questions", "1 to 3 questions, not 0"),
    ({"questions": ["likes_tea", "tea_kinds", "tea_amount", "coffee"]}, "questions", "not 4"),
    ({"allowed_origins": "ftp://tea.example"}, "allowed_origins", "not an http or https origin"),
    ({"allowed_origins": "https://tea.example/path"}, "allowed_origins", "without a path"),
    ({"allowed_origins": "https://*.tea.example"}, "allowed_origins", "wildcards are not allowed"),
    ({"allowed_origins": ""}, "allowed_origins", "at least one origin"),
    ({"prompt_en": ""}, "prompt", "Is required."),
    ({"prompt_en": "", "prompt_nl": "Thee?"}, "prompt", "Has no en text (the widget's locale)."),
    (
        {"success_en": "", "success_nl": "Kijk"},
        "success",
        "Success: has no en text (the widget's locale).",
    ),
]


@pytest.mark.usefixtures("parts")
@pytest.mark.parametrize(("overrides", "field", "message"), WIDGET_PROBLEMS)
def test_bad_widget_input_is_shown_at_its_field_and_nothing_is_stored(
    app: Flask, editor: FlaskClient, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = save(editor, "/admin/widgets/new", widget_form(**overrides))
    assert response.status_code == 200
    assert message in field_error(response.text, field)
    assert count(app, Widget) == 0


@pytest.mark.usefixtures("parts")
@pytest.mark.parametrize(("overrides", "field", "message"), WIDGET_PROBLEMS)
def test_widget_problems_are_placed_by_their_field_whatever_their_wording(
    editor: FlaskClient, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], field: str, message: str
) -> None:
    reword_problems(monkeypatch)
    response = save(editor, "/admin/widgets/new", widget_form(**overrides))
    assert message not in response.text
    assert "Reworded" in field_error(response.text, field)


@pytest.mark.usefixtures("demo")
@pytest.mark.parametrize(
    ("path", "changes", "field"),
    [
        ("/admin/questions/is_investor", {"text_nl": ""}, "text"),  # the Dutch widget asks it
        ("/admin/questions/is_investor", {"fresh_for_days": "0"}, "fresh_for_days"),
        ("/admin/questions/new", {"key": "Not A Key"}, "key"),
    ],
)
def test_question_problems_are_placed_by_their_field_whatever_their_wording(
    editor: FlaskClient, monkeypatch: pytest.MonkeyPatch, path: str, changes: dict[str, Any], field: str
) -> None:
    reword_problems(monkeypatch)
    page = editor.get(path).text
    data = {**(edit_form(page) if "new" not in path else question_form()), **changes}
    response = save(editor, path, data)
    assert "Reworded" in field_error(response.text, field)


@pytest.mark.usefixtures("demo")
def test_an_option_problem_is_placed_at_its_row_whatever_its_wording(
    editor: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reword_problems(monkeypatch)
    data = question_form(option_value=["green", "Not A Value", ""])
    response = save(editor, "/admin/questions/new", data)
    assert re.search(r'<p class="error" id="option-1-error">Reworded invalid\.</p>', response.text)


@pytest.mark.usefixtures("parts")
@pytest.mark.parametrize("payload", XSS)
def test_widget_texts_are_inert_in_the_admin_and_plain_text_in_the_widget(
    app: Flask, editor: FlaskClient, payload: str
) -> None:
    data = widget_form(
        allowed_origins=ORIGIN,
        prompt_en=payload,
        title_en=payload,
        start_en=payload,
        submit_en=payload,
        success_en=payload,
        consent_report_en=payload,
        consent_sequences_en=payload,
    )
    assert flashed(editor, save(editor, "/admin/widgets/new", data)) == ["created widget tea-widget"]
    page = editor.get("/admin/widgets/tea-widget").text
    assert payload not in page
    assert page.count(f'value="{escape(payload)}"') == 7  # one input per text, each holding it as text
    texts = editor.get("/api/v1/widgets/tea-widget", headers={"Origin": ORIGIN}).get_json()["texts"]
    for name in ("prompt", "title", "start", "submit", "success", "consent_report", "consent_sequences"):
        assert texts[name] == payload


def test_a_slug_with_markup_is_refused_and_shown_inert(app: Flask, editor: FlaskClient) -> None:
    for path, data in (
        ("/admin/widgets/new", {"slug": XSS[1], "action": "save"}),
        ("/admin/reports/new", report_form(slug=XSS[1])),
        ("/admin/questions/new", question_form(XSS[1])),
    ):
        response = save(editor, path, data)
        assert response.status_code == 200
        assert XSS[1] not in response.text
        assert "onerror=alert(1)&gt;" in response.text
    assert count(app, Widget) + count(app, Report) + count(app, Question) == 0


# --- the preview and the API ----------------------------------------------------------------------------


@pytest.mark.usefixtures("demo")
def test_the_app_s_own_origin_may_read_a_widget_but_never_submit(app: Flask, client: FlaskClient) -> None:
    definition = client.get("/api/v1/widgets/daytrading-report", headers={"Origin": BASE_URL})
    assert definition.status_code == 200
    assert definition.headers["Access-Control-Allow-Origin"] == BASE_URL
    assert definition.get_json()["texts"]["title"]
    submitted = post(client, valid_body(), origin=BASE_URL)
    assert submitted.status_code == 403
    preflight = client.options("/api/v1/widgets/daytrading-report/submissions", headers={"Origin": BASE_URL})
    assert preflight.status_code == 403
    assert count(app, Subscriber) == 0
    assert count(app, Submission) == 0
    assert (
        client.get(
            "/api/v1/widgets/daytrading-report", headers={"Origin": "https://evil.example"}
        ).status_code
        == 403
    )


@pytest.mark.usefixtures("demo")
def test_a_preview_counts_no_impression(app: Flask, client: FlaskClient) -> None:
    from leadcapture.models import Impression

    impressions = "/api/v1/widgets/daytrading-report/impressions"
    client.get("/api/v1/widgets/daytrading-report", headers={"Origin": BASE_URL})
    client.get("/api/v1/widgets/daytrading-report")
    assert client.post(impressions, headers={"Origin": BASE_URL}).status_code == 403
    assert count(app, Impression) == 0
    client.post(impressions, headers={"Origin": ORIGIN})
    assert count(app, Impression) == 1


@pytest.mark.usefixtures("parts")
def test_the_widget_editor_asks_for_a_first_name_with_a_checkbox(app: Flask, editor: FlaskClient) -> None:
    save(editor, "/admin/widgets/new", widget_form(ask_first_name="y"))
    with app.app_context():
        assert db.session.scalars(select(Widget.ask_first_name)).one() is True
    page = editor.get("/admin/widgets/tea-widget").text
    assert re.search(
        r'<input[^>]*checked[^>]*name="ask_first_name"|<input[^>]*name="ask_first_name"[^>]*checked', page
    )
    assert flashed(editor, save(editor, "/admin/widgets/tea-widget", widget_form())) == [
        "updated widget tea-widget (ask_first_name)"
    ]
    with app.app_context():
        assert db.session.scalars(select(Widget.ask_first_name)).one() is False
