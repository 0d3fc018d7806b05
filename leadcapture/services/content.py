"""Bring the database in line with a checked content bundle: questions, topics, reports, widgets and sequences.

Idempotent: a row is only touched when a file says something different, so loading the same files twice
changes nothing. Nothing is ever deleted at the question, report, widget or sequence level (answers,
submissions, consent records and enrollments point at them): an option that answers refer to is retired
instead of deleted, and a sequence whose folder is gone is switched off (`active=False`) until it returns.
Steps are matched by their file name, so editing or reordering them keeps each step's row.

A topic whose file is gone from a directory that has a topics/ folder stops being a topic: no page or link
falls under it any more and no answer counts towards it. If nobody's interest was ever recorded for it (no
interest event, score or click refers to it), its row is deleted. Otherwise it is retired: kept with its URL
rules and question link cleared, so the interest history and the clicks stay whole, and it is left out of
`content dump` and of the definitions a save is checked against. Its file coming back brings it back, with
its history. A topic that an active sequence's audience still names is neither: the load is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from leadcapture import audience, clock
from leadcapture.definitions import ContentBundle, Problem
from leadcapture.definitions.bundle import (
    QuestionDef,
    ReportDef,
    ReportFileDef,
    SequenceDef,
    TopicDef,
    WidgetDef,
)
from leadcapture.errors import DomainError
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    Click,
    InterestEvent,
    InterestScore,
    Question,
    QuestionOption,
    Report,
    ReportFile,
    Sequence,
    SequenceStep,
    Topic,
    Widget,
    WidgetQuestion,
)
from leadcapture.services.answers import answered_options
from leadcapture.services.interests import rebuild_scores

log = logging.getLogger(__name__)


class ContentHasProblems(DomainError):
    """The bundle did not pass `content check`; nothing was loaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the content files")
        self.problems = list(problems)


class ContentConflict(DomainError):
    """The files ask for a change the data already in the database does not allow."""


@dataclass(frozen=True, slots=True)
class Change:
    """One created or updated definition, e.g. 'updated widget daytrading-report (texts, allowed_origins)'."""

    # "created", "updated", "deactivated" (a sequence whose folder is gone), "retired" or "deleted" (a topic
    # whose file is gone: retired when interest was recorded for it, else deleted)
    action: str
    kind: str  # "question", "topic", "report", "widget" or "sequence"
    key: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f" ({', '.join(self.fields)})" if self.fields else ""
        return f"{self.action} {self.kind} {self.key}{detail}"


def load_content(bundle: ContentBundle, *, quiet: bool = False) -> list[Change]:
    """Create or update every definition in `bundle`; flush, never commit. Returns what changed.

    A widget may use a report or ask a question that is not in the bundle but already in the database (the
    admin loads one definition at a time). `quiet` leaves the logging of the changes to the caller (the
    admin logs one line per save).
    """
    if bundle.problems:
        raise ContentHasProblems(bundle.problems)
    now = clock.now()
    changes: list[Change] = []
    questions = _load_questions(bundle, now, changes)
    _load_topics(bundle, questions, now, changes)
    reports = _load_reports(bundle, now, changes)
    _load_widgets(bundle, questions, reports, now, changes)
    _load_sequences(bundle, now, changes)
    _drop_topics(bundle, now, changes)
    db.session.flush()
    if not quiet:
        for change in changes:
            log.info("content loaded from %s: %s", bundle.directory, change)
    return changes


# --- questions -------------------------------------------------------------------------------------------


def _load_questions(bundle: ContentBundle, now: datetime, changes: list[Change]) -> dict[str, Question]:
    existing = {
        question.key: question
        for question in db.session.scalars(
            select(Question)
            .where(Question.key.in_(list(bundle.questions)))
            .options(selectinload(Question.options))
        )
    }
    loaded: dict[str, Question] = {}
    for key, definition in bundle.questions.items():
        question = existing.get(key)
        if question is None:
            question = Question(
                key=key,
                kind=definition.kind,
                text=dict(definition.text),
                fresh_for_days=definition.fresh_for_days,
                created_at=now,
                updated_at=now,
                options=[
                    QuestionOption(
                        value=option.value, label=dict(option.label), position=index, retired=False
                    )
                    for index, option in enumerate(definition.options)
                ],
            )
            db.session.add(question)
            changes.append(Change("created", "question", key))
        else:
            fields = _update_question(question, definition)
            if fields:
                question.updated_at = now
                question.version = Question.version + 1
                changes.append(Change("updated", "question", key, fields))
        loaded[key] = question
    return loaded


