"""The pages behind the links in emails. A GET only shows; the button on it POSTs."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, abort, render_template, request, send_file

from leadcapture import clock
from leadcapture.errors import InvalidInput, TokenExpired, TokenInvalid
from leadcapture.extensions import csrf, db
from leadcapture.i18n import normalize_locale, translate
from leadcapture.models import QuestionKind, localized
from leadcapture.services import insights, refresh, subscribers
from leadcapture.services import preferences as preferences_service
from leadcapture.services.answers import answer_states, answer_values
from leadcapture.services.emails import answer_choices
from leadcapture.tokens import Purpose, make_token
from leadcapture.web.errors import protect_page

bp = Blueprint("pages", __name__)
MAX_FORM_BODY = 16 * 1024
# The signed token in the URL is the credential; there is no session to forge requests against.
csrf.exempt(bp)


def init_app(app: Flask) -> None:
    pass


@bp.before_request
def _limit_body() -> None:
    """The forms on these pages send a button's name or a few answers; anything larger is not from them."""
    request.max_content_length = MAX_FORM_BODY
    request.max_form_memory_size = MAX_FORM_BODY
    if (request.content_length or 0) > MAX_FORM_BODY:
        abort(413)  # also where the view would not read the body


@bp.after_request
def _private(response: Response) -> Response:
    protect_page(response)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _page(locale: str, status: int = 200, *, action: str | None = None, **texts: str) -> tuple[str, int]:
    return render_template("subscriber/page.html", locale=locale, action=action, **texts), status


def _browser_locale() -> str:
    return normalize_locale(request.accept_languages.best_match(["nl", "en"]))


def invalid_link_page() -> tuple[str, int]:
    """The page for a link from an email that does not work (tampered, unknown, or leading nowhere)."""
    locale = _browser_locale()
    t = translate
    return _page(locale, 400, title=t(locale, "page.invalid.title"), text=t(locale, "page.invalid.text"))


def _guarded(view: Callable[[str], Any]) -> Callable[[str], Any]:
    """Show the friendly 'link does not work' page for tampered or unknown tokens."""

    def wrapper(token: str) -> Any:
        try:
            return view(token)
        except TokenInvalid:
            db.session.rollback()
            return invalid_link_page()

    wrapper.__name__ = view.__name__
    return wrapper


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@_guarded
def confirm(token: str) -> tuple[str, int]:
    try:
        target = (
            subscribers.confirm_subscriber(token)
            if request.method == "POST"
            else subscribers.confirmation_target(token)
        )
    except TokenExpired:
        locale = _browser_locale()
        return _page(
            locale,
            410,
            title=translate(locale, "page.expired.title"),
            text=translate(locale, "page.expired_confirm.text"),
        )
    locale = target.subscriber.locale
    title = localized(target.submission.report.title, locale)
    if request.method == "POST":
        db.session.commit()
        return _page(
            locale,
            title=translate(locale, "page.confirmed.title"),
            text=translate(locale, "page.confirmed.text", title=title),
        )
    return _page(
        locale,
        action=translate(locale, "page.confirm.button"),
        title=translate(locale, "page.confirm.title"),
        text=translate(locale, "page.confirm.text", title=title),
    )


@bp.route("/download/<token>", methods=["GET", "POST"])
@_guarded
def download(token: str) -> Any:
    """GET and HEAD show the report with a button; its POST hands out the file in the reader's language and
    is what may count as their download (mail scanners open every link as the email arrives)."""
    try:
        download = subscribers.download_target(token)
    except TokenExpired:
        return _expired_download(token)
    file = download.file
    if request.method != "POST":
        locale = download.target.subscriber.locale
        return _page(
            locale,
            action=translate(locale, "page.download.button"),
            title=translate(locale, "page.download.title", title=localized(download.report.title, locale)),
            text=translate(locale, "page.download.text", filename=file.filename),
        )
    response = send_file(
        io.BytesIO(file.data),
        mimetype=file.content_type,
        as_attachment=True,
        download_name=file.filename,
        max_age=0,
    )
    insights.record_download(
        download.target.submission, user_agent=request.headers.get("User-Agent", ""), at=clock.now()
    )
    db.session.commit()
    return response


