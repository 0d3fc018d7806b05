"""The scheduler's sweeps: bounded batches, idempotent, committed per batch; and sending right after commit."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app, g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.mail.transport import SendFailure, transport_for
from leadcapture.services import outbox

log = logging.getLogger(__name__)

SEND_BATCH = 100


def send_due_deliveries(limit: int = SEND_BATCH, *, only_ids: list[int] | None = None) -> int:
    """Claim, render and send up to `limit` due deliveries; return how many were attempted.

    The claim commits before any SMTP traffic and each outcome commits on its own, so no transaction is
    open while talking to the relay and a crash re-sends at most the message in flight.
    """
    claimed = outbox.claim_deliveries(limit, only_ids=only_ids)
    db.session.commit()
    if not claimed:
        return 0
    transport = transport_for(current_settings().mail)
    with transport.connect() as connection:
        for item in claimed:
            try:
                connection.send(item.message, envelope_from=item.envelope_from, to=item.to)
            except SendFailure as failure:
                outbox.record_failure(item, failure)
            else:
                outbox.record_sent(item)
            db.session.commit()
    return len(claimed)


def drain_outbox(limit: int = SEND_BATCH) -> int:
    """Send batches until nothing is due; return the number of deliveries attempted."""
    total = 0
    while True:
        attempted = send_due_deliveries(limit)
        total += attempted
        if attempted < limit:
            return total


class AfterCommitSender:
    """Sends the deliveries a web request wrote as soon as its transaction has committed.

    Whatever this misses (a crash, a relay outage) stays due in the outbox for the worker.
    """

    def init_app(self, app: Flask) -> None:
        mode = app.config["SEND_AFTER_COMMIT"]
        if mode not in ("thread", "inline", "off"):
            raise ValueError("SEND_AFTER_COMMIT must be thread, inline or off")
        app.extensions["leadcapture.after_commit"] = self
        self._executor: ThreadPoolExecutor | None = None
        if not event.contains(db.session, "after_commit", _remember_committed):
            event.listen(db.session, "after_commit", _remember_committed)
            event.listen(db.session, "after_soft_rollback", _forget_uncommitted)
        app.after_request(self._dispatch)

    def _dispatch(self, response: Any) -> Any:
        ids: list[int] = g.pop("leadcapture_committed_deliveries", [])
        mode = current_app.config["SEND_AFTER_COMMIT"]
        if not ids or mode == "off":
            return response
        if mode == "inline":
            _send_now(ids)
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="leadcapture-send")
            self._executor.submit(_send_in_app, current_app._get_current_object(), ids)  # type: ignore[attr-defined]
        return response


def _remember_committed(session: Session) -> None:
    ids = session.info.pop(outbox.NEW_DELIVERIES, None)
    # Outside a request (worker, CLI) the worker's own sweep sends them.
    if ids and has_request_context():
        g.setdefault("leadcapture_committed_deliveries", []).extend(ids)


def _forget_uncommitted(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(outbox.NEW_DELIVERIES, None)


def _send_now(ids: list[int]) -> None:
    try:
        send_due_deliveries(len(ids), only_ids=ids)
    except Exception:  # the worker will retry; the request that wrote them has succeeded
        log.exception("sending right after commit failed; the worker will retry")
        db.session.rollback()


def _send_in_app(app: Flask, ids: list[int]) -> None:
    with app.app_context():
        _send_now(ids)
        db.session.remove()


after_commit_sender = AfterCommitSender()
