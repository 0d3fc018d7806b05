"""Sequences in the admin: the list, the editor (audience rule builder, steps, previews), switching off.

The editor is one plain form that works without JavaScript: adding, removing, moving and previewing a step
are submit buttons that send the whole form back and show it again, unsaved. A small script only refreshes
the audience count while the rule is being edited (`audience_count`, read-only JSON).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response
from wtforms import BooleanField, IntegerField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import NumberRange, Optional

from leadcapture.definitions.sequences import MAX_STEPS
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, QuestionKind, Sequence, localized
from leadcapture.services import editing
from leadcapture.services.audiences import StepPreview, count_audience, preview_step
from leadcapture.services.content import ContentHasProblems
from leadcapture.services.editing import StepText
from leadcapture.services.sequences import count_in_sequences
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required

LOCALE_NAMES = {"nl": "Dutch (nl)", "en": "English (en)"}
ON_CHANGE_CHOICES = [
    SelectChoice("switch", "Switch: leave at once; a step still waiting is not sent"),
    SelectChoice("finish_step", "Finish the step: the step already scheduled goes out, then leave"),
    SelectChoice("stay", "Stay: carry on to the end of the sequence"),
]
UNITS = ("minutes", "hours", "days", "weeks")
_UNIT_SECONDS = {"weeks": 7 * 86400, "days": 86400, "hours": 3600, "minutes": 60}
# The most step rows a posted form is read for: a few over the limit, so the limit is reported, not hidden.
_MAX_STEP_ROWS = MAX_STEPS + 10
_STEP_FIELD = re.compile(r"steps-(\d{1,4})-(file|after_number|after_unit|subject|body)")
_ACTION = re.compile(r"(remove|up|down|preview)-(\d{1,4})")


class SequenceForm(FlaskForm):  # type: ignore[misc]
    """The sequence's own settings; the audience rule and the steps are read from the form by hand."""

    slug = StringField("Slug")
    name = StringField("Name")
    locale = SelectField(
        "Language",
        choices=[
            SelectChoice("", "Any language"),
            *(SelectChoice(code, LOCALE_NAMES[code]) for code in LOCALES),
        ],
    )
    on_change = RadioField("When a subscriber's answers stop matching", choices=ON_CHANGE_CHOICES)
    priority = IntegerField("Priority", validators=[Optional(), NumberRange(-1000, 1000)])
    fresh_only = BooleanField("Only fresh answers count")


# --- the audience rule builder --------------------------------------------------------------------------

# Form value → what the condition is. "" is no condition on that question; "kept" is a condition the
# builder cannot show (several operators at once), carried as written until the editor replaces it.
MODES = {
    "": "No condition",
    "any_of": "Any of these",
    "all_of": "All of these",
    "none_of": "None of these",
    "answered": "Answered",
    "unanswered": "Not answered",
    "kept": "As written in the file",
}


@dataclass
class RuleRow:
    """One question in the rule builder, as shown."""

    question: Question
    mode: str = ""
    values: list[str] = field(default_factory=list)
    kept: str = ""  # the JSON of a condition the builder cannot show

    @property
    def key(self) -> str:
        return self.question.key

    @property
    def modes(self) -> list[tuple[str, str]]:
        wanted = ["", "any_of"]
        if self.question.kind is QuestionKind.MULTI:
            wanted.append("all_of")
        wanted += ["none_of", "answered", "unanswered"]
        if self.mode == "kept":
            wanted.append("kept")
        return [(mode, MODES[mode]) for mode in wanted]

    @property
    def options(self) -> list[tuple[str, str]]:
        """(value, label) of the options to tick: the active ones, then any retired one the rule names."""
        shown = [(option.value, localized(option.label, "en")) for option in self.question.active_options]
        labels = {option.value: localized(option.label, "en") for option in self.question.options}
        known = {value for value, _ in shown}
        shown += [
            (value, f"{labels.get(value, value)} (retired)") for value in self.values if value not in known
        ]
        return shown


def _questions() -> list[Question]:
    return list(
        db.session.scalars(select(Question).options(selectinload(Question.options)).order_by(Question.key))
    )


