"""Reading a subscriber's answers: the newest per question is current, and it goes stale with age."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import selectinload

from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import Answer, Question, QuestionKind, Submission, Subscriber, localized


@dataclass(frozen=True)
class CurrentAnswer:
    question_id: int
    value: Any  # a string, or a sorted list of strings for multi questions
    answered_at: datetime
    stale_at: datetime  # answered_at + the question's fresh_for_days

    def is_fresh(self, now: datetime) -> bool:
        return now < self.stale_at


def answer_states(subscriber_id: int) -> dict[str, CurrentAnswer]:
    """The newest answer to each question, keyed by question key, with when it goes stale."""
    return answer_states_of([subscriber_id]).get(subscriber_id, {})


def answer_states_of(subscriber_ids: Iterable[int]) -> dict[int, dict[str, CurrentAnswer]]:
    """`answer_states` for many subscribers in one statement, by subscriber id (every id given is a key)."""
    ids = sorted(set(subscriber_ids))
    states: dict[int, dict[str, CurrentAnswer]] = {subscriber_id: {} for subscriber_id in ids}
    if not ids:
        return states
    rows = db.session.execute(
        select(
            Answer.subscriber_id,
            Question.key,
            Question.id,
            Question.fresh_for_days,
            Answer.value,
            Answer.answered_at,
        )
        .join(Answer.question)
        .where(Answer.subscriber_id.in_(ids))
        .order_by(Answer.id)
    )
    # Later rows overwrite earlier ones: the newest answer wins.
    for subscriber_id, key, question_id, fresh_for_days, value, answered_at in rows:
        states[subscriber_id][key] = CurrentAnswer(
            question_id, value, answered_at, answered_at + timedelta(days=fresh_for_days)
        )
    return states


def current_answers(subscriber_id: int) -> dict[str, Any]:
    """The newest answer to each question, keyed by question key, fresh or not."""
    return {key: state.value for key, state in answer_states(subscriber_id).items()}


def answer_values(answer: Any) -> frozenset[str]:
    """An answer as a set of option values (empty when unanswered)."""
    if answer is None:
        return frozenset()
    return frozenset([answer]) if isinstance(answer, str) else frozenset(answer)


def answered_options(question: Question) -> frozenset[str]:
    """The option values of `question` that some answer chose: dropping one of those retires it."""
    if question.id is None:
        return frozenset()
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        # An answer is a JSON string or an array of strings: spread both into their elements.
        query = text(
            "SELECT DISTINCT chosen FROM answers, jsonb_array_elements_text(CASE jsonb_typeof(value)"
            " WHEN 'array' THEN value ELSE jsonb_build_array(value) END) AS chosen"
            " WHERE question_id = :question"
        )
    else:
        # json_each yields the elements of an array, or the value itself for a scalar.
        query = text(
            "SELECT DISTINCT chosen.value FROM answers, json_each(answers.value) AS chosen"
            " WHERE question_id = :question"
        )
    chosen = {str(value) for value in db.session.scalars(query, {"question": question.id})}
    return frozenset(option.value for option in question.options if option.value in chosen)


def option_label(kind: QuestionKind, value: str, label: Mapping[str, str], locale: str) -> str:
    """An option as readers see it: its label, or for a yes/no question without labels, yes or no."""
    if label:
        return localized(dict(label), locale)
    if kind is QuestionKind.YES_NO:
        return translate(locale, f"widget.{value}")
    return value


@dataclass(frozen=True)
class ChangedAnswer:
    """One answer a proposal would change, as the subscriber reads it."""

    question_text: str
    before: str  # the current answer's labels; empty when unanswered
    after: str


@dataclass(frozen=True)
class ProposedChange:
    """Answers given under a known subscriber's address by a browser that had not proven it, waiting for
    the owner: only what is still offered and still differs from their current answers."""

    subscriber: Subscriber
    submission: Submission | None
    answers: dict[str, str | list[str]]
    first_name: str | None  # None: the name stays as it is
    changes: tuple[ChangedAnswer, ...]


def propose_change(
    subscriber: Subscriber, proposal: Mapping[str, Any], submission: Submission | None
) -> ProposedChange:
    """What `proposal` (as capture_submission wrote it) would change of this subscriber now. Changes nothing."""
    given = proposal.get("answers")
    given = given if isinstance(given, dict) else {}
    current = current_answers(subscriber.id)
    locale = subscriber.locale
    answers: dict[str, str | list[str]] = {}
    changes = []
    for question in db.session.scalars(select(Question).options(selectinload(Question.options))):
        value = given.get(question.key)
        chosen = answer_values(value) if isinstance(value, str | list) else frozenset()
        offered = {option.value: option for option in question.active_options}
        if not chosen or not chosen <= set(offered) or chosen == answer_values(current.get(question.key)):
            continue
        answers[question.key] = sorted(chosen) if question.kind is QuestionKind.MULTI else next(iter(chosen))
        before = _labels(question, answer_values(current.get(question.key)), locale)
        changes.append(
            ChangedAnswer(localized(question.text, locale), before, _labels(question, chosen, locale))
        )
    name = proposal.get("first_name")
    first_name = name if isinstance(name, str) and name and name != subscriber.first_name else None
    if first_name is not None:
        changes.append(
            ChangedAnswer(
                translate(locale, "page.preferences.first_name"), subscriber.first_name or "", first_name
            )
        )
    return ProposedChange(subscriber, submission, answers, first_name, tuple(changes))


def _labels(question: Question, values: frozenset[str], locale: str) -> str:
    return ", ".join(
        option_label(question.kind, option.value, option.label, locale)
        for option in question.options
        if option.value in values
    )
