"""Reading a subscriber's answers: the newest per question is the current one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.models import Answer, Question


def current_answers(subscriber_id: int) -> dict[str, Any]:
    """The newest answer to each question, keyed by question key."""
    rows = db.session.execute(
        select(Question.key, Answer.value)
        .join(Answer.question)
        .where(Answer.subscriber_id == subscriber_id)
        .order_by(Answer.id)
    )
    return dict(rows.all())  # later rows overwrite earlier ones: the newest answer wins
