"""Editor and admin accounts."""

from __future__ import annotations

import logging
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from leadcapture import clock
from leadcapture.addresses import normalize_email
from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.models import Role, User

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
    log.info("account %s signed out everywhere", user.id)


def list_users() -> list[User]:
    """Every account, admins first, then by address."""
    return list(db.session.scalars(select(User).order_by(User.role, User.email)))


def get_user(user_id: int) -> User:
    """The account with this id; NotFound otherwise."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound(str(user_id))
    return user


def change_role(user: User, role: Role) -> None:
    """Give an account another role; InvalidInput when that would leave no admin."""
    if user.role is role:
        return
    if user.role is Role.ADMIN:
        _keep_an_admin(user, "role", "this is the only admin: make another account admin first")
    user.role = role
    db.session.flush()
    log.info("account %s now has role %s", user.id, role.value)


def reset_password(user: User, password: str) -> None:
    """Set a new password and end every session of the account, as after a suspected compromise."""
    set_password(user, password)
    end_sessions(user)


def _keep_an_admin(leaving: User, field: str, message: str) -> None:
    # Locking every admin row makes two admins demoting each other at once take turns on PostgreSQL (SQLite's
    # writing transactions already do), so the second one sees that it would be the last.
    admins = db.session.scalars(select(User.id).where(User.role == Role.ADMIN).with_for_update()).all()
    if set(admins) <= {leaving.id}:
        raise InvalidInput({field: message})
