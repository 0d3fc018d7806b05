"""Rate-limit counters in the database: shared by every web worker, windows that end, old rows purged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from leadcapture import clock, create_app, jobs
from leadcapture.extensions import db
from leadcapture.models import RateLimitCounter
from leadcapture.rate_limits import DatabaseStorage
from tests.support.app import app_settings

pytestmark = pytest.mark.usefixtures("app_context")


def test_the_app_keeps_its_counters_in_the_database_without_redis(app: Flask) -> None:
    assert app.config["RATELIMIT_STORAGE_URI"] == "leadcapture+db://"


def test_a_window_counts_up_and_starts_again_when_it_ends(frozen_clock: datetime) -> None:
    storage = DatabaseStorage()
    assert [storage.incr("login:a", 600) for _ in range(3)] == [1, 2, 3]
    assert storage.get("login:a") == 3
    assert storage.get("login:b") == 0
    assert storage.get_expiry("login:a") == (frozen_clock + timedelta(seconds=600)).timestamp()
    clock.advance(timedelta(seconds=601))
    assert storage.get("login:a") == 0
    assert storage.incr("login:a", 600) == 1
    assert storage.get_expiry("login:a") == (clock.now() + timedelta(seconds=600)).timestamp()


def test_two_web_workers_share_one_count(app: Flask, settings: dict[str, object]) -> None:
    other_worker = create_app(settings)  # a second process's app on the same database
    DatabaseStorage().incr("login:shared", 600)
    with other_worker.app_context():
        assert DatabaseStorage().incr("login:shared", 600) == 2
        db.session.remove()
        db.engine.dispose()
    assert DatabaseStorage().get("login:shared") == 2


def test_clearing_one_key_leaves_the_others(frozen_clock: datetime) -> None:
    storage = DatabaseStorage()
    storage.incr("one", 60)
    storage.incr("two", 60)
    storage.clear("one")
    assert (storage.get("one"), storage.get("two")) == (0, 1)
    assert storage.check()
    assert storage.reset() == 1


def test_the_worker_purges_counters_whose_window_has_ended(frozen_clock: datetime) -> None:
    storage = DatabaseStorage()
    storage.incr("short", 60)
    storage.incr("long", 3600)
    clock.advance(timedelta(minutes=2))
    assert jobs.purge_rate_limit_counters() == 1
    assert db.session.scalar(select(func.count()).select_from(RateLimitCounter)) == 1
    assert storage.get("long") == 1


def test_redis_holds_the_counters_when_configured(database_url: str) -> None:
    app = create_app(app_settings(database_url, LEADCAPTURE_REDIS_URL="redis://127.0.0.1:6379/15"))
    assert app.config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379/15"
