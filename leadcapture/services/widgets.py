"""Widgets as the loader sees them: a cached read-only view, origin rules, the definition and its form token.

Every page view and every submission needs a widget's questions, options and texts, which change only when
an editor changes content; a short-lived per-process snapshot keeps them off the database's hot path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from leadcapture import clock, interest
from leadcapture.config import PACKAGE_DIR, Config
from leadcapture.config import current as current_settings
from leadcapture.errors import NotFound, OriginNotAllowed, TokenExpired, TokenInvalid
from leadcapture.extensions import db
from leadcapture.i18n import translate, translations
from leadcapture.models import (
    InterestScore,
    Question,
    QuestionKind,
    Subscriber,
    SubscriberStatus,
    Topic,
    Widget,
    WidgetQuestion,
    localized,
)
from leadcapture.services import rules
from leadcapture.services.answers import answer_states, option_label
from leadcapture.tokens import Purpose, fingerprint, make_token, read_token

log = logging.getLogger(__name__)

EDITOR_TEXTS = ("title", "prompt", "start", "submit", "success", "consent_report", "consent_sequences")
# What only a returning reader is shown: sent when the loader says it has one (a remembered reader, or a
# reference from our email), which few page views have.
RETURNING_READER_TEXTS = ("reader", "reader_unnamed", "not_you", "start_ready")
# Said in the body of a 429 or 5xx answer to a submission instead, in the widget's locale (error_message).
SERVER_ERROR_TEXTS = ("error_busy", "error_server")
# The sequences box's default wording with reads and clicks tracked, with clicks only, and with tracking off
# (LEADCAPTURE_TRACKING); the one that applies is sent as `consent_sequences`.
SEQUENCES_WORDINGS = ("consent_sequences", "consent_sequences_clicks", "consent_sequences_answers")
# The widget's translations that are not the form's texts: answer labels, server errors, the other wordings.
NOT_SENT_TEXTS = frozenset(("yes", "no", *SERVER_ERROR_TEXTS, *SEQUENCES_WORDINGS[1:]))
MAX_SLUG_LENGTH = 64
# The compact definition's short names for its texts and a question's `multi` flag; the loader's build pins the
# same names (build-widget.mjs), so its source can say `texts.consent_sequences` and the wire `q`. A text
# without a short name goes by its own.
COMPACT_NAMES: Mapping[str, str] = json.loads(
    (PACKAGE_DIR / "static" / "embed-names.json").read_text("utf-8")
)
# Reading the prompt, answering the questions and typing an address takes a person longer than this; a form
# sent sooner after its definition was issued came from a script.
MIN_FILL_TIME = timedelta(seconds=2)
# The form token as definitions issue it: when, in milliseconds since the epoch in base 36, and a MAC over that
# and the widget's id, e.g. `mxdq2hde.NPKAdMqQt7A`. Every definition carries one, so it is short: the widget is
# known from the URL the submission goes to, so it is signed, not sent; and 64 bits of MAC are plenty, since a
# forgery gains a script nothing it cannot get by asking for a definition and waiting out MIN_FILL_TIME, and
# every guess is a rate-limited submission. itsdangerous's tokens, which definitions issued before, were 72
# characters; they are still read, for pages left open.
FORM_TOKEN = re.compile(r"([0-9a-z]{1,12})\.([0-9A-Za-z_-]{11})")
FORM_TOKEN_MAC_BYTES = 8


@dataclass(frozen=True)
class QuestionView:
    id: int
    key: str
    kind: QuestionKind
    text: str  # in the widget's locale, as shown
    fresh_for_days: int
    options: tuple[tuple[str, str], ...]  # (value, label) of the options still offered, in order

    @property
    def values(self) -> frozenset[str]:
        return frozenset(value for value, _label in self.options)


@dataclass(frozen=True)
class WidgetView:
    """What a widget shows and accepts, resolved in its locale."""

    id: int
    slug: str
    locale: str
    allowed_origins: frozenset[str]
    report_id: int
    report_title: str
    report_description: str
    questions: tuple[QuestionView, ...]
    texts: Mapping[str, str]
    consent_wording: Mapping[str, str]
    wording_version: str
    ask_first_name: bool = False

    def allows_origin(self, origin: str) -> bool:
        return origin.rstrip("/").lower() in self.allowed_origins


def get_widget(slug: str) -> Widget:
    """The widget row with this slug, its report and questions loaded; NotFound otherwise."""
    if len(slug) > MAX_SLUG_LENGTH:
        raise NotFound(slug[:MAX_SLUG_LENGTH])
    widget = db.session.scalar(
        select(Widget)
        .where(Widget.slug == slug)
        .options(
            selectinload(Widget.widget_questions)
            .selectinload(WidgetQuestion.question)
            .selectinload(Question.options),
            selectinload(Widget.report),
        )
    )
    if widget is None:
        raise NotFound(slug)
    return widget


class _ViewCache:
    """Widget views per slug for a few seconds, so an editor's change shows up without a restart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._views: dict[str, tuple[float, WidgetView]] = {}

    def get(self, slug: str, max_age: float) -> WidgetView | None:
        with self._lock:
            cached = self._views.get(slug)
        if cached is None or time.monotonic() - cached[0] > max_age:
            return None
        return cached[1]

    def put(self, view: WidgetView) -> None:
        with self._lock:
            self._views[view.slug] = (time.monotonic(), view)

    def peek(self, slug: str) -> WidgetView | None:
        """The last view of this slug, however old."""
        with self._lock:
            cached = self._views.get(slug)
        return None if cached is None else cached[1]