def _update_question(question: Question, definition: QuestionDef) -> tuple[str, ...]:
    fields: list[str] = []
    if question.kind is not definition.kind:
        if _has_answers(question):
            raise ContentConflict(
                f"{definition.source}: kind: question {question.key!r} already has answers as a "
                f"{question.kind.value} question; add a new question instead of changing its kind"
            )
        question.kind = definition.kind
        fields.append("kind")
    if question.text != definition.text:
        question.text = dict(definition.text)
        fields.append("text")
    if question.fresh_for_days != definition.fresh_for_days:
        question.fresh_for_days = definition.fresh_for_days
        fields.append("fresh_for_days")
    if _update_options(question, definition):
        fields.append("options")
    return tuple(fields)


def _update_options(question: Question, definition: QuestionDef) -> bool:
    """Make the options match the file: active ones in file order, then the retired ones. True if changed."""
    current = {option.value: option for option in question.options}
    wanted = {option.value for option in definition.options}
    changed = False
    keep: list[QuestionOption] = []
    for position, option_def in enumerate(definition.options):
        option = current.get(option_def.value)
        if option is None:
            label = dict(option_def.label)
            option = QuestionOption(value=option_def.value, label=label, position=position, retired=False)
            changed = True
        else:
            changed |= _assign(option, "label", dict(option_def.label))
            changed |= _assign(option, "position", position)
            changed |= _assign(option, "retired", False)  # an option that comes back is current again
        keep.append(option)
    gone = [option for option in question.options if option.value not in wanted]
    answered = answered_options(question) if gone else frozenset()
    for option in gone:
        if option.retired or option.value in answered:
            # Answers keep their meaning: the option stays, hidden from new readers.
            changed |= _assign(option, "retired", True)
            changed |= _assign(option, "position", len(keep))
            keep.append(option)
        else:
            changed = True  # dropped from the list below; delete-orphan removes the row
    if changed or [option.value for option in question.options] != [option.value for option in keep]:
        question.options = keep
        return True
    return False


def _has_answers(question: Question) -> bool:
    return db.session.scalar(select(Answer.id).where(Answer.question_id == question.id).limit(1)) is not None


# --- topics ----------------------------------------------------------------------------------------------


def _load_topics(
    bundle: ContentBundle, questions: dict[str, Question], now: datetime, changes: list[Change]
) -> None:
    existing = {
        topic.key: topic
        for topic in db.session.scalars(
            select(Topic).where(Topic.key.in_(list(bundle.topics))).options(selectinload(Topic.question))
        )
    }
    about = {definition.question for definition in bundle.topics.values() if definition.question is not None}
    questions = {**_stored_questions(about - set(questions)), **questions}
    for key, definition in bundle.topics.items():
        question = _topic_question(definition, questions)
        topic = existing.get(key)
        if topic is None:
            topic = Topic(
                key=key,
                name=dict(definition.name),
                urls=list(definition.urls),
                half_life_days=definition.half_life_days,
                question=question,
                created_at=now,
                updated_at=now,
            )
            db.session.add(topic)
            changes.append(Change("created", "topic", key))
            continue
        fields = _update_topic(topic, definition, question)
        if fields:
            topic.updated_at = now
            topic.version = Topic.version + 1
            changes.append(Change("updated", "topic", key, fields))
        if "half_life_days" in fields:
            # A score's stored level depends on the half-life it decays with.
            rebuild_scores(topic)


def _topic_question(definition: TopicDef, questions: dict[str, Question]) -> Question | None:
    if definition.question is None:
        return None
    question = questions.get(definition.question)
    if question is None:
        raise ContentConflict(
            f"{definition.source}: question: question {definition.question!r} is neither in the files nor "
            "stored"
        )
    return question


