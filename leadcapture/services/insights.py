"""What the dashboard counts: widget impressions and report downloads as they happen, and the funnel and
answer distributions it shows editors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Date,
    Insert,
    Integer,
    Select,
    Table,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.selectable import TableValuedAlias

from leadcapture import clock
from leadcapture.database import commit_without_waiting
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.i18n import translate
from leadcapture.models import (
    Answer,
    Click,
    Delivery,
    DeliveryKind,
    Impression,
    InterestEvent,
    Question,
    QuestionKind,
    Report,
    SignalSource,
    Submission,
    Subscriber,
    SubscriberStatus,
    Topic,
    Widget,
    WidgetImpressions,
    localized,
)

log = logging.getLogger(__name__)


_TALLIES: Final = cast(Table, WidgetImpressions.__table__)
_APPENDED: Final = cast(Table, Impression.__table__)
# Rows folded per statement: a few hundred milliseconds of impressions at the widest cap, one short lock.
FOLD_BATCH: Final = 10_000


@cache
def _append_impression(dialect: str) -> Insert:
    """INSERT one impression row for (widget_id, day)."""
    if dialect != "postgresql":
        return insert(_APPENDED).values(widget_id=bindparam("widget_id"), day=bindparam("day"))
    # A count: its commit need not wait for the disk. In the SELECT, so still one statement, one round trip.
    asynchronous = select(commit_without_waiting()).subquery("asynchronous_commit")
    return insert(_APPENDED).from_select(
        ["widget_id", "day"],
        select(bindparam("widget_id", type_=Integer()), bindparam("day", type_=Date())).select_from(
            asynchronous
        ),
    )


def record_impression(widget_id: int) -> None:
    """Count one showing of a widget on today's (UTC) tally: one appended row, so pages counting at once never
    wait on each other. Flush, never commit."""
    connection = db.session.connection()
    params = {"widget_id": widget_id, "day": clock.now().date()}
    connection.execute(_append_impression(connection.dialect.name), params)


def _add_to_tallies(
    dialect: str, counted: Select[tuple[int, date, int]]
) -> postgresql.Insert | sqlite.Insert:
    upsert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_TALLIES)
    upsert = upsert.from_select(["widget_id", "day", "count"], counted)
    return upsert.on_conflict_do_update(
        index_elements=[_TALLIES.c.widget_id, _TALLIES.c.day],
        set_={"count": _TALLIES.c.count + upsert.excluded.count},
    )


def fold_impressions(limit: int = FOLD_BATCH) -> int:
    """Move up to `limit` of the oldest appended impressions into the daily tallies, in one grouped upsert,
    dropping those of widgets deleted since; return how many rows were folded. Flush, never commit."""
    oldest = select(_APPENDED.c.id).order_by(_APPENDED.c.id).limit(limit)
    if db.session.get_bind().dialect.name == "postgresql":
        # One statement, so one snapshot: the rows deleted are exactly the rows counted, even while rows with
        # lower ids than the last one seen are still being committed.
        gone = (
            delete(_APPENDED)
            .where(_APPENDED.c.id.in_(oldest))
            .returning(_APPENDED.c.widget_id, _APPENDED.c.day)
            .cte("gone")
        )
        counted = (
            select(gone.c.widget_id, gone.c.day, func.count().label("count"))
            .group_by(gone.c.widget_id, gone.c.day)
            .cte("counted")
        )
        upserted = _add_to_tallies(
            "postgresql",
            select(counted.c.widget_id, counted.c.day, counted.c["count"]).join(
                Widget, Widget.id == counted.c.widget_id
            ),
        ).cte("upserted")
        folded = db.session.scalar(
            select(func.coalesce(func.sum(counted.c["count"]), 0)).add_cte(gone, upserted)
        )
        return int(folded or 0)
    # SQLite: the upsert takes the write lock, so no row is appended between it and the delete.
    batch = _APPENDED.c.id.in_(oldest)
    db.session.execute(
        _add_to_tallies(
            "sqlite",
            select(_APPENDED.c.widget_id, _APPENDED.c.day, func.count())
            .join(Widget, Widget.id == _APPENDED.c.widget_id)
            .where(batch)
            .group_by(_APPENDED.c.widget_id, _APPENDED.c.day),
        )
    )
    return cast(CursorResult[Any], db.session.execute(delete(_APPENDED).where(batch))).rowcount


def count_impressions(first_day: date, last_day: date) -> dict[tuple[int, date], int]:
    """Impressions per (widget id, UTC day) from `first_day` to `last_day`, both included: the daily tallies
    plus the rows not folded into them yet."""
    tallied = select(_TALLIES.c.widget_id, _TALLIES.c.day, _TALLIES.c["count"]).where(
        _TALLIES.c.day.between(first_day, last_day)
    )
    appended = (
        select(_APPENDED.c.widget_id, _APPENDED.c.day, func.count())
        .where(_APPENDED.c.day.between(first_day, last_day))
        .group_by(_APPENDED.c.widget_id, _APPENDED.c.day)
    )
    both = union_all(tallied, appended).subquery("both_counts")
    return {
        (widget_id, day): int(count)
        for widget_id, day, count in db.session.execute(
            select(both.c.widget_id, both.c.day, func.sum(both.c["count"])).group_by(
                both.c.widget_id, both.c.day
            )
        )
    }


# Mail security gateways (Microsoft Safe Links, Mimecast, Proofpoint...) open every link of a message as it
# arrives, and arrive they do within seconds of sending; a person first has to notice the email and open it.
SCANNER_WINDOW: Final = timedelta(seconds=10)
# Lower-case parts of the User-Agent of robots that say so: search and preview bots, HTTP libraries and
# scripted browsers, and the gateways that name themselves. Browsers send none of these.
SCANNER_AGENTS: Final = (
    "bot/",
    "bot;",
    "crawler",
    "spider",
    "preview",
    "headlesschrome",
    "python-",
    "curl/",
    "wget/",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
)


def looks_human(user_agent: str, at: datetime, sent_at: datetime | None) -> bool:
    """Whether the press of a download page's button looks like a person's: from a User-Agent that is not a
    known robot (and there is one: every browser sends it), more than SCANNER_WINDOW after the email was sent
    (`sent_at`; None when that is unknown). Some gateways press the buttons of the pages they open too."""
    agent = user_agent.lower()
    if not agent or any(part in agent for part in SCANNER_AGENTS):
        return False
    # A sent_at after `at` (one host's clock ahead of another's) is as early as a fetch gets.
    return sent_at is None or at - sent_at > SCANNER_WINDOW


def record_download(submission: Submission, *, user_agent: str, at: datetime) -> None:
    """Note when a person first downloaded a submission's report (see `looks_human`); later downloads, and
    ones that look like a robot's, leave it as it is. Flush, never commit."""
    if submission.downloaded_at is not None:
        return
    sent_at = db.session.scalar(
        select(func.max(Delivery.sent_at)).where(
            Delivery.subscriber_id == submission.subscriber_id, Delivery.kind == DeliveryKind.REPORT
        )
    )
    if not looks_human(user_agent, at, sent_at):
        return
    # Conditional, so of two presses at once only the first sets it.
    first = cast(
        CursorResult[Any],
        db.session.execute(
            update(Submission)
            .where(Submission.id == submission.id, Submission.downloaded_at.is_(None))
            .values(downloaded_at=at)
        ),
    ).rowcount
    if first:
        log.info("report of submission %s downloaded for the first time", submission.id)


