"""When marketing email may go out: a frequency cap per subscriber and sending hours in their time zone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import MARKETING_KINDS, Delivery, DeliveryStatus


@dataclass(frozen=True)
class Pacing:
    """The pacing settings: marketing emails per day per person, sending hours, and the time zone of those
    whose browser gave none."""

    per_day: int
    sending_hours: tuple[int, int]
    timezone: str

    @classmethod
    def current(cls) -> Pacing:
        settings = current_settings()
        return cls(settings.marketing_per_day, settings.sending_hours, settings.timezone)

    @property
    def cap_interval(self) -> timedelta:
        """The least time between two marketing emails to one person."""
        return timedelta(days=1) / self.per_day


def within_sending_hours(moment: datetime, timezone: str | None, pacing: Pacing | None = None) -> datetime:
    """`moment` if it falls within sending hours in the subscriber's zone, else the start of the next window.

    Wall-clock hours are built in the zone itself, so a DST change moves the window with local time.
    """
    pacing = pacing or Pacing.current()
    zone = ZoneInfo(timezone or pacing.timezone)
    start_hour, end_hour = pacing.sending_hours
    local = moment.astimezone(zone)
    start = datetime.combine(local.date(), time(start_hour), tzinfo=zone)
    end = datetime.combine(local.date(), time(end_hour), tzinfo=zone)
    if local < start:
        return start.astimezone(UTC)
    if local >= end:
        return datetime.combine(local.date() + timedelta(days=1), time(start_hour), tzinfo=zone).astimezone(
            UTC
        )
    return moment


def marketing_slot(
    earliest: datetime,
    *,
    last: datetime | None,
    paused_until: datetime | None,
    timezone: str | None,
    pacing: Pacing,
) -> datetime:
    """The first moment from `earliest` that is a cap interval after `last`, past a pause and within sending
    hours: the rule steps and refresh emails are scheduled by, and sending holds them back by."""
    slot = max(earliest, last + pacing.cap_interval) if last is not None else earliest
    if paused_until is not None:
        slot = max(slot, paused_until)
    return within_sending_hours(slot, timezone, pacing)


def last_marketing_sent(subscriber_ids: Iterable[int]) -> dict[int, datetime]:
    """When each of these subscribers was last sent a marketing email, for those ever sent one: one grouped
    statement for a whole batch being claimed.

    Only what has actually gone out counts when sending (waiting deliveries were spaced when they were
    scheduled); `hold_until` then says how long each must wait.
    """
    ids = sorted(set(subscriber_ids))
    if not ids:
        return {}
    rows = db.session.execute(
        select(Delivery.subscriber_id, func.max(Delivery.sent_at))
        .where(
            Delivery.subscriber_id.in_(ids),
            Delivery.kind.in_(MARKETING_KINDS),
            Delivery.status == DeliveryStatus.SENT,
        )
        .group_by(Delivery.subscriber_id)
    )
    return {
        subscriber_id: sent_at
        for subscriber_id, sent_at in rows
        if subscriber_id is not None and sent_at is not None
    }


def hold_until(
    now: datetime,
    *,
    last_sent: datetime | None,
    also_sending: bool,
    paused_until: datetime | None,
    timezone: str | None,
    pacing: Pacing,
) -> datetime | None:
    """For a marketing email due now, given the last one sent: when it must wait for, or None to send now."""
    slot = marketing_slot(
        now + pacing.cap_interval if also_sending else now,
        last=last_sent,
        paused_until=paused_until,
        timezone=timezone,
        pacing=pacing,
    )
    return slot if slot > now else None
