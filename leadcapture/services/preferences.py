"""The preference page: a subscriber sees and changes their answers, and sees their sequences."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from leadcapture import clock
from leadcapture.errors import InvalidInput, TokenExpired, TokenInvalid
from leadcapture.extensions import db
from leadcapture.models import (
    Answer,
    AnswerSource,
    Delivery,
    Question,
    QuestionKind,
    Submission,
    Subscriber,
    SubscriberStatus,
    WidgetQuestion,
    localized,
)
from leadcapture.services.answers import (
    ProposedChange,
    answer_states,
    answer_values,
    current_answers,
    propose_change,
)
from leadcapture.services.capture import clean_first_name
from leadcapture.services.interests import record_answer_signals
from leadcapture.services.sequences import sequences_holding, switch_sequences
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
    """Every question, in the order readers meet them: by the earliest place a widget asks it, then the
    questions no widget asks."""
    asked = (
        select(WidgetQuestion.question_id, func.min(WidgetQuestion.position).label("position"))
        .group_by(WidgetQuestion.question_id)
        .subquery()
    )
    return db.session.scalars(
        select(Question)
        .outerjoin(asked, asked.c.question_id == Question.id)
        .options(selectinload(Question.options))
        .order_by(case((asked.c.position.is_(None), 1), else_=0), asked.c.position, Question.id)
    ).all()


def describe_preferences(subscriber: Subscriber) -> Preferences:
    """Every question with the subscriber's current answer, and the sequences they are in."""
    states = answer_states(subscriber.id)
    locale = subscriber.locale
    choices = tuple(
        QuestionChoice(
            key=question.key,
            kind=question.kind,
            text=localized(question.text, locale),
            options=tuple(
                (option.value, localized(option.label, locale)) for option in question.active_options
            ),
            current=answer_values(states[question.key].value if question.key in states else None),
            answered_at=states[question.key].answered_at if question.key in states else None,
        )
        for question in _questions()
    )
    sequences = tuple(enrollment.sequence.name for enrollment in sequences_holding(subscriber.id))
    return Preferences(subscriber, choices, sequences)


PAUSE = timedelta(days=30)


def pause_marketing(subscriber: Subscriber) -> datetime:
    """Hold every marketing email for 30 days; sequences wait rather than skip. Returns the end."""
    until: datetime = clock.now() + PAUSE
    subscriber.marketing_paused_until = until
    db.session.flush()
    log.info("subscriber %s paused marketing until %s", subscriber.id, until.isoformat())
    return until


def resume_marketing(subscriber: Subscriber) -> None:
    subscriber.marketing_paused_until = None
    db.session.flush()
    log.info("subscriber %s resumed marketing", subscriber.id)


def update_answers(
    subscriber: Subscriber, form: Mapping[str, Sequence[str]], first_name: str | None = None
) -> list[str]:
    """Record the answers (and first name) given on the preference page and move sequences at once; return
    the keys changed, `first_name` among them.

    Only questions present in the form are touched; an answer equal to the current one is not recorded
    again. `first_name` None leaves the name alone; an empty one clears it. Invalid values raise InvalidInput
    and change nothing.
    """
    current = current_answers(subscriber.id)
    questions = {question.key: question for question in _questions()}
    errors: dict[str, str] = {}
    name = subscriber.first_name
    if first_name is not None:
        try:
            name = clean_first_name(first_name)
        except InvalidInput as exc:
            errors.update(exc.errors)
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
    changed = [key for key, value in given.items() if answer_values(value) != answer_values(current.get(key))]
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
        record_answer_signals(subscriber, {questions[key].id: now for key in changed})
        switch_sequences(subscriber, reason="answers changed on the preference page")
    if name != subscriber.first_name:
        subscriber.first_name = name
        db.session.flush()
        changed.append("first_name")
    if changed:
        log.info("subscriber %s changed %s on the preference page", subscriber.id, ", ".join(changed))
    return changed


@dataclass(frozen=True)
class AnswerLink:
    """What a link in a refresh email stands for: this subscriber giving this answer to this question."""

    subscriber: Subscriber
    question: Question
    value: str | list[str]


def answer_link_target(token: str) -> AnswerLink:
    """The answer a link records; TokenInvalid when anything in it does not fit. Changes nothing."""
    payload = read_token(Purpose.ANSWER, token)
    subscriber_id, question_id, value = payload.get("s"), payload.get("q"), payload.get("v")
    subscriber = db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
    question = db.session.get(Question, question_id) if isinstance(question_id, int) else None
    if subscriber is None or subscriber.is_suppressed or question is None:
        raise TokenInvalid("nothing behind this token")
    allowed = question.option_values()
    if question.kind is QuestionKind.MULTI:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TokenInvalid("not an answer")
        if not set(value) <= allowed:
            raise TokenInvalid("no longer an offered answer")
        return AnswerLink(subscriber, question, sorted(set(value)))
    if not isinstance(value, str) or value not in allowed:
        raise TokenInvalid("no longer an offered answer")
    return AnswerLink(subscriber, question, value)


