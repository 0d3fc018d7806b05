"""Widget files: widgets/<slug>.yaml, the report it hands out, the questions it asks and where it may be embedded."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from leadcapture.definitions import fields
from leadcapture.definitions.bundle import QuestionDef, ReportDef, WidgetDef
from leadcapture.definitions.fields import KEY_RE, MAX_TEXT, Checker, Invalid
from leadcapture.definitions.references import Section, missing_wording, report_reference, report_title
from leadcapture.models.content import LocalizedText

WIDGET_TEXTS = ("title", "start", "submit", "success", "consent_report", "consent_sequences")
MIN_WIDGET_QUESTIONS, MAX_WIDGET_QUESTIONS = 1, 3
MAX_ORIGINS = 50
HOST_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def widget_parser(
    questions: Section[QuestionDef], reports: Section[ReportDef], known: Mapping[str, LocalizedText]
) -> Callable[[dict[str, Any], Checker], WidgetDef | None]:
    def parse(data: dict[str, Any], checker: Checker) -> WidgetDef | None:
        fields.check_fields(
            data,
            checker,
            ("slug", "report", "locale", "allowed_origins", "prompt", "texts", "questions", "ask_first_name"),
        )
        slug = checker.check(lambda: fields.slug(data, "slug"))
        report = checker.check(lambda: report_reference(data, reports, known))
        locale = checker.check(lambda: fields.locale(data))
        origins = _origins(data, checker)
        prompt = checker.check(lambda: fields.text(data, "prompt", MAX_TEXT))
        texts = _widget_texts(data, checker)
        keys = _widget_questions(data, questions, checker)
        ask_first_name = checker.check(lambda: fields.flag(data, "ask_first_name"))
        if locale is not None:
            shown = {"prompt": prompt, **(texts or {})}
            for name, text in shown.items():
                if text is not None and locale not in text:
                    where = name if name == "prompt" else f"texts.{name}"
                    checker.add(where, f"has no {locale} text (the widget's locale)")
            title = report_title(report, reports, known) if report is not None else None
            if title is not None and locale not in title:
                message = f"report {report!r} has no {locale} title (the widget's locale)"
                checker.add("report", message, code="report-title-missing")
            for index, key in enumerate(keys or ()):
                missing = missing_wording(questions.definitions[key], locale)
                if missing:
                    code = "question-text-missing" if missing == "text" else "option-label-missing"
                    checker.add(f"questions[{index}]", f"question {key!r} has no {locale} {missing}", code)
        if (
            slug is None
            or report is None
            or locale is None
            or origins is None
            or prompt is None
            or texts is None
            or keys is None
            or ask_first_name is None
            or checker.errors
        ):
            return None
        return WidgetDef(
            slug=slug,
            report=report,
            locale=locale,
            allowed_origins=origins,
            texts={"prompt": prompt, **texts},
            questions=keys,
            source="",
            ask_first_name=ask_first_name,
        )

    return parse


def _origins(data: dict[str, Any], checker: Checker) -> tuple[str, ...] | None:
    items = checker.check(lambda: fields.list_value(data, "allowed_origins"))
    if items is None:
        return None
    if not items:
        checker.add("allowed_origins", "needs at least one origin, e.g. https://news.example")
        return None
    if len(items) > MAX_ORIGINS:
        checker.add("allowed_origins", f"at most {MAX_ORIGINS} origins")
        return None
    origins: list[str] = []
    for index, item in enumerate(items):
        where = f"allowed_origins[{index}]"
        try:
            origin = _origin(item, where)
        except Invalid as exc:
            checker.errors.append(exc)
            continue
        if origin in origins:
            checker.add(where, f"{origin} is listed twice")
        else:
            origins.append(origin)
    return tuple(origins) if len(origins) == len(items) else None


def _origin(value: object, where: str) -> str:
    """A browser Origin: lowercase scheme://host[:port], without the scheme's default port."""
    example = "e.g. https://news.example or http://localhost:5001"
    if not isinstance(value, str):
        raise Invalid(where, f"must be an origin ({example}), not {fields.kind_of(value)}")
    if len(value) > 255 or not value.isprintable() or any(c.isspace() for c in value):
        raise Invalid(where, f"{fields.show(value)} is not an origin ({example})")
    if "*" in value:
        raise Invalid(where, f"{fields.show(value)}: wildcards are not allowed; list each origin")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise Invalid(where, f"{fields.show(value)} is not an origin ({example})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not value[len(scheme) :].startswith("://"):
        raise Invalid(where, f"{fields.show(value)} is not an http or https origin ({example})")
    if "@" in parts.netloc:
        raise Invalid(where, f"{fields.show(value)} must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in value or "#" in value:
        raise Invalid(
            where, f"{fields.show(value)} must be scheme://host[:port] only, without a path or query"
        )
    host = _origin_host(parts.hostname or "")
    if host is None:
        raise Invalid(where, f"{fields.show(value)} has an invalid host name")
    if port == 0:
        raise Invalid(where, f"{fields.show(value)} has an invalid port")
    default_port = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != default_port else "")


def _origin_host(host: str) -> str | None:
    """The host as a browser puts it in Origin (IDNA, lowercase, IPv6 in brackets), or None if invalid."""
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return ascii_host if HOST_RE.fullmatch(ascii_host) else None


def _widget_texts(data: dict[str, Any], checker: Checker) -> dict[str, LocalizedText] | None:
    if "texts" not in data:
        return {}
    value = data["texts"]
    if not isinstance(value, dict):
        checker.add(
            "texts",
            f"must be a mapping of text names ({', '.join(WIDGET_TEXTS)}) to texts, not {fields.kind_of(value)}",
        )
        return None
    texts: dict[str, LocalizedText] = {}
    for name in value:
        if name not in WIDGET_TEXTS:
            checker.add(
                f"texts.{name}" if isinstance(name, str) else "texts",
                fields.unknown(name, WIDGET_TEXTS, "text"),
            )
            continue
        try:
            texts[name] = fields.text(value, name, MAX_TEXT, "texts")
        except Invalid as exc:
            checker.errors.append(exc)
    return texts if len(texts) == len(value) else None


def _widget_questions(
    data: dict[str, Any], questions: Section[QuestionDef], checker: Checker
) -> tuple[str, ...] | None:
    items = checker.check(lambda: fields.list_value(data, "questions"))
    if items is None:
        return None
    if not MIN_WIDGET_QUESTIONS <= len(items) <= MAX_WIDGET_QUESTIONS:
        checker.add(
            "questions",
            f"a widget asks {MIN_WIDGET_QUESTIONS} to {MAX_WIDGET_QUESTIONS} questions, not {len(items)}",
        )
        return None
    keys: list[str] = []
    for index, item in enumerate(items):
        where = f"questions[{index}]"
        if not isinstance(item, str) or not KEY_RE.fullmatch(item):
            checker.add(where, f"must be a question key, not {fields.show(item)}")
        elif item in keys:
            checker.add(where, f"{item!r} is asked twice")
        elif item in questions.definitions:
            keys.append(item)
        elif not questions.broken(item):
            checker.add(where, f"unknown question {item!r}")
    return tuple(keys) if len(keys) == len(items) else None
