"""A sequence seen from the subscribers' side: how many its audience holds now, and what a step says to one.

Both answer an editor's "what if" before anything is saved, so both take the rule, locale and step texts as
arguments rather than a stored sequence, and neither writes to the database. They decide the way sending
does: the count holds subscribers to the rule exactly as `leadcapture.audience.matches` does over the same
current answers and scores `switch_sequences` uses (its interest part in SQL, over the index on scores), and
the preview renders through the same composer and message assembly as a real step email.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from itertools import groupby
from typing import Any

from email_validator import EmailNotValidError
from sqlalchemy import ARRAY, ColumnElement, Integer, and_, any_, cast, exists, func, not_, or_, select, true
from sqlalchemy.orm import aliased

from leadcapture import audience, clock, interest
from leadcapture.addresses import normalize_email
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.interest import EPSILON
from leadcapture.mail.steps import check_step_template
from leadcapture.models import (
    Answer,
    DeliveryKind,
    InterestScore,
    Question,
    Sequence,
    Subscriber,
    SubscriberStatus,
    Topic,
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
    (None: any), matching `rule` over their current answers (only fresh ones when `fresh_only`) and their
    interest scores today.

    Interest conditions (but those in a group that also looks at answers) are decided in SQL, as ranges
    over the index on (topic_id, level): an interest-only rule is one statement. What looks at answers is
    decided by `audience.matches` over the answers (and scores) of the subscribers the SQL leaves.
    InvalidInput for a rule that names an unknown question, option or topic.
    """
    topics = {
        key: _TopicScale(topic_id, half_life)
        for topic_id, key, half_life in db.session.execute(select(Topic.id, Topic.key, Topic.half_life_days))
    }
    problems = audience.validate_rule(rule, audience_options(), set(topics))
    if problems:
        raise InvalidInput({"audience": "; ".join(problems)})
    held: list[ColumnElement[bool]] = [
        Subscriber.status == SubscriberStatus.CONFIRMED,
        Subscriber.marketing_consent.is_(True),
    ]
    if locale is not None:
        held.append(Subscriber.locale == locale)
    now = clock.now()
    # Entries that look only at interest are conditions on each subscriber that SQL decides exactly; the
    # rest (answers, and groups mixing answers with interest) is left to audience.matches.
    by_interest = {
        key: condition for key, condition in rule.items() if not audience.questions_in({key: condition})
    }
    rest = {key: condition for key, condition in rule.items() if key not in by_interest}
    held.extend(_InterestSql(topics, now, db.engine.dialect.name).held(by_interest))
    if not rest:
        return _count(held)
    matching = seen = 0
    for answers, scores in _merged(
        _current_answers(audience.questions_in(rest), held, now, fresh_only),
        _current_scores({key for key, _ in audience.interests_in(rest)}, topics, held, now),
    ):
        seen += 1
        matching += audience.matches(rest, answers, scores)
    # Everyone else has neither an answer nor a score the rest looks at: they all match, or none of them do.
    if audience.matches(rest, {}, {}):
        matching += _count(held) - seen
    return matching


def _count(held: list[ColumnElement[bool]]) -> int:
    return db.session.scalar(select(func.count()).select_from(Subscriber).where(*held)) or 0


@dataclass(frozen=True)
class _TopicScale:
    id: int
    half_life_days: int


