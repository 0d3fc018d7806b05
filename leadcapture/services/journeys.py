"""The journey preview: which sequences a person enters and which emails reach them when, over the coming
weeks, and what one answer changing on a given day, or behaviour (clicking links of a topic in our emails,
reading its articles), would change.

It is a simulation, and it writes nothing. It plays the worker's sweeps forward in memory (stale answers,
fading interest, due steps, refresh emails, the outbox) as a worker that never falls behind would run them.
Every decision of entering, leaving and queueing is the worker's own: `services/rules.py` returns the
effects, and the simulation applies them to its person as `services/states.py` writes them to rows. Interest
scores follow `leadcapture.interest`'s arithmetic, and a signal moves sequences only when it crosses a
threshold an active audience names (`services.interests.crosses`), as recording one does. Sending follows
the outbox's pacing (`hold_until`). It assumes the person does nothing but the what-ifs asked about, and
that editors change no content.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Mapping
from collections.abc import Sequence as Listed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from leadcapture import audience, clock, interest
from leadcapture.config import current as current_settings
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES, translate
from leadcapture.mail.steps import render_step
from leadcapture.models import (
    MARKETING_KINDS,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Enrollment,
    EnrollmentState,
    InterestScore,
    Question,
    QuestionKind,
    Sequence,
    SequenceStep,
    SignalSource,
    Subscriber,
    SubscriberStatus,
    Topic,
    localized,
)
from leadcapture.services import rules
from leadcapture.services.answers import CurrentAnswer, answer_states
from leadcapture.services.emails import link, preferences_link, site, unsubscribe_link
from leadcapture.services.interests import crosses
from leadcapture.services.pacing import hold_until, within_sending_hours
from leadcapture.services.refresh import refresh_content
from leadcapture.services.subscribers import find_subscriber

log = logging.getLogger(__name__)

DEFAULT_WEEKS = 6
MAX_WEEKS = 26
MAX_BEHAVIOUR = 10  # what-ifs of behaviour in one preview
MAX_SIGNALS = 50  # clicks or reads in one what-if
# What recording a click, a read or an answer to a topic's question adds to a score (record_signal's weight).
SIGNAL_WEIGHT = 1.0
Value = str | list[str]
# Ids for enrollments and deliveries that exist only in the simulation: after every real one, in the order
# they are made, as the database would number them (the sweeps order ties by id).
_SIMULATED_IDS = 1 << 60


@dataclass(frozen=True)
class Person:
    """Someone who has not signed up yet: confirms at `start` (default now) having given these answers."""

    answers: Mapping[str, Value]
    locale: str
    timezone: str | None = None
    opted_in: bool = True
    first_name: str | None = None
    start: datetime | None = None


@dataclass(frozen=True)
class WhatIf:
    """Question `question` answered `value`, `day` days after the start (at the start's time of day)."""

    question: str
    value: Value
    day: int


@dataclass(frozen=True)
class Behaviour:
    """`count` links of topic `topic` clicked in our emails (source CLICK), or `count` of its articles read
    (READ), `day` days after the start (at the start's time of day)."""

    topic: str
    day: int
    count: int = 1
    source: SignalSource = SignalSource.CLICK

    @property
    def action(self) -> str:
        """'clicks 3 daytrading links', 'reads a daytrading article'."""
        noun = "link" if self.source is SignalSource.CLICK else "article"
        verb = "clicks" if self.source is SignalSource.CLICK else "reads"
        many = f"{self.count} {self.topic} {noun}s" if self.count != 1 else f"a {self.topic} {noun}"
        return f"{verb} {many}"

    @property
    def text(self) -> str:
        """'clicks 3 daytrading links on day 4'."""
        return f"{self.action} on day {self.day}"


class EventKind(enum.Enum):
    EMAIL = "email"  # a sequence step goes out
    REFRESH = "refresh"  # a refresh email re-asks a stale answer
    ENTER = "enter"
    LEAVING = "leaving"  # on_change finish_step: leaves once the waiting step is out
    STAYS = "stays"  # answers no longer match, on_change stay
    LEAVE = "leave"
    COMPLETE = "complete"  # every step is scheduled
    STALE = "stale"  # an answer goes stale
    ANSWER = "answer"  # the answer of the what-if
    SIGNAL = "signal"  # a click or read of a behaviour what-if
    FADES = "fades"  # interest in a topic decays past a threshold an audience names


@dataclass(frozen=True)
class JourneyEvent:
    at: datetime  # UTC
    local: datetime  # the same moment in the person's time zone
    kind: EventKind
    detail: str
    sequence: str | None = None  # its name
    sequence_slug: str | None = None
    step: int | None = None  # 1-based position in its sequence
    step_key: str | None = None
    subject: str | None = None
    question: str | None = None  # key, for refresh, stale and answer events
    topic: str | None = None  # key, for signal and fades events

    @property
    def identity(self) -> tuple[str, ...]:
        """What makes this the same event in another timeline, wherever it falls."""
        return (
            self.kind.value,
            self.sequence_slug or "",
            self.step_key or "",
            self.question or "",
            self.topic or "",
        )

    @property
    def is_email(self) -> bool:
        return self.kind in (EventKind.EMAIL, EventKind.REFRESH)


class Difference(enum.Enum):
    SAME = "same"
    MOVED = "moved"  # at another moment
    CHANGED = "changed"  # same moment, other subject or reason
    GONE = "gone"  # only without the change
    NEW = "new"  # only with the change


@dataclass(frozen=True)
class ComparedEvent:
    before: JourneyEvent | None
    after: JourneyEvent | None
    difference: Difference

    @property
    def event(self) -> JourneyEvent:
        event = self.after or self.before
        if event is None:
            raise ValueError("a compared event needs one side")
        return event

    @property
    def shift(self) -> timedelta | None:
        if self.before is None or self.after is None:
            return None
        return self.after.at - self.before.at


@dataclass(frozen=True)
class Journey:
    who: str
    start: datetime
    end: datetime
    timezone: str
    locale: str
    notes: list[str]
    timeline: list[JourneyEvent]
    change: WhatIf | None = None
    change_at: datetime | None = None
    changed_timeline: list[JourneyEvent] | None = None  # with the what-ifs (answer and behaviour)
    comparison: list[ComparedEvent] = field(default_factory=list)
    behaviour: tuple[Behaviour, ...] = ()

    @property
    def emails(self) -> list[JourneyEvent]:
        return [event for event in self.timeline if event.is_email]

    @property
    def changed_emails(self) -> list[JourneyEvent]:
        return [event for event in self.changed_timeline or [] if event.is_email]


def preview_journey(
    who: Person | str,
    *,
    weeks: int = DEFAULT_WEEKS,
    what_if: WhatIf | None = None,
    behaviour: Listed[Behaviour] = (),
) -> Journey:
    """Simulate the next `weeks` of a person's emails, for chosen answers or for a subscriber (by email
    address), and alongside it the same weeks with the what-if answer and behaviour. Reads only.

    InvalidInput names each bad field (weeks, answers.<key>, locale, timezone, start, change, change_day,
    behaviour.<n>); NotFound means no subscriber has that address.
    """
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput({"weeks": f"must be a whole number of weeks from 1 to {MAX_WEEKS}"})
    questions = {question.key: question for question in db.session.scalars(select(Question))}
    world = _World.load()
    if isinstance(who, Person):
        start_state = _hypothetical(who, questions, world)
    else:
        start_state = _real(find_subscriber(who), world)
    start = start_state.start
    end = start + timedelta(weeks=weeks)
    changes: list[_Answering | _Acting] = []
    if what_if is not None:
        question, value = _parse_what_if(what_if, questions, weeks)
        changes.append(_Answering(start + timedelta(days=what_if.day), question, value))
    changes += _parse_behaviour(behaviour, world, weeks, start)
    timeline = _Simulation(world, start_state, end).run()
    journey = Journey(
        who=start_state.who,
        start=start,
        end=end,
        timezone=start_state.zone_name,
        locale=start_state.subscriber.locale,
        notes=start_state.notes,
        timeline=timeline,
    )
    if changes:
        changed = _Simulation(world, start_state, end, changes=changes).run()
        journey = replace(
            journey,
            change=what_if,
            change_at=start + timedelta(days=what_if.day) if what_if is not None else None,
            changed_timeline=changed,
            comparison=compare(timeline, changed),
            behaviour=tuple(behaviour),
        )
    log.info(
        "journey previewed for %s over %s weeks%s%s",
        start_state.who,
        weeks,
        f", what if {what_if.question} on day {what_if.day}" if what_if else "",
        "".join(f", what if {item.text}" for item in behaviour),
    )
    return journey


def compare(before: list[JourneyEvent], after: list[JourneyEvent]) -> list[ComparedEvent]:
    """Both timelines in one, in time order: each event paired with its twin (the n-th of its kind for the
    same sequence, step or question) and marked by what the change did to it."""
    pending: dict[tuple[str, ...], list[JourneyEvent]] = {}
    for event in after:
        pending.setdefault(event.identity, []).append(event)
    rows: list[tuple[datetime, int, ComparedEvent]] = []
    for order, event in enumerate(before):
        twins = pending.get(event.identity)
        twin = twins.pop(0) if twins else None
        if twin is None:
            rows.append((event.at, order, ComparedEvent(event, None, Difference.GONE)))
            continue
        if twin.at != event.at:
            difference = Difference.MOVED
        elif (twin.subject, twin.detail) != (event.subject, event.detail):
            difference = Difference.CHANGED
        else:
            difference = Difference.SAME
        rows.append((min(event.at, twin.at), order, ComparedEvent(event, twin, difference)))
    leftovers = [event for twins in pending.values() for event in twins]
    for event in leftovers:
        rows.append((event.at, len(before) + after.index(event), ComparedEvent(None, event, Difference.NEW)))
    return [row for _at, _order, row in sorted(rows, key=lambda row: (row[0], row[1]))]


# Where the simulation starts


@dataclass
class _Start:
    who: str
    subscriber: Subscriber  # the real one (read, never changed), or a transient stand-in
    start: datetime
    zone_name: str
    states: dict[str, CurrentAnswer]
    signs_up: bool  # a person who has not signed up: confirms at the start
    notes: list[str] = field(default_factory=list)
    enrollments: list[Enrollment] = field(default_factory=list)
    waiting: list[Delivery] = field(default_factory=list)
    last_sent: datetime | None = None
    last_refresh: datetime | None = None
    refresh_due_at: datetime | None = None
    levels: dict[str, float] = field(default_factory=dict)  # interest by topic key (leadcapture.interest)


def _zone_name(timezone: str | None) -> str:
    return timezone or current_settings().timezone


def _hypothetical(person: Person, questions: Mapping[str, Question], world: _World) -> _Start:
    errors: dict[str, str] = {}
    if person.locale not in LOCALES:
        errors["locale"] = f"must be one of {', '.join(LOCALES)}"
    if person.timezone:
        try:
            ZoneInfo(person.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = "unknown time zone: use an IANA name such as Europe/Amsterdam"
    if person.start is not None and person.start.tzinfo is None:
        errors["start"] = "must carry a time zone"
    answers: dict[str, Value] = {}
    for key, value in person.answers.items():
        question = questions.get(key)
        if question is None:
            errors[f"answers.{str(key)[:64]}"] = "no such question"
            continue
        if value in ("", [], None):
            continue
        problem, normalized = _check_value(question, value)
        if problem:
            errors[f"answers.{key}"] = problem
        else:
            answers[key] = normalized
    if errors:
        raise InvalidInput(errors)
    start = (person.start or clock.now()).astimezone(UTC)
    subscriber = Subscriber(
        email="preview@example.invalid",
        status=SubscriberStatus.CONFIRMED,
        locale=person.locale,
        timezone=person.timezone or None,
        first_name=person.first_name or None,
        marketing_consent=person.opted_in,
        marketing_paused_until=None,
    )
    states = {
        key: CurrentAnswer(
            questions[key].id, value, start, start + timedelta(days=questions[key].fresh_for_days)
        )
        for key, value in answers.items()
    }
    notes = [] if person.opted_in else ["Not opted in to follow-up emails: no sequence sends them anything."]
    # Confirming makes the answers given at sign-up their own: each counts as interest in the topics about it.
    levels: dict[str, float] = {}
    for state in states.values():
        for topic in world.about(state.question_id):
            level = interest.add_signal(levels.get(topic.key), SIGNAL_WEIGHT, start, topic.half_life_days)
            if level is not None:
                levels[topic.key] = level
    return _Start(
        who="chosen answers",
        subscriber=subscriber,
        start=start,
        zone_name=_zone_name(person.timezone),
        states=states,
        signs_up=True,
        notes=notes,
        levels=levels,
    )


def _check_value(question: Question, value: object) -> tuple[str | None, Value]:
    """A problem with an answer to `question`, or None and the answer as stored."""
    allowed = question.option_values()
    options = ", ".join(sorted(allowed))
    if question.kind is QuestionKind.MULTI:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(item, str) for item in values):
            return "choose one or more of its options", ""
        unknown = sorted(set(values) - allowed)
        if unknown:
            return f"unknown option {unknown[0]!r} (options: {options})", ""
        return None, sorted(set(values))
    if not isinstance(value, str) or value not in allowed:
        shown = (
            value if isinstance(value, str) else ", ".join(map(str, value)) if isinstance(value, list) else ""
        )
        return f"unknown option {shown[:64]!r} (options: {options})", ""
    return None, value


def _parse_what_if(
    what_if: WhatIf, questions: Mapping[str, Question], weeks: int
) -> tuple[Question, Value]:
    question = questions.get(what_if.question)
    if question is None:
        raise InvalidInput({"change": f"no such question {what_if.question[:64]!r}"})
    problem, value = _check_value(question, what_if.value)
    if problem:
        raise InvalidInput({"change": problem})
    if isinstance(what_if.day, bool) or not 0 <= what_if.day < weeks * 7:
        raise InvalidInput({"change_day": f"must be a day from 0 to {weeks * 7 - 1}: within the preview"})
    return question, value


def _parse_behaviour(
    behaviour: Listed[Behaviour], world: _World, weeks: int, start: datetime
) -> list[_Acting]:
    if len(behaviour) > MAX_BEHAVIOUR:
        raise InvalidInput({"behaviour": f"at most {MAX_BEHAVIOUR} what-ifs of behaviour at once"})
    errors: dict[str, str] = {}
    acting: list[_Acting] = []
    for index, item in enumerate(behaviour):
        where = f"behaviour.{index}"
        topic = world.topics.get(item.topic)
        if topic is None:
            errors[where] = f"no such topic {item.topic[:64]!r}"
        elif topic.retired:
            errors[where] = f"topic {topic.key!r} is retired: no click or read counts for it"
        elif item.source not in (SignalSource.CLICK, SignalSource.READ):
            errors[where] = "choose clicks or reads"
        elif isinstance(item.count, bool) or not 1 <= item.count <= MAX_SIGNALS:
            errors[where] = f"choose from 1 to {MAX_SIGNALS} at once"
        elif isinstance(item.day, bool) or not 0 <= item.day < weeks * 7:
            errors[where] = f"choose a day from 0 to {weeks * 7 - 1}: within the preview"
        else:
            acting.append(_Acting(start + timedelta(days=item.day), topic, item))
    if errors:
        raise InvalidInput(errors)
    return acting


def _real(subscriber: Subscriber, world: _World) -> _Start:
    now = clock.now()
    notes: list[str] = []
    if subscriber.status is SubscriberStatus.PENDING:
        notes.append("Has not confirmed the address yet: nothing but the confirmation email goes out.")
    elif subscriber.status is not SubscriberStatus.CONFIRMED:
        notes.append(f"Status {subscriber.status.value}: no follow-up emails.")
    elif not subscriber.marketing_consent:
        notes.append("Not opted in to follow-up emails: no sequence sends them anything.")
    paused = subscriber.marketing_paused_until
    if paused is not None and paused > now:
        notes.append(f"Paused follow-up emails until {_format(paused, _zone_name(subscriber.timezone))}.")
    last_sent = db.session.scalar(
        select(func.max(Delivery.sent_at)).where(
            Delivery.subscriber_id == subscriber.id,
            Delivery.kind.in_(MARKETING_KINDS),
            Delivery.status == DeliveryStatus.SENT,
        )
    )
    waiting = list(
        db.session.scalars(
            select(Delivery)
            .where(
                Delivery.subscriber_id == subscriber.id,
                Delivery.kind.in_(MARKETING_KINDS),
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SENDING]),
            )
            .order_by(Delivery.id)
        )
    )
    last_refresh = db.session.scalar(
        select(func.max(Delivery.created_at)).where(
            Delivery.subscriber_id == subscriber.id,
            Delivery.kind == DeliveryKind.REFRESH,
            Delivery.status != DeliveryStatus.CANCELLED,
        )
    )
    if last_sent is not None:
        notes.append(f"Last follow-up email sent {_format(last_sent, _zone_name(subscriber.timezone))}.")
    return _Start(
        who=subscriber.email,
        subscriber=subscriber,
        start=now,
        zone_name=_zone_name(subscriber.timezone),
        states=answer_states(subscriber.id),
        signs_up=False,
        notes=notes,
        enrollments=list(
            db.session.scalars(
                select(Enrollment).where(Enrollment.subscriber_id == subscriber.id).order_by(Enrollment.id)
            )
        ),
        waiting=waiting,
        last_sent=last_sent,
        last_refresh=last_refresh,
        refresh_due_at=subscriber.refresh_due_at,
        levels=dict(
            db.session.execute(
                select(Topic.key, InterestScore.level)
                .join(InterestScore, InterestScore.topic_id == Topic.id)
                .where(InterestScore.subscriber_id == subscriber.id)
            ).all()
        ),
    )