def _expired_download(token: str) -> tuple[str, int]:
    target = subscribers.expired_download_target(token)
    locale = target.subscriber.locale
    title = localized(target.submission.report.title, locale)
    if request.method == "POST":
        subscribers.renew_download_link(token)
        db.session.commit()
        return _page(
            locale,
            title=translate(locale, "page.download_renewed.title"),
            text=translate(locale, "page.download_renewed.text"),
        )
    return _page(
        locale,
        410,
        action=translate(locale, "page.download_expired.button"),
        title=translate(locale, "page.expired.title"),
        text=translate(locale, "page.download_expired.text", title=title),
    )


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@_guarded
def unsubscribe(token: str) -> tuple[str, int]:
    """GET and HEAD (link scanners send both) show the button. Only a POST unsubscribes, from the button or
    as RFC 8058's one-click POST from a mail client: no cookie, no CSRF token, no redirect, the same answer
    however often it comes."""
    if request.method != "POST":
        subscriber = subscribers.unsubscribe_target(token)
        locale = subscriber.locale
        return _page(
            locale,
            action=translate(locale, "page.unsubscribe.button"),
            title=translate(locale, "page.unsubscribe.title"),
            text=translate(locale, "page.unsubscribe.text", email=subscriber.email),
        )
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    subscriber = subscribers.unsubscribe(token, one_click=one_click)
    db.session.commit()
    locale = subscriber.locale
    return _page(
        locale,
        title=translate(locale, "page.unsubscribed.title"),
        text=translate(locale, "page.unsubscribed.text", email=subscriber.email),
    )


@bp.route("/preferences/<token>", methods=["GET", "POST"])
@_guarded
def preferences(token: str) -> tuple[str, int]:
    """GET shows every answer and the current sequences; POST records changed answers and moves sequences.

    `?change=` (the link in an email about answers given under the address) also shows those answers, and
    its button applies them.
    """
    subscriber = preferences_service.preferences_target(token)
    locale = subscriber.locale
    status, notice = 200, None
    action = request.form.get("action")
    change_token = request.args.get("change")
    change = preferences_service.change_target(subscriber, change_token) if change_token else None
    if request.method == "POST" and action == "apply_change" and change_token:
        changed = preferences_service.apply_change(subscriber, change_token)
        db.session.commit()
        change = None
        notice = translate(locale, "page.preferences.saved" if changed else "page.preferences.unchanged")
    elif request.method == "POST" and action in ("pause", "resume"):
        if action == "pause":
            preferences_service.pause_marketing(subscriber)
        else:
            preferences_service.resume_marketing(subscriber)
        db.session.commit()
        notice = translate(locale, f"page.preferences.{action}d")
    elif request.method == "POST":
        form = {key: request.form.getlist(key) for key in request.form if key.startswith("q:")}
        try:
            changed = preferences_service.update_answers(
                subscriber,
                {key.removeprefix("q:"): values for key, values in form.items()},
                first_name=request.form.get("first_name"),
            )
        except InvalidInput:
            db.session.rollback()
            status, notice = 400, translate(locale, "page.preferences.invalid")
        else:
            db.session.commit()
            notice = translate(locale, "page.preferences.saved" if changed else "page.preferences.unchanged")
    view = preferences_service.describe_preferences(subscriber)
    unsubscribe_path = "/unsubscribe/" + make_token(Purpose.UNSUBSCRIBE, {"s": subscriber.id})
    return render_template(
        "subscriber/preferences.html",
        locale=locale,
        now=clock.now(),
        view=view,
        change=change,
        notice=notice,
        status_error=status == 400,
        unsubscribe_path=unsubscribe_path,
        t=lambda key, **params: translate(locale, key, **params),
    ), status


@bp.route("/answer/<token>", methods=["GET", "POST"])
@_guarded
def answer(token: str) -> tuple[str, int]:
    """GET shows the answer the link stands for with one button (mail scanners open every link); only the
    POST records it, and then offers the next stale question, if there is one."""
    try:
        if request.method == "POST":
            target = preferences_service.record_answer_from_email(token)
            db.session.commit()
        else:
            target = preferences_service.answer_link_target(token)
    except TokenExpired:
        db.session.rollback()
        return _expired_answer(token)
    subscriber, question = target.subscriber, target.question
    locale = subscriber.locale
    states = answer_states(subscriber.id)
    chosen = answer_values(target.value)
    context: dict[str, Any] = {
        "locale": locale,
        "t": lambda key, **params: translate(locale, key, **params),
        "question_text": localized(question.text, locale),
        "chosen": [localized(o.label, locale) for o in question.active_options if o.value in chosen],
    }
    if request.method != "POST":
        context["others"] = [
            choice
            for choice in answer_choices(subscriber, question, target.value)
            if not choice["current"] and question.kind is not QuestionKind.MULTI
        ]
        return render_template("subscriber/answer.html", confirm=True, **context), 200
    following = refresh.stale_questions(states, clock.now())
    if following:
        after = following[0]
        state = states[after.key]
        context["next_text"] = localized(after.text, locale)
        context["next_choices"] = answer_choices(subscriber, after, state.value)
    return render_template("subscriber/answer.html", confirm=False, **context), 200


def _expired_answer(token: str) -> tuple[str, int]:
    subscriber = preferences_service.expired_answer_target(token)
    locale = subscriber.locale
    return _page(
        locale,
        410,
        title=translate(locale, "page.expired.title"),
        text=translate(locale, "page.expired_answer.text"),
        link_url="/preferences/" + make_token(Purpose.PREFERENCES, {"s": subscriber.id}),
        link_text=translate(locale, "page.expired_answer.link"),
    )
