"""What reading a content folder gives: the valid definitions, as frozen dataclasses, and every problem."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadcapture.definitions.problems import Problem
from leadcapture.errors import DomainError
from leadcapture.models.content import LocalizedText, QuestionKind
from leadcapture.models.sequences import OnChange


@dataclass(frozen=True, slots=True)
class OptionDef:
    value: str
    label: LocalizedText


@dataclass(frozen=True, slots=True)
class QuestionDef:
    key: str
    kind: QuestionKind
    text: LocalizedText
    options: tuple[OptionDef, ...]
    fresh_for_days: int
    source: str  # the file it came from, as shown in problems


@dataclass(frozen=True, slots=True)
class TopicDef:
    key: str
    name: LocalizedText
    urls: tuple[str, ...]  # URL rules (leadcapture.urlrules), as written
    half_life_days: int  # how fast interest in it fades: a signal counts half after this many days
    question: str | None  # the key of the question the topic is about, if any
    source: str


@dataclass(frozen=True, slots=True)
class ReportFileDef:
    locale: str | None  # None: the one file for readers in every locale
    file: Path  # absolute, resolved, inside the reports folder
    shown: str  # the path as shown in problems, e.g. 'content/reports/files/guide.pdf'
    filename: str  # the name readers download it as
    content_type: str
    size: int
    sha256: str
    held: bytes | None = field(default=None, repr=False)  # the bytes, for a file checked in memory

    def read_data(self) -> bytes:
        """The file's bytes; ContentChanged if they are no longer what was checked."""
        data = self.held if self.held is not None else self.file.read_bytes()
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise ContentChanged(f"{self.shown} changed after it was checked")
        return data


@dataclass(frozen=True, slots=True)
class ReportDef:
    slug: str
    title: LocalizedText
    description: LocalizedText  # {} when the file gives none
    files: tuple[ReportFileDef, ...]  # one for every locale, or one per locale in the order listed
    source: str


@dataclass(frozen=True, slots=True)
class WidgetDef:
    slug: str
    report: str  # a report slug
    locale: str
    allowed_origins: tuple[str, ...]  # normalised: lowercase scheme://host[:port], no default port
    texts: dict[str, LocalizedText]  # "prompt" plus any overrides among WIDGET_TEXTS
    questions: tuple[str, ...]  # question keys, in the order asked
    source: str
    ask_first_name: bool = False  # the form also offers an optional first-name field


@dataclass(frozen=True, slots=True)
class StepDef:
    key: str  # the step file's name, e.g. '01-welcome.md': stable across edits and reordering
    delay_seconds: int  # after enrollment (the first step) or after the previous step
    subject: str  # a one-line Jinja template
    body: str  # a Markdown Jinja template, without the front matter
    source: str  # the step file, as shown in problems


@dataclass(frozen=True, slots=True)
class SequenceDef:
    slug: str
    name: str  # for editors only; readers never see it
    locale: str | None  # only subscribers with this locale enter; None: everyone
    audience: dict[str, Any]  # a rule in leadcapture.audience's language, checked against the questions
    on_change: OnChange
    priority: int
    fresh_only: bool  # only answers younger than their question's fresh_for_days count
    steps: tuple[StepDef, ...]
    source: str  # its sequence.yaml


@dataclass(frozen=True)
class ContentBundle:
    """Everything read from one content directory: the valid definitions and every problem found."""

    directory: Path
    questions: dict[str, QuestionDef] = field(default_factory=dict)
    topics: dict[str, TopicDef] = field(default_factory=dict)
    reports: dict[str, ReportDef] = field(default_factory=dict)
    widgets: dict[str, WidgetDef] = field(default_factory=dict)
    sequences: dict[str, SequenceDef] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Whether the directory has a sequences/ folder at all: only then does a sequence missing from it mean
    # "switched off" to the loader, so loading a directory of questions alone leaves sequences alone.
    has_sequences: bool = False
    # The same for topics/: only then does a topic missing from it mean "no longer a topic" to the loader.
    has_topics: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """E.g. '3 questions, 3 topics, 1 report, 2 widgets, 4 sequences'."""
        return ", ".join(
            _count(len(items), noun)
            for items, noun in (
                (self.questions, "question"),
                (self.topics, "topic"),
                (self.reports, "report"),
                (self.widgets, "widget"),
                (self.sequences, "sequence"),
            )
        )


class ContentChanged(DomainError):
    """A report file changed between checking and loading."""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
