"""Widgets: the list, and one page to create or edit a widget, with its embed code and a live preview.

The preview is the real widget (/embed.js) rendering the saved definition on this page. The API serves a
widget's definition to the app's own origin as well as the widget's allowed origins, but takes submissions
only from the allowed ones; the preview's form also never sends (`data-preview`), so a preview cannot store
anyone.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField

from leadcapture.config import current as current_settings
from leadcapture.definitions.widgets import MAX_WIDGET_QUESTIONS, WIDGET_TEXTS
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES, translate
from leadcapture.models import Question, Report, Widget, WidgetQuestion, localized
from leadcapture.services import editing
from leadcapture.services.content import ContentConflict, ContentHasProblems
from leadcapture.services.editing import EditConflict
from leadcapture.services.widgets import forget_widget_views, sequences_wording
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required
from leadcapture.web.admin.content_forms import (
    MAX_ROWS,
    Problems,
    as_localized,
    flash_changes,
    list_edit,
    locale_name,
    localized_from,
    opened_version,
    problems_of,
    repeated,
    set_text,
)

TEXT_NAMES = ("prompt", *WIDGET_TEXTS)
TEXT_LABELS = {
    "prompt": "Prompt: what the widget offers, above the start button",
    "title": "Title",
    "start": "Start button",
    "submit": "Send button",
    "success": "Thank-you message after sending",
    "consent_report": "Consent box for the report",
    "consent_sequences": "Consent box for follow-up emails",
}


class WidgetForm(FlaskForm):  # type: ignore[misc]
    version = HiddenField()
    slug = StringField("Slug")
    locale = SelectField(
        "Language", choices=[SelectChoice(locale, locale_name(locale)) for locale in LOCALES]
    )
    report = SelectField("Report", choices=[], validate_choice=False)
    allowed_origins = TextAreaField("Allowed origins")
    ask_first_name = BooleanField("Ask for a first name (optional for the reader)")
    add_question = SelectField("Question to add", choices=[], validate_choice=False)


for _name in TEXT_NAMES:
    for _locale in LOCALES:
        setattr(WidgetForm, f"{_name}_{_locale}", StringField(locale_name(_locale)))


def embed_snippet(slug: str) -> str:
    base = current_app.config["SETTINGS"].base_url
    return f'<script async src="{base}/embed.js"></script><div data-leadcapture="{slug}"></div>'


@bp.get("/widgets/")
@editor_required
def widgets() -> str:
    rows = db.session.scalars(
        select(Widget)
        .options(
            selectinload(Widget.report),
            selectinload(Widget.widget_questions).selectinload(WidgetQuestion.question),
        )
        .order_by(Widget.slug)
    ).all()
    return render_template("admin/widgets/list.html", widgets=rows, locale_name=locale_name)


@bp.route("/widgets/new", methods=["GET", "POST"])
@editor_required
def new_widget() -> Response | str:
    return _edit(None)


@bp.route("/widgets/<slug>", methods=["GET", "POST"])
@editor_required
def edit_widget(slug: str) -> Response | str:
    widget = db.session.scalar(
        select(Widget)
        .where(Widget.slug == slug[:64])
        .options(selectinload(Widget.report), selectinload(Widget.widget_questions))
    )
    if widget is None:
        abort(404)
    return _edit(widget)


def _edit(widget: Widget | None) -> Response | str:
    form = WidgetForm()
    questions = {
        question.key: question for question in db.session.scalars(select(Question).order_by(Question.key))
    }
    reports = db.session.scalars(select(Report).order_by(Report.slug)).all()
    form.report.choices = [SelectChoice("", "Choose a report")] + [
        SelectChoice(report.slug, f"{report.slug}: {localized(report.title, 'en')}") for report in reports
    ]
    problems = Problems()
    unsaved = False
    if request.method != "POST":
        keys = _fill(form, widget)
    else:
        keys = repeated(request.form, "questions")
        action = request.form.get("action", "save")
        edit = list_edit(action)
        if edit is not None:
            edit.apply(keys)
            unsaved = True
        elif action == "add_question":
            chosen = form.add_question.data
            if chosen in questions and chosen not in keys and len(keys) < MAX_ROWS:
                keys.append(chosen)
            unsaved = True
        elif action == "save":
            document = _document(form, widget, keys)
            try:
                changes = editing.save_widget(document, version=opened_version(form.version.data))
            except (ContentHasProblems, ContentConflict, EditConflict) as exc:
                db.session.rollback()
                problems = problems_of(exc, {"questions": list(range(len(keys)))})
                if isinstance(exc, EditConflict):
                    form.version.data = str(exc.current or "")
            else:
                db.session.commit()
                forget_widget_views()
                flash_changes(changes)
                return redirect(url_for("admin.edit_widget", slug=document["slug"]))
        else:
            unsaved = True  # a button this page does not have: the page again, as sent
    form.add_question.choices = [
        SelectChoice(key, f"{key}: {localized(question.text, form.locale.data or 'en')}")
        for key, question in questions.items()
        if key not in keys
    ]
    return render_template(
        "admin/widgets/edit.html",
        form=form,
        widget=widget,
        keys=keys,
        questions=questions,
        problems=problems,
        text_problems=_text_problems(problems),
        unsaved=unsaved,
        locales=LOCALES,
        locale_name=locale_name,
        text_names=TEXT_NAMES,
        text_labels=TEXT_LABELS,
        defaults=_defaults(form, reports),
        max_questions=MAX_WIDGET_QUESTIONS,
        snippet=embed_snippet(widget.slug) if widget is not None else None,
    )


def _fill(form: WidgetForm, widget: Widget | None) -> list[str]:
    """Put the widget's document in the form; the question keys it asks, in order."""
    if widget is None:
        form.locale.data = LOCALES[0]
        form.report.data = ""
        return []
    document = editing.widget_document(widget)
    form.version.data = str(widget.version)
    form.slug.data = widget.slug
    form.locale.data = str(document.get("locale", widget.locale))
    form.report.data = str(document.get("report", widget.report.slug))
    form.allowed_origins.data = "\n".join(str(origin) for origin in document.get("allowed_origins") or [])
    form.ask_first_name.data = document.get("ask_first_name") is True
    texts: dict[str, Any] = {"prompt": document.get("prompt"), **(document.get("texts") or {})}
    for name in TEXT_NAMES:
        text = as_localized(texts.get(name))
        for locale in LOCALES:
            getattr(form, f"{name}_{locale}").data = text.get(locale, "")
    return [str(key) for key in document.get("questions") or []]