def _update_topic(topic: Topic, definition: TopicDef, question: Question | None) -> tuple[str, ...]:
    fields: list[str] = []
    for name, value in (
        ("name", dict(definition.name)),
        ("urls", list(definition.urls)),
        ("half_life_days", definition.half_life_days),
    ):
        if _assign(topic, name, value):
            fields.append(name)
    if topic.question is not question:
        topic.question = question
        fields.append("question")
    return tuple(fields)


def _drop_topics(bundle: ContentBundle, now: datetime, changes: list[Change]) -> None:
    """Retire or delete the stored topics whose files are gone (see the module's docstring)."""
    if not bundle.has_topics:
        return  # a directory without a topics/ folder says nothing about topics
    gone = [
        topic
        for topic in db.session.scalars(
            select(Topic).where(Topic.key.not_in(list(bundle.topics))).order_by(Topic.key)
        )
        if topic.urls or topic.question_id is not None  # else retired already
    ]
    if not gone:
        return
    named = _topics_named_by_active_sequences()
    with_interest = _with_interest([topic.id for topic in gone])
    for topic in gone:
        if topic.key in named:
            raise ContentConflict(
                f"topics/{topic.key}.yaml is gone, but the audience of sequence {named[topic.key]!r} names "
                f"topic {topic.key!r}; change that audience first, or keep the topic"
            )
        if topic.id in with_interest:
            topic.urls = []
            topic.question = None
            topic.updated_at = now
            topic.version = Topic.version + 1
            changes.append(Change("retired", "topic", topic.key))
        else:
            db.session.delete(topic)
            changes.append(Change("deleted", "topic", topic.key))


def _topics_named_by_active_sequences() -> dict[str, str]:
    """Each topic key an active sequence's audience names, with (the first such) sequence's slug."""
    named: dict[str, str] = {}
    for slug, rule in db.session.execute(
        select(Sequence.slug, Sequence.audience).where(Sequence.active.is_(True)).order_by(Sequence.slug)
    ):
        for key, _ in audience.interests_in(rule or {}):
            named.setdefault(key, slug)
    return named


def _with_interest(topic_ids: list[int]) -> set[int]:
    """Those of the topics that recorded interest or a click refers to."""
    found: set[int] = set()
    for column in (InterestEvent.topic_id, InterestScore.topic_id, Click.topic_id):
        found.update(
            topic_id
            for topic_id in db.session.scalars(select(column).where(column.in_(topic_ids)).distinct())
            if topic_id is not None
        )
    return found


# --- reports ---------------------------------------------------------------------------------------------


def _load_reports(bundle: ContentBundle, now: datetime, changes: list[Change]) -> dict[str, Report]:
    existing = {
        report.slug: report
        for report in db.session.scalars(
            select(Report).where(Report.slug.in_(list(bundle.reports))).options(selectinload(Report.files))
        )
    }
    loaded: dict[str, Report] = {}
    for slug, definition in bundle.reports.items():
        report = existing.get(slug)
        if report is None:
            report = Report(
                slug=slug,
                title=dict(definition.title),
                description=dict(definition.description),
                created_at=now,
                updated_at=now,
                files=[_new_file(file, position) for position, file in enumerate(definition.files)],
            )
            db.session.add(report)
            changes.append(Change("created", "report", slug))
        else:
            fields = _update_report(report, definition)
            if fields:
                report.updated_at = now
                report.version = Report.version + 1
                changes.append(Change("updated", "report", slug, fields))
        loaded[slug] = report
    return loaded


def _update_report(report: Report, definition: ReportDef) -> tuple[str, ...]:
    fields: list[str] = []
    if _assign(report, "title", dict(definition.title)):
        fields.append("title")
    if _assign(report, "description", dict(definition.description)):
        fields.append("description")
    fields.extend(_update_files(report, definition))
    return tuple(fields)


