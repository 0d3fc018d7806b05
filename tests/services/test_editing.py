"""Admin saves: each edited definition checked by content check's rules against everything stored."""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import Problem, read_content
from leadcapture.definitions.reports import MAX_REPORT_BYTES
from leadcapture.errors import NotFound
from leadcapture.extensions import db
from leadcapture.models import Question, Report, Sequence, Widget
from leadcapture.services import editing
from leadcapture.services.content import Change, ContentConflict, ContentHasProblems, load_content
from leadcapture.services.editing import StepText, Upload
from tests.factories import PDF_BYTES
from tests.support.content import answer, options_of, snapshot

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def stored(app_context: None) -> None:
    """The demo content, loaded and committed."""
    load_content(read_content(BUNDLED_CONTENT_DIR))
    db.session.commit()


def question(key: str) -> dict[str, Any]:
    row = db.session.scalar(select(Question).where(Question.key == key))
    assert row is not None
    return editing.question_document(row)


def report(slug: str = "daytrading-guide") -> dict[str, Any]:
    row = db.session.scalar(select(Report).where(Report.slug == slug))
    assert row is not None
    return editing.report_document(row)


def widget(slug: str = "daytrading-report") -> dict[str, Any]:
    row = db.session.scalar(select(Widget).where(Widget.slug == slug))
    assert row is not None
    return editing.widget_document(row)


def sequence(slug: str = "daytrading-beginners") -> tuple[dict[str, Any], list[StepText]]:
    row = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    assert row is not None
    return editing.sequence_document(row)


def refused(save: Any, *args: Any) -> tuple[dict[str, list[str]], list[str]]:
    """Run a save that must be refused; its problems per field. Nothing may have been stored."""
    before = snapshot()
    with pytest.raises(ContentHasProblems) as caught:
        save(*args)
    db.session.commit()
    assert snapshot() == before
    return editing.field_errors(caught.value.problems)


def saved(changes: list[Change]) -> list[str]:
    db.session.commit()
    db.session.expire_all()
    return [str(change) for change in changes]


# --- documents --------------------------------------------------------------------------------------------


def test_documents_are_what_the_files_hold(stored: None) -> None:
    assert question("daytrading_experience") == {
        "key": "daytrading_experience",
        "kind": "choice",
        "text": {
            "nl": "Hoeveel ervaring heb je met daytraden?",
            "en": "How much daytrading experience do you have?",
        },
        "options": [
            {"value": "none", "label": {"nl": "Het is nieuw voor me", "en": "It is new to me"}},
            {"value": "some", "label": {"nl": "Ik heb het geprobeerd", "en": "I have tried it"}},
            {"value": "active", "label": {"nl": "Ik trade actief", "en": "I trade actively"}},
        ],
        "fresh_for_days": 90,
    }
    assert report()["file"] == {"nl": "files/daytraden-gids.pdf", "en": "files/daytrading-guide.pdf"}
    assert widget("daytrading-report-en") == {
        "slug": "daytrading-report-en",
        "report": "daytrading-guide",
        "locale": "en",
        "allowed_origins": ["https://beleggen.example", "http://127.0.0.1:5001", "http://localhost:5001"],
        "prompt": {"en": "Want our free daytrading report? Answer a few short questions first."},
        "texts": {
            "title": {"en": "Free report: Daytrading for beginners"},
            "success": {
                "en": "Almost done! Check your inbox and confirm your address, and we will send you the "
                "report right away."
            },
        },
        "questions": ["is_investor", "daytrading_experience", "investment_interests"],
    }
    document, steps = sequence()
    assert document == {
        "slug": "daytrading-beginners",
        "name": "Daytraden voor beginners",
        "locale": "nl",
        "audience": {"daytrading_experience": ["none", "some"]},
        "on_change": "switch",
        "priority": 10,
        "fresh_only": False,
        "steps": [
            {"file": "01-welcome.md", "after": "10 minutes"},
            {"file": "02-risk.md", "after": "1 day"},
            {"file": "03-costs-and-plan.md", "after": "3 days"},
        ],
    }
    assert [step.file for step in steps] == ["01-welcome.md", "02-risk.md", "03-costs-and-plan.md"]
    assert steps[0].subject == "Welkom! Zo haal je het meeste uit je daytradingrapport"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 minutes"),
        (60, "1 minute"),
        (600, "10 minutes"),
        (3600, "1 hour"),
        (5400, "90 minutes"),
        (86400, "1 day"),
        (2 * 86400, "2 days"),
        (7 * 86400, "1 week"),
        (90, "2 minutes"),
    ],
)
def test_delay_text(seconds: int, text: str) -> None:
    assert editing.delay_text(seconds) == text


