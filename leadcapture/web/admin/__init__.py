"""The editor UI under /admin: one blueprint, a module per area.

Every page needs a signed-in account (`auth.editor_required`, `auth.admin_required`), every form carries a
CSRF token (Flask-WTF's CSRFProtect covers every POST of the app), and every answer carries a
Content-Security-Policy that allows no inline or foreign script.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from leadcapture.config import PACKAGE_DIR

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    static_folder=str(PACKAGE_DIR / "static" / "admin"),
    static_url_path="/static",
)

# Scripts only from this server's files; styles may be inline because the live widget preview renders the
# real widget, whose shadow root carries its own <style>. Editor content never reaches a script context.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

# (endpoint, label, admins only): an area shows in the navigation once its views are registered.
NAVIGATION = (
    ("admin.index", "Dashboard", False),
    ("admin.questions", "Questions", False),
    ("admin.topics", "Topics", False),
    ("admin.reports", "Reports", False),
    ("admin.widgets", "Widgets", False),
    ("admin.sequences", "Sequences", False),
    ("admin.journey", "Journeys", False),
    ("admin.subscribers", "Subscribers", False),
    ("admin.accounts", "Accounts", True),
)


@bp.context_processor
def _admin_helpers() -> dict[str, object]:
    from leadcapture.models import Role
    from leadcapture.web.admin.auth import current_user

    def admin_navigation() -> list[tuple[str, str]]:
        user = current_user()
        endpoints = current_app.view_functions
        return [
            (endpoint, label)
            for endpoint, label, admins_only in NAVIGATION
            if endpoint in endpoints and user is not None and (user.role is Role.ADMIN or not admins_only)
        ]

    return {"current_admin": current_user, "admin_navigation": admin_navigation}


@bp.after_request
def _admin_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


from leadcapture.web.admin import (  # noqa: E402, F401  (views register on bp)
    accounts,
    auth,
    home,
    journeys,
    questions,
    reports,
    sequences,
    subscribers,
    topics,
    widgets,
)
