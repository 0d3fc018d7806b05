"""Subscribers and what they told us: answers, consent, report requests."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadcapture.models.base import Base, JSONType, enum_column
from leadcapture.models.content import Question, Report, Widget


class SubscriberStatus(enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"


# No mail at all goes to these addresses.
SUPPRESSED_STATUSES = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED, SubscriberStatus.ERASED)


class AnswerSource(enum.Enum):
    WIDGET = "widget"
    EMAIL = "email"
    PREFERENCES = "preferences"
    IMPORT = "import"


class ConsentKind(enum.Enum):
    REQUEST = "request"  # a submission: what the person ticked, with the wording shown
    CONFIRM = "confirm"  # the double opt-in click
    WITHDRAW = "withdraw"  # marketing consent taken back (unsubscribe)
    SUPPRESS = "suppress"  # bounce, complaint or erasure stopped all mail


class Subscriber(Base):
    __tablename__ = "subscribers"
    # The purge of unconfirmed sign-ups reads only pending rows, oldest first, and the refresh sweep the rows
    # due a look in due order: each batch reads its rows off an index in order and stops at its limit.
    __table_args__ = (
        Index("ix_subscribers_refresh_due", "refresh_due_at", "id"),
        Index(
            "ix_subscribers_pending_created",
            "created_at",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    status: Mapped[SubscriberStatus] = mapped_column(enum_column(SubscriberStatus))
    locale: Mapped[str] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(100))
    marketing_consent: Mapped[bool] = mapped_column(default=False)
    # Set from the preference page: no marketing email before this moment.
    marketing_paused_until: Mapped[datetime | None]
    # When to look for stale answers to re-ask by email; None while there is nothing to re-ask.
    refresh_due_at: Mapped[datetime | None]
    # A keyed hash of the address, handed to the widget to keep in the reader's browser instead of the address.
    reader_ref: Mapped[str | None] = mapped_column(String(43), unique=True)
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    status_changed_at: Mapped[datetime]

    answers: Mapped[list[Answer]] = relationship(
        back_populates="subscriber", order_by="Answer.id", cascade="all, delete-orphan", passive_deletes=True
    )
    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber",
        order_by="ConsentEvent.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    submissions: Mapped[list[Submission]] = relationship(
        back_populates="subscriber",
        order_by="Submission.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def receives_marketing(self) -> bool:
        """Confirmed and opted in to follow-up emails (a pause only delays them)."""
        return self.status is SubscriberStatus.CONFIRMED and self.marketing_consent

    @property
    def is_suppressed(self) -> bool:
        return self.status in SUPPRESSED_STATUSES

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status.value}>"


class Answer(Base):
    """One answer at one moment. Never updated: the newest row per question is the current answer."""

    __tablename__ = "answers"
    __table_args__ = (Index("ix_answers_subscriber_question", "subscriber_id", "question_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    # A string for yes_no and choice questions, a sorted list of strings for multi.
    value: Mapped[Any] = mapped_column(JSONType)
    source: Mapped[AnswerSource] = mapped_column(enum_column(AnswerSource))
    widget_id: Mapped[int | None] = mapped_column(ForeignKey("widgets.id", ondelete="SET NULL"))
    page_url: Mapped[str | None] = mapped_column(String(2048))
    question_text: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8))
    answered_at: Mapped[datetime]

    subscriber: Mapped[Subscriber] = relationship(back_populates="answers")
    question: Mapped[Question] = relationship()
    widget: Mapped[Widget | None] = relationship()


class ConsentEvent(Base):
    """Append-only proof of what a person agreed to or withdrew, and how."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[ConsentKind] = mapped_column(enum_column(ConsentKind))
    # What the event covers: "report", "sequences" or both.
    purposes: Mapped[list[str]] = mapped_column(JSONType)
    widget_id: Mapped[int | None] = mapped_column(ForeignKey("widgets.id", ondelete="SET NULL"))
    page_url: Mapped[str | None] = mapped_column(String(2048))
    # The exact texts shown, and a short digest of them so identical wordings group together.
    wording: Mapped[dict[str, Any]] = mapped_column(JSONType)
    wording_version: Mapped[str] = mapped_column(String(16))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")
    widget: Mapped[Widget | None] = relationship()


class Submission(Base):
    """A request for a report through a widget; confirmed by the double opt-in or at once if already confirmed."""

    __tablename__ = "submissions"
    # The dashboard's funnel reads one widget's submissions over a period.
    __table_args__ = (Index("ix_submissions_widget_created", "widget_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    widget_id: Mapped[int | None] = mapped_column(ForeignKey("widgets.id", ondelete="SET NULL"))
    report_id: Mapped[int] = mapped_column(ForeignKey("reports.id"))
    page_url: Mapped[str | None] = mapped_column(String(2048))
    marketing_consent: Mapped[bool]
    created_at: Mapped[datetime]
    confirmed_at: Mapped[datetime | None]
    # The first time the report was fetched through this submission's link.
    downloaded_at: Mapped[datetime | None]

    subscriber: Mapped[Subscriber] = relationship(back_populates="submissions")
    widget: Mapped[Widget | None] = relationship()
    report: Mapped[Report] = relationship()


class Intake(Base):
    """A submission the web process has validated and accepted, kept as one row until the worker stores it
    (services.intake): the person, answers, consent event, submission and email it stands for.

    Accepting a submission is then the same single insert whatever the state of its address, so the answer
    tells nothing by its timing, and the request holds no lock on anyone's rows."""

    __tablename__ = "intakes"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No foreign key, as for impressions: on PostgreSQL its check would lock the widget's row on every
    # submission. The worker drops the intakes of a widget deleted meanwhile.
    widget_id: Mapped[int]
    received_at: Mapped[datetime]
    # The normalised address, when the reader typed one; the rest of what was accepted is in `data`. Kept
    # apart so that erasing an address also erases its submissions not stored yet.
    email: Mapped[str | None] = mapped_column(String(254))
    # json rather than jsonb on PostgreSQL: written once and read once, whole, it is not worth parsing.
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set when storing it failed on its own (logged with the reason); the worker no longer takes it.
    failed_at: Mapped[datetime | None]


class Suppression(Base):
    """An address that must never be written to again, kept only as a keyed hash (an erased person)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