@pytest.mark.parametrize(
    ("given", "safe"),
    [
        ("guide.pdf", "guide.pdf"),
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\me\\Gids 2026.PDF", "Gids-2026.pdf"),
        ("rapport é.pdf", "rapport-e.pdf"),
        ("..pdf", "my-report.pdf"),
        ("/", "my-report"),
        ("a\0b.pdf", "a-b.pdf"),
        (".hidden.epub", "hidden.epub"),
    ],
)
def test_upload_file_names_lose_folders_and_odd_characters(given: str, safe: str) -> None:
    assert editing.safe_filename(given, "my-report") == safe


# --- questions --------------------------------------------------------------------------------------------


def test_save_question_updates_only_what_changed(stored: None) -> None:
    document = question("daytrading_experience")
    document["text"]["en"] = "How much have you daytraded?"
    document["options"].insert(0, {"value": "never", "label": {"nl": "Nooit", "en": "Never"}})
    before = snapshot()
    assert saved(editing.save_question(document)) == [
        "updated question daytrading_experience (text, options)"
    ]
    after = snapshot()
    for table in ("reports", "widgets", "widget_questions", "sequences", "steps"):
        assert after[table] == before[table]
    assert options_of("daytrading_experience") == [
        ("never", False),
        ("none", False),
        ("some", False),
        ("active", False),
    ]
    assert saved(editing.save_question(document)) == []


def test_save_question_creates_a_new_key(stored: None) -> None:
    document = {"key": "risk_appetite", "kind": "yes_no", "text": {"nl": "Durf je?", "en": "Dare you?"}}
    assert saved(editing.save_question(document)) == ["created question risk_appetite"]
    assert options_of("risk_appetite") == [("yes", False), ("no", False)]


def test_an_answered_option_removed_in_the_admin_is_retired(stored: None) -> None:
    answer("investment_interests", ["crypto"])
    document = question("investment_interests")
    document["options"] = [option for option in document["options"] if option["value"] != "crypto"]
    assert saved(editing.save_question(document)) == ["updated question investment_interests (options)"]
    assert options_of("investment_interests") == [
        ("stocks", False),
        ("etfs", False),
        ("options", False),
        ("crypto", True),
    ]
    assert [option["value"] for option in question("investment_interests")["options"]] == [
        "stocks",
        "etfs",
        "options",
    ]


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d.update(key="Bad Key"), "key", "'Bad Key' is not valid"),
        (lambda d: d.pop("key"), "key", "is required"),
        (lambda d: d.update(kind="maybe"), "kind", "must be one of yes_no, choice, multi, not 'maybe'"),
        (lambda d: d["text"].update(nl="  "), "text", "nl: must not be empty"),
        (lambda d: d["text"].update(de="Wie viel?"), "text", "unknown locale 'de' (expected nl, en)"),
        (lambda d: d.update(text=["a"]), "text", "must be a text or a mapping of locale to text"),
        (lambda d: d.update(text={"nl": "x" * 501}), "text", "nl: is 501 characters long; the limit is 500"),
        (lambda d: d.update(options=d["options"][:1]), "options", "needs 2 to 20 options, not 1"),
        (lambda d: d["options"][1].update(value="none"), "options", "options[1].value: 'none' is used twice"),
        (lambda d: d["options"][0].update(value="Ø"), "options", "options[0].value: 'Ø' is not valid"),
        (lambda d: d.update(options="none, some"), "options", "must be a list, not a string"),
        (lambda d: d.update(fresh_for_days=0), "fresh_for_days", "must be between 1 and 3650, not 0"),
        (lambda d: d.update(fresh_for_days="90"), "fresh_for_days", "must be a whole number of days"),
        (lambda d: d.update(fresh_for_days=True), "fresh_for_days", "must be a whole number of days"),
    ],
)
def test_question_problems_belong_to_their_field(stored: None, edit: Any, field: str, message: str) -> None:
    document = question("daytrading_experience")
    edit(document)
    fields, general = refused(editing.save_question, document)
    assert general == []
    assert list(fields) == [field]
    assert any(message in text for text in fields[field]), fields


def test_removing_an_option_a_sequence_uses_is_refused(stored: None) -> None:
    document = question("daytrading_experience")
    document["options"] = [option for option in document["options"] if option["value"] != "some"]
    fields, general = refused(editing.save_question, document)
    assert general == []
    assert fields == {
        "options": [
            f"sequence {slug!r} would break: audience.daytrading_experience: unknown option 'some' "
            "(options: active, none)"
            for slug in ("daytrading-beginners", "daytrading-beginners-en")
        ]
    }


