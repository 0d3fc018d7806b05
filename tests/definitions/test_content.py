"""Content files: `content check` (no database), `content load` (both databases) and the reader."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from datetime import timedelta
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskCliRunner
from pypdf import PdfReader
from sqlalchemy import select

from leadcapture import clock
from leadcapture.cli import main
from leadcapture.config import BUNDLED_CONTENT_DIR, resolve_content_dir
from leadcapture.definitions import Problem, read_content
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    Question,
    QuestionKind,
    Report,
    Widget,
)
from leadcapture.services.content import ContentHasProblems, load_content
from tests.support.content import answer, check, load, options_of, problems_of, snapshot, write

# --- the bundled demo content ----------------------------------------------------------------------------


def test_bundled_content_passes_check() -> None:
    result = check(BUNDLED_CONTENT_DIR)
    assert result.exit_code == 0, result.output
    assert result.output == "ok: 3 questions, 3 topics, 1 report, 2 widgets, 4 sequences\n"


def test_bundled_content_reads_into_typed_definitions() -> None:
    bundle = read_content(BUNDLED_CONTENT_DIR)
    assert bundle.ok
    assert list(bundle.questions) == ["daytrading_experience", "investment_interests", "is_investor"]
    experience = bundle.questions["daytrading_experience"]
    assert experience.kind is QuestionKind.CHOICE
    assert [option.value for option in experience.options] == ["none", "some", "active"]
    assert experience.options[0].label == {"nl": "Het is nieuw voor me", "en": "It is new to me"}
    # yes_no without options gets yes/no with the product's own labels in every locale
    investor = bundle.questions["is_investor"]
    assert [(o.value, o.label) for o in investor.options] == [
        ("yes", {"nl": "Ja", "en": "Yes"}),
        ("no", {"nl": "Nee", "en": "No"}),
    ]
    assert bundle.questions["investment_interests"].kind is QuestionKind.MULTI

    report = bundle.reports["daytrading-guide"]
    assert [(file.locale, file.filename, file.content_type) for file in report.files] == [
        ("nl", "daytraden-gids.pdf", "application/pdf"),
        ("en", "daytrading-guide.pdf", "application/pdf"),
    ]
    for file in report.files:
        data = (BUNDLED_CONTENT_DIR / "reports/files" / file.filename).read_bytes()
        assert (file.size, file.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert set(report.title) == set(report.description) == {"nl", "en"}

    nl, en = bundle.widgets["daytrading-report"], bundle.widgets["daytrading-report-en"]
    assert (nl.locale, en.locale) == ("nl", "en")
    for widget in (nl, en):
        assert widget.report == "daytrading-guide"
        assert widget.questions == ("is_investor", "daytrading_experience", "investment_interests")
        assert widget.allowed_origins == (
            "https://beleggen.example",
            "http://127.0.0.1:5001",
            "http://localhost:5001",
        )
        assert widget.locale in widget.texts["prompt"]


@pytest.mark.parametrize(
    ("name", "locale", "title", "words"),
    [
        (
            "daytraden-gids.pdf",
            "nl",
            "Daytraden voor beginners",
            ("Wat is daytraden?", "Voor je eerste trade"),
        ),
        (
            "daytrading-guide.pdf",
            "en",
            "Daytrading for beginners",
            ("What is daytrading?", "Before your first"),
        ),
    ],
)
def test_bundled_pdfs_are_small_valid_pdfs_in_their_language(
    name: str, locale: str, title: str, words: tuple[str, ...]
) -> None:
    path = BUNDLED_CONTENT_DIR / "reports/files" / name
    assert path.stat().st_size < 10 * 1024
    pdf = PdfReader(path, strict=True)
    assert (len(pdf.pages), pdf.metadata.title if pdf.metadata else None) == (3, title)
    assert pdf.trailer["/Root"]["/Lang"] == locale
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert text.startswith(title)
    for phrase in words:
        assert phrase in text
    other = {"nl": "What is daytrading?", "en": "Wat is daytraden?"}[locale]
    assert other not in text


def test_check_summary_counts_and_ignores_notes(content_dir: Path) -> None:
    write(content_dir / "questions/README.md", "Editors' notes are not definitions.")
    write(content_dir / "sequences/README.md", "Neither are these.")
    (content_dir / "widgets/daytrading-report-en.yaml").unlink()
    shutil.rmtree(content_dir / "sequences/daytrading-active-en")
    result = check(content_dir)
    assert (result.exit_code, result.output) == (0, "ok: 3 questions, 3 topics, 1 report, 1 widget, 3 sequences\n")


def test_check_needs_no_database_or_secret_key(content_dir: Path) -> None:
    """The real `leadcapture content check`, with no secret key and an unreachable database."""
    env = {
        "LEADCAPTURE_SECRET_KEY": None,
        "LEADCAPTURE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "LEADCAPTURE_CONTENT_DIR": str(content_dir),
    }
    result = CliRunner().invoke(main, ["content", "check"], env=env)
    assert (result.exit_code, result.output) == (0, "ok: 3 questions, 3 topics, 1 report, 2 widgets, 4 sequences\n")

    write(content_dir / "questions/is_investor.yaml", "key: is_investor\nkind: maybe\ntext: Invest?\n")
    result = CliRunner().invoke(main, ["content", "check"], env=env)
    assert result.exit_code == 1
    assert "content/questions/is_investor.yaml: kind: must be one of yes_no, choice, multi, not 'maybe'" in (
        result.output.splitlines()
    )


def test_resolve_content_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_content_dir(None) is None
    (tmp_path / "content").mkdir()
    assert resolve_content_dir(None) == Path("content")
    assert resolve_content_dir("  ") == Path("content")
    assert resolve_content_dir("/srv/content") == Path("/srv/content")


def test_missing_directory_is_a_problem(tmp_path: Path) -> None:
    result = check(tmp_path / "nowhere")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == f"{tmp_path / 'nowhere'}: is not a directory"


def test_problem_prints_as_path_colon_message() -> None:
    assert str(Problem("content/widgets/x.yaml", "questions[1]: unknown question 'foo'")) == (
        "content/widgets/x.yaml: questions[1]: unknown question 'foo'"
    )


# --- malformed and hostile files -------------------------------------------------------------------------

QUESTION = "content/questions/is_investor.yaml"
CHOICE = "content/questions/daytrading_experience.yaml"
REPORT = "content/reports/daytrading-guide.yaml"
WIDGET = "content/widgets/daytrading-report.yaml"

CHOICE_HEAD = "key: daytrading_experience\nkind: choice\ntext: Experience?\n"
REPORT_HEAD = "slug: daytrading-guide\ntitle: {nl: Daytraden, en: Daytrading}\n"
WIDGET_HEAD = "slug: daytrading-report\nreport: daytrading-guide\nlocale: nl\n"
WIDGET_TAIL = "prompt: Wil je het rapport?\nquestions: [is_investor]\n"
ORIGINS = "allowed_origins: [https://beleggen.example]\n"
ALLOWED = "(allowed: pdf, epub, zip, png, jpg, jpeg, mp3, mp4, xlsx, docx)"
EXAMPLES = "(e.g. https://news.example or http://localhost:5001)"
ORIGIN_ONLY = "must be scheme://host[:port] only, without a path or query"


def _options(count: int) -> str:
    return "options:\n" + "".join(f"  - {{value: v{n}, label: Option {n}}}\n" for n in range(count))


MALFORMED: list[tuple[str, str, str]] = [
    # questions
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\ncolour: red\n",
        "colour: unknown field 'colour' (expected key, kind, text, options, fresh_for_days)",
    ),
    (
        QUESTION,
        "key: is_investor\nkid: yes_no\ntext: Invest?\n",
        "kid: unknown field 'kid'; did you mean 'kind'?",
    ),
    (QUESTION, "key: is_investor\ntext: Invest?\n", "kind: is required"),
    (
        QUESTION,
        "key: is_investor\nkind: yesno\ntext: Invest?\n",
        "kind: must be one of yes_no, choice, multi, not 'yesno'",
    ),
    (
        QUESTION,
        "key: Is-Investor\nkind: yes_no\ntext: Invest?\n",
        "key: 'Is-Investor' is not valid: use a lowercase letter, then up to 63 lowercase letters, "
        "digits or '_'",
    ),
    (
        QUESTION,
        "key: investor\nkind: yes_no\ntext: Invest?\n",
        "key: 'investor' does not match the file name (expected investor.yaml)",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: [a, b]\n",
        "text: must be a text or a mapping of locale to text (nl, en), not a list",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: {nl: Beleg je, de: Investieren Sie}\n",
        "text: unknown locale 'de' (expected nl, en)",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: {nl: '  ', en: Invest}\n",
        "text.nl: must not be empty",
    ),
    (QUESTION, "key: is_investor\nkind: yes_no\ntext: {}\n", "text: is empty"),
    (
        QUESTION,
        f"key: is_investor\nkind: yes_no\ntext: {'x' * 501}\n",
        "text: is 501 characters long; the limit is 500",
    ),
    (
        QUESTION,
        'key: is_investor\nkind: yes_no\ntext: "In\\0vest?"\n',
        "text: contains the control character U+0000",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\nfresh_for_days: '90'\n",
        "fresh_for_days: must be a whole number of days, not a string",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\nfresh_for_days: true\n",
        "fresh_for_days: must be a whole number of days, not true/false",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\nfresh_for_days: 0\n",
        "fresh_for_days: must be between 1 and 3650, not 0",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\nfresh_for_days: 3651\n",
        "fresh_for_days: must be between 1 and 3650, not 3651",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\ntext: Invest?\n"
        "options: [{value: yes, label: Ja}, {value: maybe, label: Misschien}]\n",
        "options: a yes_no question has exactly the options yes and no (or leave options out)",
    ),
    (CHOICE, CHOICE_HEAD, "options: is required"),
    (CHOICE, CHOICE_HEAD + _options(1), "options: a choice question needs 2 to 20 options, not 1"),
    (CHOICE, CHOICE_HEAD + _options(21), "options: a choice question needs 2 to 20 options, not 21"),
    (CHOICE, CHOICE_HEAD + "options: {none: New}\n", "options: must be a list, not a mapping"),
    (
        CHOICE,
        CHOICE_HEAD + "options: [{value: none, label: New}, {value: none, label: Tried}]\n",
        "options[1].value: 'none' is used twice",
    ),
    (
        CHOICE,
        CHOICE_HEAD + "options: [{value: none, label: New}, {value: Some One, label: Tried}]\n",
        "options[1].value: 'Some One' is not valid: use up to 64 lowercase letters, digits, '_' or '-', "
        "starting with a letter or digit",
    ),
    (
        CHOICE,
        CHOICE_HEAD + "options: [{value: none, label: New}, {value: some}]\n",
        "options[1].label: is required",
    ),
    (
        CHOICE,
        CHOICE_HEAD + "options: [{value: none, label: New}, {value: some, label: Tried, colour: red}]\n",
        "options[1].colour: unknown field 'colour' (expected value, label)",
    ),
    (
        CHOICE,
        CHOICE_HEAD + "options: [{value: none, label: New}, some]\n",
        "options[1]: must be a mapping such as {value: some, label: Some}, not a string",
    ),
    # whole files
    (QUESTION, "", "is empty"),
    (QUESTION, "# only a comment\n", "is empty"),
    (QUESTION, "- key: is_investor\n", "the top level must be a mapping of fields, not a list"),
    (QUESTION, "just some words\n", "the top level must be a mapping of fields, not a string"),
    (
        QUESTION,
        "key: is_investor\nkind: [yes_no\ntext: Invest?\n",
        "line 3, column 5: expected ',' or ']', but got ':'",
    ),
    (
        QUESTION,
        "key: is_investor\nkind: yes_no\nkind: choice\ntext: Invest?\n",
        "line 3, column 1: duplicate key 'kind'",
    ),
    (
        QUESTION,
        "key: is_investor\n---\nkey: is_investor\n",
        "line 2, column 1: expected a single document in the stream, but found another document",
    ),
    (
        QUESTION,
        "key: !!python/object/apply:os.system ['true']\n",
        "line 1, column 6: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (QUESTION, "text: &a [*a]\n", "line 1, column 11: an alias may not refer to a value that contains it"),
    (
        QUESTION,
        "key: " + "[" * 5000 + "]" * 5000 + "\n",
        "line 1, column 37: nested more than 32 levels deep",
    ),
    # reports
    (REPORT, REPORT_HEAD, "file: is required"),
    (
        REPORT,
        REPORT_HEAD + "file: ../../../../etc/passwd.pdf\n",
        "file: '../../../../etc/passwd.pdf' must not contain '..'",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: files/../../questions/is_investor.pdf\n",
        "file: 'files/../../questions/is_investor.pdf' must not contain '..'",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: /etc/passwd.pdf\n",
        "file: '/etc/passwd.pdf' must be a relative path such as files/guide.pdf",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: files/missing.pdf\n",
        "file: content/reports/files/missing.pdf does not exist",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: files\n",
        f"file: 'files' has an unsupported file type {ALLOWED}",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: files/run.exe\n",
        f"file: 'files/run.exe' has an unsupported file type {ALLOWED}",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: [files/a.pdf]\n",
        "file: give a path relative to the reports folder (files/guide.pdf) or a mapping of locale to path "
        "({nl: files/gids.pdf, en: files/guide.pdf}), not a list",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {}\n",
        "file: is empty: give a path relative to the reports folder (files/guide.pdf) or a mapping of locale "
        "to path ({nl: files/gids.pdf, en: files/guide.pdf})",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {nl: files/daytrading-guide.pdf, de: files/daytrading-guide.pdf}\n",
        "file: unknown locale 'de' (expected nl, en)",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {nl: files/daytrading-guide.pdf, en: 3}\n",
        "file.en: must be a path such as files/guide.pdf, not a number",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {nl: files/gids.pdf, en: files/daytrading-guide.pdf}\n",
        "file.nl: content/reports/files/gids.pdf does not exist",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {nl: ../widgets/gids.pdf, en: files/daytrading-guide.pdf}\n",
        "file.nl: '../widgets/gids.pdf' must not contain '..'",
    ),
    (
        REPORT,
        REPORT_HEAD + "file: {en: files/daytrading-guide.pdf, nl: files/guide.exe}\n",
        f"file.nl: 'files/guide.exe' has an unsupported file type {ALLOWED}",
    ),
    (
        REPORT,
        "slug: Daytrading Guide\ntitle: Guide\nfile: files/daytrading-guide.pdf\n",
        "slug: 'Daytrading Guide' is not valid: "
        "use up to 64 lowercase letters, digits or '-', not starting with '-'",
    ),
    (
        REPORT,
        REPORT_HEAD + f"description: {'d' * 2001}\nfile: files/daytrading-guide.pdf\n",
        "description: is 2001 characters long; the limit is 2000",
    ),
    # widgets
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + "prompt: Wil je het rapport?\nquestions: [is_investor, foo]\n",
        "questions[1]: unknown question 'foo'",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + "prompt: Wil je het rapport?\nquestions: [is_investor, is_investor]\n",
        "questions[1]: 'is_investor' is asked twice",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + "prompt: Wil je het rapport?\nquestions: []\n",
        "questions: a widget asks 1 to 3 questions, not 0",
    ),
    (
        WIDGET,
        WIDGET_HEAD
        + ORIGINS
        + "prompt: Wil je?\n"
        + "questions: [is_investor, daytrading_experience, investment_interests, is_investor]\n",
        "questions: a widget asks 1 to 3 questions, not 4",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + "prompt: Wil je het rapport?\nquestions: is_investor\n",
        "questions: must be a list, not a string",
    ),
    (
        WIDGET,
        "slug: daytrading-report\nreport: nope\nlocale: nl\n" + ORIGINS + WIDGET_TAIL,
        "report: unknown report 'nope'",
    ),
    (
        WIDGET,
        "slug: daytrading-report\nreport: daytrading-guide\nlocale: de\n" + ORIGINS + WIDGET_TAIL,
        "locale: must be one of nl, en, not 'de'",
    ),
    (WIDGET, WIDGET_HEAD + ORIGINS + "questions: [is_investor]\n", "prompt: is required"),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + "prompt: {en: Want the report}\nquestions: [is_investor]\n",
        "prompt: has no nl text (the widget's locale)",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + WIDGET_TAIL + "texts: {titel: Rapport}\n",
        "texts.titel: unknown text 'titel'; did you mean 'title'?",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + WIDGET_TAIL + "texts: [title]\n",
        "texts: must be a mapping of text names "
        "(title, start, submit, success, consent_report, consent_sequences) to texts, not a list",
    ),
    (
        WIDGET,
        WIDGET_HEAD + ORIGINS + WIDGET_TAIL + "texts: {submit: ''}\n",
        "texts.submit: must not be empty",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: []\n" + WIDGET_TAIL,
        "allowed_origins: needs at least one origin, e.g. https://news.example",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: https://beleggen.example\n" + WIDGET_TAIL,
        "allowed_origins: must be a list, not a string",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['https://*.beleggen.example']\n" + WIDGET_TAIL,
        "allowed_origins[0]: 'https://*.beleggen.example': wildcards are not allowed; list each origin",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['*']\n" + WIDGET_TAIL,
        "allowed_origins[0]: '*': wildcards are not allowed; list each origin",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: [https://beleggen.example/artikel]\n" + WIDGET_TAIL,
        f"allowed_origins[0]: 'https://beleggen.example/artikel' {ORIGIN_ONLY}",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['https://beleggen.example?x=1']\n" + WIDGET_TAIL,
        f"allowed_origins[0]: 'https://beleggen.example?x=1' {ORIGIN_ONLY}",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['https://editor:pw@beleggen.example']\n" + WIDGET_TAIL,
        "allowed_origins[0]: 'https://editor:pw@beleggen.example' must not contain a user name or password",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['ftp://beleggen.example']\n" + WIDGET_TAIL,
        f"allowed_origins[0]: 'ftp://beleggen.example' is not an http or https origin {EXAMPLES}",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: [beleggen.example]\n" + WIDGET_TAIL,
        f"allowed_origins[0]: 'beleggen.example' is not an http or https origin {EXAMPLES}",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['https://beleggen.example:99999']\n" + WIDGET_TAIL,
        f"allowed_origins[0]: 'https://beleggen.example:99999' is not an origin {EXAMPLES}",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: ['https://bad_host.example']\n" + WIDGET_TAIL,
        "allowed_origins[0]: 'https://bad_host.example' has an invalid host name",
    ),
    (
        WIDGET,
        WIDGET_HEAD
        + "allowed_origins: [https://beleggen.example, 'HTTPS://Beleggen.Example:443']\n"
        + WIDGET_TAIL,
        "allowed_origins[1]: https://beleggen.example is listed twice",
    ),
    (
        WIDGET,
        WIDGET_HEAD + "allowed_origins: [42]\n" + WIDGET_TAIL,
        "allowed_origins[0]: must be an origin (e.g. https://news.example or http://localhost:5001), "
        "not a number",
    ),
]


@pytest.mark.parametrize(
    ("relative", "text", "message"),
    MALFORMED,
    ids=[f"{PurePosixPath(relative).stem}-{message[:50]}" for relative, _, message in MALFORMED],
)
def test_malformed_file_is_reported_precisely(
    content_dir: Path, relative: str, text: str, message: str
) -> None:
    write(content_dir.parent / relative, text)
    result = check(content_dir)
    assert result.exit_code == 1
    assert f"{relative}: {message}" in result.output.splitlines(), result.output


def test_check_reports_every_problem_of_a_file_at_once(content_dir: Path) -> None:
    write(
        content_dir / "widgets/daytrading-report.yaml",
        "slug: daytrading-report\nreport: nope\nlocale: fr\n"
        "allowed_origins: [ftp://x.example, https://ok.example]\n"
        "prompt: Wil je?\nquestions: [is_investor, foo]\nextra: 1\n",
    )
    result = check(content_dir)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{WIDGET}: extra: unknown field 'extra' "
        "(expected slug, report, locale, allowed_origins, prompt, texts, questions, ask_first_name)",
        f"{WIDGET}: report: unknown report 'nope'",
        f"{WIDGET}: locale: must be one of nl, en, not 'fr'",
        f"{WIDGET}: allowed_origins[0]: 'ftp://x.example' is not an http or https origin "
        "(e.g. https://news.example or http://localhost:5001)",
        f"{WIDGET}: questions[1]: unknown question 'foo'",
    ]
    assert "5 problems in" in result.stderr


def test_invalid_utf8_is_a_problem(content_dir: Path) -> None:
    (content_dir / "questions/is_investor.yaml").write_bytes(
        b"key: is_investor\nkind: yes_no\ntext: Beleg\xff je?\n"
    )
    assert problems_of(content_dir) == [f"{QUESTION}: line 3: not valid UTF-8 (byte 41)"]


def test_oversized_yaml_file_is_refused_unread(content_dir: Path) -> None:
    write(content_dir / "questions/is_investor.yaml", "key: is_investor\n" + "# padding\n" * 30_000)
    assert problems_of(content_dir) == [f"{QUESTION}: is larger than 256 KiB"]


def test_yaml_bomb_is_refused_quickly(content_dir: Path) -> None:
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb += f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    write(content_dir / "questions/is_investor.yaml", bomb)
    started = time.perf_counter()
    problems = problems_of(content_dir)
    assert time.perf_counter() - started < 2
    assert problems[0].startswith(f"{QUESTION}: line 5, column 4: expands to more than 10000 values")


def test_many_aliases_are_refused(content_dir: Path) -> None:
    write(content_dir / "questions/is_investor.yaml", "a: &a x\nb: [" + ", ".join(["*a"] * 101) + "]\n")
    assert problems_of(content_dir)[0].endswith("more than 100 aliases")


def test_honest_anchors_and_merge_keys_are_fine(content_dir: Path) -> None:
    write(
        content_dir / "questions/daytrading_experience.yaml",
        "key: daytrading_experience\nkind: choice\ntext: &t {nl: Ervaring, en: Experience}\n"
        "options:\n  - {value: none, label: *t}\n  - {value: some, label: {<<: *t, en: Some}}\n"
        "  - {value: active, label: *t}\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    options = bundle.questions["daytrading_experience"].options
    assert options[1].label == {"nl": "Ervaring", "en": "Some"}


def test_yml_extension_is_flagged(content_dir: Path) -> None:
    write(content_dir / "questions/extra.yml", "key: extra\n")
    assert problems_of(content_dir) == [
        "content/questions/extra.yml: rename to .yaml: only .yaml files are read"
    ]


def test_duplicate_keys_and_slugs_across_files(content_dir: Path) -> None:
    shutil.copy(content_dir / "reports/daytrading-guide.yaml", content_dir / "reports/zz-copy.yaml")
    shutil.copy(content_dir / "widgets/daytrading-report.yaml", content_dir / "widgets/zz-copy.yaml")
    shutil.copy(content_dir / "questions/is_investor.yaml", content_dir / "questions/zz_copy.yaml")
    problems = problems_of(content_dir)
    assert "content/questions/zz_copy.yaml: key: 'is_investor' is already defined in " + QUESTION in problems
    assert (
        f"content/reports/zz-copy.yaml: slug: 'daytrading-guide' is already defined in {REPORT}" in problems
    )
    assert (
        f"content/widgets/zz-copy.yaml: slug: 'daytrading-report' is already defined in {WIDGET}" in problems
    )


def test_a_broken_definition_is_not_reported_again_where_it_is_used(content_dir: Path) -> None:
    write(
        content_dir / "questions/is_investor.yaml",
        "key: is_investor\nkind: yes_no\ntext: Invest?\nfresh_for_days: 0\n",
    )
    write(content_dir / "reports/daytrading-guide.yaml", REPORT_HEAD + "file: files/missing.pdf\n")
    assert problems_of(content_dir) == [
        f"{QUESTION}: fresh_for_days: must be between 1 and 3650, not 0",
        f"{REPORT}: file: content/reports/files/missing.pdf does not exist",
    ]


def test_widget_needs_its_locale_in_questions_and_report(content_dir: Path) -> None:
    write(
        content_dir / "questions/daytrading_experience.yaml",
        CHOICE_HEAD.replace("text: Experience?", "text: {en: Experience}")
        + "options: [{value: none, label: New}, {value: some, label: Tried}]\n",
    )
    write(
        content_dir / "reports/daytrading-guide.yaml",
        "slug: daytrading-guide\ntitle: {en: Daytrading}\nfile: files/daytrading-guide.pdf\n",
    )
    problems = problems_of(content_dir)
    assert f"{WIDGET}: questions[1]: question 'daytrading_experience' has no nl text" in problems
    assert f"{WIDGET}: report: report 'daytrading-guide' has no nl title (the widget's locale)" in problems
    assert not [p for p in problems if "daytrading-report-en" in p]


def test_report_symlink_out_of_the_content_directory(content_dir: Path, tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.pdf", "%PDF-1.4 not yours")
    (content_dir / "reports/files/guide.pdf").symlink_to(secret)
    write(content_dir / "reports/daytrading-guide.yaml", REPORT_HEAD + "file: files/guide.pdf\n")
    assert problems_of(content_dir) == [
        f"{REPORT}: file: content/reports/files/guide.pdf is a link to outside the reports folder"
    ]


def test_report_symlink_out_of_the_reports_folder(content_dir: Path) -> None:
    write(content_dir / "notes/private.pdf", "%PDF-1.4 an editor's notes")
    (content_dir / "reports/files/guide.pdf").symlink_to(content_dir / "notes/private.pdf")
    write(
        content_dir / "reports/daytrading-guide.yaml",
        REPORT_HEAD + "file: {nl: files/guide.pdf, en: files/daytrading-guide.pdf}\n",
    )
    assert problems_of(content_dir) == [
        f"{REPORT}: file.nl: content/reports/files/guide.pdf is a link to outside the reports folder"
    ]


def test_yaml_symlink_out_of_the_content_directory(content_dir: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside.yaml", "key: outside\nkind: yes_no\ntext: Out?\n")
    (content_dir / "questions/outside.yaml").symlink_to(outside)
    assert problems_of(content_dir) == [
        "content/questions/outside.yaml: is a link to outside the content directory"
    ]


def test_report_symlink_inside_the_content_directory_is_fine(content_dir: Path) -> None:
    (content_dir / "reports/files/latest.pdf").symlink_to(content_dir / "reports/files/daytrading-guide.pdf")
    write(content_dir / "reports/daytrading-guide.yaml", REPORT_HEAD + "file: files/latest.pdf\n")
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    assert [file.filename for file in bundle.reports["daytrading-guide"].files] == ["latest.pdf"]


def test_oversized_report_file(content_dir: Path) -> None:
    with (content_dir / "reports/files/daytrading-guide.pdf").open("r+b") as stream:
        stream.truncate(20 * 1024 * 1024 + 1)  # sparse: costs no disk
    assert problems_of(content_dir) == [
        f"{REPORT}: file.en: content/reports/files/daytrading-guide.pdf is 20.0 MiB; the limit is 20 MiB"
    ]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("fake.pdf", b"<html>not a pdf</html>", "is not a PDF file (it does not start like one)"),
        ("empty.pdf", b"", "is empty"),
        ("photo.png", b"GIF89a", "is not a PNG file (it does not start like one)"),
    ],
)
def test_report_file_contents_are_checked(content_dir: Path, name: str, data: bytes, message: str) -> None:
    (content_dir / "reports/files" / name).write_bytes(data)
    write(content_dir / "reports/daytrading-guide.yaml", REPORT_HEAD + f"file: files/{name}\n")
    assert problems_of(content_dir) == [f"{REPORT}: file: content/reports/files/{name} {message}"]


def test_report_types_get_their_content_type(content_dir: Path) -> None:
    (content_dir / "reports/files/sheet.xlsx").write_bytes(b"PK\x03\x04 zipped")
    write(content_dir / "reports/sheet.yaml", "slug: sheet\ntitle: Sheet\nfile: files/sheet.xlsx\n")
    report = read_content(content_dir).reports["sheet"]
    assert [(file.locale, file.content_type) for file in report.files] == [
        (None, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    ]
    assert report.description == {}


def test_every_problem_of_a_report_s_files_at_once(content_dir: Path) -> None:
    (content_dir / "reports/files/fake.pdf").write_bytes(b"<html>not a pdf</html>")
    write(
        content_dir / "reports/daytrading-guide.yaml",
        REPORT_HEAD + "file: {nl: files/fake.pdf, en: files/missing.pdf}\n",
    )
    assert problems_of(content_dir) == [
        f"{REPORT}: file.nl: content/reports/files/fake.pdf is not a PDF file (it does not start like one)",
        f"{REPORT}: file.en: content/reports/files/missing.pdf does not exist",
    ]


def test_texts_and_origins_are_normalised(content_dir: Path) -> None:
    write(
        content_dir / "widgets/daytrading-report.yaml",
        WIDGET_HEAD
        + "allowed_origins: ['HTTPS://Beleggen.Example:443/', 'http://LOCALHOST:5001',"
        + " 'https://bücher.example',"
        " 'http://[::1]:8080']\nprompt: '  Wil je het rapport?\n\n  '\nquestions: [is_investor]\n"
        "texts: {submit: Verstuur}\n",
    )
    widget = read_content(content_dir).widgets["daytrading-report"]
    assert widget.allowed_origins == (
        "https://beleggen.example",
        "http://localhost:5001",
        "https://xn--bcher-kva.example",
        "http://[::1]:8080",
    )
    assert widget.texts == {
        "prompt": {"nl": "Wil je het rapport?", "en": "Wil je het rapport?"},
        "submit": {"nl": "Verstuur", "en": "Verstuur"},
    }


# --- YAML 1.2: the documented examples and YAML's corners ------------------------------------------------

# The examples of the content format in the docs, verbatim: operators copy them, so they must load as they
# are. (PyYAML's YAML 1.1 cannot read the first one: a plain text ending in '?' inside {...}.)
DOCUMENTED_QUESTION = """\
# content/questions/daytrading_experience.yaml
key: daytrading_experience
kind: choice                # yes_no | choice | multi
text: {nl: Hoeveel ervaring heb je met daytraden?, en: How much daytrading experience do you have?}
options:
  - {value: none,   label: {nl: Het is nieuw voor me, en: It is new to me}}
  - {value: some,   label: {nl: Ik heb het geprobeerd, en: I have tried it}}
  - {value: active, label: {nl: Ik trade actief, en: I trade actively}}
