"""Questions: the list, and one page to create or edit a question, its texts and its options.

Options are edited as a list on the page: add, remove and move rows (each a button that sends the page back
unsaved, so it all works without the script), then Save. An option that answers chose is retired when it
leaves the list, never deleted, and the page says so before the editor saves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import HiddenField, SelectChoice, SelectField, StringField

from leadcapture.extensions import db
from leadcapture.i18n import LOCALES, translate
from leadcapture.models import Question, QuestionKind
from leadcapture.services import editing
from leadcapture.services.answers import answered_options
from leadcapture.services.content import ContentConflict, ContentHasProblems
from leadcapture.services.editing import EditConflict
from leadcapture.services.widgets import forget_widget_views
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required
from leadcapture.web.admin.content_forms import (
    Problems,
    as_localized,
    flash_changes,
    list_edit,
    locale_name,
    localized_from,
    opened_version,
    problems_of,
    repeated,
    set_text,
)

KIND_CHOICES = [
    SelectChoice(QuestionKind.CHOICE.value, "Choice: one of several options"),
    SelectChoice(QuestionKind.MULTI.value, "Multiple choice: any number of options"),
    SelectChoice(QuestionKind.YES_NO.value, "Yes or no"),
]
NEW_OPTION_ROWS = 2


class QuestionForm(FlaskForm):  # type: ignore[misc]
    version = HiddenField()
    key = StringField("Key")
    kind = SelectField("Kind", choices=KIND_CHOICES)
    fresh_for_days = StringField("Answers stay current for (days)")


for _locale in LOCALES:
    setattr(QuestionForm, f"text_{_locale}", StringField(locale_name(_locale)))


@dataclass
class OptionRow:
    """One option as the page shows it: its value and a label per locale (missing locales are empty)."""

    value: str = ""
    label: dict[str, str] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return not self.value.strip() and not any(text.strip() for text in self.label.values())

    def entry(self) -> dict[str, Any]:
        """The option as a document holds it."""
        entry: dict[str, Any] = {"value": self.value.strip()}
        label = {locale: text for locale, text in self.label.items() if text.strip()}
        if label:
            entry["label"] = label
        return entry


@bp.get("/questions/")
@editor_required
def questions() -> str:
    rows = db.session.scalars(
        select(Question).options(selectinload(Question.options)).order_by(Question.key)
    ).all()
    return render_template(
        "admin/questions/list.html",
        questions=rows,
        kinds={choice.value: choice.label for choice in KIND_CHOICES},
    )


@bp.route("/questions/new", methods=["GET", "POST"])
@editor_required
def new_question() -> Response | str:
    return _edit(None)


@bp.route("/questions/<key>", methods=["GET", "POST"])
@editor_required
def edit_question(key: str) -> Response | str:
    question = db.session.scalar(
        select(Question).where(Question.key == key[:64]).options(selectinload(Question.options))
    )
    if question is None:
        abort(404)
    return _edit(question)


def _edit(question: Question | None) -> Response | str:
    form = QuestionForm()
    problems = Problems()
    unsaved = False
    if request.method != "POST":
        rows = _fill(form, question)
    else:
        rows = _posted_rows()
        action = request.form.get("action", "save")
        edit = list_edit(action)
        if edit is not None:
            edit.apply(rows)
            unsaved = True
        elif action == "add":
            rows.append(OptionRow(label=dict.fromkeys(LOCALES, "")))
            unsaved = True
        elif action.startswith("restore-"):
            if question is not None:
                rows.extend(_restored(question, action.removeprefix("restore-"), rows))
            unsaved = True
        elif action == "save":
            document, numbers = _document(form, question, rows)
            try:
                changes = editing.save_question(document, version=opened_version(form.version.data))
            except (ContentHasProblems, ContentConflict, EditConflict) as exc:
                db.session.rollback()
                problems = problems_of(exc, {"options": numbers})
                if isinstance(exc, EditConflict):
                    form.version.data = str(exc.current or "")
            else:
                db.session.commit()
                forget_widget_views()  # the widgets that show it
                flash_changes(changes)
                return redirect(url_for("admin.edit_question", key=document["key"]))
        else:
            unsaved = True  # a button this page does not have: the page again, as sent
    return render_template(
        "admin/questions/edit.html",
        form=form,
        question=question,
        rows=rows,
        problems=problems,
        unsaved=unsaved,
        answered=answered_options(question) if question is not None else frozenset(),
        locales=LOCALES,
        locale_name=locale_name,
    )


def _fill(form: QuestionForm, question: Question | None) -> list[OptionRow]:
    """Put the question's document in the form; the option rows it holds."""
    if question is None:
        form.kind.data = QuestionKind.CHOICE.value
        form.fresh_for_days.data = "90"
        return [OptionRow(label=dict.fromkeys(LOCALES, "")) for _ in range(NEW_OPTION_ROWS)]
    document = editing.question_document(question)
    form.version.data = str(question.version)
    form.key.data = question.key
    form.kind.data = str(document.get("kind", question.kind.value))
    form.fresh_for_days.data = str(document.get("fresh_for_days", question.fresh_for_days))
    text = as_localized(document.get("text"))
    for locale in LOCALES:
        getattr(form, f"text_{locale}").data = text.get(locale, "")
    options = document.get("options")
    if options is None and question.kind is QuestionKind.YES_NO:
        # Left out of the file: yes and no with the product's own labels, shown so they can be changed.
        options = [
            {"value": value, "label": {locale: translate(locale, f"widget.{value}") for locale in LOCALES}}
            for value in ("yes", "no")
        ]
    rows: list[OptionRow] = []
    for option in options or []:
        if isinstance(option, dict):
            label = as_localized(option.get("label"))
            rows.append(
                OptionRow(str(option.get("value", "")), {locale: label.get(locale, "") for locale in LOCALES})
            )
    return rows


def _posted_rows() -> list[OptionRow]:
    values = repeated(request.form, "option_value")
    labels = {locale: repeated(request.form, f"option_label_{locale}", len(values)) for locale in LOCALES}
    return [
        OptionRow(value, {locale: labels[locale][index] for locale in LOCALES})
        for index, value in enumerate(values)
    ]


def _restored(question: Question, value: str, rows: list[OptionRow]) -> list[OptionRow]:
    """A retired option back in the list, with its labels, unless it is there already."""
    if any(row.value.strip() == value for row in rows):
        return []
    return [
        OptionRow(option.value, {locale: as_localized(option.label).get(locale, "") for locale in LOCALES})
        for option in question.options
        if option.value == value
    ]


def _document(
    form: QuestionForm, question: Question | None, rows: list[OptionRow]
) -> tuple[dict[str, Any], list[int]]:
    """The question as its content file would hold it, and the page row of each option in it."""
    key = question.key if question is not None else (form.key.data or "").strip()
    document: dict[str, Any] = {"key": key, "kind": form.kind.data}
    set_text(document, "text", localized_from(request.form, "text"))
    fresh = (form.fresh_for_days.data or "").strip()
    if fresh:  # left empty: the default; a whole number goes in as one, anything else as written
        document["fresh_for_days"] = (
            int(fresh) if fresh.isascii() and fresh.isdigit() and len(fresh) < 9 else fresh
        )
    numbers = [index for index, row in enumerate(rows) if not row.blank]
    options = [rows[index].entry() for index in numbers]
    # A yes_no question may leave its options out: yes and no, with the product's labels.
    if options or form.kind.data != QuestionKind.YES_NO.value:
        document["options"] = options
    return document, numbers