def rule_rows(rule: Mapping[str, Any], questions: list[Question]) -> list[RuleRow]:
    """The builder's rows for a rule: one per question, its condition shown as a mode and ticked values."""
    rows = []
    for question in questions:
        row = RuleRow(question)
        if question.key in rule:
            _show_condition(row, rule[question.key])
        rows.append(row)
    return rows


def _show_condition(row: RuleRow, condition: Any) -> None:
    if isinstance(condition, str):
        row.mode, row.values = "any_of", [condition]
        return
    if isinstance(condition, list) and all(isinstance(value, str) for value in condition):
        row.mode, row.values = "any_of", list(condition)
        return
    if isinstance(condition, Mapping) and len(condition) == 1:
        ((operator, values),) = condition.items()
        if operator == "answered" and isinstance(values, bool):
            row.mode = "answered" if values else "unanswered"
            return
        listed = [values] if isinstance(values, str) else values
        multi = row.question.kind is QuestionKind.MULTI
        if (
            operator in ("any_of", "none_of", "all_of")
            and (operator != "all_of" or multi)
            and isinstance(listed, list)
            and all(isinstance(value, str) for value in listed)
        ):
            row.mode, row.values = operator, list(listed)
            return
    row.mode, row.kept = "kept", json.dumps(condition, ensure_ascii=False)


def rule_from_form(data: MultiDict[str, str], questions: list[Question]) -> dict[str, Any]:
    """The rule the builder's fields describe: a condition per question with a mode chosen, AND across them.

    Values keep the question's option order; anything posted that is not an option is kept too (after the
    options), so that saving reports it instead of quietly dropping it.
    """
    rule: dict[str, Any] = {}
    for question in questions:
        key = question.key
        mode = data.get(f"rule-{key}", "")
        if not mode:
            continue
        posted = list(dict.fromkeys(data.getlist(f"rule-{key}-values")))
        order = [option.value for option in question.options]
        values = [value for value in order if value in posted] + [v for v in posted if v not in order]
        if mode == "any_of":
            rule[key] = values
        elif mode in ("all_of", "none_of"):
            rule[key] = {mode: values}
        elif mode in ("answered", "unanswered"):
            rule[key] = {"answered": mode == "answered"}
        elif mode == "kept":
            try:
                rule[key] = json.loads(data.get(f"rule-{key}-kept", ""))
            except ValueError:
                rule[key] = data.get(f"rule-{key}-kept", "")  # reported as an unknown option
        else:
            rule[key] = {mode[:40]: values}  # reported as an unknown operator
    return rule


def describe_rule(rule: Mapping[str, Any]) -> str:
    """A one-line summary for the list, e.g. 'daytrading_experience: any of none, some'."""
    if not rule:
        return "everyone who opted in"
    parts = []
    for key, condition in sorted(rule.items()):
        row = RuleRow(Question(key=key, kind=QuestionKind.MULTI))
        _show_condition(row, condition)
        if row.mode in ("answered", "unanswered"):
            parts.append(f"{key}: {MODES[row.mode].lower()}")
        elif row.mode == "kept":
            parts.append(f"{key}: {row.kept}")
        else:
            parts.append(f"{key}: {MODES[row.mode].lower()} {', '.join(row.values)}")
    return "; ".join(parts)


# --- steps ----------------------------------------------------------------------------------------------


@dataclass
class StepRow:
    """One step in the editor, as typed (its file name is empty until a new step is first saved)."""

    file: str = ""
    after_number: str = "1"
    after_unit: str = "days"
    subject: str = ""
    body: str = ""

    @property
    def after(self) -> str:
        return f"{self.after_number.strip()} {self.after_unit}"


def step_rows_from(steps: list[StepText], delays: list[str]) -> list[StepRow]:
    rows = []
    for step, after in zip(steps, delays, strict=True):
        number, _, unit = after.strip().partition(" ")
        unit = unit if unit.endswith("s") else unit + "s"
        rows.append(
            StepRow(
                file=step.file,
                after_number=number,
                after_unit=unit if unit in UNITS else "days",
                subject=step.subject,
                body=step.body,
            )
        )
    return rows


