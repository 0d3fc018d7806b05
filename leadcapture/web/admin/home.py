"""The admin's start page."""

from __future__ import annotations

from flask import render_template
from sqlalchemy import select

from leadcapture.extensions import db
from leadcapture.models import Widget
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required


@bp.get("/")
@editor_required
def index() -> str:
    widgets = db.session.scalars(select(Widget).order_by(Widget.slug)).all()
    return render_template("admin/index.html", widgets=widgets)