PERIODS: Final = (7, 30, 90)
DEFAULT_PERIOD: Final = 30
FUNNEL_STEPS: Final = ("Impressions", "Submissions", "Confirmations", "Downloads")


@dataclass(frozen=True)
class FunnelStep:
    name: str
    count: int
    rate: float | None  # the share of the step before (None for the first, or when the one before is 0)


@dataclass(frozen=True)
class WidgetFunnel:
    """One widget's impressions, and what the submissions made through it in the period came to."""

    widget_id: int
    slug: str
    report_title: str
    steps: tuple[FunnelStep, ...]

    @property
    def peak(self) -> int:
        return max(step.count for step in self.steps)

    @property
    def overall(self) -> float | None:
        """Downloads per impression."""
        first, last = self.steps[0].count, self.steps[-1].count
        return last / first if first else None


@dataclass(frozen=True)
class OptionShare:
    value: str
    label: str
    count: int
    share: float | None  # of the subscribers who answered the question (None when nobody did)
    retired: bool  # no longer offered (or no longer defined): only older answers hold it


@dataclass(frozen=True)
class AnswerDistribution:
    """The current answers of confirmed subscribers to one question."""

    question_id: int
    key: str
    text: str
    kind: QuestionKind
    respondents: int
    options: tuple[OptionShare, ...]

    @property
    def peak(self) -> int:
        return max((option.count for option in self.options), default=0)