def steps_from_form(data: MultiDict[str, str]) -> list[StepRow]:
    found: dict[int, StepRow] = {}
    for name in data:
        match = _STEP_FIELD.fullmatch(name)
        if match is None:
            continue
        index = int(match.group(1))
        if index not in found and len(found) >= _MAX_STEP_ROWS:
            continue
        row = found.setdefault(index, StepRow())
        setattr(row, match.group(2), data.get(name, ""))
    return [found[index] for index in sorted(found)]


_WORD = re.compile(r"[a-z0-9]+")


def _file_names(rows: list[StepRow]) -> list[str]:
    """Each step's file name; a new step gets one from its place and subject, e.g. '03-your-first-trade.md'."""
    taken = {row.file for row in rows if row.file}
    names = []
    for position, row in enumerate(rows, start=1):
        if row.file:
            names.append(row.file)
            continue
        words = _WORD.findall(re.sub(r"\{[{%#].*?[}%#]\}", " ", row.subject.lower()))
        stem = f"{position:02d}-{'-'.join(words)[:40].strip('-') or 'step'}"
        name, number = f"{stem}.md", 2
        while name in taken:
            name, number = f"{stem}-{number}.md", number + 1
        taken.add(name)
        names.append(name)
    return names


# --- the editor's state ---------------------------------------------------------------------------------


@dataclass
class Editor:
    """Everything the edit page shows besides the WTForms fields."""

    sequence: Sequence | None
    questions: list[Question]
    rule: dict[str, Any]
    steps: list[StepRow]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    # Per step: problems of its "after", "subject" and "body", and "" for the step as a whole.
    step_errors: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    count: int | None = None
    count_problem: str = ""
    preview_for: str = "answers"
    preview_email: str = ""
    preview_first_name: str = ""
    preview_locale: str = "nl"
    preview_answers: dict[str, list[str]] = field(default_factory=dict)
    preview_index: int | None = None
    preview: StepPreview | None = None
    preview_problem: str = ""

    @property
    def rows(self) -> list[RuleRow]:
        return rule_rows(self.rule, self.questions)


def _count(editor: Editor, locale: str | None, fresh_only: bool) -> None:
    try:
        editor.count = count_audience(editor.rule, locale, fresh_only)
    except InvalidInput as exc:
        editor.count_problem = "; ".join(exc.errors.values())


def _locale(value: str | None) -> str | None:
    return value if value in LOCALES else None


def _document(form: SequenceForm, slug: str, editor: Editor) -> tuple[dict[str, Any], list[StepText]]:
    names = _file_names(editor.steps)
    document: dict[str, Any] = {
        "slug": slug,
        "name": form.name.data or "",
        "audience": editor.rule,
        "on_change": form.on_change.data or "",
        "priority": form.priority.data if form.priority.data is not None else 0,
        "fresh_only": bool(form.fresh_only.data),
        "steps": [{"file": name, "after": row.after} for name, row in zip(names, editor.steps, strict=True)],
    }
    if _locale(form.locale.data):
        document["locale"] = form.locale.data
    steps = [
        StepText(file=name, subject=row.subject, body=row.body)
        for name, row in zip(names, editor.steps, strict=True)
    ]
    return document, steps


# --- views ----------------------------------------------------------------------------------------------


@bp.get("/sequences/")
@editor_required
def sequences() -> str:
    rows = db.session.scalars(
        select(Sequence).options(selectinload(Sequence.steps)).order_by(Sequence.active.desc(), Sequence.name)
    ).all()
    return render_template(
        "admin/sequences/list.html",
        sequences=rows,
        inside=count_in_sequences(),
        describe_rule=describe_rule,
    )


@bp.route("/sequences/new", methods=["GET", "POST"])
@editor_required
def new_sequence() -> Response | str | tuple[str, int]:
    return _edit(None)


@bp.route("/sequences/<slug>", methods=["GET", "POST"])
@editor_required
def edit_sequence(slug: str) -> Response | str | tuple[str, int]:
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    if sequence is None:
        abort(404)
    return _edit(sequence)