def test_removing_wording_a_widget_shows_is_refused(stored: None) -> None:
    document = question("is_investor")
    document["text"] = {"en": "Do you already invest?"}
    fields, _general = refused(editing.save_question, document)
    assert fields == {
        "text": [
            "widget 'daytrading-report' would break: questions[0]: question 'is_investor' has no nl text"
        ]
    }
    document = question("daytrading_experience")
    del document["options"][2]["label"]["en"]
    fields, _ = refused(editing.save_question, document)
    assert fields == {
        "options": [
            "widget 'daytrading-report-en' would break: questions[1]: question 'daytrading_experience' has no en "
            "label for option 'active'"
        ]
    }


def test_changing_the_kind_of_an_answered_question_is_a_conflict(stored: None) -> None:
    answer("daytrading_experience", "some")
    before = snapshot()
    document = question("daytrading_experience")
    document["kind"] = "multi"
    document["text"]["nl"] = "Iets anders"
    with pytest.raises(ContentConflict, match="already has answers as a choice question"):
        editing.save_question(document)
    db.session.commit()
    assert snapshot() == before


# --- hostile input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        (["key", "is_investor"], None, "the top level must be a mapping of fields, not a list"),
        ("key: is_investor", None, "the top level must be a mapping of fields, not a string"),
        (None, None, "is empty"),
        ({"key": {"nested": 1}, "kind": "yes_no", "text": "x"}, "key", "must be a string"),
        ({"key": "is_investor", "kind": "yes_no", "text": {1: "one"}}, "text", "unknown locale 1"),
        (
            {"key": "is_investor", "kind": "yes_no", "text": {"nl": b"x"}},
            "text",
            "nl: must be a text, number",
        ),
        ({"key": "is_investor", "kind": "yes_no", "text": {"nl", "en"}}, "text", "not a set"),
        ({"key": "is_investor", "kind": "yes_no", "text": object()}, "text", "not a object"),
        ({"key": "is_investor", "kind": "yes_no", "text": {("nl",): "x"}}, "text", "a name must be a text"),
        ({"key": "is_investor", "kind": "yes_no", "text": "Beleg je?\0"}, "text", "control character U+0000"),
        (
            {"key": "is_investor", "kind": "yes_no", "text": "a", "fresh_for_days": 1e400},
            "fresh_for_days",
            "",
        ),
        (
            {"key": "is_investor", "kind": "yes_no", "text": "a", "fresh_for_days": 10**30},
            "fresh_for_days",
            "",
        ),
        ({"key": "is_investor", "kind": ["yes_no"], "text": "a"}, "kind", "must be one of"),
        (
            {"key": "is_investor", "kind": "yes_no", "text": "a", "options": [[[[]]]] * 2},
            "options",
            "mapping",
        ),
    ],
)
def test_wrong_types_are_refused_at_their_field(
    stored: None, document: Any, field: str | None, message: str
) -> None:
    fields, general = refused(editing.save_question, document)
    if field is None:
        assert fields == {}
        assert any(message in text for text in general), general
    else:
        assert field in fields, (fields, general)
        assert any(message in text for text in fields[field]), fields


def test_deep_nesting_and_cycles_are_refused(stored: None) -> None:
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    fields, _ = refused(editing.save_question, {"key": "is_investor", "kind": "yes_no", "text": deep})
    assert fields["text"][0].endswith("nested more than 32 levels deep")
    cycle: dict[str, Any] = {}
    cycle["nl"] = cycle
    fields, _ = refused(editing.save_question, {"key": "is_investor", "kind": "yes_no", "text": cycle})
    assert "nested more than 32 levels deep" in fields["text"][0]


def test_a_huge_text_is_refused_at_its_field(stored: None) -> None:
    document = question("is_investor")
    document["text"] = {"nl": "x" * 400_000, "en": "Do you?"}
    fields, general = refused(editing.save_question, document)
    assert general == []
    assert fields == {"text": ["is far too long (a definition's file holds at most 256 KiB)"]}


@pytest.mark.parametrize("key", ["../../escaped", "/tmp/escaped", "questions/../../escaped", ".hidden"])  # noqa: S108
def test_a_path_as_key_writes_nothing_outside(
    stored: None, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "deep" / "down"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)  # a relative escape would land in or near here
    fields, _ = refused(editing.save_question, {"key": key, "kind": "yes_no", "text": "Waar?"})
    assert "is not valid" in fields["key"][0]
    assert [path for path in (tmp_path / "deep").rglob("*") if path != here] == []
    assert not list(tmp_path.glob("escaped*"))
    assert not Path("/tmp/escaped.yaml").exists()  # noqa: S108 - the absolute escape


# --- reports ----------------------------------------------------------------------------------------------


