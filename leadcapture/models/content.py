"""What editors define: questions, reports and widgets."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadcapture.models.base import Base, JSONType, enum_column

# A text an editor writes: one string per locale, e.g. {"nl": "Belegt u al?", "en": "Do you invest?"}.
LocalizedText = dict[str, str]


def localized(text: LocalizedText, locale: str, fallback: str = "en") -> str:
    """The text in `locale`, else the fallback locale, else any locale there is."""
    if locale in text:
        return text[locale]
    if fallback in text:
        return text[fallback]
    return next(iter(text.values()), "")


class QuestionKind(enum.Enum):
    YES_NO = "yes_no"
    CHOICE = "choice"
    MULTI = "multi"


class Question(Base):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[QuestionKind] = mapped_column(enum_column(QuestionKind))
    text: Mapped[dict[str, Any]] = mapped_column(JSONType)
    fresh_for_days: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Raised by every change; an editor saves against the version they opened, so no edit is lost.
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    options: Mapped[list[QuestionOption]] = relationship(
        back_populates="question", order_by="QuestionOption.position", cascade="all, delete-orphan"
    )

    @property
    def active_options(self) -> list[QuestionOption]:
        return [option for option in self.options if not option.retired]

    def option_values(self) -> set[str]:
        return {option.value for option in self.active_options}

    def __repr__(self) -> str:
        return f"<Question {self.key}>"


class QuestionOption(Base):
    __tablename__ = "question_options"
    __table_args__ = (UniqueConstraint("question_id", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    value: Mapped[str] = mapped_column(String(64))
    label: Mapped[dict[str, Any]] = mapped_column(JSONType)
    position: Mapped[int]
    # Options that answers refer to are retired rather than deleted, so history keeps its meaning.
    retired: Mapped[bool] = mapped_column(default=False)

    question: Mapped[Question] = relationship(back_populates="options")


class Report(Base):
    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[dict[str, Any]] = mapped_column(JSONType)
    description: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    # At least one: either a single file for every locale, or one file per locale in the order listed.
    files: Mapped[list[ReportFile]] = relationship(
        back_populates="report", order_by="ReportFile.position", cascade="all, delete-orphan"
    )

    def file_for(self, *locales: str | None) -> ReportFile:
        """The file a reader gets: the one for every locale, else the one for the first of `locales` that
        has one (the reader's own, then e.g. the widget's), else the first listed."""
        by_locale = {file.locale: file for file in self.files}
        for locale in (None, *locales):
            if locale in by_locale:
                return by_locale[locale]
        return self.files[0]

    def __repr__(self) -> str:
        return f"<Report {self.slug}>"


class ReportFile(Base):
    """A report's file for readers in one locale, or (locale None) for every reader."""

    __tablename__ = "report_files"
    __table_args__ = (UniqueConstraint("report_id", "locale"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    locale: Mapped[str | None] = mapped_column(String(8))
    position: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255))  # the name readers download it as
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    report: Mapped[Report] = relationship(back_populates="files")

    def __repr__(self) -> str:
        return f"<ReportFile {self.locale or '*'} {self.filename}>"


class Widget(Base):
    __tablename__ = "widgets"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    locale: Mapped[str] = mapped_column(String(8))
    allowed_origins: Mapped[list[str]] = mapped_column(JSONType)
    # Editor texts keyed by name ("prompt", "consent_report", ...), each a LocalizedText.
    texts: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The form also offers an optional first-name field, for the emails' greeting.
    ask_first_name: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    report: Mapped[Report] = relationship()
    widget_questions: Mapped[list[WidgetQuestion]] = relationship(
        back_populates="widget", order_by="WidgetQuestion.position", cascade="all, delete-orphan"
    )

    @property
    def questions(self) -> list[Question]:
        return [item.question for item in self.widget_questions]

    def allows_origin(self, origin: str) -> bool:
        return origin.rstrip("/").lower() in {allowed.rstrip("/").lower() for allowed in self.allowed_origins}

    def __repr__(self) -> str:
        return f"<Widget {self.slug}>"


class WidgetQuestion(Base):
    __tablename__ = "widget_questions"

    widget_id: Mapped[int] = mapped_column(ForeignKey("widgets.id", ondelete="CASCADE"), primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), primary_key=True)
    position: Mapped[int]

    widget: Mapped[Widget] = relationship(back_populates="widget_questions")
    question: Mapped[Question] = relationship()


class WidgetImpressions(Base):
    """How many times a widget was shown to a reader on an allowed page, per widget and UTC day."""

    __tablename__ = "widget_impressions"

    widget_id: Mapped[int] = mapped_column(ForeignKey("widgets.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    count: Mapped[int]


class Impression(Base):
    """One showing of a widget, appended as the reader's browser reports it and never updated: many pages
    counting at once each add a row instead of queueing on one (widget, day) tally. The worker folds them into
    WidgetImpressions; until then the dashboard adds them up itself."""

    __tablename__ = "impressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key: on PostgreSQL its check would lock the widget's row (FOR KEY SHARE) on every insert, the
    # one hot row this table is here to avoid. The fold drops the rows of a widget deleted meanwhile.
    widget_id: Mapped[int]
    day: Mapped[date]


__all__ = [
    "Impression",
    "LocalizedText",
    "Question",
    "QuestionKind",
    "QuestionOption",
    "Report",
    "ReportFile",
    "Widget",
    "WidgetImpressions",
    "WidgetQuestion",
    "localized",
]
