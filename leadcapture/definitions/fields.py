"""The fields the kinds of definition share: how each is checked, and how a wrong one is reported."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from leadcapture.definitions.problems import FieldPath, Problem, field_path
from leadcapture.i18n import LOCALES
from leadcapture.models.content import LocalizedText

MAX_TEXT = 500
MAX_DESCRIPTION = 2000
KEY_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")

KEY_RULE = "a lowercase letter, then up to 63 lowercase letters, digits or '_'"
SLUG_RULE = "up to 64 lowercase letters, digits or '-', not starting with '-'"

_T = TypeVar("_T")


class Invalid(Exception):
    """A field is wrong; `where` is its path inside the document, e.g. 'options[2].value'.

    `code` names the rule broken, `line` is the line in the file where known, and `field` is the path as a
    tuple when it is more precise than `where` (which the message starts with).
    """

    def __init__(
        self,
        where: str,
        message: str,
        *,
        code: str = "invalid",
        line: int | None = None,
        field: FieldPath | None = None,
    ) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.code = code
        self.line = line
        self.field = field_path(where) if field is None else field

    def problem(self, path: str) -> Problem:
        """This as a problem of the file shown as `path`."""
        return Problem(path, str(self), self.field, self.line, self.code)


class Checker:
    """Collects the problems of one document, so one file can report several at once."""

    def __init__(self) -> None:
        self.errors: list[Invalid] = []

    def check(self, parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except Invalid as exc:
            self.errors.append(exc)
            return None

    def add(self, where: str, message: str, code: str = "invalid") -> None:
        self.errors.append(Invalid(where, message, code=code))


def check_fields(data: dict[Any, Any], checker: Checker, known: tuple[str, ...], where: str = "") -> None:
    """Report every field the format does not have; a missing required field is reported by its parser."""
    for name in data:
        if name not in known:
            checker.add(join(where, name) if isinstance(name, str) else where, unknown(name, known, "field"))


def unknown(name: object, known: tuple[str, ...], what: str) -> str:
    message = f"unknown {what} {show(name)} (expected {', '.join(known)})"
    if isinstance(name, str):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            message = f"unknown {what} {show(name)}; did you mean {close[0]!r}?"
    return message


def required(data: dict[str, Any], name: str, where: str = "") -> object:
    if name not in data:
        raise Invalid(join(where, name), "is required")
    return data[name]


def identifier(data: dict[str, Any], name: str, pattern: re.Pattern[str], rule: str, where: str = "") -> str:
    value = required(data, name, where)
    if not isinstance(value, str):
        raise Invalid(join(where, name), f"must be a string ({rule}), not {kind_of(value)}")
    if not pattern.fullmatch(value):
        raise Invalid(join(where, name), f"{show(value)} is not valid: use {rule}")
    return value


def slug(data: dict[str, Any], name: str) -> str:
    return identifier(data, name, SLUG_RE, SLUG_RULE)


def list_value(data: dict[str, Any], name: str) -> list[Any]:
    value = required(data, name)
    if not isinstance(value, list):
        raise Invalid(name, f"must be a list, not {kind_of(value)}")
    return value


def text(data: dict[str, Any], name: str, limit: int, where: str = "") -> LocalizedText:
    """A text field: one string for every locale, or a mapping of locale to string."""
    path = join(where, name)
    value = required(data, name, where)
    if isinstance(value, str):
        return dict.fromkeys(LOCALES, text_value(value, path, limit))
    if not isinstance(value, dict):
        raise Invalid(
            path,
            f"must be a text or a mapping of locale to text ({', '.join(LOCALES)}), not {kind_of(value)}",
        )
    if not value:
        raise Invalid(path, "is empty")
    text: LocalizedText = {}
    for locale, item in value.items():
        if not isinstance(locale, str) or locale not in LOCALES:
            raise Invalid(path, f"unknown locale {show(locale)} (expected {', '.join(LOCALES)})")
        if not isinstance(item, str):
            raise Invalid(f"{path}.{locale}", f"must be a text, not {kind_of(item)}")
        text[locale] = text_value(item, f"{path}.{locale}", limit)
    return text


def text_value(value: str, where: str, limit: int) -> str:
    cleaned = value.strip()
    if not cleaned:
        raise Invalid(where, "must not be empty")
    if len(cleaned) > limit:
        raise Invalid(where, f"is {len(cleaned)} characters long; the limit is {limit}")
    for character in cleaned:
        # NUL and lone surrogates cannot be stored (PostgreSQL refuses \u0000 in JSON); other control
        # characters are never intended in a text a reader sees.
        if character not in "\n\t" and unicodedata.category(character) in ("Cc", "Cs"):
            raise Invalid(where, f"contains the control character U+{ord(character):04X}")
    return cleaned


def plain_text(data: dict[str, Any], name: str, limit: int, hint: str) -> str:
    """One line of text in one language, e.g. a sequence's name or a step's subject."""
    value = required(data, name)
    if not isinstance(value, str):
        raise Invalid(name, f"must be a plain string ({hint}), not {kind_of(value)}")
    if "\n" in value.strip():
        raise Invalid(name, "must be one line")
    return text_value(value, name, limit)


_E = TypeVar("_E", bound=Enum)


def choice(data: dict[str, Any], name: str, choices: type[_E]) -> _E:
    """A required field whose value is one of an enum's values."""
    value = required(data, name)
    allowed = [member.value for member in choices]
    if not isinstance(value, str) or value not in allowed:
        raise Invalid(name, f"must be one of {', '.join(allowed)}, not {show(value)}")
    return choices(value)


def locale(data: dict[str, Any]) -> str:
    value = required(data, "locale")
    if not isinstance(value, str) or value not in LOCALES:
        raise Invalid("locale", f"must be one of {', '.join(LOCALES)}, not {show(value)}")
    return value


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise Invalid(name, f"must be true or false, not {show(value)}")
    return value


def join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def show(value: object) -> str:
    """A value quoted for a message, kept short whatever an editor wrote."""
    if isinstance(value, str):
        return repr(value[:60] + "…" if len(value) > 60 else value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "nothing"
    return kind_of(value)


def kind_of(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"  # dates, sets...
