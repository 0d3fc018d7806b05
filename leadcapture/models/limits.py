"""Rate-limit counters kept in the database when no Redis is configured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from leadcapture.models.base import Base


class RateLimitCounter(Base):
    """Requests counted against one limit and key (e.g. sign-in failures for an address) in one window."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(index=True)
