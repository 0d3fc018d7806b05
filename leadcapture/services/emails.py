"""What each email kind says: one context function per kind, rendered by leadcapture.mail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from functools import cache
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from leadcapture import clock, scanners, urlrules
from leadcapture.config import TEMPLATES_DIR
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.mail.render import Envelope, MailRenderer
from leadcapture.mail.steps import LinkTagger, render_step
from leadcapture.models import (
    Delivery,
    DeliveryKind,
    Question,
    QuestionKind,
    Report,
    Sequence,
    SequenceStep,
    Submission,
    Subscriber,
    localized,
)
from leadcapture.services.answers import (
    CurrentAnswer,
    answer_states,
    answer_states_of,
    answer_values,
    propose_change,
)
from leadcapture.services.widgets import embedding_origins, mail_reference
from leadcapture.tokens import Purpose, make_token

Context = dict[str, Any]
# Every origin some widget may be embedded on, asked for only when a link needs it.
Origins = Callable[[], frozenset[str]]
DOWNLOAD_DAYS = (Purpose.DOWNLOAD.max_age or timedelta(0)).days


@cache
def renderer() -> MailRenderer:
    return MailRenderer(TEMPLATES_DIR)


def link(path: str) -> str:
    """An absolute link for emails, on the public base URL."""
    return current_settings().base_url + path


def confirm_link(subscriber: Subscriber, submission: Submission) -> str:
    return link("/confirm/" + make_token(Purpose.CONFIRM, {"s": subscriber.id, "sub": submission.id}))


def download_link(subscriber: Subscriber, report: Report, submission: Submission) -> str:
    token = make_token(Purpose.DOWNLOAD, {"s": subscriber.id, "r": report.id, "sub": submission.id})
    return link("/download/" + token)


def unsubscribe_link(subscriber: Subscriber) -> str:
    return link("/unsubscribe/" + make_token(Purpose.UNSUBSCRIBE, {"s": subscriber.id}))


def preferences_link(subscriber: Subscriber) -> str:
    return link("/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber.id}))


def answer_link(subscriber: Subscriber, question: Question, value: str | list[str]) -> str:
    """A link that records exactly this answer, for this subscriber and question, once its page is confirmed."""
    return link("/answer/" + make_token(Purpose.ANSWER, {"s": subscriber.id, "q": question.id, "v": value}))


def change_link(subscriber: Subscriber, delivery: Delivery) -> str:
    """The preference page showing what this email proposes to change, with the button that applies it."""
    token = make_token(Purpose.CHANGE, {"s": subscriber.id, "d": delivery.id})
    return preferences_link(subscriber) + "?change=" + token


def proposed_change(
    delivery: Delivery, subscriber: Subscriber, submission: Submission, *, applied_by_confirming: bool = False
) -> Context | None:
    """For an email about a submission that gave other answers than the subscriber's own without proving the
    address (see capture_submission): what would change, and the link that lets the owner apply it (none
    in a confirmation email, whose confirm link applies it)."""
    proposal = delivery.payload.get("proposed")
    if not isinstance(proposal, dict):
        return None
    change = propose_change(subscriber, proposal, submission)
    if not change.changes:
        return None
    return {
        "changes": change.changes,
        "url": None if applied_by_confirming else change_link(subscriber, delivery),
    }


def reader_links(subscriber: Subscriber, origins_of: Origins = embedding_origins) -> LinkTagger:
    """Links to pages that embed our widgets carry the reader's signed reference, so the widget there skips
    what they have answered; links anywhere else stay as written."""
    origins = origins_of()
    reference = mail_reference(subscriber.id)

    def tag(url: str, topic: str | None = None) -> str:
        if urlrules.origin(url) not in origins:
            return url
        parts = urlsplit(url)
        query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "lc"]
        return urlunsplit(
            parts._replace(path=parts.path or "/", query=urlencode([*query, ("lc", reference)]))
        )

    return tag


class LinkTracker:
    """The links of one marketing email, sent through `/l/<token>` so a click on one is recorded: the token
    names the delivery and the link's place, and `links` (stored with the delivery when it is sent) holds
    where each leads and the topic it names. Links to our own pages (unsubscribe, preferences, answers)
    stay direct: they act on their own, and an unsubscribe link must work as it reads."""

    def __init__(self, delivery_id: int) -> None:
        self.delivery_id = delivery_id
        self.links: list[list[str | None]] = []
        self._own = urlrules.origin(current_settings().base_url)

    def __call__(self, url: str, topic: str | None = None) -> str:
        if urlrules.origin(url) == self._own or not url.lower().startswith(("http://", "https://")):
            return url
        self.links.append([url, topic])
        return self._link(len(self.links) - 1)

    def trap(self) -> str:
        """The link no person sees: hidden from view, screen readers and the keyboard, fetched only by
        software that follows every link of an email."""
        return self._link(scanners.TRAP_POSITION)

    def _link(self, position: int) -> str:
        return link("/l/" + make_token(Purpose.CLICK, {"d": self.delivery_id, "n": position}))


def tracker_for(delivery: Delivery) -> LinkTracker | None:
    """A tracker for the links of this delivery's message, when it is marketing and clicks are tracked."""
    if delivery.kind.is_marketing and current_settings().track_clicks:
        return LinkTracker(delivery.id)
    return None


