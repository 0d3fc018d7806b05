"""Writing content files, checking and loading them, and reading back what the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from leadcapture import clock
from leadcapture.cli.content import content as content_group
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Question,
    QuestionOption,
    Report,
    ReportFile,
    Sequence,
    SequenceStep,
    Subscriber,
    SubscriberStatus,
    Widget,
    WidgetQuestion,
)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def check(directory: Path) -> Result:
    """`content check DIR`, without any app: it must not need one."""
    return CliRunner().invoke(content_group, ["check", str(directory)])


def problems_of(directory: Path) -> list[str]:
    return [str(problem) for problem in read_content(directory).problems]


def load(runner: FlaskCliRunner, directory: Path) -> Result:
    return runner.invoke(args=["content", "load", str(directory)])


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every content row as plain values, to compare before and after."""
    session = db.session
    session.expire_all()
    return {
        "questions": [
            (q.id, q.key, q.kind, q.text, q.fresh_for_days, q.created_at, q.updated_at)
            for q in session.scalars(select(Question).order_by(Question.id))
        ],
        "options": [
            (o.id, o.question_id, o.value, o.label, o.position, o.retired)
            for o in session.scalars(select(QuestionOption).order_by(QuestionOption.id))
        ],
        "reports": [
            (r.id, r.slug, r.title, r.description, r.updated_at)
            for r in session.scalars(select(Report).order_by(Report.id))
        ],
        "report_files": [
            (f.id, f.report_id, f.locale, f.position, f.filename, f.content_type, f.size, f.sha256)
            for f in session.scalars(select(ReportFile).order_by(ReportFile.id))
        ],
        "widgets": [
            (w.id, w.slug, w.report_id, w.locale, w.allowed_origins, w.texts, w.updated_at)
            for w in session.scalars(select(Widget).order_by(Widget.id))
        ],
        "widget_questions": [
            (wq.widget_id, wq.question_id, wq.position)
            for wq in session.scalars(
                select(WidgetQuestion).order_by(WidgetQuestion.widget_id, WidgetQuestion.position)
            )
        ],
        "sequences": [
            (s.id, s.slug, s.name, s.audience, s.on_change, s.locale, s.priority, s.active, s.updated_at)
            for s in session.scalars(select(Sequence).order_by(Sequence.id))
        ],
        "steps": [
            (st.id, st.sequence_id, st.key, st.position, st.delay_seconds, st.subject, st.body, st.updated_at)
            for st in session.scalars(select(SequenceStep).order_by(SequenceStep.id))
        ],
    }


def answer(question_key: str, value: str | list[str], email: str = "reader@example.com") -> None:
    now = clock.now()
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        subscriber = Subscriber(
            email=email, status=SubscriberStatus.CONFIRMED, locale="nl", created_at=now, status_changed_at=now
        )
        db.session.add(subscriber)
    question = db.session.scalars(select(Question).where(Question.key == question_key)).one()
    db.session.add(
        Answer(
            subscriber=subscriber,
            question=question,
            value=value,
            source=AnswerSource.WIDGET,
            question_text=question.text["nl"],
            locale="nl",
            answered_at=now,
        )
    )
    db.session.commit()


def options_of(key: str) -> list[tuple[str, bool]]:
    db.session.expire_all()
    question = db.session.scalars(select(Question).where(Question.key == key)).one()
    return [(option.value, option.retired) for option in question.options]
