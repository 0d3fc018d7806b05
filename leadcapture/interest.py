"""Interest scores that decay: the arithmetic, kept apart from where scores are stored.

A signal of weight w on day d (a UTC calendar day) counts w · ½^((today - d) / half_life) today: in full on
its own day, so three clicks today are a score of 3, and half after one half-life. Rather than rewrite
every score every day, a score is stored as its *level*, log2 of the sum of w · 2^(d / half_life) over its
signals: the same on every day, since decay only depends on today. Then

    score today  = 2^(level - today / half_life)
    score ≥ N    ⇔ level ≥ log2(N) + today / half_life

so "everyone with a score of at least 3 today" is a range over an index on (topic, level), and a new signal
adds to the level without reading any other. Days count from 2020-01-01 to keep levels small.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

_ORIGIN = date(2020, 1, 1).toordinal()
# Levels are sums of floating-point powers: three signals of 1 may come to 2.9999999999999996. A score
# within this (relative) margin of a threshold meets it.
EPSILON = 1e-9
DEFAULT_HALF_LIFE_DAYS = 30


def day_number(moment: datetime) -> int:
    """The UTC calendar day of `moment`, counted from the origin."""
    return moment.astimezone(UTC).date().toordinal() - _ORIGIN


def signal_level(weight: float, moment: datetime, half_life_days: int) -> float:
    """The level of a single positive signal."""
    return math.log2(weight) + day_number(moment) / half_life_days


def add_signal(level: float | None, weight: float, moment: datetime, half_life_days: int) -> float | None:
    """The level after one more signal (a negative weight takes one back); None once nothing is left."""
    term = day_number(moment) / half_life_days
    if weight > 0:
        added = math.log2(weight) + term
        if level is None:
            return added
        high, low = max(level, added), min(level, added)
        return high + math.log2(1 + 2 ** (low - high))
    if level is None or weight == 0:
        return level
    taken = math.log2(-weight) + term
    if taken >= level - EPSILON:
        return None
    return level + math.log2(1 - 2 ** (taken - level))


def score(level: float | None, today: datetime, half_life_days: int) -> float:
    """The score on the day of `today`."""
    if level is None:
        return 0.0
    exponent = level - day_number(today) / half_life_days
    return 2.0**exponent if exponent < 1000 else math.inf


def threshold(at_least: float, today: datetime, half_life_days: int) -> float:
    """The lowest level whose score on the day of `today` is at least `at_least` (> 0)."""
    return math.log2(at_least) + day_number(today) / half_life_days - EPSILON


def meets(level: float | None, at_least: float, today: datetime, half_life_days: int) -> bool:
    """Whether the score on the day of `today` is at least `at_least`."""
    if at_least <= 0:
        return True
    return level is not None and level >= threshold(at_least, today, half_life_days)


def falls_below_on(level: float, at_least: float, half_life_days: int) -> int:
    """The first day number on which a score of this level is below `at_least` (> 0)."""
    # level < log2(N) + day / h - ε  ⇔  day > h · (level - log2(N) + ε)
    return math.floor(half_life_days * (level - math.log2(at_least) + EPSILON)) + 1
