"""The dev inbox: mail kept by the outbox: transport, readable with working links.

Open to anyone in the demo; elsewhere it needs a signed-in editor, since these messages hold live links.
"""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from blinker import Namespace
from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from werkzeug.wrappers import Response as WerkzeugResponse

from leadcapture import clock
from leadcapture.config import current as current_settings
from leadcapture.extensions import db
from leadcapture.models import Delivery, DeliveryStatus
from leadcapture.web.admin.auth import current_user

bp = Blueprint("devinbox", __name__, url_prefix="/dev/inbox")
URL = re.compile(r"https?://[^\s<>\"']+")
PAGE_SIZE = 100


def init_app(app: Flask) -> None:
    pass


@bp.before_request
def _gate() -> Response | None:
    if not current_settings().mail.is_outbox:
        abort(404)
    if not current_app.config.get("DEMO") and current_user() is None:
        abort(403)
    return None


def _parse(delivery: Delivery) -> EmailMessage:
    return email.message_from_bytes(delivery.raw_message or b"", policy=email.policy.default)


def _linkify(text: str) -> Markup:
    parts: list[str] = []
    last = 0
    for match in URL.finditer(text):
        parts.append(str(escape(text[last : match.start()])))
        url = escape(match.group(0))
        parts.append(f'<a href="{url}" target="_blank" rel="noopener">{url}</a>')
        last = match.end()
    parts.append(str(escape(text[last:])))
    return Markup("".join(parts))  # noqa: S704 - every piece above is escaped


# A month, as answers go stale after fresh_for_days (60 days and more in the demo content).
CLOCK_STEPS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}
# Sent with the app once its clock has moved, so that the demo's worker looks for what fell due at once rather
# than at its sweeps' next ticks (the refresh sweep ticks once a minute).
clock_moved = Namespace().signal("clock-moved")


@bp.post("/clock")
def advance_clock() -> WerkzeugResponse:
    """Demo only: move the app's clock forward so sequences can be watched without waiting days."""
    step = CLOCK_STEPS.get(request.form.get("by", ""))
    if not current_app.config.get("DEMO") or step is None:
        abort(404)
    clock.advance(step)
    clock_moved.send(current_app._get_current_object(), by=step)  # type: ignore[attr-defined]
    return redirect(url_for("devinbox.inbox"))


@bp.get("/")
def inbox() -> str:
    deliveries = db.session.scalars(
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.SENT)
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "dev/inbox.html",
        deliveries=deliveries,
        now=clock.now(),
        demo=bool(current_app.config.get("DEMO")),
        clock_steps=CLOCK_STEPS,
    )


@bp.get("/<int:delivery_id>")
def message(delivery_id: int) -> str:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.raw_message is None:
        abort(404)
    parsed = _parse(delivery)
    text_part = parsed.get_body(("plain",))
    html_part = parsed.get_body(("html",))
    headers: list[tuple[str, Any]] = list(parsed.items())
    return render_template(
        "dev/message.html",
        delivery=delivery,
        headers=headers,
        text=_linkify(text_part.get_content()) if text_part else "",
        html=html_part.get_content() if html_part else "",
    )


@bp.get("/<int:delivery_id>.eml")
def raw(delivery_id: int) -> Response:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.raw_message is None:
        abort(404)
    return Response(delivery.raw_message, mimetype="message/rfc822")