@dataclass(frozen=True)
class TopicActivity:
    """What people did in one topic over a period: clicks in our emails judged a person's, articles read,
    and how many people did either; the clicks judged automated apart, by the rule that judged them."""

    key: str | None  # None for links that fall under no topic
    name: str
    clicks: int
    reads: int
    people: int
    automated: tuple[tuple[str, int], ...]

    @property
    def automated_total(self) -> int:
        return sum(count for _rule, count in self.automated)


@dataclass(frozen=True)
class Insights:
    period_days: int
    first_day: date  # UTC days, both included
    last_day: date
    funnels: tuple[WidgetFunnel, ...]
    distributions: tuple[AnswerDistribution, ...]
    topics: tuple[TopicActivity, ...] = ()  # every topic by key, then links in no topic if any were clicked

    @property
    def topic_peak(self) -> int:
        return max((max(topic.clicks, topic.reads) for topic in self.topics), default=0)


def gather_insights(period_days: int = DEFAULT_PERIOD, *, locale: str = "en") -> Insights:
    """Every widget's funnel and every topic's clicks and reads over the last `period_days` UTC days (today
    included), and the current answers of confirmed subscribers to every question, with texts and labels in
    `locale`."""
    if period_days not in PERIODS:
        raise InvalidInput({"period": f"choose one of {', '.join(map(str, PERIODS))} days"})
    last_day = clock.now().date()
    first_day = last_day - timedelta(days=period_days - 1)
    insights = Insights(
        period_days,
        first_day,
        last_day,
        _funnels(first_day, last_day, locale),
        _distributions(locale),
        _topic_activity(first_day, last_day, locale),
    )
    log.info("dashboard gathered for the last %s days", period_days)
    return insights


def _bounds(first_day: date, last_day: date) -> tuple[datetime, datetime]:
    """The first moment of `first_day` and the first moment after `last_day`, in UTC."""
    start = datetime.combine(first_day, time.min, UTC)
    return start, datetime.combine(last_day + timedelta(days=1), time.min, UTC)


def _funnels(first_day: date, last_day: date, locale: str) -> tuple[WidgetFunnel, ...]:
    # A cohort: the submissions made in the period, and how many of those were confirmed and downloaded
    # (whenever that happened), so every step is a part of the one before.
    start, end = _bounds(first_day, last_day)
    submissions = {
        widget_id: (submitted, confirmed, downloaded)
        for widget_id, submitted, confirmed, downloaded in db.session.execute(
            select(
                Submission.widget_id,
                func.count(),
                func.count(Submission.confirmed_at),
                func.count(Submission.downloaded_at),
            )
            .where(
                Submission.widget_id.is_not(None),
                Submission.created_at >= start,
                Submission.created_at < end,
            )
            .group_by(Submission.widget_id)
        )
    }
    impressions: dict[int, int] = {}
    for (widget_id, _day), count in count_impressions(first_day, last_day).items():
        impressions[widget_id] = impressions.get(widget_id, 0) + count
    widgets = db.session.execute(
        select(Widget.id, Widget.slug, Report.title).join(Widget.report).order_by(Widget.slug)
    )
    return tuple(
        WidgetFunnel(
            widget_id,
            slug,
            localized(title, locale),
            _steps((impressions.get(widget_id, 0), *submissions.get(widget_id, (0, 0, 0)))),
        )
        for widget_id, slug, title in widgets
    )


def _topic_activity(first_day: date, last_day: date, locale: str) -> tuple[TopicActivity, ...]:
    # Three grouped statements, each over an index on its moment: clicks per topic and verdict, reads per
    # topic, and the distinct people behind the clicks judged a person's and the reads.
    start, end = _bounds(first_day, last_day)
    in_period = (Click.clicked_at >= start, Click.clicked_at < end)
    read_in_period = (
        InterestEvent.source == SignalSource.READ,
        InterestEvent.weight > 0,
        InterestEvent.occurred_at >= start,
        InterestEvent.occurred_at < end,
    )
    clicks: dict[int | None, int] = {}
    automated: dict[int | None, list[tuple[str, int]]] = {}
    for topic_id, rule, count in db.session.execute(
        select(Click.topic_id, Click.automated, func.count())
        .where(*in_period)
        .group_by(Click.topic_id, Click.automated)
        .order_by(Click.topic_id, Click.automated)
    ):
        if rule is None:
            clicks[topic_id] = count
        else:
            automated.setdefault(topic_id, []).append((rule, count))
    reads: dict[int | None, int] = dict(
        db.session.execute(
            select(InterestEvent.topic_id, func.count())
            .where(*read_in_period)
            .group_by(InterestEvent.topic_id)
        ).all()
    )
    actors = union_all(
        select(Click.topic_id.label("topic_id"), Click.subscriber_id.label("subscriber_id")).where(
            *in_period, Click.automated.is_(None)
        ),
        select(InterestEvent.topic_id, InterestEvent.subscriber_id).where(*read_in_period),
    ).subquery("actors")
    people: dict[int | None, int] = dict(
        db.session.execute(
            select(actors.c.topic_id, func.count(actors.c.subscriber_id.distinct()))
            .group_by(actors.c.topic_id)
        ).all()
    )

    def activity(topic_id: int | None, key: str | None, name: str) -> TopicActivity:
        return TopicActivity(
            key,
            name,
            clicks.get(topic_id, 0),
            reads.get(topic_id, 0),
            people.get(topic_id, 0),
            tuple(automated.get(topic_id, ())),
        )

    topics = [
        activity(topic_id, key, localized(name, locale))
        for topic_id, key, name in db.session.execute(
            select(Topic.id, Topic.key, Topic.name).order_by(Topic.key)
        )
    ]
    if clicks.get(None) or automated.get(None):
        topics.append(activity(None, None, "Links in no topic"))
    return tuple(topics)


