"""Subscribers in the admin: search by address, a profile with the answer timeline, export and erase."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.services import subscribers as service
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import admin_required, editor_required

T = TypeVar("T")


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button-only form: just the CSRF token."""


class EraseForm(FlaskForm):  # type: ignore[misc]
    email = StringField(
        "Type the subscriber's email address to confirm",
        validators=[DataRequired(message="Type the address."), Length(max=service.MAX_ADDRESS_LENGTH)],
    )


@bp.get("/subscribers/")
@editor_required
def subscribers() -> tuple[str, int]:
    query = request.args.get("q", "")
    page = request.args.get("page", 1, type=int) or 1
    try:
        found = service.search_subscribers(query, page)
    except InvalidInput as exc:
        return render_template(
            "admin/subscribers/index.html", query=query[:300], found=None, errors=list(exc.errors.values())
        ), 400
    return render_template("admin/subscribers/index.html", query=found.query, found=found, errors=[]), 200


@bp.get("/subscribers/<int:subscriber_id>")
@editor_required
def subscriber(subscriber_id: int) -> str:
    profile = _or_404(service.describe_subscriber, subscriber_id)
    return render_template("admin/subscribers/profile.html", profile=profile, form=ActionForm())


@bp.post("/subscribers/<int:subscriber_id>/export")
@admin_required
def export_subscriber(subscriber_id: int) -> Response:
    person = _or_404(service.get_subscriber, subscriber_id)
    document = service.export_document(person)
    response = Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", mimetype="application/json"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="subscriber-{person.id}.json"'
    # Personal data: no copy in any cache, shared or private.
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@admin_required
def erase_subscriber(subscriber_id: int) -> Response | tuple[str, int]:
    profile = _or_404(service.describe_subscriber, subscriber_id)
    form = EraseForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            service.erase_subscriber(form.email.data, subscriber_id=subscriber_id)
        except InvalidInput as exc:
            db.session.rollback()
            errors = list(exc.errors.values())
        else:
            db.session.commit()
            # The address stays out of the flash message: it would travel in the session cookie.
            flash(
                "The subscriber was erased. Only a keyed hash of the address is kept, on the suppression list."
            )
            return redirect(url_for("admin.subscribers"))
    status = 422 if request.method == "POST" else 200
    return render_template("admin/subscribers/erase.html", profile=profile, form=form, errors=errors), status


def _or_404(lookup: Callable[[int], T], subscriber_id: int) -> T:
    try:
        return lookup(subscriber_id)
    except NotFound:
        abort(404)
