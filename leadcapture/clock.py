"""The only reader of the wall clock, so tests and `worker --at` can move time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

_lock = threading.Lock()
_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """The current time as an aware UTC datetime, as this process sees it."""
    with _lock:
        if _frozen is not None:
            return _frozen
        return datetime.now(UTC) + _offset


def travel(to: datetime) -> None:
    """Make the clock read `to` now and keep running from there."""
    global _offset, _frozen
    with _lock:
        _frozen = None
        _offset = _as_utc(to) - datetime.now(UTC)


def freeze(at: datetime) -> None:
    """Stop the clock at `at` until `reset()` or `travel()`."""
    global _frozen
    with _lock:
        _frozen = _as_utc(at)


def advance(by: timedelta) -> None:
    """Move the clock forward by `by`, frozen or running."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen += by
        else:
            _offset += by


def reset() -> None:
    """Back to the wall clock."""
    global _offset, _frozen
    with _lock:
        _offset = timedelta(0)
        _frozen = None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("clock times must be timezone-aware")
    return moment.astimezone(UTC)