def _format(moment: datetime, zone_name: str) -> str:
    local = moment.astimezone(ZoneInfo(zone_name))
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


# The content the simulation reads, loaded once for both timelines


@dataclass(frozen=True)
class _Topic:
    key: str
    half_life_days: int
    question_id: int | None
    retired: bool  # its file gone: no URL rules left, and no new click or read counts


@dataclass
class _World:
    content: rules.Content
    by_id: dict[int, Sequence]  # every sequence, for names and steps
    steps: dict[int, SequenceStep]
    questions: dict[int, Question]
    topics: dict[str, _Topic]
    # Every (topic key, score) an active audience compares with: crossing one moves sequences.
    thresholds: frozenset[tuple[str, float]]

    @classmethod
    def load(cls) -> _World:
        by_id = {
            sequence.id: sequence
            for sequence in db.session.scalars(select(Sequence).options(selectinload(Sequence.steps)))
        }
        content = refresh_content()
        return cls(
            content=content,
            by_id=by_id,
            steps={step.id: step for sequence in by_id.values() for step in sequence.steps},
            questions={question.id: question for question in db.session.scalars(select(Question))},
            topics={
                key: _Topic(key, half_life, question_id, not urls)
                for key, half_life, question_id, urls in db.session.execute(
                    select(Topic.key, Topic.half_life_days, Topic.question_id, Topic.urls).order_by(Topic.key)
                )
            },
            thresholds=frozenset(
                threshold
                for plan in content.active
                for threshold in audience.interests_in(dict(plan.audience))
            ),
        )

    def about(self, question_id: int) -> list[_Topic]:
        """The topics about a question: answering it is a signal of interest in each."""
        return [topic for topic in self.topics.values() if topic.question_id == question_id]


