"""The worker's scheduler: a sweep the machine held up runs as soon as it can, not at a later interval."""

from __future__ import annotations

import time

import pytest
from apscheduler.events import EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy import func, select

from leadcapture.extensions import db
from leadcapture.models import Intake, Submission
from leadcapture.scheduler import build_scheduler
from tests.support.app import Client
from tests.support.submissions import post, valid_body

pytestmark = [pytest.mark.usefixtures("widget"), pytest.mark.keeps_intakes]


def count(app: Flask, model: type[Intake] | type[Submission]) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_a_worker_held_up_for_seconds_stores_what_waits_as_soon_as_it_runs_again(
    app: Flask, client: Client
) -> None:
    """A stalled process (swapped out, stopped, a busy host) finds every tick overdue; APScheduler would skip
    one overdue by more than a second as missed, and so the store sweep would wait for a tick that falls due
    while it is running again. None is missed: the overdue tick runs, once."""
    assert post(client, valid_body()).status_code == 202
    scheduler = build_scheduler(app, BackgroundScheduler)
    missed: list[str] = []

    def on_missed(event: JobEvent) -> None:
        missed.append(event.job_id)

    scheduler.add_listener(on_missed, EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    try:
        time.sleep(2.5)  # every sweep is now overdue by more than APScheduler's default grace of a second
        scheduler.resume()
        deadline = time.monotonic() + 30
        while count(app, Intake) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        scheduler.shutdown(wait=True)
    assert missed == []
    assert (count(app, Intake), count(app, Submission)) == (0, 1)