def _chained(first: LinkTagger, then: LinkTracker | None) -> LinkTagger:
    if then is None:
        return first

    def tag(url: str, topic: str | None = None) -> str:
        return then(first(url, topic), topic)

    return tag


def answer_choices(subscriber: Subscriber, question: Question, current: Any) -> list[dict[str, Any]]:
    """One link per possible answer (for a multi question: keep the current choice), current one marked."""
    locale = subscriber.locale
    chosen = answer_values(current)
    if question.kind is QuestionKind.MULTI and chosen:
        labels = [
            localized(option.label, locale) for option in question.active_options if option.value in chosen
        ]
        return [
            {
                "label": ", ".join(labels),
                "url": answer_link(subscriber, question, sorted(chosen)),
                "current": True,
            }
        ]
    # A multi question asked for the first time: one link per option (more on the preference page).
    return [
        {
            "label": localized(option.label, locale),
            "url": answer_link(
                subscriber, question, [option.value] if question.kind is QuestionKind.MULTI else option.value
            ),
            "current": option.value in chosen,
        }
        for option in question.active_options
    ]


def site() -> Context:
    settings = current_settings()
    host = urlsplit(settings.site_url).hostname or settings.mail_domain
    return {"site_name": settings.mail_from.display_name or host, "site_url": settings.site_url}


def site_link(
    subscriber: Subscriber, origins_of: Origins = embedding_origins, tracker: LinkTracker | None = None
) -> str:
    """The footer's link to the publisher's site, with the reader's reference when a widget may be embedded there.

    The app's own origin serves no article, so where the site is the app (the default) no message asks the
    database which origins embed widgets.
    """
    settings = current_settings()
    if urlrules.origin(settings.site_url) == urlrules.origin(settings.base_url):
        return settings.site_url
    return _chained(reader_links(subscriber, origins_of), tracker)(settings.site_url, None)


@dataclass(frozen=True)
class Composed:
    """What a kind's context function decides: the template context and, for marketing, the list."""

    context: Context
    list_id: str | None = None
    unsubscribe_url: str | None = None  # when the context function made it already


def _confirm(
    delivery: Delivery, subscriber: Subscriber, loaded: Preloaded, tracker: LinkTracker | None
) -> Composed:
    submission = db.session.get_one(Submission, delivery.payload["submission_id"])
    return Composed(
        {
            "first_name": subscriber.first_name,
            "report_title": localized(submission.report.title, subscriber.locale),
            "confirm_url": confirm_link(subscriber, submission),
            "change": proposed_change(delivery, subscriber, submission, applied_by_confirming=True),
        }
    )


def _report(
    delivery: Delivery, subscriber: Subscriber, loaded: Preloaded, tracker: LinkTracker | None
) -> Composed:
    submission = db.session.get_one(Submission, delivery.payload["submission_id"])
    report = submission.report
    return Composed(
        {
            "first_name": subscriber.first_name,
            "report_title": localized(report.title, subscriber.locale),
            "report_description": localized(report.description, subscriber.locale)
            if report.description
            else "",
            "download_url": download_link(subscriber, report, submission),
            "download_days": DOWNLOAD_DAYS,
            "change": proposed_change(delivery, subscriber, submission),
        }
    )


def _sequence(
    delivery: Delivery, subscriber: Subscriber, loaded: Preloaded, tracker: LinkTracker | None
) -> Composed:
    step = db.session.get(SequenceStep, delivery.payload["step_id"])
    if step is None:
        raise ValueError("the step was removed from its sequence")
    answers = {key: state.value for key, state in loaded.answers_of(subscriber.id).items()}
    return compose_step(step.sequence, step.subject, step.body, subscriber, answers, loaded.origins, tracker)


def compose_step(
    sequence: Sequence,
    subject: str,
    body: str,
    subscriber: Subscriber,
    answers: dict[str, Any],
    origins_of: Origins = embedding_origins,
    tracker: LinkTracker | None = None,
) -> Composed:
    """A sequence step for one subscriber with these answers: what sending and the admin's preview render."""
    links = {"unsubscribe": unsubscribe_link(subscriber), "preferences": preferences_link(subscriber)}
    rendered = render_step(
        subject,
        body,
        {"first_name": subscriber.first_name, "answers": answers, "links": links, **site()},
        tag_link=_chained(reader_links(subscriber, origins_of), tracker),
        tracked=tracker is not None,
    )
    return Composed(
        {
            "step_subject": rendered.subject,
            "step_html": rendered.html,
            "step_text": rendered.text,
            "preferences_url": links["preferences"],
        },
        list_id=f"{sequence.name} <{sequence.slug}.{current_settings().mail_domain}>",
        unsubscribe_url=links["unsubscribe"],
    )