def files_of(slug: str = "daytrading-guide") -> list[tuple[str | None, str, bytes]]:
    db.session.expire_all()
    row = db.session.scalar(select(Report).where(Report.slug == slug))
    assert row is not None
    return [(file.locale, file.filename, file.data) for file in row.files]


BUNDLED_FILES = [
    ("nl", "daytraden-gids.pdf", (BUNDLED_CONTENT_DIR / "reports/files/daytraden-gids.pdf").read_bytes()),
    ("en", "daytrading-guide.pdf", (BUNDLED_CONTENT_DIR / "reports/files/daytrading-guide.pdf").read_bytes()),
]


def test_save_report_keeps_the_files_when_none_is_uploaded(stored: None) -> None:
    document = report()
    assert document["file"] == {"nl": "files/daytraden-gids.pdf", "en": "files/daytrading-guide.pdf"}
    document["title"]["en"] = "Daytrading for starters"
    document["description"] = {"nl": "Eerste regel.\nTweede regel.", "en": "Two\nlines"}
    assert saved(editing.save_report(document)) == ["updated report daytrading-guide (title, description)"]
    row = db.session.scalar(select(Report))
    assert row is not None
    assert row.title["en"] == "Daytrading for starters"
    assert files_of() == BUNDLED_FILES


def test_one_file_for_every_locale_replaces_them_all(stored: None) -> None:
    changes = editing.save_report(report(), {None: Upload("../../Nieuwe Gids.PDF", PDF_BYTES)})
    assert saved(changes) == ["updated report daytrading-guide (file.nl, file.en, file)"]
    assert files_of() == [(None, "Nieuwe-Gids.pdf", PDF_BYTES)]
    assert report()["file"] == "files/Nieuwe-Gids.pdf"


def test_a_locale_s_upload_replaces_that_locale_s_file_only(stored: None) -> None:
    dutch = PDF_BYTES + b"% tweede druk\n"
    assert saved(editing.save_report(report(), {"nl": Upload("gids.pdf", dutch)})) == [
        "updated report daytrading-guide (file.nl)"
    ]
    assert files_of() == [("nl", "gids.pdf", dutch), BUNDLED_FILES[1]]


def test_a_locale_s_upload_over_one_file_leaves_it_to_the_other_locales(stored: None) -> None:
    editing.save_report(report(), {None: Upload("guide.pdf", PDF_BYTES)})
    english = PDF_BYTES + b"% english\n"
    assert saved(editing.save_report(report(), {"en": Upload("english.pdf", english)})) == [
        "updated report daytrading-guide (file, file.nl, file.en)"
    ]
    assert files_of() == [("nl", "guide.pdf", PDF_BYTES), ("en", "english.pdf", english)]


def test_removing_a_locale_s_file_leaves_the_others(stored: None) -> None:
    assert saved(editing.save_report(report(), remove=["en"])) == [
        "updated report daytrading-guide (file.en)"
    ]
    assert files_of() == BUNDLED_FILES[:1]
    fields, general = refused(editing.save_report, report(), None, ["nl"])
    assert (fields, general) == ({"file": ["is required"]}, [])
    assert files_of() == BUNDLED_FILES[:1]


def test_a_new_report_needs_an_upload(stored: None) -> None:
    document = {"slug": "etf-guide", "title": {"nl": "ETF-gids", "en": "ETF guide"}}
    fields, general = refused(editing.save_report, document, None)
    assert (fields, general) == ({"file": ["is required"]}, [])
    assert saved(editing.save_report(document, {None: Upload("etf.png", PNG_BYTES)})) == [
        "created report etf-guide"
    ]
    row = db.session.scalar(select(Report).where(Report.slug == "etf-guide"))
    assert row is not None
    assert [(file.locale, file.filename, file.content_type) for file in row.files] == [
        (None, "etf.png", "image/png")
    ]


@pytest.mark.parametrize("locale", [None, "en"])
@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            Upload("guide.pdf", b"PK\x03\x04 a zip"),
            "guide.pdf is not a PDF file (it does not start like one)",
        ),
        (Upload("guide.exe", b"MZ"), "'files/guide.exe' has an unsupported file type"),
        (Upload("guide", PDF_BYTES), "'files/guide' has an unsupported file type"),
        (Upload("guide.pdf", b""), "guide.pdf is empty"),
        (
            Upload("guide.pdf", b"%PDF-" + b"0" * MAX_REPORT_BYTES),
            "guide.pdf is 20.0 MiB; the limit is 20 MiB",
        ),
    ],
)
def test_a_bad_upload_is_refused_at_the_file(
    stored: None, locale: str | None, upload: Upload, message: str
) -> None:
    fields, general = refused(editing.save_report, report(), {locale: upload})
    assert general == []
    assert list(fields) == ["file"]
    assert fields["file"][0].startswith(f"{locale}: {message}" if locale else message)
    assert files_of() == BUNDLED_FILES


