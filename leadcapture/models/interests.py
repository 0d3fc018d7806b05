"""Behaviour as interest: topics (content groups), the clicks and reads that signal interest in them, and
each subscriber's decaying score per topic."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadcapture.models.base import Base, JSONType, enum_column
from leadcapture.models.content import Question


class Topic(Base):
    """A content group: the pages and links whose URLs match `urls`, and optionally the question it is about."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # URL rules: prefixes (https://beleggen.example/daytraden/) or patterns with * (https://*.example/*/daytraden/).
    urls: Mapped[list[str]] = mapped_column(JSONType)
    half_life_days: Mapped[int] = mapped_column(default=30)
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    question: Mapped[Question | None] = relationship()

    def __repr__(self) -> str:
        return f"<Topic {self.key}>"


class SignalSource(enum.Enum):
    ANSWER = "answer"  # answered the topic's question
    CLICK = "click"  # a link of the topic in one of our emails
    READ = "read"  # an article of the topic, reached through one of our emails


class Click(Base):
    """One request of a tracked link (GET only), with why it was judged automated, if it was."""

    __tablename__ = "clicks"
    __table_args__ = (Index("ix_clicks_delivery_clicked", "delivery_id", "clicked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    # The link's place among the email's tracked links; TRAP_POSITION for the link no person sees.
    position: Mapped[int]
    url: Mapped[str] = mapped_column(String(2048))
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="SET NULL"), index=True)
    clicked_at: Mapped[datetime] = mapped_column(index=True)
    # Why the click does not count (a rule of leadcapture.scanners), or None for a person's click.
    automated: Mapped[str | None] = mapped_column(String(20))


class InterestEvent(Base):
    """One signal of interest in a topic, append-only: a later finding (a click judged automated after all)
    is a new event with the opposite weight, dated as the one it cancels."""

    __tablename__ = "interest_events"
    __table_args__ = (Index("ix_interest_events_subscriber_topic", "subscriber_id", "topic_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), index=True)
    source: Mapped[SignalSource] = mapped_column(enum_column(SignalSource))
    weight: Mapped[float] = mapped_column(Float)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    recorded_at: Mapped[datetime]
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="SET NULL"))
    click_id: Mapped[int | None] = mapped_column(ForeignKey("clicks.id", ondelete="SET NULL"), index=True)
    widget_id: Mapped[int | None] = mapped_column(ForeignKey("widgets.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(String(2048))

    topic: Mapped[Topic] = relationship()


class InterestScore(Base):
    """A subscriber's current interest in a topic, kept as a decay-free `level` (leadcapture.interest): the
    score on any day follows from it, and "at least N today" is a range over (topic_id, level)."""

    __tablename__ = "interest_scores"
    __table_args__ = (Index("ix_interest_scores_topic_level", "topic_id", "level"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class SweepMark(Base):
    """How far a sweep over time has come: up to `at` everything was looked at; a look in progress runs up to
    `until` and has done the subscribers up to `after_id`."""

    __tablename__ = "sweep_marks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[datetime | None]
    until: Mapped[datetime | None]
    after_id: Mapped[int] = mapped_column(default=0)
