"""What came back after sending: bounces, delays and complaints, one row per report."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leadcapture.models.base import Base, enum_column


class BounceKind(enum.Enum):
    HARD = "hard"  # the address does not work: suppress at once
    SOFT = "soft"  # a temporary failure: three within seven days suppress
    COMPLAINT = "complaint"  # the person marked our mail as spam: suppress
    DELAYED = "delayed"  # still trying, on the receiving side: recorded only


class BounceSource(enum.Enum):
    DSN = "dsn"  # a delivery status notification read from the bounce mailbox (RFC 3464)
    ARF = "arf"  # a feedback report read from the bounce mailbox (RFC 5965)
    WEBHOOK = "webhook"  # an event the mail provider posted to /api/v1/mail-events
    SMTP = "smtp"  # the relay refused one recipient while we were sending (a 5.7.x at RCPT or DATA)


class BounceEvent(Base):
    __tablename__ = "bounce_events"
    # Soft bounces are counted per subscriber over the last seven days.
    __table_args__ = (Index("ix_bounce_events_subscriber_received", "subscriber_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind))
    # The RFC 3463 status (e.g. "5.1.1") and the remote server's words, when the report gives them.
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource))
    received_at: Mapped[datetime]
    # Identifies the report itself: reading the same report again adds nothing.
    event_key: Mapped[str] = mapped_column(String(96), unique=True)