def test_a_document_cannot_point_the_file_elsewhere(stored: None) -> None:
    document = report()
    document["file"] = "../../../../etc/passwd"
    assert saved(editing.save_report(document, None)) == []
    assert files_of() == BUNDLED_FILES


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d.update(slug="-bad"), "slug", "'-bad' is not valid"),
        (lambda d: d.update(title=""), "title", "must not be empty"),
        (lambda d: d.update(description={"nl": "x" * 2001}), "description", "nl: is 2001 characters long"),
    ],
)
def test_report_problems_belong_to_their_field(stored: None, edit: Any, field: str, message: str) -> None:
    document = report()
    edit(document)
    fields, _general = refused(editing.save_report, document, None)
    assert field in fields
    assert message in fields[field][0]


def test_dropping_a_title_a_widget_shows_is_refused(stored: None) -> None:
    document = report()
    document["title"] = {"en": "Daytrading for beginners"}
    fields, _general = refused(editing.save_report, document, None)
    assert fields == {
        "title": [
            "widget 'daytrading-report' would break: report: report 'daytrading-guide' has no nl title (the "
            "widget's locale)"
        ]
    }


# --- widgets ----------------------------------------------------------------------------------------------


def test_save_widget_and_create_one(stored: None) -> None:
    document = widget()
    document["allowed_origins"].append("HTTPS://Blog.Example:443")
    document["questions"] = ["daytrading_experience", "is_investor"]
    assert saved(editing.save_widget(document)) == [
        "updated widget daytrading-report (allowed_origins, questions)"
    ]
    row = db.session.scalar(select(Widget).where(Widget.slug == "daytrading-report"))
    assert row is not None
    assert row.allowed_origins[-1] == "https://blog.example"
    assert [q.key for q in row.questions] == ["daytrading_experience", "is_investor"]

    document = {**widget(), "slug": "second-widget"}
    assert saved(editing.save_widget(document)) == ["created widget second-widget"]


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d: d.update(slug="a/b"), "slug", "'a/b' is not valid"),
        (lambda d: d.update(report="no-such-report"), "report", "unknown report 'no-such-report'"),
        (lambda d: d.update(locale="de"), "locale", "must be one of nl, en, not 'de'"),
        (
            lambda d: d.update(allowed_origins=["https://*.example"]),
            "allowed_origins",
            "wildcards are not allowed",
        ),
        (lambda d: d.update(allowed_origins=[]), "allowed_origins", "needs at least one origin"),
        (lambda d: d.update(allowed_origins=["javascript:alert(1)"]), "allowed_origins", "is not an http"),
        (lambda d: d.update(prompt={"en": "English only"}), "prompt", "has no nl text (the widget's locale)"),
        (lambda d: d.update(texts={"titel": "x"}), "texts", "unknown text 'titel'; did you mean 'title'?"),
        (lambda d: d.update(questions=[]), "questions", "a widget asks 1 to 3 questions, not 0"),
        (lambda d: d.update(questions=["nope"]), "questions", "questions[0]: unknown question 'nope'"),
        (lambda d: d.update(questions=["is_investor", "is_investor"]), "questions", "asked twice"),
    ],
)
def test_widget_problems_belong_to_their_field(stored: None, edit: Any, field: str, message: str) -> None:
    document = widget()
    edit(document)
    fields, general = refused(editing.save_widget, document)
    assert general == []
    assert list(fields) == [field]
    assert message in fields[field][0]


def test_an_unknown_field_is_a_general_message(stored: None) -> None:
    document = {**widget(), "colour": "red"}
    fields, general = refused(editing.save_widget, document)
    assert fields == {}
    assert general == [
        "colour: unknown field 'colour' (expected slug, report, locale, allowed_origins, prompt, texts, questions, ask_first_name)"
    ]


# --- sequences --------------------------------------------------------------------------------------------


def test_save_sequence_edits_steps_by_file_name(stored: None) -> None:
    document, steps = sequence()
    steps[1] = StepText("02-risk.md", "Over risico, {{ first_name }}", "Nieuwe tekst.\r\n\r\nTweede alinea.")
    steps.append(StepText("04-extra.md", "Nog één", "Extra stap."))
    document["steps"].append({"file": "04-extra.md", "after": "1 week"})
    document["priority"] = 20
    assert saved(editing.save_sequence(document, steps)) == [
        "updated sequence daytrading-beginners (priority, steps)"
    ]
    row = db.session.scalar(select(Sequence).where(Sequence.slug == "daytrading-beginners"))
    assert row is not None
    assert [(step.key, step.delay_seconds) for step in row.steps][-2:] == [
        ("03-costs-and-plan.md", 3 * 86400),
        ("04-extra.md", 7 * 86400),
    ]
    assert row.steps[1].body == "Nieuwe tekst.\n\nTweede alinea."
    assert row.steps[1].subject == "Over risico, {{ first_name }}"


