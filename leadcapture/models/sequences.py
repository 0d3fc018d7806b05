"""Drip sequences keyed to answers, and subscribers' places in them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from leadcapture.models.base import Base, JSONType, enum_column
from leadcapture.models.people import Subscriber


class OnChange(enum.Enum):
    """What happens to an enrollment when the subscriber's answers stop matching the audience."""

    SWITCH = "switch"  # leave now; nothing more of this sequence is sent
    FINISH_STEP = "finish_step"  # the step already scheduled still goes out, then leave
    STAY = "stay"  # carry on to the end


class EnrollmentState(enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"


class Sequence(Base):
    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # {question_key: condition}; see leadcapture.audience for the language.
    audience: Mapped[dict[str, Any]] = mapped_column(JSONType)
    on_change: Mapped[OnChange] = mapped_column(enum_column(OnChange))
    # Only subscribers with this locale enter (the steps are written in it); None: everyone.
    locale: Mapped[str | None] = mapped_column(String(8))
    # Only answers younger than their question's fresh_for_days count for the audience.
    fresh_only: Mapped[bool] = mapped_column(default=False)
    # Higher goes first when the frequency cap makes sequences wait for each other.
    priority: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    steps: Mapped[list[SequenceStep]] = relationship(
        back_populates="sequence", order_by="SequenceStep.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Sequence {self.slug}>"


class SequenceStep(Base):
    __tablename__ = "sequence_steps"
    __table_args__ = (UniqueConstraint("sequence_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    # Stable name of the step (its file name), so reordering or editing keeps who received what.
    key: Mapped[str] = mapped_column(String(200))
    position: Mapped[int]
    # Seconds after enrollment (first step) or after the previous step.
    delay_seconds: Mapped[int]
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]

    sequence: Mapped[Sequence] = relationship(back_populates="steps")


class Enrollment(Base):
    """A subscriber in a sequence. Re-entering a sequence resumes it: no step is ever sent twice."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "sequence_id"),
        # The step and re-check sweeps read only active rows, in the order of these indexes: a batch stops at
        # its limit instead of sorting every due row, so its cost stays flat as enrollments and backlog grow.
        Index(
            "ix_enrollments_due",
            "next_due_at",
            "id",
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
        Index(
            "ix_enrollments_recheck",
            "recheck_at",
            "id",
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"), index=True)
    state: Mapped[EnrollmentState] = mapped_column(enum_column(EnrollmentState))
    # How many steps have been scheduled so far; the next one is steps[steps_done].
    steps_done: Mapped[int] = mapped_column(default=0)
    next_due_at: Mapped[datetime | None]
    # When the last scheduled step was due; the next step's delay counts from there.
    last_step_at: Mapped[datetime | None]
    # For a fresh_only sequence: when the first answer its audience relies on goes stale, to look again.
    recheck_at: Mapped[datetime | None]
    # Set under on_change=finish_step: leave once the scheduled step has gone out.
    leaving: Mapped[bool] = mapped_column(default=False)
    entered_at: Mapped[datetime]
    left_at: Mapped[datetime | None]
    exit_reason: Mapped[str | None] = mapped_column(String(200))

    subscriber: Mapped[Subscriber] = relationship()
    sequence: Mapped[Sequence] = relationship()

    def mark_left(self, now: datetime, reason: str) -> None:
        """Out of the sequence: nothing more is scheduled."""
        self.state = EnrollmentState.EXITED
        self.leaving = False
        self.next_due_at = None
        self.left_at = now
        self.exit_reason = reason[:200]
