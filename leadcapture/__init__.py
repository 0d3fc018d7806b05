"""leadcapture: interest questions before a report, answer-keyed email sequences after it."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from leadcapture import config as config_module
from leadcapture import rate_limits
from leadcapture.config import PREFIX, TEMPLATES_DIR
from leadcapture.database import configure_engine, defer_safe_requests, engine_options
from leadcapture.extensions import csrf, db, limiter, migrate
from leadcapture.mail import dkim
from leadcapture.tokens import TokenService


def create_app(config_override: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app. Starts no threads and no scheduler.

    `config_override` may hold LEADCAPTURE_* variables (taking precedence over the environment) and Flask
    settings such as TESTING or DEMO.
    """
    app = Flask(__name__, template_folder=str(TEMPLATES_DIR), static_folder=None)
    _load_config(app, dict(config_override or {}))
    _init_extensions(app)
    _register_blueprints(app)
    _register_errors(app)
    return app


def _load_config(app: Flask, override: dict[str, Any]) -> None:
    variables = {key: str(value) for key, value in override.items() if key.startswith(PREFIX)}
    flask_settings = {key: value for key, value in override.items() if not key.startswith(PREFIX)}
    app.config.update(flask_settings)
    relaxed = bool(app.config.get("TESTING") or app.config.get("DEMO"))
    environ = {**os.environ, **variables}
    settings = config_module.load(environ, instance_path=Path(app.instance_path), relaxed=relaxed)
    if settings.database_url.startswith("sqlite:///") and not override.get(PREFIX + "DATABASE_URL"):
        Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    dkim.signer_for(settings)  # a DKIM key that cannot be read or is not aligned stops start-up
    app.config["SETTINGS"] = settings
    app.config["SECRET_KEY"] = settings.secret_keys[0]
    app.config["SQLALCHEMY_DATABASE_URI"] = settings.database_url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(settings.database_url)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.https
    app.config["SESSION_COOKIE_NAME"] = "leadcapture_session"
    app.config["RATELIMIT_ENABLED"] = settings.rate_limits
    # Counters shared by every web worker: in Redis when configured, else in the database.
    app.config["RATELIMIT_STORAGE_URI"] = settings.redis_url or f"{rate_limits.SCHEME}://"
    # Widget definitions are cached per process this long; an editor's change shows within that time.
    app.config.setdefault("WIDGET_CACHE_SECONDS", 5.0)
    # Flask's own default is None (no limit), so setdefault would never apply. Report uploads are the
    # largest bodies (20 MiB files); anything far beyond is refused before it is read.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = 32 * 1024 * 1024
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        # While one pass drains a backlog, every 1 s tick of the same sweep is skipped with a warning: noise.
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def _init_extensions(app: Flask) -> None:
    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    defer_safe_requests(app)
    migrate.init_app(app, db)
    csrf.init_app(app)
    limiter.init_app(app)
    app.extensions["leadcapture.tokens"] = TokenService(app.config["SETTINGS"].secret_keys)


def _register_blueprints(app: Flask) -> None:
    from leadcapture.web import admin, api, devinbox, links, mail_events, pages, routing, widget

    routing.init_app(app)
    for blueprint in (api.bp, mail_events.bp, widget.bp, pages.bp, links.bp, devinbox.bp, admin.bp):
        app.register_blueprint(blueprint)
    api.init_app(app)
    pages.init_app(app)


def _register_errors(app: Flask) -> None:
    from leadcapture.web import errors

    errors.init_app(app)