def widget_view(slug: str) -> WidgetView:
    """The widget as readers see it; NotFound for an unknown slug."""
    max_age = float(current_app.config["WIDGET_CACHE_SECONDS"])
    cache: _ViewCache = current_app.extensions.setdefault("leadcapture.widget_views", _ViewCache())
    view = cache.get(slug, max_age) if max_age > 0 else None
    if view is None:
        view = _build_view(get_widget(slug))
        cache.put(view)
    return view


def error_message(slug: str, status: int, fallback_locale: str) -> str:
    """What a reader is told when their submission is answered 429 (busy) or 5xx (our fault), in the widget's
    locale as this process last saw it: without asking the database, which may be what failed."""
    cache: _ViewCache | None = current_app.extensions.get("leadcapture.widget_views")
    view = cache.peek(slug) if cache is not None else None
    locale = view.locale if view is not None else fallback_locale
    return translate(locale, "widget.error_busy" if status == 429 else "widget.error_server")


def forget_widget_views() -> None:
    """Drop this process's cached views after an editor's change, so its pages show the change at once.

    Other processes notice within WIDGET_CACHE_SECONDS.
    """
    current_app.extensions.pop("leadcapture.widget_views", None)


def _build_view(widget: Widget) -> WidgetView:
    locale = widget.locale
    report = widget.report
    report_title = localized(report.title, locale)
    texts = translations(locale, "widget")
    texts.update(title=report_title, prompt="")
    texts["consent_report"] = translate(locale, "widget.consent_report", title=report_title)
    texts["consent_sequences"] = translate(locale, sequences_wording(current_settings()))
    for name in EDITOR_TEXTS:
        value = widget.texts.get(name)
        if isinstance(value, dict) and value:
            texts[name] = localized(value, locale)
    wording = {
        "locale": locale,
        "consent_report": texts["consent_report"],
        "consent_sequences": texts["consent_sequences"],
    }
    canonical = json.dumps(wording, sort_keys=True, ensure_ascii=False).encode()
    return WidgetView(
        id=widget.id,
        slug=widget.slug,
        locale=locale,
        allowed_origins=frozenset(origin.rstrip("/").lower() for origin in widget.allowed_origins),
        report_id=report.id,
        report_title=report_title,
        report_description=localized(report.description, locale) if report.description else "",
        questions=tuple(
            QuestionView(
                id=question.id,
                key=question.key,
                kind=question.kind,
                text=localized(question.text, locale),
                fresh_for_days=question.fresh_for_days,
                options=tuple(
                    (option.value, option_label(question.kind, option.value, option.label, locale))
                    for option in question.active_options
                ),
            )
            for question in widget.questions
        ),
        texts={key: value for key, value in texts.items() if key not in NOT_SENT_TEXTS},
        consent_wording=wording,
        wording_version=hashlib.sha256(canonical).hexdigest()[:16],
        ask_first_name=widget.ask_first_name,
    )


def sequences_wording(settings: Config) -> str:
    """The catalog key of the sequences box's default wording: it names what shapes the follow-up emails besides
    the reader's answers, which is what LEADCAPTURE_TRACKING lets count (clicks in them, articles read from them).
    An editor's own wording for the box replaces it as written."""
    reads, clicks, answers = SEQUENCES_WORDINGS
    return "widget." + (reads if settings.track_reads else clicks if settings.track_clicks else answers)


def check_origin(view: WidgetView, origin: str | None) -> None:
    """Browsers send Origin on cross-origin requests; only the widget's allowed origins may use it.

    A request without Origin did not come from a cross-origin page (a server or a same-origin preview).
    """
    if origin is not None and not view.allows_origin(origin):
        raise OriginNotAllowed(origin[:200])