def _update_files(report: Report, definition: ReportDef) -> list[str]:
    """Make the report's files match the definition's, matched by locale; the bytes are read (and the stored
    ones loaded) only where size or checksum differ. Returns 'file' or 'file.<locale>' for each change."""
    current = {file.locale: file for file in report.files}
    wanted = [file.locale for file in definition.files]
    fields = [_file_field(locale) for locale in current if locale not in wanted]
    rows: list[ReportFile] = []
    for position, file_def in enumerate(definition.files):
        row = current.get(file_def.locale)
        if row is None:
            row = _new_file(file_def, position)
            fields.append(_file_field(file_def.locale))
        else:
            changed = False
            if row.sha256 != file_def.sha256 or row.size != file_def.size:
                row.data = file_def.read_data()
                row.sha256, row.size = file_def.sha256, file_def.size
                changed = True
            for name, value in (
                ("filename", file_def.filename),
                ("content_type", file_def.content_type),
                ("position", position),
            ):
                changed |= _assign(row, name, value)
            if changed:
                fields.append(_file_field(file_def.locale))
        rows.append(row)
    if fields:
        # delete-orphan removes the rows of locales no longer listed
        report.files = rows
    return fields


def _new_file(definition: ReportFileDef, position: int) -> ReportFile:
    return ReportFile(
        locale=definition.locale,
        position=position,
        filename=definition.filename,
        content_type=definition.content_type,
        size=definition.size,
        sha256=definition.sha256,
        data=definition.read_data(),
    )


def _file_field(locale: str | None) -> str:
    return "file" if locale is None else f"file.{locale}"


# --- widgets ---------------------------------------------------------------------------------------------


def _load_widgets(
    bundle: ContentBundle,
    questions: dict[str, Question],
    reports: dict[str, Report],
    now: datetime,
    changes: list[Change],
) -> None:
    existing = {
        widget.slug: widget
        for widget in db.session.scalars(
            select(Widget)
            .where(Widget.slug.in_(list(bundle.widgets)))
            .options(selectinload(Widget.widget_questions), selectinload(Widget.report))
        )
    }
    stored = _stored_reports({definition.report for definition in bundle.widgets.values()} - set(reports))
    asked_keys = {key for definition in bundle.widgets.values() for key in definition.questions}
    questions = {**_stored_questions(asked_keys - set(questions)), **questions}
    for slug, definition in bundle.widgets.items():
        widget = existing.get(slug)
        report = reports.get(definition.report) or stored.get(definition.report)
        if report is None:
            raise ContentConflict(
                f"{definition.source}: report: report {definition.report!r} is neither in the files nor stored"
            )
        asked = [questions[key] for key in definition.questions]
        if widget is None:
            widget = Widget(
                slug=slug,
                report=report,
                locale=definition.locale,
                allowed_origins=list(definition.allowed_origins),
                texts=_texts(definition),
                ask_first_name=definition.ask_first_name,
                created_at=now,
                updated_at=now,
                widget_questions=[
                    WidgetQuestion(question=question, position=index) for index, question in enumerate(asked)
                ],
            )
            db.session.add(widget)
            changes.append(Change("created", "widget", slug))
            continue
        fields = _update_widget(widget, definition, report, asked)
        if fields:
            widget.updated_at = now
            widget.version = Widget.version + 1
            changes.append(Change("updated", "widget", slug, fields))


def _stored_questions(keys: set[str]) -> dict[str, Question]:
    """The questions widgets ask that the bundle does not hold (a widget saved on its own), from the database."""
    if not keys:
        return {}
    return {
        question.key: question
        for question in db.session.scalars(select(Question).where(Question.key.in_(keys)))
    }


def _stored_reports(slugs: set[str]) -> dict[str, Report]:
    """The reports widgets use that the bundle does not hold, from the database."""
    if not slugs:
        return {}
    return {
        report.slug: report for report in db.session.scalars(select(Report).where(Report.slug.in_(slugs)))
    }


def _update_widget(
    widget: Widget, definition: WidgetDef, report: Report, asked: list[Question]
) -> tuple[str, ...]:
    fields: list[str] = []
    if widget.report is not report:
        widget.report = report
        fields.append("report")
    if _assign(widget, "locale", definition.locale):
        fields.append("locale")
    if _assign(widget, "allowed_origins", list(definition.allowed_origins)):
        fields.append("allowed_origins")
    if _assign(widget, "texts", _texts(definition)):
        fields.append("texts")
    if _assign(widget, "ask_first_name", definition.ask_first_name):
        fields.append("ask_first_name")
    if [item.question for item in widget.widget_questions] != asked:
        current = {item.question_id: item for item in widget.widget_questions}
        rows: list[WidgetQuestion] = []
        for position, question in enumerate(asked):
            row = current.get(question.id) if question.id is not None else None
            if row is None:
                row = WidgetQuestion(question=question, position=position)
            else:
                row.position = position
            rows.append(row)
        widget.widget_questions = rows
        fields.append("questions")
    return tuple(fields)