def expired_answer_target(token: str) -> Subscriber:
    """The subscriber of a genuine answer link that is past its age limit (or dated ahead of our clock), so
    the page can send them where every question is answered afresh; TokenInvalid for anything else."""
    try:
        answer_link_target(token)
    except TokenExpired as expired:
        subscriber_id = expired.payload.get("s")
        subscriber = db.session.get(Subscriber, subscriber_id) if isinstance(subscriber_id, int) else None
        if subscriber is None or subscriber.is_suppressed:
            raise TokenInvalid("nothing behind this token") from expired
        return subscriber
    raise TokenInvalid("this link has not expired")


def record_answer_from_email(token: str) -> AnswerLink:
    """Record the answer a refresh email's link stands for (fresh again even if unchanged); move sequences."""
    target = answer_link_target(token)
    subscriber, question = target.subscriber, target.question
    db.session.add(
        Answer(
            subscriber=subscriber,
            question=question,
            value=target.value,
            source=AnswerSource.EMAIL,
            question_text=localized(question.text, subscriber.locale),
            locale=subscriber.locale,
            answered_at=clock.now(),
        )
    )
    db.session.flush()
    record_answer_signals(subscriber, {question.id: clock.now()})
    switch_sequences(subscriber, reason="answer from an email")
    log.info("subscriber %s answered %s from an email", subscriber.id, question.key)
    return target


def change_target(subscriber: Subscriber, token: str) -> ProposedChange:
    """The proposal an emailed change link opens for this subscriber; TokenInvalid for anything else."""
    try:
        payload = read_token(Purpose.CHANGE, token)
    except TokenExpired as exc:
        raise TokenInvalid("this proposal has expired") from exc
    delivery_id = payload.get("d")
    delivery = db.session.get(Delivery, delivery_id) if isinstance(delivery_id, int) else None
    if (
        payload.get("s") != subscriber.id
        or delivery is None
        or delivery.subscriber_id != subscriber.id
        or not isinstance(delivery.payload.get("proposed"), dict)
    ):
        raise TokenInvalid("nothing behind this token")
    submission_id = delivery.payload.get("submission_id")
    submission = db.session.get(Submission, submission_id) if isinstance(submission_id, int) else None
    return propose_change(subscriber, delivery.payload["proposed"], submission)


def apply_change(subscriber: Subscriber, token: str) -> list[str]:
    """The owner applies answers given under their address from the link in an email about them; sequences
    move at once. A second click changes nothing. Returns the question keys changed, `first_name` among them."""
    change = change_target(subscriber, token)
    changed = record_proposed_change(change)
    if change.answers:
        switch_sequences(subscriber, reason="answers from a widget confirmed by email")
    if changed:
        log.info("subscriber %s confirmed %s given in a widget", subscriber.id, ", ".join(changed))
    return changed


def record_proposed_change(change: ProposedChange) -> list[str]:
    """Record what a proposal still changes: answers as the widget answers they were (widget, page, wording
    in the widget's language), and the first name. Answers already current are left alone. The caller moves
    sequences (see switch_sequences) once everything else the owner proved has been applied too. Returns the
    question keys changed, `first_name` among them."""
    subscriber = change.subscriber
    if change.first_name is not None:
        subscriber.first_name = change.first_name
    submission = change.submission
    widget = submission.widget if submission is not None else None
    locale = widget.locale if widget is not None else subscriber.locale
    questions = {question.key: question for question in _questions()} if change.answers else {}
    now = clock.now()
    for key, value in change.answers.items():
        question = questions[key]
        db.session.add(
            Answer(
                subscriber=subscriber,
                question=question,
                value=value,
                source=AnswerSource.WIDGET,
                widget=widget,
                page_url=submission.page_url if submission is not None else None,
                question_text=localized(question.text, locale),
                locale=locale,
                answered_at=now,
            )
        )
    db.session.flush()
    if subscriber.status is SubscriberStatus.CONFIRMED:
        answered = {questions[key].id: now for key in change.answers}
        record_answer_signals(subscriber, answered, widget_id=widget.id if widget is not None else None)
    return list(change.answers) + ([] if change.first_name is None else ["first_name"])