def _steps(counts: tuple[int, ...]) -> tuple[FunnelStep, ...]:
    return tuple(
        FunnelStep(name, count, count / counts[index - 1] if index and counts[index - 1] else None)
        for index, (name, count) in enumerate(zip(FUNNEL_STEPS, counts, strict=True))
    )


def _distributions(locale: str) -> tuple[AnswerDistribution, ...]:
    # The current answer of each confirmed subscriber to each question is the newest row, found on the
    # (subscriber_id, question_id, id) index without reading the answers themselves. One statement counts,
    # per question, the people who answered and, per value, the people whose answer holds it.
    latest = (
        select(func.max(Answer.id).label("id"))
        .join(Subscriber, Subscriber.id == Answer.subscriber_id)
        .where(Subscriber.status == SubscriberStatus.CONFIRMED)
        .group_by(Answer.subscriber_id, Answer.question_id)
        .subquery("latest")
    )
    current = (
        select(Answer.question_id, Answer.value).join(latest, latest.c.id == Answer.id).cte("current_answer")
    )
    values = _values_of(current.c.value)
    counted = union_all(
        select(current.c.question_id, null().label("value"), func.count().label("people")).group_by(
            current.c.question_id
        ),
        select(current.c.question_id, values.c.value, func.count())
        .select_from(current)
        .join(values, true())
        .group_by(current.c.question_id, values.c.value),
    )
    respondents: dict[int, int] = {}
    counts: dict[int, dict[str, int]] = {}
    for question_id, value, people in db.session.execute(counted):
        if value is None:
            respondents[question_id] = people
        else:
            counts.setdefault(question_id, {})[str(value)] = people
    questions = db.session.scalars(
        select(Question).options(selectinload(Question.options)).order_by(Question.key)
    )
    return tuple(
        _distribution(question, respondents.get(question.id, 0), counts.get(question.id, {}), locale)
        for question in questions
    )


def _values_of(answer: ColumnElement[Any]) -> TableValuedAlias:
    """An answer's values as rows: one for a yes_no or choice answer (a JSON string), one per value of a
    multi answer (a JSON list)."""
    if db.engine.dialect.name == "postgresql":
        as_list = case(
            (func.jsonb_typeof(answer) == "array", answer),
            else_=func.jsonb_build_array(answer),
        )
        return func.jsonb_array_elements_text(as_list).table_valued("value").alias("answer_value")
    return func.json_each(answer).table_valued("value").alias("answer_value")


def _distribution(
    question: Question, respondents: int, counts: dict[str, int], locale: str
) -> AnswerDistribution:
    options = [
        OptionShare(
            option.value,
            _label(question.kind, option.value, option.label, locale),
            count := counts.pop(option.value, 0),
            count / respondents if respondents else None,
            option.retired,
        )
        for option in question.options
    ]
    # Retired options nobody holds any more say nothing; values no option defines still count.
    shown = [option for option in options if not option.retired or option.count]
    shown += [
        OptionShare(value, value, count, count / respondents if respondents else None, True)
        for value, count in sorted(counts.items())
    ]
    return AnswerDistribution(
        question.id, question.key, localized(question.text, locale), question.kind, respondents, tuple(shown)
    )


def _label(kind: QuestionKind, value: str, label: dict[str, str], locale: str) -> str:
    text = localized(label, locale) if label else ""
    if text:
        return text
    return translate(locale, f"widget.{value}") if kind is QuestionKind.YES_NO else value
