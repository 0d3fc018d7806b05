"""How long we keep people who never confirmed: their sign-ups are purged once the retention window ends."""

from __future__ import annotations

import logging

from sqlalchemy import exists, select

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import Submission, Subscriber, SubscriberStatus
from leadcapture.services.subscribers import remove_personal_data

log = logging.getLogger(__name__)


def purge_unconfirmed(limit: int) -> int:
    """Remove up to `limit` subscribers still unconfirmed when the retention window has passed since they signed
    up (and since their last request for a report); return how many went.

    Everything held on them goes, as on erasure, but the address is not suppressed: it was never confirmed,
    so a later sign-up simply starts a new double opt-in.
    """
    cutoff = clock.now() - current_settings().unconfirmed_retention
    recent_request = exists().where(Submission.subscriber_id == Subscriber.id, Submission.created_at > cutoff)
    candidates = db.session.scalars(
        select(Subscriber)
        .where(
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.created_at <= cutoff,
            ~recent_request,
        )
        # Oldest first, the order of ix_subscribers_pending_created: the scan stops at `limit` rows.
        .order_by(Subscriber.created_at, Subscriber.id)
        .limit(limit)
        # Rows another transaction holds (a confirmation in progress) are left for the next sweep.
        .with_for_update(skip_locked=True)
    ).all()
    for subscriber in candidates:
        remove_personal_data(subscriber)
    db.session.flush()
    if candidates:
        log.info("purged %s unconfirmed subscribers older than %s", len(candidates), cutoff.isoformat())
    return len(candidates)
