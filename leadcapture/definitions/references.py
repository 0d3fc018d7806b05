"""Definitions that name one another: which file claims each id, and references checked against them.

A reference to a definition whose own file has problems is not reported again where it is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Any, Generic, TypeVar

from leadcapture.definitions import fields
from leadcapture.definitions.bundle import QuestionDef, ReportDef, TopicDef, WidgetDef
from leadcapture.definitions.fields import KEY_RE, Checker, Invalid
from leadcapture.definitions.problems import Problem
from leadcapture.models.content import LocalizedText

_D = TypeVar("_D", QuestionDef, TopicDef, ReportDef, WidgetDef)


class Section(Generic[_D]):
    """The definitions of one folder, keyed by their id field, plus the ids of the broken ones."""

    def __init__(self, id_field: str, definitions: dict[str, _D]) -> None:
        self.id_field = id_field
        self.definitions: dict[str, _D] = definitions
        self.claimed: dict[str, str] = {}  # id → the file that defines it, valid or not

    def broken(self, identifier: str) -> bool:
        """Whether a file defines this id but has problems (reported there, so not again elsewhere)."""
        return identifier in self.claimed and identifier not in self.definitions

    def add(
        self,
        source: str,
        data: dict[str, Any] | None,
        parse: Callable[[dict[str, Any], Checker], _D | None],
        problems: list[Problem],
    ) -> None:
        if data is None:
            # Unreadable: by convention the file is named after what it defines, so references to that
            # name are not reported as unknown on top of the file's own problem.
            self.claimed.setdefault(PurePosixPath(source).stem, source)
            return
        checker = Checker()
        definition = parse(data, checker)
        identifier = data.get(self.id_field)
        if isinstance(identifier, str):
            if (
                self.id_field == "key"
                and KEY_RE.fullmatch(identifier)
                and identifier != PurePosixPath(source).stem
            ):
                checker.add(
                    "key", f"{identifier!r} does not match the file name (expected {identifier}.yaml)"
                )
            if identifier in self.claimed:
                checker.add(self.id_field, f"{identifier!r} is already defined in {self.claimed[identifier]}")
            else:
                self.claimed[identifier] = source
        problems.extend(error.problem(source) for error in checker.errors)
        if definition is not None and not checker.errors:
            self.definitions[getattr(definition, self.id_field)] = replace(definition, source=source)


def report_reference(
    data: dict[str, Any], reports: Section[ReportDef], known: Mapping[str, LocalizedText]
) -> str | None:
    slug = fields.slug(data, "report")
    if slug in reports.definitions:
        return slug
    if reports.broken(slug):
        return None  # that report's own problems are reported in its file
    if slug in known:
        return slug
    raise Invalid("report", f"unknown report {slug!r}", code="unknown-report")


def report_title(
    slug: str, reports: Section[ReportDef], known: Mapping[str, LocalizedText]
) -> LocalizedText | None:
    if slug in reports.definitions:
        return reports.definitions[slug].title
    if reports.broken(slug):
        return None  # a broken report file hides the known report of the same slug
    return known.get(slug)


def missing_wording(question: QuestionDef, locale: str) -> str | None:
    """What of a question a reader in `locale` would see in another language, if anything."""
    if locale not in question.text:
        return "text"
    for option in question.options:
        if locale not in option.label:
            return f"label for option {option.value!r}"
    return None