def _refresh(
    delivery: Delivery, subscriber: Subscriber, loaded: Preloaded, tracker: LinkTracker | None
) -> Composed:
    question = db.session.get(Question, delivery.payload["question_id"])
    if question is None:
        raise ValueError("the question no longer exists")
    state = loaded.answers_of(subscriber.id).get(question.key)
    return Composed(
        {
            "first_name": subscriber.first_name,
            "question_text": localized(question.text, subscriber.locale),
            "answered_on": state.answered_at.date().isoformat() if state else "",
            "choices": answer_choices(subscriber, question, state.value if state else None),
            "multi": question.kind is QuestionKind.MULTI,
            "preferences_url": preferences_link(subscriber),
        },
        list_id=f"{site()['site_name']} <refresh.{current_settings().mail_domain}>",
    )


COMPOSERS: dict[DeliveryKind, Callable[[Delivery, Subscriber, Preloaded, LinkTracker | None], Composed]] = {
    DeliveryKind.CONFIRM: _confirm,
    DeliveryKind.REPORT: _report,
    DeliveryKind.SEQUENCE: _sequence,
    DeliveryKind.REFRESH: _refresh,
}


# The kinds whose context functions read the subscriber's current answers.
_NEEDS_ANSWERS: Final = frozenset({DeliveryKind.SEQUENCE, DeliveryKind.REFRESH})


@dataclass
class Preloaded:
    """What the context functions read, loaded once for a batch: rows to keep alive in the session, the
    current answers by subscriber id, and the widgets' origins once asked for. Empty, it reads as needed."""

    rows: list[Any] = field(default_factory=list)
    answers: dict[int, dict[str, CurrentAnswer]] = field(default_factory=dict)
    _origins: frozenset[str] | None = None

    def answers_of(self, subscriber_id: int) -> dict[str, CurrentAnswer]:
        found = self.answers.get(subscriber_id)
        return found if found is not None else answer_states(subscriber_id)

    def origins(self) -> frozenset[str]:
        if self._origins is None:
            self._origins = embedding_origins()
        return self._origins


def preload(deliveries: list[Delivery]) -> Preloaded:
    """Load what build_message reads for a whole batch, a query per table instead of several per message.

    The context functions then find their submissions, reports, steps and questions in the session. It
    holds them only while someone else does: keep what this returns for as long as the batch renders, and
    pass it to build_message.
    """
    wanted: dict[str, set[int]] = {"submission_id": set(), "step_id": set(), "question_id": set()}
    for delivery in deliveries:
        for key, ids in wanted.items():
            value = delivery.payload.get(key)
            if isinstance(value, int):
                ids.add(value)
    loaded: list[Any] = []
    if wanted["submission_id"]:
        loaded += db.session.scalars(
            select(Submission)
            .where(Submission.id.in_(wanted["submission_id"]))
            .options(joinedload(Submission.report))
        )
    if wanted["step_id"]:
        loaded += db.session.scalars(
            select(SequenceStep)
            .where(SequenceStep.id.in_(wanted["step_id"]))
            .options(joinedload(SequenceStep.sequence))
        )
    if wanted["question_id"]:
        loaded += db.session.scalars(
            select(Question)
            .where(Question.id.in_(wanted["question_id"]))
            .options(selectinload(Question.options))
        )
    answered = answer_states_of(
        delivery.subscriber_id
        for delivery in deliveries
        if delivery.kind in _NEEDS_ANSWERS and delivery.subscriber_id is not None
    )
    return Preloaded(loaded, answered)


def build_message(
    delivery: Delivery, preloaded: Preloaded | None = None, tracker: LinkTracker | None = None
) -> EmailMessage:
    """Render a delivery into the message to send, with its stored Message-ID; with a `tracker`, its links
    go through the click redirect and the tracker holds where they lead."""
    subscriber = delivery.subscriber
    if subscriber is None:
        raise ValueError(f"delivery {delivery.id} has no subscriber")
    loaded = preloaded if preloaded is not None else Preloaded()
    composed = COMPOSERS[delivery.kind](delivery, subscriber, loaded, tracker)
    return assemble_message(
        delivery.kind, subscriber, delivery.to_address, delivery.message_id, composed, loaded.origins, tracker
    )


def assemble_message(
    kind: DeliveryKind,
    subscriber: Subscriber,
    to_address: str,
    message_id: str,
    composed: Composed,
    origins_of: Origins = embedding_origins,
    tracker: LinkTracker | None = None,
) -> EmailMessage:
    """The message of one kind from what its context function composed: headers, text and HTML part."""
    envelope = Envelope(
        kind=kind.value,
        to=to_address,
        sender=current_settings().mail_from,
        message_id=message_id,
        date=clock.now(),
        list_id=composed.list_id,
        unsubscribe_url=(composed.unsubscribe_url or unsubscribe_link(subscriber))
        if kind.is_marketing
        else None,
    )
    context = {"locale": subscriber.locale, **site(), **composed.context}
    context["site_link"] = site_link(subscriber, origins_of, tracker)
    context["trap_url"] = tracker.trap() if tracker is not None else None
    return renderer().render(envelope, kind.value, context)