@dataclass(frozen=True)
class _Answering:
    """The what-if answer, given at `at` (a web request)."""

    at: datetime
    question: Question
    value: Value


@dataclass(frozen=True)
class _Acting:
    """A what-if of behaviour: its clicks or reads, at `at` (web requests, one after the other)."""

    at: datetime
    topic: _Topic
    behaviour: Behaviour


# The simulation: the worker's sweeps in memory, deciding with the rules the worker decides with


@dataclass
class _Delivery:
    id: int
    kind: DeliveryKind
    due_at: datetime
    priority: int
    status: DeliveryStatus = DeliveryStatus.PENDING
    sequence_id: int | None = None
    enrollment_id: int | None = None
    step: SequenceStep | None = None
    question: Question | None = None
    key: str = ""
    why: str = ""  # why it goes out later than its step fell due

    def waiting(self) -> rules.Waiting:
        return rules.Waiting(
            key=self.key,
            kind=self.kind,
            due_at=self.due_at,
            priority=self.priority,
            sequence_id=self.sequence_id,
            enrollment_id=self.enrollment_id,
            step_id=self.step.id if self.step is not None else None,
            question_id=self.question.id if self.question is not None else None,
        )


class _Simulation:
    """One person's next weeks, tick by tick, as the worker's sweeps would play them."""

    def __init__(
        self,
        world: _World,
        start: _Start,
        end: datetime,
        *,
        changes: Listed[_Answering | _Acting] = (),
    ) -> None:
        self.world = world
        self.content = world.content
        self.person = start.subscriber
        self.start = start
        self.end = end
        # In time order; at one moment, in the order given.
        self.changes = sorted(changes, key=lambda change: change.at)
        self.zone = ZoneInfo(start.zone_name)
        self.states = dict(start.states)
        self.levels = dict(start.levels)
        # Up to when fading interest has been looked at, as the worker's sweep keeps it.
        self.faded_until = start.start
        self.events: list[JourneyEvent] = []
        self._ids = _SIMULATED_IDS
        self.enrollments: dict[int, rules.Enrolled] = {
            row.sequence_id: rules.Enrolled.of(row) for row in start.enrollments
        }
        # Whether each enrollment's audience matched at the last look, to say "stays" once.
        self.matching = dict.fromkeys(self.enrollments, True)
        by_enrollment = {enrolled.id: enrolled.sequence_id for enrolled in self.enrollments.values()}
        self.deliveries: list[_Delivery] = []
        self.last_sent = start.last_sent
        for waiting in start.waiting:
            if waiting.status is DeliveryStatus.SENDING:
                # Leased to a sender this moment: on its way out.
                self.last_sent = max(self.last_sent or start.start, start.start)
                continue
            self.deliveries.append(
                _Delivery(
                    id=waiting.id,
                    kind=waiting.kind,
                    due_at=waiting.due_at,
                    priority=waiting.priority,
                    sequence_id=by_enrollment.get(waiting.enrollment_id or 0),
                    enrollment_id=waiting.enrollment_id,
                    step=world.steps.get(waiting.payload.get("step_id", 0)),
                    question=world.questions.get(waiting.payload.get("question_id", 0)),
                    key=waiting.idempotency_key,
                )
            )
        self.keys = {delivery.key for delivery in self.deliveries}
        self.last_refresh = start.last_refresh
        self.refresh_due_at = start.refresh_due_at
        self.noted_stale: set[tuple[str, datetime]] = set()

    @cached_property
    def links(self) -> dict[str, str]:
        if self.person.id is None:
            return {"unsubscribe": link("/unsubscribe/preview"), "preferences": link("/preferences/preview")}
        return {"unsubscribe": unsubscribe_link(self.person), "preferences": preferences_link(self.person)}

    def run(self) -> list[JourneyEvent]:
        now = self.start.start
        for key, state in self.states.items():
            if not state.is_fresh(now):
                self.noted_stale.add((key, state.stale_at))
                self._event(
                    now,
                    EventKind.STALE,
                    f"stale since {_format(state.stale_at, self.zone.key)}",
                    question=key,
                )
        if self.start.signs_up:
            self._apply(rules.switch(self._state(now), self.content, now, "signed up"), now, "signed up")
        for _ in range(100_000):  # every pass moves some due moment forward; this only guards against a bug
            moment = self._next_moment()
            if moment is None or moment > self.end:
                break
            self._tick(moment)
        # A sequence completes when its last step is scheduled; reading it after that email is easier.
        return sorted(self.events, key=lambda event: (event.at, event.kind is EventKind.COMPLETE))

    def _next_moment(self) -> datetime | None:
        moments: list[datetime] = [change.at for change in self.changes[:1]]
        fading = self._next_fading()
        if fading is not None:
            moments.append(fading)
        for enrollment in self._active():
            moments += [m for m in (enrollment.next_due_at, enrollment.recheck_at) if m is not None]
        if self.refresh_due_at is not None:
            moments.append(self.refresh_due_at)
        moments += [delivery.due_at for delivery in self._waiting()]
        moments += [
            state.stale_at
            for key, state in self.states.items()
            if (key, state.stale_at) not in self.noted_stale
        ]
        return min(moments, default=None)

    def _tick(self, now: datetime) -> None:
        """What happens at `now`: the what-ifs falling due (web requests), then the sweeps in the worker's
        order (`scheduler.SWEEPS`): stale answers, fading interest, due steps, refresh emails, the outbox."""
        while self.changes and self.changes[0].at <= now:
            change = self.changes.pop(0)
            if isinstance(change, _Answering):
                self._answer(change.at, change.question, change.value)
            else:
                self._act(change)
        for key, state in sorted(self.states.items()):
            if state.stale_at <= now and (key, state.stale_at) not in self.noted_stale:
                self.noted_stale.add((key, state.stale_at))
                question = self.world.questions[state.question_id]
                self._event(
                    state.stale_at,
                    EventKind.STALE,
                    f"answered {_format(state.answered_at, self.zone.key)}; fresh for {question.fresh_for_days} days",
                    question=key,
                )
        rechecked = [
            e.sequence_id for e in self._active() if e.recheck_at is not None and e.recheck_at <= now
        ]
        if rechecked:
            reason = "answers went stale"
            self._apply(rules.recheck(self._state(now), self.content, now, rechecked), now, reason)
        self._fade(now)
        for enrollment in sorted(
            (e for e in self._active() if e.next_due_at is not None and e.next_due_at <= now),
            key=lambda e: (e.next_due_at or now, e.id or 0),
        ):
            self._apply(rules.step_due(self._state(now), self.content, enrollment.sequence_id, now), now)
        if self.refresh_due_at is not None and self.refresh_due_at <= now:
            self._apply(rules.refresh(self._state(now), self.content, now), now)
        self._send(now)

    def _answer(self, at: datetime, question: Question, value: Value) -> None:
        self.states[question.key] = CurrentAnswer(
            question.id, value, at, at + timedelta(days=question.fresh_for_days)
        )
        values = [value] if isinstance(value, str) else value
        shown = ", ".join(
            f"{label} ({item})" for label, item in zip(_labels(question, value, "en"), values, strict=True)
        )
        self._event(at, EventKind.ANSWER, f"answers {shown}", question=question.key)
        # Answering a topic's question is a signal of interest in the topic; the answer's switch moves them.
        for topic in self.world.about(question.id):
            self._signal(at, topic)
        reason = "answer changed"
        self._apply(rules.switch(self._state(at), self.content, at, reason), at, reason)

    # Interest: signals of the behaviour what-ifs, and their decay

    def _act(self, acting: _Acting) -> None:
        """The clicks or reads of a behaviour what-if, each recorded (and moving sequences) on its own."""
        at, topic, behaviour = acting.at, acting.topic, acting.behaviour
        if not self.person.receives_marketing:
            detail = f"{behaviour.action}: not counted without follow-up consent"
            self._event(at, EventKind.SIGNAL, detail, topic=topic.key)
            return
        one = replace(behaviour, count=1).action
        for _ in range(behaviour.count):
            before, after = self._signal(at, topic)
            detail = f"{one}: interest {before:.2f} → {after:.2f}"
            self._event(at, EventKind.SIGNAL, detail, topic=topic.key)
            if crosses(topic.key, before, after, self.world.thresholds):
                reason = f"interest in {topic.key} changed"
                self._apply(rules.switch(self._state(at), self.content, at, reason), at, reason)

    def _signal(self, at: datetime, topic: _Topic) -> tuple[float, float]:
        """One signal of interest in `topic` at `at`: the score before and after it that day."""
        level = self.levels.get(topic.key)
        before = interest.score(level, at, topic.half_life_days)
        level = interest.add_signal(level, SIGNAL_WEIGHT, at, topic.half_life_days)
        if level is not None:
            self.levels[topic.key] = level
        return before, interest.score(level, at, topic.half_life_days)

    def _scored(self) -> Iterator[tuple[_Topic, float, float]]:
        """(topic, level, threshold) of every threshold an active audience names on a topic with a score."""
        for key, value in sorted(self.world.thresholds):
            topic = self.world.topics.get(key)
            if topic is not None and key in self.levels:
                yield topic, self.levels[key], value

    def _next_fading(self) -> datetime | None:
        """The first day (at 00:00 UTC) on which a score decays past a threshold it meets now."""
        midnight = datetime.combine(self.faded_until.astimezone(UTC).date(), datetime.min.time(), UTC)
        today = interest.day_number(self.faded_until)
        days = [
            interest.falls_below_on(level, value, topic.half_life_days)
            for topic, level, value in self._scored()
            if interest.meets(level, value, self.faded_until, topic.half_life_days)
        ]
        return midnight + timedelta(days=min(days) - today) if days else None

    def _fade(self, now: datetime) -> None:
        """The worker's look at fading interest (services.interests.recheck_fading_interest): on a new day,
        a score that decayed past a threshold since the last look moves sequences."""
        since, self.faded_until = self.faded_until, now
        if interest.day_number(since) >= interest.day_number(now):
            return
        faded = [
            (topic, value)
            for topic, level, value in self._scored()
            if interest.meets(level, value, since, topic.half_life_days)
            and not interest.meets(level, value, now, topic.half_life_days)
        ]
        for topic, value in faded:
            score = interest.score(self.levels[topic.key], now, topic.half_life_days)
            detail = f"interest in {topic.key} decays to {score:.2f}: below {value:g}"
            self._event(now, EventKind.FADES, detail, topic=topic.key)
        if faded:
            reason = "interest faded"
            self._apply(rules.switch(self._state(now), self.content, now, reason), now, reason)

    # Applying the rules' effects to the simulated person

    def _state(self, now: datetime) -> rules.SubscriberState:
        """The person as the rules see them at `now`, with their interest scores of that day."""
        return rules.SubscriberState(
            id=self.person.id,
            locale=self.person.locale,
            timezone=self.person.timezone,
            receives_marketing=self.person.receives_marketing,
            paused_until=self.person.marketing_paused_until,
            answers=self.states,
            enrollments=self.enrollments,
            waiting=tuple(delivery.waiting() for delivery in self._waiting()),
            last_planned=self.last_sent,
            last_refresh=self.last_refresh,
            refresh_due_at=self.refresh_due_at,
            interests={
                key: interest.score(level, now, self.world.topics[key].half_life_days)
                for key, level in self.levels.items()
                if key in self.world.topics
            },
        )

    def _apply(self, effects: list[rules.Effect], now: datetime, reason: str | None = None) -> None:
        """Carry out the effects and say what happened; `reason` is what made the person switch, if that
        was the rule applied."""
        for effect in effects:
            if isinstance(effect, rules.Move):
                self._move(effect, now, reason)
            elif isinstance(effect, rules.Queue):
                self._queue(effect, now)
            else:
                self.refresh_due_at = effect.at

    def _move(self, move: rules.Move, now: datetime, reason: str | None) -> None:
        after = move.after
        if after.id is None:
            known = self.enrollments.get(after.sequence_id)
            after = replace(after, id=known.id if known is not None else self._next_id())
        self.enrollments[after.sequence_id] = after
        sequence = self.world.by_id[after.sequence_id]
        change = move.change
        if change in (rules.Change.ENTER, rules.Change.RETURN, rules.Change.STAYS_AFTER_ALL):
            self.matching[after.sequence_id] = True
            detail = {
                rules.Change.ENTER: "enters",
                rules.Change.RETURN: f"comes back at step {after.steps_done + 1}",
                rules.Change.STAYS_AFTER_ALL: "stays after all",
            }[change]
            self._event(now, EventKind.ENTER, f"{detail}: {reason}", sequence=sequence)
        elif change is rules.Change.MATCHES:
            self.matching[after.sequence_id] = True
        elif change is rules.Change.STAYS:
            if self.matching.get(after.sequence_id, True):
                self._event(
                    now,
                    EventKind.STAYS,
                    f"no longer matches ({reason}) but stays: on_change stay",
                    sequence=sequence,
                )
            self.matching[after.sequence_id] = False
        elif change is rules.Change.LEAVING:
            self._event(
                now,
                EventKind.LEAVING,
                f"no longer matches ({reason}): leaves after the waiting step (on_change finish_step)",
                sequence=sequence,
            )
        elif change is rules.Change.LEAVE:
            cancelled = [d for d in self._waiting() if d.sequence_id == after.sequence_id]
            for delivery in cancelled:
                delivery.status = DeliveryStatus.CANCELLED
            why = f"{move.reason} ({reason})" if reason and move.reason == "answers changed" else move.reason
            detail = f"leaves: {why}"
            if cancelled:
                steps = ", ".join(str(d.step.position + 1) for d in cancelled if d.step is not None)
                detail += f"; the waiting step {steps} is not sent"
            self._event(now, EventKind.LEAVE, detail, sequence=sequence)
        elif change is rules.Change.COMPLETE:
            self._event(now, EventKind.COMPLETE, "completes: every step is scheduled", sequence=sequence)

    def _queue(self, queue: rules.Queue, now: datetime) -> None:
        email = queue.email
        if email.key in self.keys:
            return
        self.keys.add(email.key)
        why = self._why(queue.earliest, email.due_at) if email.kind is DeliveryKind.SEQUENCE else ""
        enrolled = self.enrollments.get(email.sequence_id or 0)
        self.deliveries.append(
            _Delivery(
                self._next_id(),
                email.kind,
                email.due_at,
                email.priority,
                sequence_id=email.sequence_id,
                enrollment_id=enrolled.id if enrolled is not None else None,
                step=self.world.steps.get(email.step_id or 0),
                question=self.world.questions.get(email.question_id or 0),
                key=email.key,
                why=why,
            )
        )
        if email.kind is DeliveryKind.REFRESH:
            self.last_refresh = now

    # The outbox

    def _send(self, now: datetime) -> None:
        due = sorted(
            (d for d in self._waiting() if d.due_at <= now), key=lambda d: (d.due_at, -d.priority, d.id)
        )
        last_sent, in_batch = self.last_sent, False
        for delivery in due:
            enrolled = self.enrollments.get(delivery.sequence_id or 0)
            if not self.person.receives_marketing or (
                delivery.kind is DeliveryKind.SEQUENCE
                and (enrolled is None or enrolled.state is EnrollmentState.EXITED or delivery.step is None)
            ):
                delivery.status = DeliveryStatus.CANCELLED
                continue
            wait = hold_until(
                now,
                last_sent=last_sent,
                also_sending=in_batch,
                paused_until=self.person.marketing_paused_until,
                timezone=self.person.timezone,
                pacing=self.content.pacing,
            )
            if wait is not None:
                delivery.due_at = wait
                continue
            in_batch = True
            delivery.status = DeliveryStatus.SENT
            self.last_sent = now
            self._sent(delivery, now)
            left = rules.step_sent(enrolled, now) if enrolled is not None else None
            if left is not None:
                self._apply([left], now)

    def _sent(self, delivery: _Delivery, now: datetime) -> None:
        if delivery.kind is DeliveryKind.REFRESH:
            question = delivery.question
            text = localized(question.text, self.person.locale) if question is not None else ""
            self._event(
                now,
                EventKind.REFRESH,
                f"asks again: {text}",
                subject=translate(self.person.locale, "email.refresh.subject"),
                question=question.key if question is not None else None,
            )
            return
        step = delivery.step
        if step is None or delivery.sequence_id is None:
            return  # cancelled before sending (_send); never reached
        self._event(
            now,
            EventKind.EMAIL,
            delivery.why if delivery.id >= _SIMULATED_IDS else "already waiting in the outbox",
            sequence=self.world.by_id[delivery.sequence_id],
            step=step,
            subject=self._subject(step),
        )

    def _subject(self, step: SequenceStep) -> str:
        """The subject as this person would see it, with the answers they have when it is sent."""
        try:
            return render_step(
                step.subject,
                step.body,
                {
                    "first_name": self.person.first_name,
                    "answers": {key: state.value for key, state in self.states.items()},
                    "links": self.links,
                    **site(),
                },
            ).subject
        except Exception as exc:  # an editor's template error shows in the preview rather than breaking it
            return f"{step.subject} (cannot be rendered: {exc})"

    # Helpers

    def _why(self, earliest: datetime, due_at: datetime) -> str:
        """In words, what moved an email from the moment its step fell due to the moment it goes out."""
        if due_at <= earliest:
            return "on time"
        reasons = []
        last = self._state(earliest).last_marketing
        capped = max(earliest, last + self.content.pacing.cap_interval) if last is not None else earliest
        if capped > earliest:
            reasons.append("the frequency cap")
        paused = self.person.marketing_paused_until
        if paused is not None and paused > capped:
            reasons.append("the pause")
            capped = paused
        if within_sending_hours(capped, self.person.timezone, self.content.pacing) > capped:
            reasons.append("sending hours")
        return f"due {_format(earliest, self.zone.key)}; waits for {' and '.join(reasons) or 'its turn'}"

    def _active(self) -> list[rules.Enrolled]:
        return [e for e in self.enrollments.values() if e.state is EnrollmentState.ACTIVE]

    def _waiting(self) -> Iterator[_Delivery]:
        return (d for d in self.deliveries if d.status is DeliveryStatus.PENDING)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _event(
        self,
        at: datetime,
        kind: EventKind,
        detail: str,
        *,
        sequence: Sequence | None = None,
        step: SequenceStep | None = None,
        subject: str | None = None,
        question: str | None = None,
        topic: str | None = None,
    ) -> None:
        self.events.append(
            JourneyEvent(
                at=at,
                local=at.astimezone(self.zone),
                kind=kind,
                detail=detail,
                sequence=sequence.name if sequence is not None else None,
                sequence_slug=sequence.slug if sequence is not None else None,
                step=sequence.steps.index(step) + 1 if sequence is not None and step is not None else None,
                step_key=step.key if step is not None else None,
                subject=subject,
                question=question,
                topic=topic,
            )
        )


def _labels(question: Question, value: Any, locale: str) -> list[str]:
    chosen = [value] if isinstance(value, str) else list(value)
    labels = {option.value: localized(option.label, locale) for option in question.options}
    return [labels.get(item, item) for item in chosen]


def journey_topics() -> list[Topic]:
    """The topics a behaviour what-if can name (not the retired ones), in key order."""
    return [topic for topic in db.session.scalars(select(Topic).order_by(Topic.key)) if topic.urls]


def journey_questions() -> list[Question]:
    """The questions a preview can answer, with their options, in key order."""
    return list(
        db.session.scalars(select(Question).order_by(Question.key).options(selectinload(Question.options)))
    )
