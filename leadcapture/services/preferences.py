"""The preference page: a subscriber sees and changes their answers, and sees their sequences."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from leadcapture import clock
from leadcapture.errors import InvalidInput, TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Enrollment,
    EnrollmentState,
    Question,
    QuestionKind,
    Subscriber,
    localized,
)
from leadcapture.services.answers import current_answers
from leadcapture.services.sequences import switch_sequences
from leadcapture.tokens import Purpose, read_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuestionChoice:
    key: str
    kind: QuestionKind
    text: str
    options: tuple[tuple[str, str], ...]  # (value, label)
    current: frozenset[str]  # the values of the current answer; empty when unanswered
    answered_at: datetime | None


@dataclass(frozen=True)
class Preferences:
    subscriber: Subscriber
    questions: tuple[QuestionChoice, ...]
    sequences: tuple[str, ...]  # names of the sequences the subscriber is in now


def preferences_target(token: str) -> Subscriber:
    """The subscriber a preference link was made for; changes nothing."""
    subscriber_id = read_token(Purpose.PREFERENCES, token).get("s")
    subscriber = db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
    if subscriber is None or subscriber.is_suppressed:
        raise TokenInvalid("nothing behind this token")
    return subscriber


def _questions() -> Sequence[Question]:
    return db.session.scalars(
        select(Question).options(selectinload(Question.options)).order_by(Question.id)
    ).all()


def describe_preferences(subscriber: Subscriber) -> Preferences:
    """Every question with the subscriber's current answer, and the sequences they are in."""
    answers = current_answers(subscriber.id)
    answered_at = dict(
        db.session.execute(
            select(Answer.question_id, Answer.answered_at)
            .where(Answer.subscriber_id == subscriber.id)
            .order_by(Answer.id)
        ).all()
    )
    locale = subscriber.locale
    choices = tuple(
        QuestionChoice(
            key=question.key,
            kind=question.kind,
            text=localized(question.text, locale),
            options=tuple(
                (option.value, localized(option.label, locale)) for option in question.active_options
            ),
            current=_values(answers.get(question.key)),
            answered_at=answered_at.get(question.id),
        )
        for question in _questions()
    )
    sequences = tuple(
        enrollment.sequence.name
        for enrollment in db.session.scalars(
            select(Enrollment).where(
                Enrollment.subscriber_id == subscriber.id, Enrollment.state == EnrollmentState.ACTIVE
            )
        )
    )
    return Preferences(subscriber, choices, sequences)


def _values(answer: Any) -> frozenset[str]:
    if answer is None:
        return frozenset()
    return frozenset([answer]) if isinstance(answer, str) else frozenset(answer)


def update_answers(subscriber: Subscriber, form: Mapping[str, Sequence[str]]) -> list[str]:
    """Record the answers given on the preference page and move sequences at once; return the keys changed.

    Only questions present in the form are touched; an answer equal to the current one is not recorded
    again. Invalid values raise InvalidInput and change nothing.
    """
    current = current_answers(subscriber.id)
    questions = {question.key: question for question in _questions()}
    errors: dict[str, str] = {}
    given: dict[str, str | list[str]] = {}
    for key, values in form.items():
        question = questions.get(key)
        if question is None:
            errors[key[:64]] = "no such question"
            continue
        allowed = question.option_values()
        chosen = [value for value in values if value]
        if (
            not chosen
            or not set(chosen) <= allowed
            or (question.kind is not QuestionKind.MULTI and len(chosen) > 1)
        ):
            errors[key] = "choose one of the offered answers"
            continue
        given[key] = sorted(set(chosen)) if question.kind is QuestionKind.MULTI else chosen[0]
    if errors:
        raise InvalidInput(errors)
    now = clock.now()
    changed = [key for key, value in given.items() if _values(value) != _values(current.get(key))]
    for key in changed:
        question = questions[key]
        db.session.add(
            Answer(
                subscriber=subscriber,
                question=question,
                value=given[key],
                source=AnswerSource.PREFERENCES,
                question_text=localized(question.text, subscriber.locale),
                locale=subscriber.locale,
                answered_at=now,
            )
        )
    if changed:
        db.session.flush()
        switch_sequences(subscriber, reason="answers changed on the preference page")
        log.info("subscriber %s changed %s on the preference page", subscriber.id, ", ".join(changed))
    return changed