def _edit(sequence: Sequence | None) -> Response | str | tuple[str, int]:
    questions = _questions()
    if request.method != "POST":
        form = SequenceForm()
        if sequence is None:
            form.on_change.data = "switch"
            form.priority.data = 0
            editor = Editor(None, questions, {}, [StepRow()])
        else:
            document, texts = editing.sequence_document(sequence)
            form.slug.data = sequence.slug
            form.name.data = document.get("name", "")
            form.locale.data = document.get("locale") or ""
            form.on_change.data = document.get("on_change", "switch")
            form.priority.data = document.get("priority", 0)
            form.fresh_only.data = bool(document.get("fresh_only", False))
            delays = [str(step.get("after", "")) for step in document.get("steps", [])]
            editor = Editor(
                sequence, questions, dict(document.get("audience") or {}), step_rows_from(texts, delays)
            )
            editor.preview_locale = sequence.locale or "nl"
        _count(editor, _locale(form.locale.data), bool(form.fresh_only.data))
        return render_template("admin/sequences/edit.html", form=form, editor=editor, **_page())

    form = SequenceForm()
    editor = Editor(
        sequence, questions, rule_from_form(request.form, questions), steps_from_form(request.form)
    )
    _read_preview_fields(editor, questions)
    action = request.form.get("action", "save")
    valid = form.validate_on_submit()  # a priority that is a number (CSRFProtect checked the token)
    locale, fresh_only = _locale(form.locale.data), bool(form.fresh_only.data)
    slug = sequence.slug if sequence is not None else (form.slug.data or "").strip()
    status = 200
    if action == "add-step":
        editor.steps.append(StepRow())
    elif (match := _ACTION.fullmatch(action)) is not None:
        verb, index = match.group(1), int(match.group(2))
        if not 0 <= index < len(editor.steps):
            abort(400)
        if verb == "remove":
            del editor.steps[index]
        elif verb in ("up", "down"):
            other = index - 1 if verb == "up" else index + 1
            if 0 <= other < len(editor.steps):
                editor.steps[index], editor.steps[other] = editor.steps[other], editor.steps[index]
        else:
            _preview(editor, index, form, slug)
    elif action == "save" and valid:
        if (
            sequence is None
            and db.session.scalar(select(Sequence.id).where(Sequence.slug == slug)) is not None
        ):
            editor.errors["slug"] = [f"a sequence with the slug {slug!r} exists already"]
            status = 422
        else:
            document, texts = _document(form, slug, editor)
            try:
                changes = editing.save_sequence(document, texts)
            except ContentHasProblems as exc:
                editor.errors, editor.general = editing.field_errors(exc.problems)
                _place_step_errors(editor, [step.file for step in texts])
                status = 422
            else:
                db.session.commit()
                if changes:
                    flash("Saved: " + "; ".join(str(change) for change in changes) + ".")
                else:
                    flash("Nothing changed.")
                return redirect(url_for("admin.edit_sequence", slug=slug))
    elif action == "save":
        status = 422
    _count(editor, locale, fresh_only)
    return render_template("admin/sequences/edit.html", form=form, editor=editor, **_page()), status


_STEP_ENTRY = re.compile(r"steps\[(\d+)\](?:\.(\w+))?: (.*)", re.DOTALL)
_LINE = re.compile(r"line (\d+): (?:(subject): )?(.*)", re.DOTALL)


def _place_step_errors(editor: Editor, files: list[str]) -> None:
    """Move the problems of one step from 'steps' to that step's fields, with line numbers of its body."""
    index_of = {name: index for index, name in enumerate(files)}
    remaining = []
    for message in editor.errors.pop("steps", []):
        name, colon, rest = message.partition(": ")
        if (entry := _STEP_ENTRY.fullmatch(message)) is not None and int(entry.group(1)) < len(files):
            index, part = int(entry.group(1)), "after" if entry.group(2) == "after" else ""
            editor.step_errors.setdefault(index, {}).setdefault(part, []).append(entry.group(3))
        elif colon and name in index_of:
            index = index_of[name]
            part, text = _in_step_file(rest, editor.steps[index])
            editor.step_errors.setdefault(index, {}).setdefault(part, []).append(text)
        else:
            remaining.append(message)
    if remaining:
        editor.errors["steps"] = remaining


