"""A sequence seen from the subscribers' side: how many its audience holds now, and what a step says to one.

Both answer an editor's "what if" before anything is saved, so both take the rule, locale and step texts as
arguments rather than a stored sequence, and neither writes to the database. They decide the way sending
does: the count applies `leadcapture.audience.matches` to the same current answers `switch_sequences` uses,
and the preview renders through the same composer and message assembly as a real step email.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from itertools import groupby
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import func, select

from leadcapture import audience, clock
from leadcapture.addresses import normalize_email
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.mail.steps import check_step_template
from leadcapture.models import (
    Answer,
    DeliveryKind,
    Question,
    Sequence,
    Subscriber,
    SubscriberStatus,
)
from leadcapture.services import emails
from leadcapture.services.answers import current_answers
from leadcapture.services.outbox import make_message_id

log = logging.getLogger(__name__)

# Rows fetched per round trip while counting: the answers are streamed, never all held at once.
_BATCH = 5000
PREVIEW_ADDRESS = "reader@example.com"


def audience_options() -> dict[str, set[str]]:
    """Every question key with the option values a rule may name (retired ones too: answers still hold them)."""
    options: dict[str, set[str]] = {}
    for question in db.session.scalars(select(Question)):
        options[question.key] = {option.value for option in question.options}
    return options


def count_audience(rule: Mapping[str, Any], locale: str | None, fresh_only: bool) -> int:
    """How many subscribers a sequence with this audience would hold now: confirmed, opted in, in `locale`
    (None: any), matching `rule` over their current answers (only fresh ones when `fresh_only`).

    InvalidInput for a rule that names an unknown question or option.
    """
    problems = audience.validate_rule(rule, audience_options())
    if problems:
        raise InvalidInput({"audience": "; ".join(problems)})
    eligible = [Subscriber.status == SubscriberStatus.CONFIRMED, Subscriber.marketing_consent.is_(True)]
    if locale is not None:
        eligible.append(Subscriber.locale == locale)
    total = db.session.scalar(select(func.count(Subscriber.id)).where(*eligible)) or 0
    if not rule:
        return total
    questions = {
        question_id: (key, timedelta(days=days))
        for question_id, key, days in db.session.execute(
            select(Question.id, Question.key, Question.fresh_for_days).where(Question.key.in_(list(rule)))
        )
    }
    now = clock.now()
    # Only the answers to the questions the rule looks at matter; in id order per subscriber, so the last
    # one per question is the current one, as in answer_states.
    rows = db.session.execute(
        select(Answer.subscriber_id, Answer.question_id, Answer.value, Answer.answered_at)
        .join(Subscriber, Subscriber.id == Answer.subscriber_id)
        .where(Answer.question_id.in_(list(questions)), *eligible)
        .order_by(Answer.subscriber_id, Answer.id)
        .execution_options(yield_per=_BATCH)
    )
    answered = matching = 0
    for _, answers_of_one in groupby(rows, key=lambda row: row.subscriber_id):
        current: dict[str, tuple[Any, Any]] = {}
        for row in answers_of_one:
            key, fresh_for = questions[row.question_id]
            current[key] = (row.value, row.answered_at + fresh_for)
        answers = {
            key: value for key, (value, stale_at) in current.items() if not fresh_only or now < stale_at
        }
        answered += 1
        matching += audience.matches(rule, answers)
    # Everyone else has answered none of the rule's questions: they all match, or none of them do.
    if audience.matches(rule, {}):
        matching += total - answered
    return matching


@dataclass(frozen=True)
class StepPreview:
    """A step email as it would be sent: who to, its headers, and both alternatives."""

    to: str
    headers: list[tuple[str, str]]
    subject: str
    html: str
    text: str
    # The answers the step was rendered with, by question key; a question left out was unanswered, which
    # a step sees as empty and false, as sending does.
    answers: dict[str, Any]


PREVIEW_HEADERS = ("From", "To", "Subject", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post")


def preview_step(
    sequence: Sequence,
    subject: str,
    body: str,
    *,
    email: str | None = None,
    answers: Mapping[str, str | list[str]] | None = None,
    first_name: str | None = None,
    locale: str = "en",
) -> StepPreview:
    """Render one step for the subscriber with address `email`, or else for a reader with these `answers`.

    `sequence` only names the list (its name and slug) and may be unsaved; nothing is written. InvalidInput
    for step texts that `check_step_template` refuses or an address that is not one; NotFound for an
    address no subscriber has.
    """
    problems = check_step_template(subject, body)
    if problems:
        raise InvalidInput({"step": "; ".join(problems)})
    if email:
        subscriber = _subscriber(email)
        chosen: dict[str, Any] = current_answers(subscriber.id)
    else:
        # A reader who exists only for this preview: never added to the session.
        subscriber = Subscriber(
            email=PREVIEW_ADDRESS,
            status=SubscriberStatus.CONFIRMED,
            locale=locale,
            first_name=first_name or None,
            marketing_consent=True,
        )
        chosen = dict(answers or {})
    composed = emails.compose_step(sequence, subject, body, subscriber, chosen)
    message = emails.assemble_message(
        DeliveryKind.SEQUENCE,
        subscriber,
        subscriber.email,
        make_message_id(DeliveryKind.SEQUENCE),
        composed,
    )
    log.info("step of sequence %s previewed for %s", sequence.slug, "a subscriber" if email else "answers")
    return StepPreview(
        to=subscriber.email,
        headers=[(name, str(message[name])) for name in PREVIEW_HEADERS if message[name] is not None],
        subject=str(message["Subject"]),
        html=_part(message, "html"),
        text=_part(message, "plain"),
        answers=chosen,
    )


def _subscriber(email: str) -> Subscriber:
    try:
        address = normalize_email(email)
    except EmailNotValidError:
        raise InvalidInput({"email": f"{email[:100]!r} is not an email address"}) from None
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == address))
    if subscriber is None or subscriber.status is SubscriberStatus.ERASED:
        raise NotFound(f"no subscriber has the address {address}")
    return subscriber


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:  # pragma: no cover - every message has both alternatives
        raise ValueError(f"the message has no {subtype} part")
    return str(part.get_content())
