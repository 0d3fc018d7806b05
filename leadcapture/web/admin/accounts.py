"""Accounts in the admin (admins only): who may sign in, with which role; passwords and sessions."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, session, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, SelectChoice, SelectField
from wtforms.validators import DataRequired, Length

from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.models import Role, User
from leadcapture.services import accounts as service
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import admin_required, current_user

ROLE_CHOICES = [
    SelectChoice(Role.EDITOR.value, "Editor: edits content"),
    SelectChoice(Role.ADMIN.value, "Admin: also accounts, exports and erasure"),
]
PASSWORD_HINT = (
    f"At least {service.MIN_PASSWORD_LENGTH} characters. Hand it over safely; it can be changed later."
)


class CreateAccountForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("Email", validators=[DataRequired(message="Give the address."), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.EDITOR.value)
    password = PasswordField(
        "Initial password", validators=[DataRequired(message="Give a password."), Length(max=1024)]
    )


class RoleForm(FlaskForm):  # type: ignore[misc]
    role = SelectField("Role", choices=ROLE_CHOICES)


class PasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        "New password", validators=[DataRequired(message="Give a password."), Length(max=1024)]
    )


class ActionForm(FlaskForm):  # type: ignore[misc]
    """A button-only form: just the CSRF token."""


@bp.route("/accounts/", methods=["GET", "POST"])
@admin_required
def accounts() -> Response | tuple[str, int]:
    form = CreateAccountForm()
    errors: dict[str, str] = {}
    if form.validate_on_submit():
        try:
            user = service.create_user(form.email.data, form.password.data, Role(form.role.data))
        except InvalidInput as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            db.session.commit()
            flash(f"Account {user.email} created as {user.role.value}.")
            return redirect(url_for("admin.accounts"))
    status = 422 if form.is_submitted() and (errors or form.errors) else 200
    return render_template(
        "admin/accounts/index.html", users=service.list_users(), form=form, errors=errors, hint=PASSWORD_HINT
    ), status


@bp.get("/accounts/<int:user_id>")
@admin_required
def account(user_id: int) -> str:
    user = _user_or_404(user_id)
    return _account_page(user, RoleForm(role=user.role.value), PasswordForm(), {})[0]


@bp.post("/accounts/<int:user_id>/role")
@admin_required
def change_role(user_id: int) -> Response | tuple[str, int]:
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _account_page(user, form, PasswordForm(), {}, 422)
    try:
        service.change_role(user, Role(form.role.data))
    except InvalidInput as exc:
        db.session.rollback()
        return _account_page(user, form, PasswordForm(), exc.errors, 422)
    db.session.commit()
    flash(f"{user.email} is now {user.role.value}.")
    me = current_user()
    if me is not None and me.role is not Role.ADMIN:
        return redirect(url_for("admin.index"))  # an admin who made themselves an editor has no page here
    return redirect(url_for("admin.account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/password")
@admin_required
def reset_password(user_id: int) -> Response | tuple[str, int]:
    user = _user_or_404(user_id)
    form = PasswordForm()
    if not form.validate_on_submit():
        return _account_page(user, RoleForm(role=user.role.value), form, {}, 422)
    try:
        service.reset_password(user, form.password.data)
    except InvalidInput as exc:
        db.session.rollback()
        return _account_page(user, RoleForm(role=user.role.value), form, exc.errors, 422)
    db.session.commit()
    _keep_own_session(user)
    flash(f"New password set for {user.email}; every session of the account has ended.")
    return redirect(url_for("admin.account", user_id=user.id))


@bp.post("/accounts/<int:user_id>/sessions")
@admin_required
def end_sessions(user_id: int) -> Response:
    user = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    service.end_sessions(user)
    db.session.commit()
    _keep_own_session(user)
    flash(f"Every session of {user.email} has ended" + (", except this one." if _is_me(user) else "."))
    return redirect(url_for("admin.account", user_id=user.id))


def _account_page(
    user: User, role_form: RoleForm, password_form: PasswordForm, errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    return render_template(
        "admin/accounts/account.html",
        user=user,
        is_me=_is_me(user),
        role_form=role_form,
        password_form=password_form,
        action_form=ActionForm(),
        errors=errors,
        hint=PASSWORD_HINT,
    ), status


def _user_or_404(user_id: int) -> User:
    try:
        return service.get_user(user_id)
    except NotFound:
        abort(404)


def _is_me(user: User) -> bool:
    me = current_user()
    return me is not None and me.id == user.id


def _keep_own_session(user: User) -> None:
    """Ending your own sessions signs out your other browsers, not the one you are using."""
    if _is_me(user):
        session["session_version"] = user.session_version
