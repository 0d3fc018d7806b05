"""Widgets as the loader sees them: lookup, origin rules, the definition and its form token."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from leadcapture.errors import NotFound, OriginNotAllowed, TokenExpired, TokenInvalid
from leadcapture.extensions import db
from leadcapture.i18n import translate, translations
from leadcapture.models import Question, QuestionKind, Widget, WidgetQuestion, localized
from leadcapture.tokens import Purpose, make_token, read_token

log = logging.getLogger(__name__)

EDITOR_TEXTS = ("title", "prompt", "start", "submit", "success", "consent_report", "consent_sequences")


def get_widget(slug: str) -> Widget:
    """The widget with this slug, its report and questions loaded; NotFound otherwise."""
    if len(slug) > 64:
        raise NotFound(slug[:64])
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


def check_origin(widget: Widget, origin: str | None) -> None:
    """Browsers send Origin on cross-origin requests; only the widget's allowed origins may use it.

    A request without Origin did not come from a cross-origin page (a server or a same-origin preview).
    """
    if origin is not None and not widget.allows_origin(origin):
        raise OriginNotAllowed(origin[:200])


def widget_texts(widget: Widget) -> dict[str, str]:
    """Every text the loader shows, in the widget's locale: editor texts over the product's defaults."""
    locale = widget.locale
    report_title = localized(widget.report.title, locale)
    texts = translations(locale, "widget")
    texts["title"] = report_title
    texts["prompt"] = ""
    texts["consent_report"] = translate(locale, "widget.consent_report", title=report_title)
    for name in EDITOR_TEXTS:
        value = widget.texts.get(name)
        if isinstance(value, dict) and value:
            texts[name] = localized(value, locale)
    return texts


def consent_wording(widget: Widget) -> dict[str, str]:
    """The exact consent texts a reader of this widget is shown, as recorded with their consent."""
    texts = widget_texts(widget)
    return {
        "locale": widget.locale,
        **{name: texts[name] for name in ("consent_report", "consent_sequences")},
    }


def describe_widget(widget: Widget, submit_url: str) -> dict[str, Any]:
    """The definition the loader renders."""
    locale = widget.locale
    texts = widget_texts(widget)
    return {
        "slug": widget.slug,
        "locale": locale,
        "texts": {key: value for key, value in texts.items() if key not in ("yes", "no")},
        "report": {
            "title": localized(widget.report.title, locale),
            "description": localized(widget.report.description, locale) if widget.report.description else "",
        },
        "questions": [
            {
                "key": question.key,
                "kind": question.kind.value,
                "text": localized(question.text, locale),
                "options": [
                    {
                        "value": option.value,
                        "label": _option_label(question, option.value, option.label, locale),
                    }
                    for option in question.active_options
                ],
            }
            for question in widget.questions
        ],
        "submit_url": submit_url,
        "form_token": make_token(Purpose.FORM, {"w": widget.slug}),
    }


def _option_label(question: Question, value: str, label: dict[str, Any], locale: str) -> str:
    if label:
        return localized(label, locale)
    if question.kind is QuestionKind.YES_NO:
        return translate(locale, f"widget.{value}")
    return value


def form_token_valid(widget: Widget, token: str) -> bool:
    """Whether a submission echoes a form token this server issued for this widget."""
    try:
        payload = read_token(Purpose.FORM, token)
    except TokenExpired:
        return True  # a reader may leave a tab open for days; only forgeries are refused
    except TokenInvalid:
        return False
    return payload.get("w") == widget.slug


def allow_origin(slug: str, origin: str) -> None:
    """Let `origin` embed the widget `slug` too."""
    widget = get_widget(slug)
    if not widget.allows_origin(origin):
        widget.allowed_origins = [*widget.allowed_origins, origin.rstrip("/").lower()]
        db.session.flush()
        log.info("widget %s may now be embedded by %s", slug, origin)
