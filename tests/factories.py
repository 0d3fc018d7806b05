"""Build content rows directly, without going through content files, and subscribers without the widget."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import select

from leadcapture import clock
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    OnChange,
    Question,
    QuestionKind,
    QuestionOption,
    Report,
    ReportFile,
    SequenceStep,
    Submission,
    Subscriber,
    SubscriberStatus,
    Widget,
    WidgetQuestion,
)
from leadcapture.models import Sequence as SequenceModel

PDF_BYTES = b"%PDF-1.4\n% test report\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

DEFAULT_OPTIONS: dict[str, list[tuple[str, str, str]]] = {
    "yes_no": [("yes", "Ja", "Yes"), ("no", "Nee", "No")],
    "choice": [
        ("none", "Nieuw", "New to me"),
        ("some", "Geprobeerd", "Tried it"),
        ("active", "Actief", "Active"),
    ],
    "multi": [("stocks", "Aandelen", "Stocks"), ("etfs", "ETF's", "ETFs"), ("crypto", "Crypto", "Crypto")],
}


def make_question(
    key: str,
    kind: str = "yes_no",
    options: Sequence[tuple[str, str, str]] | None = None,
    *,
    fresh_for_days: int = 90,
) -> Question:
    now = clock.now()
    question = Question(
        key=key,
        kind=QuestionKind(kind),
        text={"nl": f"Vraag {key}?", "en": f"Question {key}?"},
        fresh_for_days=fresh_for_days,
        created_at=now,
        updated_at=now,
    )
    for position, (value, nl, en) in enumerate(options or DEFAULT_OPTIONS[kind]):
        question.options.append(QuestionOption(value=value, label={"nl": nl, "en": en}, position=position))
    db.session.add(question)
    db.session.flush()
    return question


def make_report(
    slug: str = "daytrading-guide",
    data: bytes = PDF_BYTES,
    *,
    files: Mapping[str | None, bytes] | None = None,
) -> Report:
    """A report with `data` as its one file for every locale, or with `files` by locale (in that order)."""
    now = clock.now()
    report = Report(
        slug=slug,
        title={"nl": f"Rapport {slug}", "en": f"Report {slug}"},
        description={"nl": "Een gratis rapport.", "en": "A free report."},
        created_at=now,
        updated_at=now,
        files=[
            ReportFile(
                locale=locale,
                position=position,
                filename=f"{slug}.pdf" if locale is None else f"{slug}-{locale}.pdf",
                content_type="application/pdf",
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
                data=content,
            )
            for position, (locale, content) in enumerate((files or {None: data}).items())
        ],
    )
    db.session.add(report)
    db.session.flush()
    return report


def make_widget(
    slug: str = "daytrading-report",
    *,
    report: Report | None = None,
    questions: Sequence[Question] = (),
    locale: str = "nl",
    allowed_origins: Sequence[str] = ("https://beleggen.example",),
) -> Widget:
    now = clock.now()
    widget = Widget(
        slug=slug,
        report=report or make_report(slug + "-report"),
        locale=locale,
        allowed_origins=list(allowed_origins),
        texts={"prompt": {"nl": "Wil je ons gratis rapport?", "en": "Want our free report?"}},
        created_at=now,
        updated_at=now,
    )
    for position, question in enumerate(questions):
        widget.widget_questions.append(WidgetQuestion(question=question, position=position))
    db.session.add(widget)
    db.session.flush()
    return widget


def make_demo_widget(
    slug: str = "daytrading-report",
    *,
    locale: str = "nl",
    allowed_origins: Sequence[str] = ("https://beleggen.example",),
) -> Widget:
    """A widget asking one question of each kind, like the demo's."""
    questions = [
        db.session.query(Question).filter_by(key=key).one_or_none() or make_question(key, kind)
        for key, kind in (
            ("is_investor", "yes_no"),
            ("daytrading_experience", "choice"),
            ("interests", "multi"),
        )
    ]
    return make_widget(slug, questions=questions, locale=locale, allowed_origins=allowed_origins)


def make_sequence(
    slug: str,
    audience: dict[str, object],
    *,
    on_change: str = "switch",
    steps: Sequence[tuple[str, timedelta]] = (
        ("01-welcome.md", timedelta(days=1)),
        ("02-next.md", timedelta(days=3)),
    ),
    priority: int = 0,
    locale: str | None = None,
    fresh_only: bool = False,
    body: str = "Hallo{% if first_name %} {{ first_name }}{% endif %},\n\nStep **{key}** of {slug}.\n\n"
    "[Change your answers]({{ links.preferences }})",
) -> SequenceModel:
    """A sequence whose step subjects name the sequence and step, so tests can tell mails apart."""
    now = clock.now()
    sequence = SequenceModel(
        slug=slug,
        name=f"Sequence {slug}",
        audience=audience,
        on_change=OnChange(on_change),
        locale=locale,
        priority=priority,
        fresh_only=fresh_only,
        active=True,
        created_at=now,
        updated_at=now,
    )
    for position, (key, delay) in enumerate(steps):
        sequence.steps.append(
            SequenceStep(
                key=key,
                position=position,
                delay_seconds=int(delay.total_seconds()),
                subject=f"{slug} {key}",
                body=body.replace("{key}", key).replace("{slug}", slug),
                updated_at=now,
            )
        )
    db.session.add(sequence)
    db.session.flush()
    return sequence


def make_subscriber(
    *,
    email: str = "lezer@example.com",
    locale: str = "nl",
    timezone: str | None = None,
    marketing_consent: bool = False,
    answers: Mapping[str, str | list[str]] | None = None,
) -> Subscriber:
    """A reader who confirmed just now, with these answers (by question key) given in the widget just now;
    flushed, so it has an id."""
    now = clock.now()
    person = Subscriber(
        email=email,
        status=SubscriberStatus.CONFIRMED,
        locale=locale,
        timezone=timezone,
        marketing_consent=marketing_consent,
        created_at=now,
        confirmed_at=now,
        status_changed_at=now,
    )
    db.session.add(person)
    give_answers(person, answers or {})
    return person


def give_answers(person: Subscriber, answers: Mapping[str, str | list[str]]) -> None:
    """New current answers, given in the widget just now, by question key. Flushes."""
    if answers:
        questions = {
            question.key: question
            for question in db.session.scalars(select(Question).where(Question.key.in_(list(answers))))
        }
        for key, value in answers.items():
            db.session.add(
                Answer(
                    subscriber=person,
                    question=questions[key],
                    value=value,
                    source=AnswerSource.WIDGET,
                    question_text=key,
                    locale=person.locale,
                    answered_at=clock.now(),
                )
            )
    db.session.flush()


def make_confirmed_subscriber(
    widget: Widget,
    *,
    email: str = "lezer@example.com",
    locale: str = "nl",
    timezone: str | None = None,
    marketing_consent: bool = False,
) -> tuple[Subscriber, Submission]:
    """A reader who asked for the widget's report and confirmed just now, flushed so both have ids."""
    person = make_subscriber(
        email=email, locale=locale, timezone=timezone, marketing_consent=marketing_consent
    )
    submission = Submission(
        subscriber=person,
        widget=widget,
        report=widget.report,
        marketing_consent=marketing_consent,
        created_at=person.created_at,
        confirmed_at=person.created_at,
    )
    db.session.add(submission)
    db.session.flush()
    return person, submission
