"""The outbox: one row per email to one person, written with the change that caused it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from leadcapture.models.base import Base, JSONType, enum_column
from leadcapture.models.people import Subscriber
from leadcapture.models.sequences import Enrollment


class DeliveryKind(enum.Enum):
    CONFIRM = "confirm"
    REPORT = "report"
    SEQUENCE = "sequence"
    REFRESH = "refresh"

    @property
    def is_marketing(self) -> bool:
        return self in MARKETING_KINDS


MARKETING_KINDS = (DeliveryKind.SEQUENCE, DeliveryKind.REFRESH)


class DeliveryStatus(enum.Enum):
    PENDING = "pending"  # waiting for due_at, or for a retry
    # Claimed by a sender; due_at then holds the lease expiry, after which another sender may reclaim it.
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up: permanent rejection or retries exhausted
    CANCELLED = "cancelled"  # no longer wanted: the address was suppressed or unsubscribed


class Delivery(Base):
    __tablename__ = "deliveries"
    # Senders read only waiting rows, oldest first: a partial index keeps that flat however many were sent.
    __table_args__ = (
        Index(
            "ix_deliveries_due",
            "due_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # Set for sequence steps: leaving the sequence cancels what is still waiting.
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[DeliveryKind] = mapped_column(enum_column(DeliveryKind))
    # What makes this email unique in the world, e.g. "confirm:submission:42"; a second insert fails.
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    to_address: Mapped[str] = mapped_column(String(254))
    # References the renderer needs (submission id, report id, ...); never the rendered text.
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus))
    due_at: Mapped[datetime]
    # Among deliveries due at the same moment, higher goes first (a sequence's priority).
    priority: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    # Which claim holds the lease while `sending`: a sender whose lease ran out and was taken over finds
    # another token here, and neither sends nor marks the row.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    subject: Mapped[str | None] = mapped_column(String(998))
    # The message as sent, kept only by the outbox: transport so the dev inbox can show it.
    raw_message: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    # The tracked links as sent, by position: [target, topic key or None]; what `/l/<token>` redirects to.
    links: Mapped[list[Any] | None] = deferred(mapped_column(JSONType))

    subscriber: Mapped[Subscriber | None] = relationship()
    enrollment: Mapped[Enrollment | None] = relationship()


class StreamPause(Base):
    """A mail stream (a delivery kind) held back because the relay refused us on policy grounds."""

    __tablename__ = "stream_pauses"

    kind: Mapped[DeliveryKind] = mapped_column(enum_column(DeliveryKind), primary_key=True)
    paused_until: Mapped[datetime]
    # How many pauses in a row: each one lasts longer, until a message gets through.
    strikes: Mapped[int] = mapped_column(default=1)
    reason: Mapped[str] = mapped_column(Text)