# --- sequences -------------------------------------------------------------------------------------------


def _load_sequences(bundle: ContentBundle, now: datetime, changes: list[Change]) -> None:
    existing = {
        sequence.slug: sequence
        for sequence in db.session.scalars(select(Sequence).options(selectinload(Sequence.steps)))
    }
    for slug, definition in bundle.sequences.items():
        sequence = existing.get(slug)
        if sequence is None:
            sequence = Sequence(
                slug=slug,
                name=definition.name,
                audience=dict(definition.audience),
                on_change=definition.on_change,
                locale=definition.locale,
                priority=definition.priority,
                fresh_only=definition.fresh_only,
                active=True,
                created_at=now,
                updated_at=now,
                steps=[
                    SequenceStep(
                        key=step.key,
                        position=position,
                        delay_seconds=step.delay_seconds,
                        subject=step.subject,
                        body=step.body,
                        updated_at=now,
                    )
                    for position, step in enumerate(definition.steps)
                ],
            )
            db.session.add(sequence)
            changes.append(Change("created", "sequence", slug))
            continue
        fields = _update_sequence(sequence, definition, now)
        if fields:
            sequence.updated_at = now
            sequence.version = Sequence.version + 1
            changes.append(Change("updated", "sequence", slug, fields))
    if not bundle.has_sequences:
        return  # a directory without a sequences/ folder says nothing about sequences
    for slug, sequence in sorted(existing.items()):
        if slug not in bundle.sequences and sequence.active:
            # Not deleted: enrollments and sent steps refer to it. Its subscribers leave at their next step.
            sequence.active = False
            sequence.updated_at = now
            sequence.version = Sequence.version + 1
            changes.append(Change("deactivated", "sequence", slug))


def _update_sequence(sequence: Sequence, definition: SequenceDef, now: datetime) -> tuple[str, ...]:
    fields: list[str] = []
    if _assign(sequence, "active", True):
        fields.append("active")  # its folder is back
    for name, value in (
        ("name", definition.name),
        ("locale", definition.locale),
        ("audience", dict(definition.audience)),
        ("on_change", definition.on_change),
        ("priority", definition.priority),
        ("fresh_only", definition.fresh_only),
    ):
        if _assign(sequence, name, value):
            fields.append(name)
    if _update_steps(sequence, definition, now):
        fields.append("steps")
    return tuple(fields)


def _update_steps(sequence: Sequence, definition: SequenceDef, now: datetime) -> bool:
    """Make the steps match the files, matched by file name; a step no longer listed is deleted."""
    current = {step.key: step for step in sequence.steps}
    changed = False
    rows: list[SequenceStep] = []
    for position, step_def in enumerate(definition.steps):
        row = current.get(step_def.key)
        if row is None:
            row = SequenceStep(
                key=step_def.key,
                position=position,
                delay_seconds=step_def.delay_seconds,
                subject=step_def.subject,
                body=step_def.body,
                updated_at=now,
            )
            changed = True
        else:
            edited = False
            for name, value in (
                ("position", position),
                ("delay_seconds", step_def.delay_seconds),
                ("subject", step_def.subject),
                ("body", step_def.body),
            ):
                edited |= _assign(row, name, value)
            if edited:
                row.updated_at = now
                changed = True
        rows.append(row)
    if changed or len(rows) != len(sequence.steps):
        # Only (sequence_id, key) is unique, so positions can swap in one flush; delete-orphan removes the
        # rows of steps that are no longer listed.
        sequence.steps = rows
        return True
    return False


def _texts(definition: WidgetDef) -> dict[str, Any]:
    return {name: dict(text) for name, text in definition.texts.items()}


def _assign(row: object, name: str, value: Any) -> bool:
    """Set an attribute only when it differs, so an unchanged row stays clean. True if it changed."""
    if getattr(row, name) == value:
        return False
    setattr(row, name, value)
    return True
