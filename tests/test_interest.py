"""Decaying interest scores: whole days, half-lives, and the level they are stored as."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadcapture import audience, interest

DAY0 = datetime(2026, 3, 2, 23, 50, tzinfo=UTC)


def level_of(*signals: tuple[float, datetime], half_life: int = 30) -> float | None:
    level = None
    for weight, moment in signals:
        level = interest.add_signal(level, weight, moment, half_life)
    return level


def test_signals_of_one_day_count_in_full_and_three_clicks_meet_at_least_three() -> None:
    level = level_of((1, DAY0), (1, DAY0 - timedelta(hours=20)), (1, DAY0 - timedelta(hours=23)))
    assert interest.score(level, DAY0, 30) == pytest.approx(3)
    assert interest.meets(level, 3, DAY0, 30)
    assert not interest.meets(level, 3.5, DAY0, 30)
    assert audience.matches({"interest": {"topic": "d", "at_least": 3}}, {}, {"d": interest.score(level, DAY0, 30)})


def test_a_score_halves_per_half_life_by_whole_days() -> None:
    level = level_of((4, DAY0))
    # Ten minutes on it is the next day: one day of decay, not a fraction of one.
    assert interest.score(level, DAY0 + timedelta(minutes=10), 30) == pytest.approx(4 * 0.5 ** (1 / 30))
    assert interest.score(level, DAY0 + timedelta(days=30), 30) == pytest.approx(2)
    assert interest.score(level, DAY0 + timedelta(days=60), 30) == pytest.approx(1)


def test_two_half_lives_quarter_a_score_whatever_the_half_life() -> None:
    for half_life in (1, 7, 30, 3650):
        level = level_of((3, DAY0), half_life=half_life)
        later = DAY0 + timedelta(days=2 * half_life)
        assert interest.score(level, later, half_life) == pytest.approx(0.75)


def test_old_and_new_signals_add_up_with_their_own_decay() -> None:
    level = level_of((2, DAY0), (1, DAY0 + timedelta(days=30)))
    assert interest.score(level, DAY0 + timedelta(days=30), 30) == pytest.approx(2)
    # In any order.
    assert level == pytest.approx(level_of((1, DAY0 + timedelta(days=30)), (2, DAY0)))


def test_a_signal_taken_back_leaves_what_was_there_before() -> None:
    before = level_of((1, DAY0))
    after = interest.add_signal(interest.add_signal(before, 1, DAY0, 30), -1, DAY0, 30)
    assert after == pytest.approx(before)
    assert interest.add_signal(before, -1, DAY0, 30) is None
    assert interest.add_signal(None, -1, DAY0, 30) is None


def test_the_day_a_score_falls_below_a_threshold() -> None:
    level = level_of((3, DAY0))
    assert level is not None
    day = interest.falls_below_on(level, 3, 30)
    assert day == interest.day_number(DAY0) + 1
    assert interest.meets(level, 3, DAY0, 30)
    assert not interest.meets(level, 3, DAY0 + timedelta(days=1), 30)
    half = interest.falls_below_on(level, 1.5, 30)
    assert interest.meets(level, 1.5, DAY0 + timedelta(days=half - interest.day_number(DAY0) - 1), 30)
    assert not interest.meets(level, 1.5, DAY0 + timedelta(days=half - interest.day_number(DAY0)), 30)


def test_levels_stay_finite_for_years_of_daily_signals_with_a_short_half_life() -> None:
    level = None
    for day in range(0, 3650, 3):
        level = interest.add_signal(level, 1, DAY0 + timedelta(days=day), 1)
    assert level is not None
    today = DAY0 + timedelta(days=3648)
    assert interest.score(level, today, 1) == pytest.approx(1 + 0.5**3 / (1 - 0.5**3), rel=1e-6)