def test_deactivate_and_save_again_switches_it_back_on(
    stored: None, caplog: pytest.LogCaptureFixture
) -> None:
    document, steps = sequence()
    with caplog.at_level(logging.INFO, logger="leadcapture"):
        assert saved(editing.deactivate_sequence("daytrading-beginners")) == [
            "deactivated sequence daytrading-beginners"
        ]
    assert [record.getMessage() for record in caplog.records] == [
        "saved sequence daytrading-beginners: deactivated sequence daytrading-beginners"
    ]
    assert saved(editing.deactivate_sequence("daytrading-beginners")) == []
    assert saved(editing.save_sequence(document, steps)) == ["updated sequence daytrading-beginners (active)"]
    with pytest.raises(NotFound):
        editing.deactivate_sequence("no-such-sequence")


def test_save_sequence_creates_a_new_slug(stored: None) -> None:
    document = {
        "slug": "etf-starters",
        "name": "ETF's voor starters",
        "locale": "nl",
        "audience": {"investment_interests": {"any_of": ["etfs"]}, "is_investor": "no"},
        "on_change": "stay",
        "steps": [{"file": "01-hallo.md", "after": "2 hours"}],
    }
    steps = [StepText("01-hallo.md", "Hallo: ETF's!", "# Welkom\n\n{{ answers.is_investor }}")]
    assert saved(editing.save_sequence(document, steps)) == ["created sequence etf-starters"]
    stored_document, stored_steps = sequence("etf-starters")
    assert stored_document["audience"] == document["audience"]
    assert stored_steps == steps


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda d, s: d.update(slug="Beginners"), "slug", "'Beginners' is not valid"),
        (lambda d, s: d.update(name="a\nb"), "name", "must be one line"),
        (lambda d, s: d.update(locale="fr"), "locale", "must be one of nl, en, not 'fr'"),
        (
            lambda d, s: d.update(audience={"daytrading_experience": "lots"}),
            "audience",
            "unknown option 'lots'",
        ),
        (lambda d, s: d.update(audience={"nope": "x"}), "audience", "nope: unknown question 'nope'"),
        (lambda d, s: d.update(audience=["x"]), "audience", "must be a mapping of question keys"),
        (lambda d, s: d.update(on_change="leave"), "on_change", "must be one of switch, finish_step, stay"),
        (lambda d, s: d.update(priority=5000), "priority", "must be between -1000 and 1000, not 5000"),
        (lambda d, s: d.update(fresh_only="yes"), "fresh_only", "must be true or false, not 'yes'"),
        (lambda d, s: d.update(steps=[]), "steps", "a sequence has 1 to 50 steps, not 0"),
        (lambda d, s: d["steps"][0].update(after="soon"), "steps", "steps[0].after: 'soon' is not a delay"),
        (
            lambda d, s: d["steps"][0].update(file="../../x.md"),
            "steps",
            "'../../x.md' is not a step file name",
        ),
        (lambda d, s: s.pop(), "steps", "03-costs-and-plan.md does not exist"),
        (
            lambda d, s: s.append(StepText("09-x.md", "x", "y")),
            "steps",
            "09-x.md: is not listed in the steps",
        ),
        (lambda d, s: s.append(StepText("../../x.md", "x", "y")), "steps", "'../../x.md' is not a step file"),
        (
            lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "", "b")),
            "steps",
            "subject: must not be empty",
        ),
        (lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "a\nb", "b")), "steps", "must be one line"),
        (lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "s", " ")), "steps", "there is no body"),
        (
            lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "s", "{{ x }")),
            "steps",
            "01-welcome.md: line",
        ),
        (
            lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "s", "{{ config.SECRET_KEY }}")),
            "steps",
            "unknown name 'config'",
        ),
        (
            lambda d, s: s.__setitem__(0, StepText("01-welcome.md", "s", "x" * 300_000)),
            "steps",
            "01-welcome.md: is larger than 256 KiB",
        ),
    ],
)
def test_sequence_problems_belong_to_their_field(stored: None, edit: Any, field: str, message: str) -> None:
    document, steps = sequence()
    edit(document, steps)
    fields, general = refused(editing.save_sequence, document, steps)
    assert general == []
    assert list(fields) == [field]
    assert any(message in text for text in fields[field]), fields