@dataclass(frozen=True)
class _InterestSql:
    """Interest-only rules as SQL conditions on a subscriber, deciding exactly as `audience.matches` does
    over the scores today."""

    topics: Mapping[str, _TopicScale]
    now: datetime
    dialect: str

    def held(self, rule: Mapping[str, Any]) -> list[ColumnElement[bool]]:
        """Conditions that hold together exactly when `rule` does. When it asks for a score in some range,
        the first reads the subscribers in that range (or in any of those ranges) off the index."""
        found = _required_ranges(rule)
        if found is None:
            return [self.rule(rule)]
        ranges, rest = found
        score = aliased(InterestScore)
        ids = select(score.subscriber_id).where(
            or_(*(self.range(topic, at_least, score) for topic, at_least in ranges))
        )
        if self.dialect != "postgresql":
            return [Subscriber.id.in_(ids), self.rule(rest)]
        # PostgreSQL takes topic and level as independent, and so misjudges how many scores a range holds
        # when topics of other half-lives have levels in it too; thinking it many, it reads every
        # subscriber to join them. As one array, the range leaves it nothing but look-ups by primary key.
        listed = ids.with_only_columns(func.array_agg(score.subscriber_id)).scalar_subquery()
        array = cast(listed, ARRAY(Integer))
        return [Subscriber.id == any_(array), self.rule(rest)]

    def rule(self, rule: Mapping[str, Any]) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        for key, condition in rule.items():
            if key == "interest":
                clauses.extend(self.condition(item) for item in _listed(condition))
            elif key == "all_of":
                clauses.extend(self.rule(sub) for sub in condition)
            elif key == "any_of":
                clauses.append(self.any_of(condition))
            elif key == "none_of":
                clauses.append(not_(or_(*(self.rule(sub) for sub in condition))))
        return and_(true(), *clauses)

    def any_of(self, rules: list[Mapping[str, Any]]) -> ColumnElement[bool]:
        ranges = _alternative_ranges(rules)
        if ranges is None:
            return or_(*(self.rule(sub) for sub in rules))
        # One subquery over the ranges, where an or of subqueries would leave the planner a scan of every
        # subscriber.
        score = aliased(InterestScore)
        return Subscriber.id.in_(
            select(score.subscriber_id).where(
                or_(*(self.range(topic, at_least, score) for topic, at_least in ranges))
            )
        )

    def condition(self, item: Mapping[str, Any]) -> ColumnElement[bool]:
        """`at_least`: a score row in the range; `below`: none (no row scores 0, below every bound)."""
        bound = item["at_least"] if "at_least" in item else item["below"]
        # Each subquery over scores has a table of its own: one left as InterestScore would be correlated with
        # the scores the count itself reads (`_current_scores`), leaving it nothing to read from.
        score = aliased(InterestScore)
        scored = exists().where(score.subscriber_id == Subscriber.id, self.range(item["topic"], bound, score))
        return scored if "at_least" in item else not_(scored)

    def range(self, topic: str, at_least: float, score: Any) -> ColumnElement[bool]:
        scale = self.topics[topic]
        return and_(
            score.topic_id == scale.id,
            score.level >= lowest_level(at_least, self.now, scale.half_life_days),
        )


_Range = tuple[str, float]  # (topic key, at_least)


def _required_ranges(rule: Mapping[str, Any]) -> tuple[list[_Range], dict[str, Any]] | None:
    """Score ranges that everyone an interest-only rule holds has a score in (one of), and what else of the
    rule must hold for them; None when the rule asks for no score (`below` alone: no score at all holds)."""
    for key, condition in rule.items():
        if key == "interest":
            items = _listed(condition)
            for index, item in enumerate(items):
                if "at_least" in item:
                    others = items[:index] + items[index + 1 :]
                    rest = {name: value for name, value in rule.items() if name != key}
                    return [(item["topic"], item["at_least"])], rest | ({key: others} if others else {})
        elif key == "any_of":
            ranges = _alternative_ranges(condition)
            if ranges is not None:
                return ranges, {name: value for name, value in rule.items() if name != key}
    return None


def _alternative_ranges(rules: list[Mapping[str, Any]]) -> list[_Range] | None:
    """When each of `rules` is one `at_least` alone, their ranges: the rules hold together exactly for the
    subscribers with a score in any of them."""
    ranges = []
    for sub in rules:
        items = _listed(sub["interest"]) if list(sub) == ["interest"] else []
        if len(items) != 1 or "at_least" not in items[0]:
            return None
        ranges.append((items[0]["topic"], items[0]["at_least"]))
    return ranges


