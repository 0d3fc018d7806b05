"""The worker's scheduler: a few ticking sweeps, never one job per subscriber."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from flask import Flask

from leadcapture import jobs
from leadcapture.extensions import db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sweep:
    name: str
    run: Callable[[], int]
    every_seconds: float


SWEEPS = (Sweep("send-deliveries", jobs.drain_outbox, 5),)


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
        kwargs: dict[str, Any] = {"seconds": sweep.every_seconds}
        scheduler.add_job(
            run_sweep,
            "interval",
            args=(app, sweep),
            id=sweep.name,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),  # APScheduler ticks on the real clock; jobs read leadcapture.clock
            **kwargs,
        )
    return scheduler