fresh_for_days: 90
"""
DOCUMENTED_REPORT = """\
# content/reports/daytrading-guide.yaml
slug: daytrading-guide
title: {nl: Daytraden voor beginners, en: Daytrading for beginners}
file: files/daytrading-guide.pdf      # relative to content/reports/
"""
DOCUMENTED_WIDGET = """\
# content/widgets/daytrading-report.yaml
slug: daytrading-report
report: daytrading-guide
locale: nl
allowed_origins: [https://beleggen.example]
prompt: {nl: Wil je ons gratis rapport over daytraden?, en: Want our free daytrading report?}
questions: [is_investor, daytrading_experience]
"""
# The widget asks is_investor too; the docs show no file for it, so one in the same style.
DOCUMENTED_STYLE_YES_NO = """\
key: is_investor
kind: yes_no
text: {nl: Beleg je al?, en: Do you already invest?}
"""


@pytest.fixture
def documented_dir(tmp_path: Path) -> Path:
    """A content directory holding exactly the documented examples."""
    directory = tmp_path / "content"
    write(directory / "questions/daytrading_experience.yaml", DOCUMENTED_QUESTION)
    write(directory / "questions/is_investor.yaml", DOCUMENTED_STYLE_YES_NO)
    write(directory / "reports/daytrading-guide.yaml", DOCUMENTED_REPORT)
    write(directory / "widgets/daytrading-report.yaml", DOCUMENTED_WIDGET)
    (directory / "reports/files").mkdir()
    shutil.copy(
        BUNDLED_CONTENT_DIR / "reports/files/daytrading-guide.pdf",
        directory / "reports/files/daytrading-guide.pdf",
    )
    return directory


def test_documented_examples_pass_check(documented_dir: Path) -> None:
    result = check(documented_dir)
    assert (result.exit_code, result.output) == (0, "ok: 2 questions, 0 topics, 1 report, 1 widget, 0 sequences\n")

    bundle = read_content(documented_dir)
    experience = bundle.questions["daytrading_experience"]
    assert experience.text == {
        "nl": "Hoeveel ervaring heb je met daytraden?",
        "en": "How much daytrading experience do you have?",
    }
    assert (experience.kind, experience.fresh_for_days) == (QuestionKind.CHOICE, 90)
    assert [(o.value, o.label) for o in experience.options] == [
        ("none", {"nl": "Het is nieuw voor me", "en": "It is new to me"}),
        ("some", {"nl": "Ik heb het geprobeerd", "en": "I have tried it"}),
        ("active", {"nl": "Ik trade actief", "en": "I trade actively"}),
    ]
    assert bundle.reports["daytrading-guide"].title == {
        "nl": "Daytraden voor beginners",
        "en": "Daytrading for beginners",
    }
    assert [file.filename for file in bundle.reports["daytrading-guide"].files] == ["daytrading-guide.pdf"]
    widget = bundle.widgets["daytrading-report"]
    assert widget.texts == {
        "prompt": {
            "nl": "Wil je ons gratis rapport over daytraden?",
            "en": "Want our free daytrading report?",
        }
    }
    assert (widget.allowed_origins, widget.questions) == (
        ("https://beleggen.example",),
        ("is_investor", "daytrading_experience"),
    )
    assert [o.value for o in bundle.questions["is_investor"].options] == ["yes", "no"]


def test_documented_examples_load(app: Flask, runner: FlaskCliRunner, documented_dir: Path) -> None:
    result = load(runner, documented_dir)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "created question daytrading_experience",
        "created question is_investor",
        "created report daytrading-guide",
        "created widget daytrading-report",
    ]
    with app.app_context():
        question = db.session.scalars(select(Question).where(Question.key == "daytrading_experience")).one()
        assert question.text["nl"] == "Hoeveel ervaring heb je met daytraden?"
        widget = db.session.scalars(select(Widget).where(Widget.slug == "daytrading-report")).one()
        assert widget.texts["prompt"]["en"] == "Want our free daytrading report?"
        assert [q.key for q in widget.questions] == ["is_investor", "daytrading_experience"]
    assert load(runner, documented_dir).output == "nothing changed\n"


def test_question_marks_colons_and_hashes_in_texts(content_dir: Path) -> None:
    write(
        content_dir / "questions/daytrading_experience.yaml",
        "key: daytrading_experience\n"
        "kind: choice  # a comment after a value\n"
        "text: {nl: Wat? Echt? Hoeveel ervaring heb je?, en: 'Note: how much experience, #1?'}\n"
        "options:\n"
        "  - {value: none, label: {nl: \"Let op: nieuw?\", en: 'It''s new: #1?'}}\n"
        "  - {value: some, label: {nl: C# of F#?, en: x?y:z}}\n"
        "  - {value: active, label: {nl: Om 10:30 uur?, en: 'At 10:30? # no comment'}}  # a comment\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    question = bundle.questions["daytrading_experience"]
    assert question.text == {
        "nl": "Wat? Echt? Hoeveel ervaring heb je?",
        "en": "Note: how much experience, #1?",
    }
    assert [o.label for o in question.options] == [
        {"nl": "Let op: nieuw?", "en": "It's new: #1?"},
        {"nl": "C# of F#?", "en": "x?y:z"},
        {"nl": "Om 10:30 uur?", "en": "At 10:30? # no comment"},
    ]


def test_yes_no_on_off_stay_strings(content_dir: Path) -> None:
    """YAML 1.1 read these as booleans; content files are YAML 1.2, where only true and false are."""
    write(
        content_dir / "questions/is_investor.yaml",
        "key: is_investor\nkind: yes_no\ntext: {nl: On, en: Off}\n"
        "options: [{value: yes, label: {nl: Yes, en: Y}}, {value: no, label: {nl: NO, en: n}}]\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    investor = bundle.questions["is_investor"]
    assert investor.text == {"nl": "On", "en": "Off"}
    assert [(o.value, o.label) for o in investor.options] == [
        ("yes", {"nl": "Yes", "en": "Y"}),
        ("no", {"nl": "NO", "en": "n"}),
    ]


YAML_REFUSED: list[tuple[str, str]] = [
    (
        "%YAML 1.1\n---\nkey: is_investor\n",
        "line 1, column 1: content files are YAML 1.2, not 1.1: remove the %YAML line",
    ),
    (
        "key: &k is_investor\nkind: &k yes_no\n",
        "line 2, column 7: the anchor &k is already defined on line 1",
    ),
    (
        "key: is_investor\nkind: yes_no\ntext: Beleg\x07 je?\n",
        "line 3: contains the character U+0007, which YAML does not allow",
    ),
    ("key: is_investor\ntext: 2024-13-45\n", "line 2, column 7: '2024-13-45' is not a valid timestamp"),
    ("key: is_investor\nfresh_for_days: !!int ninety\n", "line 2, column 17: 'ninety' is not a valid int"),
    ("key: is_investor\nkind: !!bool maybe\n", "line 2, column 7: 'maybe' is not a valid bool"),
    ("key: is_investor\n[kind]: yes_no\n", "line 2, column 1: a key must be a single value, not a list"),
    (
        "key: is_investor\n? [kind, {a: b}]\n: yes_no\n",
        "line 2, column 3: a key must be a single value, not a list",
    ),
    (
        "key: is_investor\ntext: !!omap [{nl: a}, {nl: b}]\n",
        "line 2, column 7: could not determine a constructor for the tag 'tag:yaml.org,2002:omap'",
    ),
    ("t: &t {nl: a}\ntext: {<<: *t, en: b, en: c}\n", "line 2, column 23: duplicate key 'en'"),
    ("t: &t {nl: a}\ntext: {<<: *t, <<: *t}\n", 'line 2, column 16: found duplicate merge key "<<"'),
    ("text: *t\n", "line 1, column 7: found undefined alias 't'"),
    ("key: is_investor\ntext: {nl: 'open\n", "line 3, column 1: found unexpected end of stream"),
]


@pytest.mark.parametrize(("text", "message"), YAML_REFUSED, ids=[message[:50] for _, message in YAML_REFUSED])
def test_yaml_corners_are_one_line_problems(content_dir: Path, text: str, message: str) -> None:
    write(content_dir / "questions/is_investor.yaml", text)
    problems = problems_of(content_dir)
    assert problems[0] == f"{QUESTION}: {message}"


def test_merge_keys_check_each_mapping_as_written(content_dir: Path) -> None:
    """A mapping merged into another before it is itself built still has its own keys override, not clash.

    `text` is built before the options' labels (shallower), and merging rewrites the label it merges.
    """
    write(
        content_dir / "questions/daytrading_experience.yaml",
        "key: daytrading_experience\nkind: choice\n"
        "options:\n"
        "  - {value: none, label: &new {<<: {nl: Basis, en: Base}, nl: Nieuw}}\n"
        "  - {value: some, label: {nl: Wat, en: Some}}\n"
        "  - {value: active, label: {nl: Actief, en: Active}}\n"
        "text: {<<: *new, en: Experience}\n",
    )
    bundle = read_content(content_dir)
    assert bundle.ok, bundle.problems
    question = bundle.questions["daytrading_experience"]
    assert question.text == {"nl": "Nieuw", "en": "Experience"}
    assert question.options[0].label == {"nl": "Nieuw", "en": "Base"}


# --- load ------------------------------------------------------------------------------------------------


def test_load_creates_everything_then_changes_nothing(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    result = load(runner, content_dir)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "created question daytrading_experience",
        "created question investment_interests",
        "created question is_investor",
        "created topic daytrading",
        "created topic etfs",
        "created topic investing",
        "created report daytrading-guide",
        "created widget daytrading-report-en",
        "created widget daytrading-report",
        "created sequence daytrading-active",
        "created sequence daytrading-active-en",
        "created sequence daytrading-beginners",
        "created sequence daytrading-beginners-en",
    ]
    with app.app_context():
        before = snapshot()
        widget = db.session.scalars(select(Widget).where(Widget.slug == "daytrading-report")).one()
        assert [question.key for question in widget.questions] == [
            "is_investor",
            "daytrading_experience",
            "investment_interests",
        ]
        assert widget.report.slug == "daytrading-guide"
        assert widget.allowed_origins == [
            "https://beleggen.example",
            "http://127.0.0.1:5001",
            "http://localhost:5001",
        ]
        assert set(widget.texts) == {"prompt", "title", "success"}
        stored = [
            (file.locale, file.position, file.filename, file.content_type, file.data, file.size, file.sha256)
            for file in widget.report.files
        ]
        nl, en = (
            (content_dir / "reports/files" / name).read_bytes()
            for name in ("daytraden-gids.pdf", "daytrading-guide.pdf")
        )
        assert stored == [
            ("nl", 0, "daytraden-gids.pdf", "application/pdf", nl, len(nl), hashlib.sha256(nl).hexdigest()),
            ("en", 1, "daytrading-guide.pdf", "application/pdf", en, len(en), hashlib.sha256(en).hexdigest()),
        ]
        investor = db.session.scalars(select(Question).where(Question.key == "is_investor")).one()
        assert [(o.value, o.label["nl"], o.position) for o in investor.options] == [
            ("yes", "Ja", 0),
            ("no", "Nee", 1),
        ]

    clock.advance(timedelta(hours=1))
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "nothing changed\n")
    with app.app_context():
        assert snapshot() == before


def test_editing_a_file_changes_only_that(app: Flask, runner: FlaskCliRunner, content_dir: Path) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        before = snapshot()
    path = content_dir / "widgets/daytrading-report.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("  - http://localhost:5001\n", "").replace("Bijna klaar!", "Bijna!")
    text = text.replace(
        "[is_investor, daytrading_experience, investment_interests]", "[daytrading_experience, is_investor]"
    )
    path.write_text(text, encoding="utf-8")

    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (
        0,
        "updated widget daytrading-report (allowed_origins, texts, questions)\n",
    )
    with app.app_context():
        after = snapshot()
        assert {k: v for k, v in after.items() if k not in ("widgets", "widget_questions")} == {
            k: v for k, v in before.items() if k not in ("widgets", "widget_questions")
        }
        widget = db.session.scalars(select(Widget).where(Widget.slug == "daytrading-report")).one()
        assert widget.allowed_origins == ["https://beleggen.example", "http://127.0.0.1:5001"]
        assert widget.texts["success"] == {
            "nl": "Bijna! Kijk in je inbox en bevestig je adres, dan sturen we je het rapport meteen."
        }
        assert [question.key for question in widget.questions] == ["daytrading_experience", "is_investor"]
        twin = db.session.scalars(select(Widget).where(Widget.slug == "daytrading-report-en")).one()
        assert len(twin.questions) == 3
    assert load(runner, content_dir).output == "nothing changed\n"


def test_changed_report_file_and_question(app: Flask, runner: FlaskCliRunner, content_dir: Path) -> None:
    assert load(runner, content_dir).exit_code == 0
    pdf = content_dir / "reports/files/daytrading-guide.pdf"
    new_bytes = pdf.read_bytes() + b"% a second edition\n"
    pdf.write_bytes(new_bytes)
    question = content_dir / "questions/is_investor.yaml"
    question.write_text(question.read_text(encoding="utf-8").replace("180", "30"), encoding="utf-8")

    result = load(runner, content_dir)
    assert result.output.splitlines() == [
        "updated question is_investor (fresh_for_days)",
        "updated report daytrading-guide (file.en)",
    ]
    with app.app_context():
        report = db.session.scalars(select(Report)).one()
        nl = (content_dir / "reports/files/daytraden-gids.pdf").read_bytes()
        assert [(file.locale, file.data, file.size, file.sha256) for file in report.files] == [
            ("nl", nl, len(nl), hashlib.sha256(nl).hexdigest()),
            ("en", new_bytes, len(new_bytes), hashlib.sha256(new_bytes).hexdigest()),
        ]
        assert (
            db.session.scalars(select(Question.fresh_for_days).where(Question.key == "is_investor")).one()
            == 30
        )


def test_a_report_moves_between_one_file_and_a_file_per_locale(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    path = content_dir / "reports/daytrading-guide.yaml"
    bundled = path.read_text(encoding="utf-8")
    one = bundled.replace(
        "file: {nl: files/daytraden-gids.pdf, en: files/daytrading-guide.pdf}",
        "file: files/daytraden-gids.pdf",
    )
    assert one != bundled
    path.write_text(one, encoding="utf-8")
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (
        0,
        "updated report daytrading-guide (file.nl, file.en, file)\n",
    )
    with app.app_context():
        files = db.session.scalars(select(Report)).one().files
        assert [(file.locale, file.filename) for file in files] == [(None, "daytraden-gids.pdf")]
        before = snapshot()
    clock.advance(timedelta(hours=1))
    assert load(runner, content_dir).output == "nothing changed\n"
    with app.app_context():
        assert snapshot() == before

    # English first, and no Dutch file any more: the order is the fallback order, so it counts as a change.
    path.write_text(
        one.replace("file: files/daytraden-gids.pdf", "file: {en: files/daytrading-guide.pdf}"),
        encoding="utf-8",
    )
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated report daytrading-guide (file, file.en)\n")
    path.write_text(bundled, encoding="utf-8")
    result = load(runner, content_dir)
    assert (result.exit_code, result.output) == (0, "updated report daytrading-guide (file.nl, file.en)\n")
    with app.app_context():
        files = db.session.scalars(select(Report)).one().files
        assert [(file.locale, file.position, file.filename) for file in files] == [
            ("nl", 0, "daytraden-gids.pdf"),
            ("en", 1, "daytrading-guide.pdf"),
        ]
    assert load(runner, content_dir).output == "nothing changed\n"


def test_a_broken_file_for_one_locale_loads_nothing(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        before = snapshot()
    (content_dir / "reports/files/daytraden-gids.pdf").write_bytes(b"<html>gone</html>")
    (content_dir / "reports/files/daytrading-guide.pdf").write_bytes(b"%PDF-1.4 a new edition")
    result = load(runner, content_dir)
    assert result.exit_code == 1
    assert (
        f"{REPORT}: file.nl: content/reports/files/daytraden-gids.pdf is not a PDF file (it does not start like one)"
        in result.output.splitlines()
    )
    with app.app_context():
        assert snapshot() == before


def test_removed_options_are_retired_if_answered_else_deleted(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    shutil.rmtree(content_dir / "sequences")  # their audiences name the option removed below
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        answer("investment_interests", ["crypto", "stocks"])
        answer("daytrading_experience", "none")
        assert options_of("investment_interests") == [
            ("stocks", False),
            ("etfs", False),
            ("crypto", False),
            ("options", False),
        ]

    interests = content_dir / "questions/investment_interests.yaml"
    original = interests.read_text(encoding="utf-8")
    kept = [
        line for line in original.splitlines() if "value: crypto" not in line and "value: options" not in line
    ]
    interests.write_text("\n".join(kept) + "\n", encoding="utf-8")
    experience = content_dir / "questions/daytrading_experience.yaml"
    experience_text = experience.read_text(encoding="utf-8")
    experience.write_text(
        "\n".join(line for line in experience_text.splitlines() if "value: none" not in line) + "\n",
        encoding="utf-8",
    )

    result = load(runner, content_dir)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "updated question daytrading_experience (options)",
        "updated question investment_interests (options)",
    ]
    with app.app_context():
        # crypto was chosen (inside a multi answer's list): retired; options never was: deleted
        assert options_of("investment_interests") == [("stocks", False), ("etfs", False), ("crypto", True)]
        assert options_of("daytrading_experience") == [("some", False), ("active", False), ("none", True)]
        assert db.session.scalars(select(Answer)).all()[0].question.option_values() == {"stocks", "etfs"}
    assert load(runner, content_dir).output == "nothing changed\n"

    interests.write_text(original, encoding="utf-8")  # crypto comes back, options is new again
    result = load(runner, content_dir)
    assert result.output == "updated question investment_interests (options)\n"
    with app.app_context():
        assert options_of("investment_interests") == [
            ("stocks", False),
            ("etfs", False),
            ("crypto", False),
            ("options", False),
        ]


def test_load_refuses_and_writes_nothing_when_a_file_has_a_problem(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    write(content_dir / "widgets/daytrading-report-en.yaml", "slug: daytrading-report-en\n")
    result = load(runner, content_dir)
    assert result.exit_code == 1
    assert "content/widgets/daytrading-report-en.yaml: report: is required" in result.output.splitlines()
    assert "nothing was loaded" in result.stderr
    with app.app_context():
        assert snapshot() == {
            "questions": [],
            "options": [],
            "reports": [],
            "report_files": [],
            "widgets": [],
            "widget_questions": [],
            "sequences": [],
            "steps": [],
        }


def test_load_refuses_a_kind_change_once_answered(
    app: Flask, runner: FlaskCliRunner, content_dir: Path
) -> None:
    assert load(runner, content_dir).exit_code == 0
    with app.app_context():
        answer("daytrading_experience", "some")
        before = snapshot()
    path = content_dir / "questions/daytrading_experience.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("kind: choice", "kind: multi"), encoding="utf-8")
    write(
        content_dir / "reports/daytrading-guide.yaml",
        (content_dir / "reports/daytrading-guide.yaml")
        .read_text(encoding="utf-8")
        .replace("Daytraden voor", "Daytraden voor echte"),
    )
    result = load(runner, content_dir)
    assert result.exit_code == 1
    assert "already has answers as a choice question" in result.stderr
    with app.app_context():
        assert snapshot() == before


@pytest.mark.settings(LEADCAPTURE_CONTENT_DIR=str(BUNDLED_CONTENT_DIR))
def test_load_defaults_to_the_configured_directory(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["content", "load"])
    assert result.exit_code == 0, result.output
    assert "created widget daytrading-report" in result.output.splitlines()


@pytest.fixture
def no_content_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A working directory without ./content and no LEADCAPTURE_CONTENT_DIR; request it before the app."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.delenv("LEADCAPTURE_CONTENT_DIR", raising=False)


NO_FOLDER = (
    "Error: no content folder: give it as DIR or set LEADCAPTURE_CONTENT_DIR "
    "(there is no ./content here; only `leadcapture demo` loads the bundled demo content)"
)


def test_load_without_a_folder_asks_for_one_and_loads_nothing(
    no_content_here: None, app: Flask, runner: FlaskCliRunner
) -> None:
    result = runner.invoke(args=["content", "load"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [NO_FOLDER]
    with app.app_context():
        assert all(rows == [] for rows in snapshot().values())


def test_check_without_a_folder_asks_for_one(no_content_here: None) -> None:
    result = CliRunner().invoke(main, ["content", "check"], env={"LEADCAPTURE_SECRET_KEY": None})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [NO_FOLDER]


def test_the_demo_still_loads_the_bundled_content(no_content_here: None, tmp_path: Path) -> None:
    """SQLite only, as the demo runs: it migrates its own database."""
    from leadcapture import create_app
    from leadcapture.cli.demo import _prepare

    demo = create_app({"DEMO": True, "LEADCAPTURE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}"})
    _prepare(demo, article_origin="http://127.0.0.1:5001")
    with demo.app_context():
        assert db.session.scalars(select(Widget.slug).order_by(Widget.slug)).all() == [
            "daytrading-report",
            "daytrading-report-en",
        ]
        db.engine.dispose()


def test_load_content_flushes_but_never_commits(app: Flask, content_dir: Path) -> None:
    with app.app_context():
        changes = load_content(read_content(content_dir))
        assert [str(change) for change in changes][:1] == ["created question daytrading_experience"]
        assert db.session.scalar(select(Question.id).where(Question.key == "is_investor")) is not None
        db.session.rollback()
        assert snapshot()["questions"] == []


def test_load_content_refuses_a_bundle_with_problems(app: Flask, content_dir: Path) -> None:
    write(content_dir / "questions/is_investor.yaml", "")
    bundle = read_content(content_dir)
    with app.app_context(), pytest.raises(ContentHasProblems) as raised:
        load_content(bundle)
    assert raised.value.problems == bundle.problems


def test_load_content_logs_one_line_per_change(
    app: Flask, content_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with app.app_context(), caplog.at_level("INFO", logger="leadcapture.services.content"):
        changes = load_content(read_content(content_dir))
        db.session.rollback()
    assert len(caplog.records) == len(changes) == 13
    assert caplog.records[0].getMessage().endswith("created question daytrading_experience")


def test_links_loops_and_special_files_are_problems_not_crashes(content_dir: Path) -> None:
    (content_dir / "questions/a.yaml").symlink_to("b.yaml")
    (content_dir / "questions/b.yaml").symlink_to("a.yaml")
    os.mkfifo(content_dir / "questions/pipe.yaml")  # opening it would block forever
    (content_dir / "reports/files/loop.pdf").symlink_to("loop.pdf")
    write(content_dir / "reports/daytrading-guide.yaml", REPORT_HEAD + "file: files/loop.pdf\n")
    assert problems_of(content_dir) == [
        "content/questions/a.yaml: is a symbolic link loop",
        "content/questions/b.yaml: is a symbolic link loop",
        "content/questions/pipe.yaml: is not a regular file",
        f"{REPORT}: file: content/reports/files/loop.pdf is a symbolic link loop",
    ]