def lowest_level(at_least: float, today: datetime, half_life_days: int) -> float:
    """The lowest stored level whose score on the day of `today` `audience.matches` counts as at least
    `at_least`, to the last bit: `level >= lowest_level(…)` then decides as matches does, where
    `interest.threshold` errs by a hair (its margin is in levels, matches' in scores)."""
    bound = at_least * (1 - EPSILON)

    def meets(level: float) -> bool:
        return interest.score(level, today, half_life_days) >= bound

    # Within a few units in the last place of the answer; scores rise with levels, so step to it.
    level = math.log2(bound) + interest.day_number(today) / half_life_days
    while not meets(level):
        level = math.nextafter(level, math.inf)
    while meets(lower := math.nextafter(level, -math.inf)):
        level = lower
    return level


def _current_answers(
    keys: set[str], held: list[ColumnElement[bool]], now: datetime, fresh_only: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(subscriber id, current answers to these questions), for the subscribers `held` keeps, who answered
    one, in subscriber order."""
    if not keys:
        return
    questions = {
        question_id: (key, timedelta(days=days))
        for question_id, key, days in db.session.execute(
            select(Question.id, Question.key, Question.fresh_for_days).where(Question.key.in_(keys))
        )
    }
    # In id order per subscriber, so the last one per question is the current one, as in answer_states.
    rows = db.session.execute(
        select(Answer.subscriber_id, Answer.question_id, Answer.value, Answer.answered_at)
        .join(Subscriber, Subscriber.id == Answer.subscriber_id)
        .where(Answer.question_id.in_(list(questions)), *held)
        .order_by(Answer.subscriber_id, Answer.id)
        .execution_options(yield_per=_BATCH)
    )
    for subscriber_id, answers_of_one in groupby(rows, key=lambda row: row.subscriber_id):
        current: dict[str, tuple[Any, datetime]] = {}
        for row in answers_of_one:
            key, fresh_for = questions[row.question_id]
            current[key] = (row.value, row.answered_at + fresh_for)
        yield (
            subscriber_id,
            {key: value for key, (value, stale_at) in current.items() if not fresh_only or now < stale_at},
        )


def _current_scores(
    keys: set[str], topics: Mapping[str, _TopicScale], held: list[ColumnElement[bool]], now: datetime
) -> Iterator[tuple[int, dict[str, float]]]:
    """(subscriber id, scores today on these topics), for the subscribers `held` keeps who have one, in
    subscriber order."""
    if not keys:
        return
    by_id = {topics[key].id: (key, topics[key].half_life_days) for key in keys}
    rows = db.session.execute(
        select(InterestScore.subscriber_id, InterestScore.topic_id, InterestScore.level)
        .join(Subscriber, Subscriber.id == InterestScore.subscriber_id)
        .where(InterestScore.topic_id.in_(list(by_id)), *held)
        .order_by(InterestScore.subscriber_id)
        .execution_options(yield_per=_BATCH)
    )
    for subscriber_id, scores_of_one in groupby(rows, key=lambda row: row.subscriber_id):
        scores: dict[str, float] = {}
        for row in scores_of_one:
            key, half_life = by_id[row.topic_id]
            scores[key] = interest.score(row.level, now, half_life)
        yield subscriber_id, scores


def _merged(
    answers: Iterator[tuple[int, dict[str, Any]]], scores: Iterator[tuple[int, dict[str, float]]]
) -> Iterator[tuple[dict[str, Any], dict[str, float]]]:
    """Each subscriber's answers and scores, from two streams in subscriber order, once per subscriber in
    either."""
    answer, score = next(answers, None), next(scores, None)
    while answer is not None or score is not None:
        first = min(item[0] for item in (answer, score) if item is not None)
        yield (
            answer[1] if answer is not None and answer[0] == first else {},
            score[1] if score is not None and score[0] == first else {},
        )
        if answer is not None and answer[0] == first:
            answer = next(answers, None)
        if score is not None and score[0] == first:
            score = next(scores, None)


def _listed(condition: Any) -> list[Any]:
    return condition if isinstance(condition, list) else [condition]


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