def _in_step_file(message: str, step: StepRow) -> tuple[str, str]:
    """Which field of a step a problem of its file is about, and the message with the body's line numbers."""
    found = _LINE.fullmatch(message)
    if found is None:
        # The file's size, a link that would not work: the body is what the editor changes to fix it.
        return ("subject", message) if message.startswith("subject") else ("body", message)
    line, subject, text = int(found.group(1)), found.group(2), found.group(3)
    # The file is front matter (---, subject, ---) and then the body, without the body's leading blank lines.
    written = editing.step_file_text(step.subject, "x")
    first = written[: written.rindex("x")].count("\n") + 1
    body = step.body.replace("\r\n", "\n")
    first -= len(body) - len(body.lstrip("\n"))
    if subject:
        return "subject", text
    if line >= first:
        return "body", f"line {line - first + 1}: {text}"
    return ("body" if "no body" in text else "subject"), text


def _page() -> dict[str, Any]:
    return {"units": UNITS, "count_text": count_text, "locale_names": LOCALE_NAMES, "localized": localized}


def _read_preview_fields(editor: Editor, questions: list[Question]) -> None:
    data = request.form
    editor.preview_for = "subscriber" if data.get("preview-for") == "subscriber" else "answers"
    editor.preview_email = data.get("preview-email", "")[:254]
    editor.preview_first_name = data.get("preview-first_name", "")[:100]
    editor.preview_locale = data.get("preview-locale", "") if data.get("preview-locale") in LOCALES else "nl"
    for question in questions:
        chosen = [value for value in data.getlist(f"preview-answer-{question.key}") if value]
        if chosen:
            editor.preview_answers[question.key] = chosen


def _preview(editor: Editor, index: int, form: SequenceForm, slug: str) -> None:
    editor.preview_index = index
    step = editor.steps[index]
    kinds = {question.key: question.kind for question in editor.questions}
    answers: dict[str, str | list[str]] = {
        key: sorted(values) if kinds[key] is QuestionKind.MULTI else values[0]
        for key, values in editor.preview_answers.items()
    }
    # Only names the list (List-Id); never added to the session.
    name = " ".join((form.name.data or "").split()) or slug or "New sequence"
    listing = Sequence(slug=slug or "new-sequence", name=name[:200])
    locale = _locale(form.locale.data) or editor.preview_locale
    try:
        if editor.preview_for == "subscriber":
            if not editor.preview_email.strip():
                editor.preview_problem = "Enter the email address of a subscriber to preview for."
                return
            editor.preview = preview_step(listing, step.subject, step.body, email=editor.preview_email)
        else:
            editor.preview = preview_step(
                listing,
                step.subject,
                step.body,
                answers=answers,
                first_name=editor.preview_first_name.strip() or None,
                locale=locale,
            )
    except InvalidInput as exc:
        editor.preview_problem = "; ".join(exc.errors.values())
    except NotFound as exc:
        editor.preview_problem = str(exc)


@bp.get("/sequences/audience-count")
@editor_required
def audience_count() -> Response | tuple[Response, int]:
    """The live count: how many subscribers the rule in the query string matches now."""
    rule = rule_from_form(request.args, _questions())
    try:
        count = count_audience(
            rule, _locale(request.args.get("locale")), request.args.get("fresh_only") == "y"
        )
    except InvalidInput as exc:
        return jsonify({"errors": list(exc.errors.values())}), 422
    return jsonify({"count": count, "text": count_text(count)})


def count_text(count: int) -> str:
    return f"{count} subscriber{'' if count == 1 else 's'} match{'es' if count == 1 else ''} now"


@bp.route("/sequences/<slug>/switch-off", methods=["GET", "POST"])
@editor_required
def switch_off_sequence(slug: str) -> Response | str:
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    if sequence is None:
        abort(404)
    if request.method == "POST":
        changes = editing.deactivate_sequence(slug)
        db.session.commit()
        flash(f"Switched off {sequence.name}." if changes else f"{sequence.name} was already switched off.")
        return redirect(url_for("admin.sequences"))
    inside = count_in_sequences(sequence.id).get(sequence.id, 0)
    return render_template("admin/sequences/deactivate.html", sequence=sequence, inside=inside)
