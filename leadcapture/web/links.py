"""The click redirect: a tracked link in a marketing email, recorded and sent on to where it leads.

The one GET in the product that writes a row, and SPEC names it: the click is the thing recorded. HEAD, which
scanners send to look without following, answers as GET would and records nothing.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request
from flask.typing import ResponseReturnValue

from leadcapture.database import records_on_get
from leadcapture.errors import TokenInvalid
from leadcapture.extensions import csrf, db
from leadcapture.services import clicks
from leadcapture.web.pages import invalid_link_page

bp = Blueprint("links", __name__)
csrf.exempt(bp)


@bp.route("/l/<token>", methods=["GET"])
@records_on_get
def follow(token: str) -> ResponseReturnValue:
    try:
        if request.method == "HEAD":
            target = clicks.tracked_link(token).target
        else:
            target = clicks.follow_link(
                token, remote_address=request.remote_addr, user_agent=request.user_agent.string
            )
    except TokenInvalid:
        db.session.rollback()
        return invalid_link_page()
    db.session.commit()
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
