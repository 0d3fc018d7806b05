"""The worker's scheduler: a few ticking sweeps, never one job per subscriber."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask

from leadcapture import clock, jobs
from leadcapture.extensions import db
from leadcapture.services.outbox import OUTBOX_CHANNEL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[], int]
    every_seconds: float
    # The sweep to run at once after this one has done something (what it did is waiting for that one).
    then: str | None = None


# In order: accepted submissions are stored, stale answers and fading interest move subscribers, due steps and refresh emails are
# written to the outbox, and then the outbox is sent. Submissions are stored twice a second and their emails
# sent right after, so a confirmation reaches the relay well within two seconds of the submission.
SWEEPS = (
    Sweep("store-submissions", jobs.store_submissions, 0.5, then="send-deliveries"),
    Sweep("recheck-stale-answers", jobs.recheck_stale_answers, 60),
    Sweep("recheck-fading-interest", jobs.recheck_fading_interest, 300),
    Sweep("enqueue-steps", jobs.enqueue_due_steps, 5),
    Sweep("enqueue-refresh-emails", jobs.enqueue_refresh_emails, 60),
    Sweep("send-deliveries", jobs.drain_outbox, 1),
    Sweep("fold-impressions", jobs.fold_impressions, 60),
    Sweep("purge-rate-limit-counters", jobs.purge_rate_limit_counters, 3600),
    Sweep("purge-unconfirmed-subscribers", jobs.purge_unconfirmed_subscribers, 3600),
)
SEND_SWEEP = "send-deliveries"


class FailureLog:
    """Says that a sweep failed, with the traceback, at most once a minute per sweep: the send sweep ticks every
    second, and a database that stays down would otherwise bury the log in identical tracebacks."""

    EVERY = timedelta(minutes=1)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._said_at: dict[str, datetime] = {}
        self._unsaid: dict[str, int] = {}

    def record(self, name: str) -> None:
        """Log the exception being handled as sweep `name`'s failure, unless it was said within the minute."""
        now = clock.now()
        with self._lock:
            said_at = self._said_at.get(name)
            if said_at is not None and now - said_at < self.EVERY:
                self._unsaid[name] = self._unsaid.get(name, 0) + 1
                return
            self._said_at[name] = now
            unsaid = self._unsaid.pop(name, 0)
        if unsaid:
            log.exception("sweep %s failed (and %d more times since it was last said)", name, unsaid)
        else:
            log.exception("sweep %s failed", name)


def run_sweep(app: Flask, sweep: Sweep, failures: FailureLog) -> int | None:
    """Run one sweep in its own app context; how many rows it handled, or None when it failed (logged through
    `failures`; the next tick tries again)."""
    with app.app_context():
        try:
            done = sweep.run()
        except Exception:
            failures.record(sweep.name)
            db.session.rollback()
            return None
        finally:
            db.session.remove()
    if done:
        log.info("sweep %s: %s", sweep.name, done)
    return done


def run_once(app: Flask) -> dict[str, int | None]:
    """Every sweep one pass, in order; None for each that failed, every failure logged."""
    failures = FailureLog()
    return {sweep.name: run_sweep(app, sweep, failures) for sweep in SWEEPS}


def build_scheduler(app: Flask, scheduler_class: type[BaseScheduler]) -> BaseScheduler:
    """A scheduler running every sweep at its interval, one instance at a time, missed ticks coalesced."""
    scheduler = scheduler_class(timezone=UTC)
    failures = FailureLog()

    def tick(sweep: Sweep) -> None:
        if run_sweep(app, sweep, failures) and sweep.then is not None:
            scheduler.modify_job(sweep.then, next_run_time=datetime.now(UTC))

    for sweep in SWEEPS:
        scheduler.add_job(
            tick,
            "interval",
            args=(sweep,),
            id=sweep.name,
            seconds=sweep.every_seconds,
            max_instances=1,
            coalesce=True,
            # A tick the scheduler's thread reaches late (a busy machine) runs late, once, instead of being
            # skipped as missed after APScheduler's default grace of one second.
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),  # APScheduler ticks on the real clock; jobs read leadcapture.clock
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
