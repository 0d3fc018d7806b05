"""`leadcapture demo`: the whole product on one machine, in one process (imported only when run)."""

from __future__ import annotations

import secrets
import threading
from email.headerregistry import Address
from typing import Any

import click
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask, render_template
from flask_migrate import upgrade
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from leadcapture.config import BUNDLED_CONTENT_DIR
from leadcapture.definitions import read_content
from leadcapture.extensions import db
from leadcapture.models import Role, User
from leadcapture.scheduler import build_scheduler, run_once
from leadcapture.services import accounts
from leadcapture.services.content import load_content
from leadcapture.services.widgets import allow_origin
from leadcapture.web.devinbox import clock_moved

DEMO_EDITOR = "editor@leadcapture.example"
# The publisher the demo article stands in for: its masthead, and the sender, signature and footer of its emails.
SITE_NAME = "Beleggersweek"
SENDER = Address(SITE_NAME, addr_spec="nieuws@beleggersweek.example")
# Each article sits under its topics' URL rules (content/topics/) and names them in its leadcapture:topics tag.
ARTICLES = {
    "/daytraden/zo-begin-je-verstandig": {
        "lang": "nl",
        "widget_slug": "daytrading-report",
        "title": "Daytraden: zo begin je verstandig",
        "topics": "daytrading",
    },
    "/en/daytrading/how-to-start-sensibly": {
        "lang": "en",
        "widget_slug": "daytrading-report-en",
        "title": "Daytrading: how to start sensibly",
        "topics": "daytrading",
    },
}
# The site's front pages lead with the article in their language, so links to the site itself (the emails'
# footers) land on it too.
FRONT_PAGES = {"/": "/daytraden/zo-begin-je-verstandig", "/en": "/en/daytrading/how-to-start-sensibly"}


def run_demo(host: str, port: int, article_port: int) -> None:
    """Migrate, load content, then serve the app, the worker and the demo article until Ctrl-C."""
    base_url = f"http://{host}:{port}"
    article_origin = f"http://{host}:{article_port}"
    nl_article, en_article = (f"{article_origin}{FRONT_PAGES[path]}" for path in ("/", "/en"))
    app = demo_app(base_url, article_origin)
    password = _prepare(app, article_origin=article_origin)

    app_server = make_server(host, port, app, threaded=True)
    article_server = make_server(host, article_port, _article_app(app, base_url), threaded=True)
    scheduler = build_scheduler(app, BackgroundScheduler)
    threads = [
        threading.Thread(target=server.serve_forever, daemon=True) for server in (app_server, article_server)
    ]
    for thread in threads:
        thread.start()
    scheduler.start()
    click.echo(
        "\nleadcapture demo is running\n"
        f"  demo article (another origin):  {nl_article}   English: {en_article}\n"
        f"  its publisher sends the emails: {SENDER}\n"
        f"  dev inbox (every email sent):   {base_url}/dev/inbox/\n"
        f"  admin:                          {base_url}/admin/   {DEMO_EDITOR} / {password}\n"
        f"  database:                       {app.config['SQLALCHEMY_DATABASE_URI']}\n"
        "Press Ctrl-C to stop.\n"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopping…")
    finally:
        _stop(scheduler, app_server, article_server)


def demo_app(base_url: str, article_origin: str, override: dict[str, Any] | None = None) -> Flask:
    """The demo's app: the article's publisher sends its emails, whose footers link back to the article, and the
    worker looks for what fell due the moment the dev inbox moves the clock."""
    from leadcapture import create_app

    app = create_app(
        {
            "DEMO": True,
            "LEADCAPTURE_BASE_URL": base_url,
            "LEADCAPTURE_SITE_URL": article_origin,
            "LEADCAPTURE_MAIL_FROM": str(SENDER),
            **(override or {}),
        }
    )
    clock_moved.connect(_catch_up, sender=app)
    return app


def _catch_up(app: Flask, **_: Any) -> None:
    """Every sweep one pass, in order, as `worker --once` runs them: what the moved clock made due is written and
    sent before the dev inbox shows again. Harmless beside the scheduler's own ticks, as a second worker is."""
    run_once(app)


def _prepare(app: Flask, *, article_origin: str) -> str:
    """Migrate, load the content, let the article's origin embed the widgets, reset the demo editor."""
    settings = app.config["SETTINGS"]
    with app.app_context():
        upgrade()
        bundle = read_content(settings.content_dir or BUNDLED_CONTENT_DIR)
        if bundle.problems:
            raise click.ClickException("\n".join(str(problem) for problem in bundle.problems))
        for change in load_content(bundle):
            click.echo(f"content: {change}")
        for page in ARTICLES.values():
            allow_origin(page["widget_slug"], article_origin)
        password = secrets.token_urlsafe(12)
        user = db.session.scalar(select(User).where(User.email == DEMO_EDITOR))
        if user is None:
            accounts.create_user(DEMO_EDITOR, password, Role.ADMIN)
        else:
            accounts.set_password(user, password)
        db.session.commit()
    return password


def _article_app(app: Flask, base_url: str) -> Any:
    """A tiny WSGI app on another port, standing in for a publisher's site that embeds the widget."""

    def article(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        canonical = FRONT_PAGES.get(path, path)
        page = ARTICLES.get(canonical)
        if page is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found"]
        with app.app_context():
            body = render_template(
                "demo/article.html",
                base_url=base_url,
                site_name=SITE_NAME,
                canonical_url=app.config["SETTINGS"].site_url.rstrip("/") + canonical,
                **page,
            ).encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]

    return article


def _stop(scheduler: BackgroundScheduler, *servers: BaseWSGIServer) -> None:
    scheduler.shutdown(wait=True)
    for server in servers:
        server.shutdown()
        server.server_close()
