"""Editor and admin accounts."""

from __future__ import annotations

import logging
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from leadcapture import clock
from leadcapture.errors import InvalidInput
from leadcapture.extensions import db
from leadcapture.models import Role, User
from leadcapture.services.capture import normalize_email

log = logging.getLogger(__name__)

# argon2id with the library's defaults (t=3, m=64 MiB, p=4) exceeds OWASP's minimum recommendation.
_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 12


@cache
def _dummy_hash() -> str:
    # Hashed on first use: at import it would cost every command (worker, content check) half a second.
    return _hasher.hash("timing-equaliser")


def create_user(email: str, password: str, role: Role) -> User:
    """A new account; InvalidInput for a bad address, a short password or an address already in use."""
    try:
        address = normalize_email(email)
    except ValueError as exc:
        raise InvalidInput({"email": "not a valid email address"}) from exc
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput({"password": f"must be at least {MIN_PASSWORD_LENGTH} characters"})
    if db.session.scalar(select(User.id).where(User.email == address)) is not None:
        raise InvalidInput({"email": "an account with this address exists"})
    user = User(email=address, password_hash=_hasher.hash(password), role=role, created_at=clock.now())
    db.session.add(user)
    db.session.flush()
    log.info("account %s created with role %s", user.id, role.value)
    return user


def set_password(user: User, password: str) -> None:
    """Replace an account's password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput({"password": f"must be at least {MIN_PASSWORD_LENGTH} characters"})
    user.password_hash = _hasher.hash(password)
    db.session.flush()
    log.info("account %s password changed", user.id)


def authenticate(email: str, password: str) -> User | None:
    """The account these credentials open, or None. Takes as long for unknown addresses as for known ones."""
    try:
        address = normalize_email(email)
    except ValueError:
        address = ""
    user = db.session.scalar(select(User).where(User.email == address)) if address else None
    try:
        _hasher.verify(user.password_hash if user else _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    user.last_login_at = clock.now()
    db.session.flush()
    log.info("account %s logged in", user.id)
    return user


def end_sessions(user: User) -> None:
    """Invalidate every session of this account (logout)."""
    user.session_version += 1
    db.session.flush()