def test_steps_of_the_wrong_type_are_refused(stored: None) -> None:
    document, _ = sequence()
    fields, _ = refused(editing.save_sequence, document, [StepText("01-welcome.md", 5, None)])  # type: ignore[arg-type]
    assert "a step must have a file name, subject and body" in fields["steps"]
    fields, _ = refused(editing.save_sequence, document, "01-welcome.md")  # type: ignore[arg-type]
    assert "01-welcome.md does not exist" in " ".join(fields["steps"])


# --- field_errors -----------------------------------------------------------------------------------------


def test_field_errors_groups_by_top_level_field() -> None:
    problems = [
        Problem("content/questions/q.yaml", "text.nl: must not be empty", ("text", "nl")),
        Problem("content/questions/q.yaml", "text: unknown locale 'de' (expected nl, en)", ("text",)),
        Problem("content/questions/q.yaml", "options[2].value: 'X' is not valid", ("options", 2, "value")),
        Problem("content/questions/q.yaml", "line 3, column 1: duplicate key 'text'"),
        Problem("content/sequences/s/01-welcome.md", "line 5: unknown name 'x'", line=5),
        Problem("content/questions/q.yaml", "colour: unknown field 'colour'", ("colour",)),
    ]
    assert editing.field_errors(problems) == (
        {
            "text": ["nl: must not be empty", "unknown locale 'de' (expected nl, en)"],
            "options": ["options[2].value: 'X' is not valid"],
            "steps": ["01-welcome.md: line 5: unknown name 'x'"],
        },
        ["line 3, column 1: duplicate key 'text'", "colour: unknown field 'colour'"],
    )


def test_saving_is_one_log_line(stored: None, caplog: pytest.LogCaptureFixture) -> None:
    document = question("is_investor")
    document["fresh_for_days"] = 30
    with caplog.at_level(logging.INFO, logger="leadcapture"):
        editing.save_question(copy.deepcopy(document))
        editing.save_question(document)
    assert [record.getMessage() for record in caplog.records] == [
        "saved question is_investor: updated question is_investor (fresh_for_days)",
        "saved question is_investor: nothing changed",
    ]


def test_a_broken_stored_definition_is_named_when_it_blocks_a_save(stored: None) -> None:
    row = db.session.scalar(select(Question).where(Question.key == "investment_interests"))
    assert row is not None
    row.fresh_for_days = 0  # stored by something other than the checks
    db.session.commit()
    document = widget()
    document["allowed_origins"] = ["https://beleggen.example"]
    fields, general = refused(editing.save_widget, document)
    assert fields == {}
    assert general == [
        "question 'investment_interests' has a problem: fresh_for_days: must be between 1 and 3650, not 0"
    ]


def test_a_step_given_twice_is_refused(stored: None) -> None:
    document, steps = sequence()
    steps.append(StepText("01-welcome.md", "Another", "Body"))
    fields, general = refused(editing.save_sequence, document, steps)
    assert (fields, general) == ({"steps": ["'01-welcome.md' is given twice"]}, [])


def test_switching_off_is_not_held_up_by_problems_elsewhere(stored: None) -> None:
    row = db.session.scalar(select(Question).where(Question.key == "investment_interests"))
    assert row is not None
    row.fresh_for_days = 0
    db.session.commit()
    assert saved(editing.deactivate_sequence("daytrading-active")) == [
        "deactivated sequence daytrading-active"
    ]
    inactive = db.session.scalar(select(Sequence).where(Sequence.slug == "daytrading-active"))
    assert inactive is not None
    assert not inactive.active


# --- versions: no edit lost between two editors -----------------------------------------------------------


def test_a_save_at_the_opened_version_raises_it_and_loads_only_that_definition(stored: None) -> None:
    row = db.session.scalar(select(Question).where(Question.key == "is_investor"))
    assert row is not None
    opened = row.version
    others = {
        (type(other).__name__, other.id): other.version
        for model in (Question, Report, Widget, Sequence)
        for other in db.session.scalars(select(model))
        if other is not row
    }
    edited = question("is_investor")
    edited["text"]["en"] = "Do you invest already?"
    assert saved(editing.save_question(edited, version=opened)) == ["updated question is_investor (text)"]
    assert db.session.get(Question, row.id).version == opened + 1  # type: ignore[union-attr]
    assert {
        (type(other).__name__, other.id): other.version
        for model in (Question, Report, Widget, Sequence)
        for other in db.session.scalars(select(model))
        if other.id != row.id or not isinstance(other, Question)
    } == others


