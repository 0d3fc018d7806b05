"""The editor UI. For now: signing in and out, and a start page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, flash, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from leadcapture.extensions import db
from leadcapture.models import User, Widget
from leadcapture.services import accounts

bp = Blueprint("admin", __name__, url_prefix="/admin")


def init_app(app: Flask) -> None:
    pass


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def current_user() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    user = db.session.get(User, user_id)
    if user is None or session.get("session_version") != user.session_version:
        return None
    return user


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("admin.login", next=request.path))
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            db.session.commit()
            session.clear()  # a fresh session on every login
            session["user_id"] = user.id
            session["session_version"] = user.session_version
            target = request.args.get("next", "")
            return redirect(target if target.startswith("/admin/") else url_for("admin.index"))
        flash("Unknown email address or wrong password.")
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    user = current_user()
    if user is not None:
        accounts.end_sessions(user)
    db.session.commit()
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@login_required
def index() -> str:
    widgets = db.session.scalars(select(Widget).order_by(Widget.slug)).all()
    return render_template("admin/index.html", user=current_user(), widgets=widgets)
