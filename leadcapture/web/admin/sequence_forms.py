"""The sequence editor's form: the audience rule builder's rows, the step rows, and the definition they make.

Translation only, both ways: a stored rule and steps become the rows the page shows, and the posted rows
become the document `services.editing` checks and saves. What is allowed is decided there, not here.

The builder shows a row per question and a row per interest condition (topic, at least or below, a score).
What it cannot show (groups of rules, segments, names it does not know) is shown as written in the file and
posted back unchanged, so saving keeps it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any

from flask_wtf import FlaskForm
from ruamel.yaml import YAML
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import NumberRange, Optional

from leadcapture import audience
from leadcapture.definitions import Problem
from leadcapture.definitions.problems import field_path_text
from leadcapture.definitions.sequences import MAX_STEPS
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, QuestionKind, Sequence, localized
from leadcapture.services import editing, interests
from leadcapture.services.audiences import StepPreview
from leadcapture.services.editing import StepText

LOCALE_NAMES = {"nl": "Dutch (nl)", "en": "English (en)"}
ON_CHANGE_CHOICES = [
    SelectChoice("switch", "Switch: leave at once; a step still waiting is not sent"),
    SelectChoice("finish_step", "Finish the step: the step already scheduled goes out, then leave"),
    SelectChoice("stay", "Stay: carry on to the end of the sequence"),
]
UNITS = ("minutes", "hours", "days", "weeks")
# The most step rows a posted form is read for: a few over the limit, so the limit is reported, not hidden.
_MAX_STEP_ROWS = MAX_STEPS + 10
_STEP_FIELD = re.compile(r"steps-(\d{1,4})-(file|after_number|after_unit|subject|body)")


class SequenceForm(FlaskForm):  # type: ignore[misc]
    """The sequence's own settings; the audience rule and the steps are read from the form by hand."""

    version = HiddenField()
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


# Interest conditions: a row per condition, and this many empty rows to add one.
BOUNDS = {"at_least": "At least", "below": "Below"}
BLANK_INTEREST_ROWS = 1
_MAX_INTEREST_ROWS = 50
_INTEREST_FIELD = re.compile(r"rule-interest-(\d{1,3})-(topic|bound|value)")
# The entries of the rule the builder does not show, as JSON. No question's fields are named like this: a
# question key has no hyphen.
AS_WRITTEN = "rule-as-written"


@dataclass
class InterestRow:
    """One interest condition in the rule builder, as shown or posted."""

    topic: str = ""
    bound: str = "at_least"
    value: str = ""


def interest_rows(rule: Mapping[str, Any]) -> list[InterestRow]:
    """The builder's rows for the rule's interest conditions (none when they are shown as written)."""
    if "interest" not in rule or not _interest_shown(rule["interest"]):
        return []
    rows = []
    for item in _listed(rule["interest"]):
        ((bound, value),) = [(name, item[name]) for name in BOUNDS if name in item]
        rows.append(InterestRow(item["topic"], bound, _number_text(value)))
    return rows


def _interest_shown(condition: Any) -> bool:
    """Whether the rows can show an interest condition as it is: each item a topic key and one bound, a
    number (or the text typed in a row, shown again with the problem the checks found in it)."""
    items = _listed(condition)
    return bool(items) and all(
        isinstance(item, Mapping)
        and isinstance(item.get("topic"), str)
        and len(item) == 2
        and sum(name in item for name in BOUNDS) == 1
        and isinstance(item.get("at_least", item.get("below")), int | float | str)
        and not isinstance(item.get("at_least", item.get("below")), bool)
        for item in items
    )


def _listed(condition: Any) -> list[Any]:
    return condition if isinstance(condition, list) else [condition]