def test_a_save_against_an_older_version_changes_nothing_and_names_the_fields_that_differ(
    stored: None,
) -> None:
    opened = db.session.scalar(select(Question.version).where(Question.key == "is_investor"))
    assert opened is not None
    theirs = question("is_investor")
    theirs["text"]["en"] = "Their wording"
    saved(editing.save_question(theirs, version=opened))
    before = snapshot()

    mine = question("is_investor")
    mine["text"]["en"] = "My wording"
    mine["fresh_for_days"] = 30
    mine["options"][0]["label"]["en"] = theirs["options"][0]["label"]["en"]
    with pytest.raises(editing.EditConflict) as caught:
        editing.save_question(mine, version=opened)
    db.session.commit()
    assert snapshot() == before
    assert caught.value.fields == ["text", "fresh_for_days"]
    assert caught.value.current == opened + 1
    # Saved again at the version the conflict reported, the editor's version replaces theirs.
    assert saved(editing.save_question(mine, version=caught.value.current)) == [
        "updated question is_investor (text, fresh_for_days)"
    ]


def test_each_kind_is_held_at_its_version(stored: None) -> None:
    document, steps = sequence()
    current = db.session.scalar(select(Sequence.version).where(Sequence.slug == "daytrading-beginners"))
    assert current is not None
    edited_steps = [StepText(steps[0].file, "Another subject", steps[0].body), *steps[1:]]
    with pytest.raises(editing.EditConflict) as caught:
        editing.save_sequence(document, edited_steps, version=current - 1)
    assert caught.value.fields == ["steps"]
    db.session.rollback()
    edited_widget = {**widget(), "allowed_origins": ["https://elsewhere.example"]}
    with pytest.raises(editing.EditConflict) as caught:
        editing.save_widget(edited_widget, version=0)
    assert caught.value.fields == ["allowed_origins"]
    db.session.rollback()
    edited_report = {**report(), "title": {"nl": "Een andere titel", "en": "Another title"}}
    with pytest.raises(editing.EditConflict) as caught:
        editing.save_report(edited_report, version=99)
    assert caught.value.fields == ["title"]
    db.session.rollback()


def test_a_form_sent_again_that_holds_what_is_stored_is_no_conflict(stored: None) -> None:
    opened = db.session.scalar(select(Question.version).where(Question.key == "is_investor"))
    assert opened is not None
    edited = question("is_investor")
    edited["text"]["en"] = "Do you invest already?"
    assert saved(editing.save_question(edited, version=opened)) == ["updated question is_investor (text)"]
    assert saved(editing.save_question(edited, version=opened)) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_editors_saving_from_the_same_version_lose_nothing(app: Flask, stored: None) -> None:
    """Two real connections on PostgreSQL save the same question at the same moment: one wins, the other is
    told, and what the winner saved is what is stored. (SQLite has one writer at a time: no race to lose.)"""
    opened = db.session.scalar(select(Question.version).where(Question.key == "is_investor"))
    assert opened is not None
    db.session.commit()
    ready = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def editor(name: str) -> None:
        with app.app_context():
            try:
                document = question("is_investor")
                document["text"]["en"] = f"Wording of {name}"
                ready.wait(timeout=10)
                editing.save_question(document, version=opened)
                db.session.commit()
                outcomes[name] = "saved"
            except editing.EditConflict as exc:
                db.session.rollback()
                outcomes[name] = f"conflict {exc.fields} at {exc.current}"

    threads = [threading.Thread(target=editor, args=(name,)) for name in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == [f"conflict ['text'] at {opened + 1}", "saved"]
    winner = next(name for name, outcome in outcomes.items() if outcome == "saved")
    db.session.expire_all()
    row = db.session.scalar(select(Question).where(Question.key == "is_investor"))
    assert row is not None
    assert row.text["en"] == f"Wording of {winner}"
    assert row.version == opened + 1


def test_problems_say_where_they_are_for_programs_as_well_as_people(stored: None) -> None:
    document, steps = sequence()
    document["audience"] = {"is_investor": ["maybe"]}
    steps = [StepText(steps[0].file, steps[0].subject, "Hallo,\n\n{{ first_nam }}"), *steps[1:]]
    with pytest.raises(ContentHasProblems) as caught:
        editing.save_sequence(document, steps)
    located = {(problem.field, problem.line, problem.code) for problem in caught.value.problems}
    assert located == {(("audience", "is_investor"), None, "audience"), ((), 6, "template")}

    edited = question("is_investor")
    edited["text"]["nl"] = ""
    edited["options"][1]["value"] = "Not A Value"
    with pytest.raises(ContentHasProblems) as caught:
        editing.save_question(edited)
    assert {(problem.field, problem.code) for problem in caught.value.problems} >= {
        (("text", "nl"), "invalid"),
        (("options", 1, "value"), "invalid"),
    }
