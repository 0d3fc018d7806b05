"""What the question, report and widget pages share: texts per locale, list edits, problems per field.

Each of those pages builds the mapping a content file holds (a "document") from the form and hands it to
`leadcapture.services.editing`, whose content checks are the authority: their problems come back per
top-level field and are shown next to that field. Lists (options, a widget's questions) are posted as
repeated fields in page order, so moving a row in the page (with or without the script) reorders them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import flash
from werkzeug.datastructures import MultiDict

from leadcapture.i18n import LOCALES
from leadcapture.services.content import Change, ContentConflict, ContentHasProblems
from leadcapture.services.editing import EditConflict, place_problems

LOCALE_NAMES = {"nl": "Dutch", "en": "English"}
# Far above what the content checks accept (20 options, 3 questions), low enough that a hostile form with
# thousands of rows is cut short before anything looks at it.
MAX_ROWS = 60

_WORD_RE = re.compile(r"[a-z]+(?:_[a-z]+)*[:,]? ")
_ACTION_RE = re.compile(r"(up|down|remove)-([0-9]{1,3})")


def locale_name(locale: str) -> str:
    return f"{LOCALE_NAMES.get(locale, locale)} ({locale})"


def as_localized(value: object) -> dict[str, str]:
    """A text field of a document as one string per locale (a plain string counts for every locale)."""
    if isinstance(value, str):
        return dict.fromkeys(LOCALES, value)
    if isinstance(value, Mapping):
        return {str(locale): str(text) for locale, text in value.items() if isinstance(text, str)}
    return {}


def localized_from(form: Mapping[str, Any], prefix: str) -> dict[str, str]:
    """The locales an editor filled in for `prefix` (inputs named prefix_nl, prefix_en); empty ones left out."""
    texts: dict[str, str] = {}
    for locale in LOCALES:
        value = form.get(f"{prefix}_{locale}")
        if isinstance(value, str) and value.strip():
            texts[locale] = value
    return texts


def set_text(document: dict[str, Any], name: str, text: dict[str, str]) -> None:
    """Put a text in the document, or leave it out when no locale has one (the check names what is required)."""
    if text:
        document[name] = text
    else:
        document.pop(name, None)


@dataclass
class ListEdit:
    """A button that edits a list on the page without saving: move a row up or down, or remove it."""

    verb: str
    index: int

    def apply(self, rows: list[Any]) -> None:
        if not 0 <= self.index < len(rows):
            return
        if self.verb == "remove":
            del rows[self.index]
            return
        other = self.index - 1 if self.verb == "up" else self.index + 1
        if 0 <= other < len(rows):
            rows[self.index], rows[other] = rows[other], rows[self.index]


def list_edit(action: str) -> ListEdit | None:
    """The list edit an `action` button names ('up-2', 'down-0', 'remove-1'), if it names one."""
    match = _ACTION_RE.fullmatch(action)
    return ListEdit(match.group(1), int(match.group(2))) if match else None


def repeated(form: MultiDict[str, str], name: str, length: int | None = None) -> list[str]:
    """The values of a repeated field in page order, at most MAX_ROWS, padded to `length` if given."""
    values = form.getlist(name)[:MAX_ROWS]
    if length is not None:
        values = (values + [""] * length)[:length]
    return values


@dataclass
class Problems:
    """What the content checks said about a document: per top-level field, per list row, and the rest."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    other: list[str] = field(default_factory=list)
    # The problems of a field's named part, e.g. of the 'success' text among a widget's texts.
    parts: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.fields or self.rows or self.other)

    def of(self, name: str) -> list[str]:
        return self.fields.get(name, [])

    def of_row(self, name: str, index: int) -> list[str]:
        return self.rows.get(name, {}).get(index, [])


CHANGED_MEANWHILE = "Changed by someone else since you opened it."


def conflict_message(kind: str) -> str:
    return (
        f"Nothing was saved: someone else saved this {kind} since you opened it. What now differs from your "
        "version is marked; your changes are still in the form. Save again to replace theirs with yours."
    )


def opened_version(value: object) -> int | None:
    """The version a page was opened at, from its hidden field; None for a new definition."""
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 10 else None


def problems_of(
    exc: ContentHasProblems | ContentConflict | EditConflict, row_numbers: Mapping[str, Sequence[int]] = {}
) -> Problems:
    """Problems placed next to what they name.

    `row_numbers` maps a list field to the page row of each of its document entries (blank rows are left out
    of the document, so entry 2 may be row 3); a problem naming an entry ('options[1].value: ...') is then
    shown on its row.
    """
    if isinstance(exc, ContentConflict):
        return Problems(other=[str(exc)])
    if isinstance(exc, EditConflict):
        return Problems(
            fields={name: [CHANGED_MEANWHILE] for name in exc.fields}, other=[conflict_message(exc.kind)]
        )
    problems = Problems()
    for placed in place_problems(exc.problems):
        if not placed.field:
            problems.other.append(placed.at_field)
            continue
        numbers = row_numbers.get(placed.field)
        if placed.row is not None and numbers is not None and placed.row < len(numbers):
            problems.rows.setdefault(placed.field, {}).setdefault(numbers[placed.row], []).append(
                _sentence(placed.at_row)
            )
            continue
        problems.fields.setdefault(placed.field, []).append(_sentence(placed.at_field))
        part = placed.problem.field[1] if len(placed.problem.field) > 1 else None
        if isinstance(part, str):
            problems.parts.setdefault(placed.field, {}).setdefault(part, []).append(
                _sentence(placed.at_field)
            )
    return problems


def _sentence(message: str) -> str:
    """'is required' → 'Is required.', so several messages in a row read as sentences ('guide.pdf is
    empty' keeps its file name as it is)."""
    if _WORD_RE.match(message):
        message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?", "…")) else message + "."


def flash_changes(changes: Iterable[Change]) -> None:
    """'updated question is_investor (text, options)', or 'Nothing changed'."""
    shown = [str(change) for change in changes]
    if shown:
        flash("; ".join(shown), "success")
    else:
        flash("Nothing changed.", "success")