def describe_widget(
    view: WidgetView,
    reader: KnownReader | None = None,
    *,
    returning: bool | None = False,
    submit_url: str = "",
    compact: bool = False,
) -> dict[str, Any]:
    """The definition the loader renders: for a reader we know, only the questions left to ask them.

    `now` and each question's `fresh_for_days` let the loader skip what this browser answered recently;
    `reader`, given only to someone who came from our own email, stands in for their address, and `mask` shows
    them which address that is without spelling it out to whoever else reads the screen. `returning`: the
    loader may take the reader for someone this browser answered as before, so it needs the texts and the
    freshness that go with that. Every byte counts against the widget's weight on each page: what the loader
    already knows (the slug, where to post) is left out, and so is what this form does not show.

    `returning` None: asked by a loader from before it said whether it remembers a reader (one a page still
    holds for up to the loader's max-age after an upgrade), which gets every text, the slug and `submit_url`.

    `compact`: asked by a loader that reads options as `[value, label]` pairs and a question's `multi` flag (the
    only difference between kinds the form shows), the report's `description` at the top level without its
    title (the `title` text is the heading), `now` in seconds since the epoch, and the texts and the `multi` flag
    by their COMPACT_NAMES. Loaders from before it still get objects, `kind`, `report`, `now` as a date-time and
    the texts by name.
    """
    legacy = returning is None
    questions = view.questions if reader is None else reader.questions
    texts = dict(view.texts)
    if not (returning or legacy or reader is not None):
        for name in RETURNING_READER_TEXTS:
            del texts[name]
    if not view.ask_first_name:
        del texts["first_name_label"]
    if not any(question.kind is QuestionKind.MULTI for question in questions):
        del texts["multi"]
    if legacy:
        texts |= {name: translate(view.locale, "widget." + name) for name in SERVER_ERROR_TEXTS}
    now = clock.now()
    definition: dict[str, Any] = {
        "locale": view.locale,
        "texts": texts,
        "questions": [
            _describe_question(question, compact)
            | ({"fresh_for_days": question.fresh_for_days} if returning or legacy else {})
            for question in questions
        ],
        "form_token": form_token(view.id, now),
    }
    if compact:
        definition |= {
            "texts": {COMPACT_NAMES.get(name, name): text for name, text in texts.items()},
            "description": view.report_description,
            "now": int(now.timestamp()),
        }
    else:
        definition |= {
            "report": {"title": view.report_title, "description": view.report_description},
            "now": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
    if reader is not None:
        definition["reader"] = reader.ref
        definition["mask"] = reader.mask
    if view.ask_first_name:
        definition["ask_first_name"] = True
    if legacy:
        definition |= {"slug": view.slug, "submit_url": submit_url}
    return definition


def _describe_question(question: QuestionView, compact: bool) -> dict[str, Any]:
    if compact:
        return {
            "key": question.key,
            "text": question.text,
            "options": [list(option) for option in question.options],
        } | ({COMPACT_NAMES["multi"]: True} if question.kind is QuestionKind.MULTI else {})
    return {
        "key": question.key,
        "kind": question.kind.value,
        "text": question.text,
        "options": [{"value": value, "label": label} for value, label in question.options],
    }


@dataclass(frozen=True)
class KnownReader:
    """A confirmed subscriber who followed a link in our email, and the widget's questions left to ask."""

    ref: str
    mask: str  # their address as the widget shows it: see mask_address
    questions: tuple[QuestionView, ...]  # unanswered, or answered longer ago than fresh_for_days


def embedding_origins() -> frozenset[str]:
    """Every origin some widget may be embedded on."""
    return frozenset(
        origin.rstrip("/").lower()
        for origins in db.session.scalars(select(Widget.allowed_origins))
        for origin in origins
    )


def mail_reference(subscriber_id: int) -> str:
    """The signed reference that article links in marketing email carry (never the address itself)."""
    return make_token(Purpose.READER, {"s": subscriber_id})


def mask_address(email: str) -> str:
    """An address as a returning reader is shown it: enough to recognise as their own (`l•••r@beleggen.nl`), too
    little for someone else at a shared computer to read it off. The loader masks an address typed there alike."""
    local, _at, domain = email.rpartition("@")
    return f"{local[:1]}•••{local[-1] if len(local) > 2 else ''}@{domain}"


def reader_ref(email: str) -> str:
    """What the widget keeps in the reader's browser in place of their (normalised) address."""
    return fingerprint(Purpose.READER, email)


def referenced_subscriber(reference: str) -> int | None:
    """The id of the subscriber a genuine, unexpired mail reference names; None for anything else.

    Only our own email carries these, so a reader holding one has proven the address is theirs.
    """
    try:
        subscriber_id = read_token(Purpose.READER, reference).get("s")
    except (TokenExpired, TokenInvalid):
        return None
    return subscriber_id if isinstance(subscriber_id, int) and not isinstance(subscriber_id, bool) else None


def known_reader(view: WidgetView, reference: str) -> KnownReader | None:
    """The reader a mail reference names, if it is genuine and names a confirmed subscriber; None otherwise.

    A stale or forged reference is not an error: the widget then treats the reader as a stranger.
    """
    subscriber_id = referenced_subscriber(reference)
    if subscriber_id is None:
        return None
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status is not SubscriberStatus.CONFIRMED or not subscriber.reader_ref:
        return None
    now = clock.now()
    states = answer_states(subscriber.id)
    left = [
        question
        for question in view.questions
        if (state := states.get(question.key)) is None or not state.is_fresh(now)
    ]
    asked = _in_ask_order(left, subscriber.id, now)
    return KnownReader(subscriber.reader_ref, mask_address(subscriber.email), asked)


def _in_ask_order(
    questions: list[QuestionView], subscriber_id: int, now: datetime
) -> tuple[QuestionView, ...]:
    """The questions left to ask a reader, the question of a topic they score high on today first
    (rules.ask_order), the rest in the widget's order."""
    if len(questions) < 2:
        return tuple(questions)
    interests: dict[str, float] = {}
    topics: list[rules.TopicQuestion] = []
    for topic, half_life, level, question_id, question in db.session.execute(
        select(Topic.key, Topic.half_life_days, InterestScore.level, Question.id, Question.key)
        .join(InterestScore, InterestScore.topic_id == Topic.id)
        .join(Question, Question.id == Topic.question_id)
        .where(InterestScore.subscriber_id == subscriber_id)
    ):
        interests[topic] = interest.score(level, now, half_life)
        topics.append(rules.TopicQuestion(topic, question_id, question))
    by_key = {question.key: question for question in questions}
    return tuple(by_key[key] for key in rules.ask_order(by_key, interests, topics))


def _form_token_mac(secret_key: str, widget_id: int, issued: str) -> str:
    key = hashlib.sha256(("leadcapture.form-token\0" + secret_key).encode()).digest()
    digest = hmac.new(key, f"{widget_id}.{issued}".encode(), hashlib.sha256).digest()[:FORM_TOKEN_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def form_token(widget_id: int, issued: datetime) -> str:
    """The token a definition of this widget issued at `issued` carries (FORM_TOKEN), under the newest key."""
    milliseconds = round(issued.timestamp() * 1000)
    digits = ""
    while milliseconds or not digits:
        milliseconds, digit = divmod(milliseconds, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return f"{digits}.{_form_token_mac(current_settings().secret_keys[0], widget_id, digits)}"


def form_token_issued(view: WidgetView, token: str) -> datetime | None:
    """When the form token a submission echoes was issued for this widget; None for a forgery.

    A reader may leave a tab open for days, so an expired token still counts: only forgeries are refused.
    """
    compact = FORM_TOKEN.fullmatch(token)
    if compact is not None:
        issued, mac = compact.groups()
        if not any(
            hmac.compare_digest(mac, _form_token_mac(key, view.id, issued))
            for key in current_settings().secret_keys
        ):
            return None
        return _issued_at(int(issued, 36) / 1000)
    try:
        payload = read_token(Purpose.FORM, token)
    except TokenExpired as exc:
        payload = exc.payload
    except TokenInvalid:
        return None
    issued = payload.get("t", 0)  # tokens issued before they carried their time are old enough by now
    widget = payload.get("w")  # its id; its slug in tokens issued before, which pages left open still echo
    if isinstance(widget, bool) or widget not in (view.id, view.slug):
        return None
    if not isinstance(issued, int | float) or isinstance(issued, bool):
        return None
    return _issued_at(issued)


def _issued_at(timestamp: float) -> datetime | None:
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def filled_too_fast(issued: datetime) -> bool:
    """Whether a form was sent sooner after its definition arrived than a person can read and answer it.

    The app setting FORM_MIN_FILL_SECONDS overrides MIN_FILL_TIME (browser tests fill forms at machine speed).
    With rate limits off (load tests, bulk imports) scripts submit at machine speed on purpose: no minimum.
    """
    if not current_settings().rate_limits:
        return False
    seconds = current_app.config.get("FORM_MIN_FILL_SECONDS")
    minimum = MIN_FILL_TIME if seconds is None else timedelta(seconds=float(seconds))
    return clock.now() - issued < minimum


def allow_origin(slug: str, origin: str) -> None:
    """Let `origin` embed the widget `slug` too."""
    widget = get_widget(slug)
    if not widget.allows_origin(origin):
        widget.allowed_origins = [*widget.allowed_origins, origin.rstrip("/").lower()]
        db.session.flush()
        log.info("widget %s may now be embedded by %s", slug, origin)
