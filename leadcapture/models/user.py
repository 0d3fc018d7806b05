"""Editor and admin accounts."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from leadcapture.models.base import Base, enum_column


class Role(enum.Enum):
    EDITOR = "editor"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    # Bumped on logout so a copied session cookie stops working.
    session_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]
