"""The worker's scheduler: a few ticking sweeps, never one job per subscriber."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask

from leadcapture import jobs
from leadcapture.extensions import db
from leadcapture.services.outbox import OUTBOX_CHANNEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[], int]
    every_seconds: float


# In order: stale answers move subscribers, due steps and refresh emails are written to the outbox, and then
# the outbox is sent.
SWEEPS = (
    Sweep("recheck-stale-answers", jobs.recheck_stale_answers, 60),
    Sweep("enqueue-steps", jobs.enqueue_due_steps, 5),
    Sweep("enqueue-refresh-emails", jobs.enqueue_refresh_emails, 60),
    Sweep("send-deliveries", jobs.drain_outbox, 1),
    Sweep("purge-rate-limit-counters", jobs.purge_rate_limit_counters, 3600),
    Sweep("purge-unconfirmed-subscribers", jobs.purge_unconfirmed_subscribers, 3600),
)
SEND_SWEEP = "send-deliveries"


def run_sweep(app: Flask, sweep: Sweep) -> int:
    """Run one sweep in its own app context; a failure is logged and the next tick tries again."""
    with app.app_context():
        try:
            done = sweep.run()
        except Exception:
            log.exception("sweep %s failed", sweep.name)
            db.session.rollback()
            return 0
        finally:
            db.session.remove()
    if done:
        log.info("sweep %s: %s", sweep.name, done)
    return done


def run_once(app: Flask) -> dict[str, int]:
    """Every sweep one pass, in order."""
    return {sweep.name: run_sweep(app, sweep) for sweep in SWEEPS}


def build_scheduler(app: Flask, scheduler_class: type[BaseScheduler]) -> BaseScheduler:
    """A scheduler running every sweep at its interval, one instance at a time, missed ticks coalesced."""
    scheduler = scheduler_class(timezone=UTC)
    for sweep in SWEEPS:
        scheduler.add_job(
            run_sweep,
            "interval",
            args=(app, sweep),
            id=sweep.name,
            seconds=sweep.every_seconds,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(
                UTC
            ),  # APScheduler ticks on the real clock; jobs read leadcapture.clock
        )
    return scheduler


class OutboxListener(threading.Thread):
    """On PostgreSQL, wakes the send sweep the moment a web process commits a delivery (LISTEN/NOTIFY)."""

    def __init__(self, database_url: str, wake: Callable[[], None]) -> None:
        super().__init__(name="leadcapture-outbox-listener", daemon=True)
        self._url = database_url
        self._wake = wake
        self._stopping = threading.Event()

    @classmethod
    def for_app(cls, app: Flask, scheduler: BaseScheduler) -> OutboxListener | None:
        with app.app_context():
            url = db.engine.url
        if url.get_backend_name() != "postgresql":
            return None

        def wake() -> None:
            scheduler.modify_job(SEND_SWEEP, next_run_time=datetime.now(UTC))

        return cls(url.set(drivername="postgresql").render_as_string(hide_password=False), wake)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    while not self._stopping.is_set():
                        for _notice in connection.notifies(timeout=1.0, stop_after=1):
                            self._wake()
            except psycopg.Error:
                log.warning("outbox listener lost its connection; retrying in 5 s", exc_info=True)
                self._stopping.wait(5)

    def stop(self) -> None:
        self._stopping.set()