def _number_text(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def as_written(rule: Mapping[str, Any], questions: list[Question]) -> dict[str, Any]:
    """The entries of a rule the builder does not show: groups (any_of, all_of, none_of), segments, names
    of no question, and interest conditions its rows cannot hold."""
    keys = {question.key for question in questions}
    return {
        key: condition
        for key, condition in rule.items()
        if key not in keys and not (key == "interest" and _interest_shown(condition))
    }


def rule_from_form(data: MultiDict[str, str], questions: list[Question]) -> dict[str, Any]:
    """The rule the builder's fields describe: a condition per question with a mode chosen, the interest
    rows with a topic, and what was shown as written, AND across them.

    Values keep the question's option order; anything posted that is not an option is kept too (after the
    options), and a score that is not a number as typed, so that saving reports it instead of quietly
    dropping it.
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
    written = _written_from_form(data)
    conditions = [_interest_condition(row) for row in interest_rows_from_form(data) if row.topic or row.value]
    if "interest" in written and conditions:
        conditions = [*_listed(written.pop("interest")), *conditions]
    if conditions:
        rule["interest"] = conditions[0] if len(conditions) == 1 else conditions
    for key, condition in written.items():
        rule.setdefault(key, condition)
    return rule


def interest_rows_from_form(data: MultiDict[str, str]) -> list[InterestRow]:
    """The interest rows as posted, in their order, empty ones too."""
    found: dict[int, InterestRow] = {}
    for name in data:
        match = _INTEREST_FIELD.fullmatch(name)
        if match is None:
            continue
        index = int(match.group(1))
        if index not in found and len(found) >= _MAX_INTEREST_ROWS:
            continue
        setattr(found.setdefault(index, InterestRow()), match.group(2), data.get(name, "").strip())
    return [found[index] for index in sorted(found)]


def _interest_condition(row: InterestRow) -> dict[str, Any]:
    value: Any = row.value
    try:
        number = float(row.value)
    except ValueError:
        pass
    else:
        if number == number and abs(number) != float("inf"):  # not NaN or infinite: those stay as typed
            value = int(number) if number.is_integer() and "." not in row.value else number
    return {"topic": row.topic, row.bound[:40] or "at_least": value}


def _written_from_form(data: MultiDict[str, str]) -> dict[str, Any]:
    text = data.get(AS_WRITTEN, "")
    if not text:
        return {}
    try:
        written = json.loads(text)
    except ValueError:
        written = None
    # Not a mapping (a tampered field): kept under its own name, so saving reports it.
    return written if isinstance(written, dict) else {AS_WRITTEN: text[:200]}


def describe_rule(rule: Mapping[str, Any]) -> str:
    """A one-line summary for the list, e.g. 'daytrading_experience: any of none, some; interest in
    daytrading at least 3; any of (…; or …)'."""
    if not rule:
        return "everyone who opted in"
    parts = []
    for key, condition in sorted(rule.items()):
        if key in audience.GROUPS and isinstance(condition, list):
            subs = [describe_rule(sub) if isinstance(sub, Mapping) else json.dumps(sub) for sub in condition]
            parts.append(f"{key.replace('_', ' ')} ({' | '.join(subs)})")
            continue
        if key == "interest" and _interest_shown(condition):
            for item in _listed(condition):
                bound = "at least" if "at_least" in item else "below"
                value = _number_text(item.get("at_least", item.get("below")))
                parts.append(f"interest in {item['topic']} {bound} {value}")
            continue
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

    @property
    def interest_rows(self) -> list[InterestRow]:
        """The rule's interest conditions and an empty row to add one; none when they are shown as written."""
        if "interest" in self.as_written:
            return []
        return interest_rows(self.rule) + [InterestRow() for _ in range(BLANK_INTEREST_ROWS)]

    @property
    def bounds(self) -> Mapping[str, str]:
        return BOUNDS

    @cached_property
    def topics(self) -> list[tuple[str, str]]:
        """(key, label) of the topics an interest row offers by key, as rules name them, and any topic the
        rule names that is not one."""
        known = set(interests.topics_by_key())
        named = {row.topic for row in interest_rows(self.rule)} - known - {""}
        return [*((key, key) for key in sorted(known)), *((key, f"{key} (no such topic)") for key in sorted(named))]

    @property
    def as_written(self) -> dict[str, Any]:
        return as_written(self.rule, self.questions)

    @property
    def as_written_json(self) -> str:
        return json.dumps(self.as_written, ensure_ascii=False)

    @property
    def as_written_yaml(self) -> str:
        """What the builder does not show, as the sequence file writes it."""
        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        yaml.width = 4096
        stream = io.StringIO()
        yaml.dump(self.as_written, stream)
        return stream.getvalue()


def open_editor(form: SequenceForm, sequence: Sequence | None, questions: list[Question]) -> Editor:
    """The editor as first shown: a new sequence with one empty step, or the stored one; fills `form`."""
    if sequence is None:
        form.on_change.data = "switch"
        form.priority.data = 0
        return Editor(None, questions, {}, [StepRow()])
    document, texts = editing.sequence_document(sequence)
    form.version.data = str(sequence.version)
    form.slug.data = sequence.slug
    form.name.data = document.get("name", "")
    form.locale.data = document.get("locale") or ""
    form.on_change.data = document.get("on_change", "switch")
    form.priority.data = document.get("priority", 0)
    form.fresh_only.data = bool(document.get("fresh_only", False))
    delays = [str(step.get("after", "")) for step in document.get("steps", [])]
    editor = Editor(sequence, questions, dict(document.get("audience") or {}), step_rows_from(texts, delays))
    editor.preview_locale = sequence.locale or "nl"
    return editor


def locale_of(value: str | None) -> str | None:
    return value if value in LOCALES else None


def document_from(form: SequenceForm, slug: str, editor: Editor) -> tuple[dict[str, Any], list[StepText]]:
    """The definition the form describes, as its sequence.yaml mapping, and its step files."""
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
    if locale_of(form.locale.data):
        document["locale"] = form.locale.data
    steps = [
        StepText(file=name, subject=row.subject, body=row.body)
        for name, row in zip(names, editor.steps, strict=True)
    ]
    return document, steps


def place_problems(editor: Editor, problems: list[Problem], files: list[str]) -> None:
    """Show the problems of a save: a step's at that step's fields (its body's by the body's own line
    numbers), the others at the sequence's fields. Placed by each problem's file and field, never its words."""
    index_of = {name: index for index, name in enumerate(files)}
    rest: list[Problem] = []
    unplaced: list[str] = []
    for problem in problems:
        name = PurePosixPath(problem.path).name
        field = problem.field
        if name.endswith(".md"):
            if name not in index_of:
                unplaced.append(f"{name}: {problem.message}")
                continue
            index = index_of[name]
            part, text = _in_step_file(problem, editor.steps[index])
        elif (
            field[:1] == ("steps",) and len(field) > 1 and isinstance(field[1], int) and field[1] < len(files)
        ):
            index, part = field[1], "after" if field[2:3] == ("after",) else ""
            where = field_path_text(field)
            text = problem.message.removeprefix(f"{where}: ")
        else:
            rest.append(problem)
            continue
        editor.step_errors.setdefault(index, {}).setdefault(part, []).append(text)
    editor.errors, editor.general = editing.field_errors(rest)
    if unplaced:
        editor.errors.setdefault("steps", []).extend(unplaced)


def _in_step_file(problem: Problem, step: StepRow) -> tuple[str, str]:
    """Which field of a step a problem of its file is about, and the message with the body's line numbers."""
    about_subject = problem.field[:1] == ("subject",)
    text = (
        problem.message.removeprefix(f"line {problem.line}: ")
        if problem.line is not None
        else problem.message
    )
    if about_subject:
        text = text.removeprefix("subject: ")
    if problem.line is None:
        # The file's size, a link that would not work: the body is what the editor changes to fix it.
        return ("subject" if about_subject else "body"), text
    # The file is front matter (---, subject, ---) and then the body, without the body's leading blank lines.
    written = editing.step_file_text(step.subject, "x")
    first = written[: written.rindex("x")].count("\n") + 1
    body = step.body.replace("\r\n", "\n")
    first -= len(body) - len(body.lstrip("\n"))
    if about_subject:
        return "subject", text
    if problem.line >= first:
        return "body", f"line {problem.line - first + 1}: {text}"
    return ("body" if problem.code == "no-body" else "subject"), text
