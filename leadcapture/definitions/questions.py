"""Question files: questions/<key>.yaml, a kind, a text and the options a reader picks from."""

from __future__ import annotations

import re
from typing import Any

from leadcapture import audience
from leadcapture.definitions import fields
from leadcapture.definitions.bundle import OptionDef, QuestionDef
from leadcapture.definitions.fields import KEY_RE, KEY_RULE, MAX_TEXT, Checker, Invalid
from leadcapture.i18n import LOCALES, translate
from leadcapture.models.content import QuestionKind

OPTION_VALUE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MIN_OPTIONS, MAX_OPTIONS = 2, 20
_VALUE_RULE = "up to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit"


def parse_question(data: dict[str, Any], checker: Checker) -> QuestionDef | None:
    fields.check_fields(data, checker, ("key", "kind", "text", "options", "fresh_for_days"))
    key = checker.check(lambda: _key(data))
    kind = checker.check(lambda: fields.choice(data, "kind", QuestionKind))
    text = checker.check(lambda: fields.text(data, "text", MAX_TEXT))
    fresh = checker.check(lambda: _fresh_for_days(data))
    options = _options(data, kind, checker) if kind is not None else None
    if key is None or kind is None or text is None or fresh is None or options is None or checker.errors:
        return None
    return QuestionDef(key=key, kind=kind, text=text, options=options, fresh_for_days=fresh, source="")


def _key(data: dict[str, Any]) -> str:
    key = fields.identifier(data, "key", KEY_RE, KEY_RULE)
    if key in audience.RESERVED:
        raise Invalid("key", f"{key!r} has a meaning of its own in audience rules; choose another key")
    return key


def _fresh_for_days(data: dict[str, Any]) -> int:
    value = data.get("fresh_for_days", 90)
    if type(value) is not int:  # bool is an int to Python, not to an editor
        raise Invalid("fresh_for_days", f"must be a whole number of days, not {fields.kind_of(value)}")
    if not 1 <= value <= 3650:
        raise Invalid("fresh_for_days", f"must be between 1 and 3650, not {value}")
    return value


def _options(data: dict[str, Any], kind: QuestionKind, checker: Checker) -> tuple[OptionDef, ...] | None:
    if "options" not in data and kind is QuestionKind.YES_NO:
        return tuple(
            OptionDef(value, {locale: translate(locale, f"widget.{value}") for locale in LOCALES})
            for value in ("yes", "no")
        )
    items = checker.check(lambda: fields.list_value(data, "options"))
    if items is None:
        return None
    if kind is QuestionKind.YES_NO:
        if len(items) != 2:
            checker.add(
                "options", "a yes_no question has exactly the options yes and no (or leave options out)"
            )
            return None
    elif not MIN_OPTIONS <= len(items) <= MAX_OPTIONS:
        checker.add(
            "options",
            f"a {kind.value} question needs {MIN_OPTIONS} to {MAX_OPTIONS} options, not {len(items)}",
        )
        return None
    options: list[OptionDef] = []
    for index, item in enumerate(items):
        option = _option(item, f"options[{index}]", options, checker)
        if option is not None:
            options.append(option)
    if len(options) != len(items):
        return None
    if kind is QuestionKind.YES_NO and {option.value for option in options} != {"yes", "no"}:
        checker.add("options", "a yes_no question has exactly the options yes and no (or leave options out)")
        return None
    return tuple(options)


def _option(item: object, where: str, earlier: list[OptionDef], checker: Checker) -> OptionDef | None:
    if not isinstance(item, dict):
        checker.add(
            where, f"must be a mapping such as {{value: some, label: Some}}, not {fields.kind_of(item)}"
        )
        return None
    errors = len(checker.errors)
    fields.check_fields(item, checker, ("value", "label"), where)
    value = checker.check(lambda: fields.identifier(item, "value", OPTION_VALUE_RE, _VALUE_RULE, where))
    label = checker.check(lambda: fields.text(item, "label", MAX_TEXT, where))
    if value is not None and any(option.value == value for option in earlier):
        checker.add(f"{where}.value", f"{value!r} is used twice")
    if value is None or label is None or len(checker.errors) > errors:
        return None
    return OptionDef(value, label)
