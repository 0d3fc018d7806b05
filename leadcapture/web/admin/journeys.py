"""The journey preview in the admin: a subscriber or chosen answers in, their coming weeks of email out.

A GET form: previewing changes nothing, so the address of a preview can be bookmarked and shared.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from flask import render_template, request
from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    EmailField,
    Field,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
)
from wtforms.validators import Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from leadcapture.config import current as current_settings
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, QuestionKind, SignalSource, Topic, localized
from leadcapture.services import journeys as service
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required

LANGUAGES = {"nl": "Dutch (nl)", "en": "English (en)"}
ANSWER_PREFIX = "answer-"
# Rows of behaviour what-ifs the form offers; a row counts once what the reader does is chosen in it: a
# topic's links clicked or its articles read, as `click:daytrading` or `read:daytrading`.
BEHAVIOUR_ROWS = 3
SIGNALS = {SignalSource.CLICK: "clicks {topic} links", SignalSource.READ: "reads {topic} articles"}
SIGNALS_BY_VALUE = frozenset(source.value for source in SIGNALS)


class JourneyForm(FlaskForm):  # type: ignore[misc]
    class Meta:
        csrf = False  # a GET that changes nothing

    email = EmailField(
        "A subscriber's email address",
        validators=[Optional(), Length(max=254, message="An address has at most 254 characters.")],
    )
    locale = SelectField(
        "Language",
        choices=[SelectChoice(code, LANGUAGES.get(code, code)) for code in LOCALES],
        default=LOCALES[0],
    )
    timezone = SelectField("Time zone", validate_choice=False)
    opted_in = SelectField(
        "Follow-up emails",
        choices=[SelectChoice("yes", "Opted in"), SelectChoice("no", "Not opted in")],
        default="yes",
    )
    start = DateTimeLocalField("Signs up at", validators=[Optional()], format="%Y-%m-%dT%H:%M")
    weeks = IntegerField(
        "Weeks to show",
        default=service.DEFAULT_WEEKS,
        validators=[
            NumberRange(1, service.MAX_WEEKS, message=f"Choose from 1 to {service.MAX_WEEKS} weeks."),
        ],
    )
    change = SelectField("Answer", default="", validate_choice=False)
    change_day = IntegerField(
        "On day", default=7, validators=[Optional(), NumberRange(0, message="Choose a day from 0 on.")]
    )


# The areas people live in, and UTC. Leaves out the names kept only for compatibility (US/…, Etc/…, Factory,
# localtime, CET and the like), which no browser reports and no editor looks for.
_AREAS = ("Africa/", "America/", "Antarctica/", "Asia/", "Atlantic/", "Australia/", "Europe/", "Indian/", "Pacific/")


def living_zones() -> list[str]:
    """The time zones the journey preview offers, UTC first."""
    return ["UTC", *sorted(zone for zone in available_timezones() if zone.startswith(_AREAS))]


def _form(questions: list[Question], topics: list[Topic]) -> JourneyForm:
    """The form with a control per question (a choice list, or checkboxes for a question with several
    answers) and the rows of behaviour what-ifs."""

    class Form(JourneyForm):
        pass

    for question in questions:
        label = f"{localized(question.text, 'en')} ({question.key})"
        options = [
            SelectChoice(option.value, localized(option.label, "en")) for option in question.active_options
        ]
        field: Field
        if question.kind is QuestionKind.MULTI:
            field = SelectMultipleField(
                label,
                choices=options,
                validate_choice=False,
                widget=ListWidget(prefix_label=False),
                option_widget=CheckboxInput(),
            )
        else:
            field = SelectField(
                label, choices=[SelectChoice("", "Not answered"), *options], validate_choice=False
            )
        setattr(Form, ANSWER_PREFIX + question.key, field)
    signal_choices = [SelectChoice("", "does nothing")] + [
        SelectChoice(
            f"{source.value}:{topic.key}", text.format(topic=topic.key), optgroup=localized(topic.name, "en")
        )
        for topic in topics
        for source, text in SIGNALS.items()
    ]
    for row in range(BEHAVIOUR_ROWS):
        n = row + 1
        setattr(
            Form,
            f"behaviour-{row}-signal",
            SelectField(f"What-if {n}: the reader", choices=signal_choices, default="", validate_choice=False),
        )
        setattr(
            Form,
            f"behaviour-{row}-count",
            IntegerField(
                f"What-if {n}: how many",
                default=1,
                validators=[
                    Optional(),
                    NumberRange(1, service.MAX_SIGNALS, message=f"Choose from 1 to {service.MAX_SIGNALS}."),
                ],
            ),
        )
        setattr(
            Form,
            f"behaviour-{row}-day",
            IntegerField(
                f"What-if {n}: on day",
                default=row * 7 if row else 3,
                validators=[Optional(), NumberRange(0, message="Choose a day from 0 on.")],
            ),
        )
    form = Form(formdata=request.args if request.args else None)
    form.timezone.choices = [SelectChoice(zone, zone) for zone in living_zones()]
    if not form.timezone.data:
        form.timezone.data = current_settings().timezone
    form.change.choices = [SelectChoice("", "No change")] + [
        SelectChoice(
            f"{question.key}={option.value}",
            f"{question.key}: {localized(option.label, 'en')}",
            optgroup=localized(question.text, "en"),
        )
        for question in questions
        for option in question.active_options
    ]
    return form


@bp.get("/journey")
@editor_required
def journey() -> tuple[str, int]:
    questions = service.journey_questions()
    topics = service.journey_topics()
    form = _form(questions, topics)
    errors: dict[str, str] = {}
    result: service.Journey | None = None
    if request.args and form.validate():
        try:
            result = service.preview_journey(
                _who(form, questions),
                weeks=form.weeks.data,
                what_if=_what_if(form),
                behaviour=_behaviour(form),
            )
        except InvalidInput as exc:
            errors = _field_errors(exc.errors)
        except NotFound:
            errors = {"email": "No subscriber has this address."}
    problems = [*errors.values(), *(message for messages in form.errors.values() for message in messages)]
    status = 422 if problems else 200
    return render_template(
        "admin/journey/index.html",
        form=form,
        questions=questions,
        answer_fields=[(question, form[ANSWER_PREFIX + question.key]) for question in questions],
        behaviour_rows=[
            [form[f"behaviour-{row}-{part}"] for part in ("signal", "count", "day")]
            for row in range(BEHAVIOUR_ROWS)
        ]
        if topics
        else [],
        errors=errors,
        problems=problems,
        journey=result,
        change_label=_change_label(result, questions),
        shift_text=_shift_text,
        tz=ZoneInfo,
    ), status


def _who(form: JourneyForm, questions: list[Question]) -> service.Person | str:
    if form.email.data and form.email.data.strip():
        return str(form.email.data).strip()
    answers: dict[str, Any] = {}
    for question in questions:
        data = form[ANSWER_PREFIX + question.key].data
        if data:
            answers[question.key] = data
    start: datetime | None = form.start.data
    zone = form.timezone.data or None
    if start is not None:
        try:
            start = start.replace(tzinfo=ZoneInfo(zone or current_settings().timezone))
        except (KeyError, ValueError):
            start = None  # the unknown zone is reported by the service
    return service.Person(
        answers=answers,
        locale=form.locale.data,
        timezone=zone,
        opted_in=form.opted_in.data != "no",
        start=start,
    )


def _what_if(form: JourneyForm) -> service.WhatIf | None:
    change = form.change.data or ""
    if not change:
        return None
    key, _, value = change.partition("=")
    day = form.change_day.data if form.change_day.data is not None else 0
    return service.WhatIf(question=key, value=value, day=day)


def _behaviour(form: JourneyForm) -> list[service.Behaviour]:
    """The behaviour what-ifs of the rows where the reader does something, in row order."""
    chosen = []
    for row in range(BEHAVIOUR_ROWS):
        signal = form[f"behaviour-{row}-signal"].data or ""
        if not signal:
            continue
        source, _, topic = signal.partition(":")
        count, day = form[f"behaviour-{row}-count"].data, form[f"behaviour-{row}-day"].data
        chosen.append(
            service.Behaviour(
                topic=topic,
                day=day if day is not None else 0,
                count=count if count is not None else 1,
                # Anything else is refused by the service, named at this row.
                source=SignalSource(source) if source in SIGNALS_BY_VALUE else SignalSource.ANSWER,
            )
        )
    return chosen


def _field_errors(errors: dict[str, str]) -> dict[str, str]:
    """The service's field names as the form's: a behaviour what-if's problem at its row (the rows where the
    reader does nothing are not sent, so the n-th what-if is the n-th row that does something)."""
    renamed: dict[str, str] = {}
    rows = [row for row in range(BEHAVIOUR_ROWS) if request.args.get(f"behaviour-{row}-signal")]
    for name, message in errors.items():
        if name.startswith("answers."):
            renamed[ANSWER_PREFIX + name.removeprefix("answers.")] = message
        elif name.startswith("behaviour.") and name.removeprefix("behaviour.").isdigit():
            index = int(name.removeprefix("behaviour."))
            row = rows[index] if index < len(rows) else 0
            renamed[f"behaviour-{row}-signal"] = message
        else:
            renamed[name] = message
    return renamed


def _change_label(result: service.Journey | None, questions: list[Question]) -> str:
    """'If daytrading_experience is answered “Active” on day 2 and the reader clicks 3 daytrading links on
    day 4'."""
    if result is None:
        return ""
    parts = []
    change = result.change
    if change is not None:
        question = next((q for q in questions if q.key == change.question), None)
        values = [change.value] if isinstance(change.value, str) else change.value
        if question is not None:
            labels = {option.value: localized(option.label, "en") for option in question.options}
            values = [labels.get(value, value) for value in values]
        parts.append(f"{change.question} is answered “{', '.join(values)}” on day {change.day}")
    parts += [f"the reader {item.text}" for item in result.behaviour]
    return f"If {' and '.join(parts)}" if parts else ""


def _shift_text(shift: timedelta | None) -> str:
    """'2 days 3 hours later', '45 minutes earlier'."""
    if shift is None or not shift:
        return ""
    direction = "later" if shift > timedelta(0) else "earlier"
    minutes = int(abs(shift).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{amount} {unit}{'s' if amount != 1 else ''}"
        for amount, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if amount
    ]
    return f"{' '.join(parts) or 'under a minute'} {direction}"
