"""`leadcapture worker`."""

from __future__ import annotations

import contextlib
import signal
from datetime import datetime
from types import FrameType

import click
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import current_app
from flask.cli import with_appcontext

from leadcapture import clock
from leadcapture.scheduler import OutboxListener, build_scheduler, run_once


def _parse_at(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter("must be an ISO-8601 time such as 2026-03-01T09:00:00+01:00") from exc
    if moment.tzinfo is None:
        raise click.BadParameter("must include a UTC offset, e.g. 2026-03-01T09:00:00Z")
    return moment


@click.command()
@click.option("--once", is_flag=True, help="Run every job one pass and exit; exit 1 if any failed.")
@click.option(
    "--at", "at", callback=_parse_at, metavar="ISO-8601", help="Run as if the clock read this time."
)
@with_appcontext
def worker(once: bool, at: datetime | None) -> None:
    """Run the scheduler: send due deliveries (and, as they exist, the other sweeps)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if at is not None:
        if once:
            clock.freeze(at)
        else:
            clock.travel(at)
    if once:
        results = run_once(app)
        for name, done in results.items():
            click.echo(f"{name}: {'failed' if done is None else done}")
        failed = [name for name, done in results.items() if done is None]
        if failed:
            # A cron job only notices the exit status; the tracebacks are in the log above.
            click.echo(f"error: {len(failed)} of {len(results)} sweeps failed: {', '.join(failed)}", err=True)
            raise SystemExit(1)
        return
    scheduler = build_scheduler(app, BlockingScheduler)
    listener = OutboxListener.for_app(app, scheduler)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, _stop)
    click.echo("worker running; Ctrl-C or SIGTERM stops it")
    if listener is not None:
        listener.start()
    with contextlib.suppress(KeyboardInterrupt):
        scheduler.start()
    if listener is not None:
        listener.stop()
