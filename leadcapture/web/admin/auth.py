"""Signing in and out, and the gates every admin view sits behind."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from leadcapture.extensions import db, limiter
from leadcapture.models import Role, User
from leadcapture.services import accounts
from leadcapture.web.admin import bp

F = TypeVar("F", bound=Callable[..., Any])

# Failed sign-ins only (a success redirects): per network address, and per account against slow guessing
# spread over many addresses.
LOGIN_LIMIT_PER_IP = "20 per 10 minutes"
LOGIN_LIMIT_PER_ACCOUNT = "5 per 10 minutes"


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def current_user() -> User | None:
    """The signed-in account of this request, or None (no session, or a session ended by a logout)."""
    if "admin_user" not in g:
        g.admin_user = _session_user()
    return cast(User | None, g.admin_user)


def _session_user() -> User | None:
    user_id = session.get("user_id")
    if not isinstance(user_id, int):
        return None
    user = db.session.get(User, user_id)
    if user is None or session.get("session_version") != user.session_version:
        return None
    return user


def editor_required(view: F) -> F:
    """Editors and admins; anyone else goes to the sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapper)


def admin_required(view: F) -> F:
    """Admins only: an editor gets 403."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None:
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        if user.role is not Role.ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _login_account() -> str:
    return "login:" + request.form.get("email", "").strip().lower()[:254]


def _failed(response: Response) -> bool:
    return request.method == "POST" and response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_failed)
@limiter.limit(LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_login_account, deduct_when=_failed)
def login() -> Response | str:
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            signed_in = {"user_id": user.id, "session_version": user.session_version}
            db.session.commit()
            session.clear()  # a fresh session on every login
            session.update(signed_in)
            target = request.args.get("next", "")
            safe = target.startswith("/admin/") and not target.startswith("/admin//")
            return redirect(target if safe else url_for("admin.index"))
        db.session.rollback()  # nothing to keep; on SQLite this frees the write lock the failure count needs
        flash("Unknown email address or wrong password.", "error")
    return render_template("admin/login.html", form=form)


@bp.post("/logout")
@editor_required
def logout() -> Response:
    user = current_user()
    if user is not None:
        accounts.end_sessions(user)
    db.session.commit()
    session.clear()
    return redirect(url_for("admin.login"))