def _document(form: WidgetForm, widget: Widget | None, keys: list[str]) -> dict[str, Any]:
    """The widget as its content file would hold it."""
    slug = widget.slug if widget is not None else (form.slug.data or "").strip()
    origins = [line.strip() for line in (form.allowed_origins.data or "").splitlines() if line.strip()]
    document: dict[str, Any] = {
        "slug": slug,
        "report": form.report.data or "",
        "locale": form.locale.data,
        "allowed_origins": origins,
        "questions": keys,
    }
    if form.ask_first_name.data:
        document["ask_first_name"] = True
    set_text(document, "prompt", localized_from(request.form, "prompt"))
    texts = {name: text for name in WIDGET_TEXTS if (text := localized_from(request.form, name))}
    if texts:
        document["texts"] = texts
    return document


def _text_problems(problems: Problems) -> dict[str, list[str]]:
    """The problems of `texts`, per text name ('success.nl: must not be empty' goes with success)."""
    per_name: dict[str, list[str]] = {"prompt": problems.of("prompt")}
    named = problems.parts.get("texts", {})
    for message in problems.of("texts"):
        name = next((name for name, messages in named.items() if message in messages), "")
        per_name.setdefault(name if name in WIDGET_TEXTS else "texts", []).append(message)
    return per_name


def _defaults(form: WidgetForm, reports: Any) -> dict[str, dict[str, str]]:
    """What readers see where a text is left empty, per text name and locale (shown as placeholders)."""
    report = next((report for report in reports if report.slug == form.report.data), None)
    defaults: dict[str, dict[str, str]] = {}
    for name in WIDGET_TEXTS:
        defaults[name] = {}
        for locale in LOCALES:
            title = localized(report.title, locale) if report is not None else "…"
            if name == "title":
                defaults[name][locale] = title
            elif name == "consent_sequences":
                defaults[name][locale] = translate(locale, sequences_wording(current_settings()))
            else:
                defaults[name][locale] = translate(locale, f"widget.{name}", title=title)
    return defaults
