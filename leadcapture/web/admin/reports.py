"""Reports: the list, and one page to create or edit a report's texts and upload its files.

A report has one file for every language, or one per language: the page replaces either, adds a language's
file, or removes one. Each file goes through the same checks as a file under content/reports/ (allowed
types, what it starts with, the size limit), so a wrong or oversized upload is refused with the reason and
nothing is stored. A body too large to read at all (over the app's request limit) gets the same page with the
limit named.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms import BooleanField, FileField, HiddenField, StringField, TextAreaField

from leadcapture.definitions.reports import MAX_REPORT_BYTES, REPORT_EXTENSIONS
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Report
from leadcapture.services import editing
from leadcapture.services.content import ContentConflict, ContentHasProblems
from leadcapture.services.editing import EditConflict
from leadcapture.services.widgets import forget_widget_views
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required
from leadcapture.web.admin.content_forms import (
    Problems,
    as_localized,
    flash_changes,
    locale_name,
    localized_from,
    opened_version,
    problems_of,
    set_text,
)

ACCEPT = ",".join("." + extension for extension in REPORT_EXTENSIONS)


class ReportForm(FlaskForm):  # type: ignore[misc]
    version = HiddenField()
    slug = StringField("Slug")
    file = FileField("One file for every language")


for _locale in LOCALES:
    setattr(ReportForm, f"title_{_locale}", StringField(locale_name(_locale)))
    setattr(ReportForm, f"description_{_locale}", TextAreaField(locale_name(_locale)))
    setattr(ReportForm, f"file_{_locale}", FileField(f"{locale_name(_locale)} file"))
    setattr(ReportForm, f"remove_{_locale}", BooleanField(f"Remove the {locale_name(_locale)} file"))


def human_size(size: int) -> str:
    """1536 → '1.5 KiB'."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f}".removesuffix(".0") + " KiB"
    return f"{size / (1024 * 1024):.1f}".removesuffix(".0") + " MiB"


LIMITS = (
    f"{', '.join(extension.upper() for extension in REPORT_EXTENSIONS)}; "
    f"at most {human_size(MAX_REPORT_BYTES)}."
)


@bp.get("/reports/")
@editor_required
def reports() -> str:
    rows = db.session.scalars(select(Report).order_by(Report.slug).options(selectinload(Report.files))).all()
    return render_template("admin/reports/list.html", reports=rows, human_size=human_size, language=language)


@bp.route("/reports/new", methods=["GET", "POST"])
@editor_required
def new_report() -> Response | str:
    return _edit(None)


@bp.route("/reports/<slug>", methods=["GET", "POST"])
@editor_required
def edit_report(slug: str) -> Response | str:
    return _edit(_report(slug))


@bp.get("/reports/<slug>/file")
@editor_required
def report_file(slug: str) -> Response:
    """One of the report's current files, as readers get it: `?locale=` names a language's own file."""
    locale = request.args.get("locale")
    file = next((file for file in _report(slug).files if file.locale == locale), None)
    if file is None:
        abort(404)
    response = Response(file.data, mimetype=file.content_type)
    response.headers.set("Content-Disposition", "attachment", filename=file.filename)
    return response


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc: RequestEntityTooLarge) -> tuple[str, int]:
    """An upload over the app's request limit: the form again, saying so (the body was never read)."""
    if request.endpoint not in ("admin.new_report", "admin.edit_report"):
        message = "What was sent is too large to read. Nothing was saved."
        return render_template("admin/reports/too_large.html", message=message), 413
    message = f"The file is too large: the limit is {human_size(MAX_REPORT_BYTES)}. Nothing was saved."
    slug = (request.view_args or {}).get("slug")
    report = db.session.scalar(select(Report).where(Report.slug == str(slug)[:64])) if slug else None
    form = ReportForm(formdata=None)
    _fill(form, report)
    return _page(form, report, Problems(fields={"file": [message]})), 413


def _report(slug: str) -> Report:
    report = db.session.scalar(select(Report).where(Report.slug == slug[:64]))
    if report is None:
        abort(404)
    return report


def _edit(report: Report | None) -> Response | str:
    form = ReportForm()
    if request.method != "POST":
        _fill(form, report)
        return _page(form, report, Problems())
    document = _document(form, report)
    uploads: dict[str | None, editing.Upload] = {}
    for locale, name in ((None, "file"), *((locale, f"file_{locale}") for locale in LOCALES)):
        upload = request.files.get(name)
        if upload and upload.filename:
            uploads[locale] = editing.Upload(filename=upload.filename, data=upload.read())
    remove = [locale for locale in LOCALES if request.form.get(f"remove_{locale}")]
    try:
        changes = editing.save_report(document, uploads, remove, version=opened_version(form.version.data))
    except (ContentHasProblems, ContentConflict, EditConflict) as exc:
        db.session.rollback()
        if isinstance(exc, EditConflict):
            form.version.data = str(exc.current or "")
        return _page(form, report, problems_of(exc))
    db.session.commit()
    forget_widget_views()  # the widgets that show it
    flash_changes(changes)
    return redirect(url_for("admin.edit_report", slug=document["slug"]))


def _page(form: ReportForm, report: Report | None, problems: Problems) -> str:
    return render_template(
        "admin/reports/edit.html",
        form=form,
        report=report,
        problems=problems,
        locales=LOCALES,
        accept=ACCEPT,
        limits=LIMITS,
        human_size=human_size,
        language=language,
    )


def language(locale: str | None) -> str:
    """How a file's locale is shown: 'Dutch (nl)', or 'Every language' for the one file for all."""
    return "Every language" if locale is None else locale_name(locale)


def _fill(form: ReportForm, report: Report | None) -> None:
    if report is None:
        return
    document = editing.report_document(report)
    form.version.data = str(report.version)
    form.slug.data = report.slug
    title = as_localized(document.get("title"))
    description = as_localized(document.get("description"))
    for locale in LOCALES:
        getattr(form, f"title_{locale}").data = title.get(locale, "")
        getattr(form, f"description_{locale}").data = description.get(locale, "")


def _document(form: ReportForm, report: Report | None) -> dict[str, Any]:
    """The report as its content file would hold it; the file stays as it is unless one is uploaded."""
    document: dict[str, Any] = (
        editing.report_document(report) if report is not None else {"slug": (form.slug.data or "").strip()}
    )
    set_text(document, "title", localized_from(request.form, "title"))
    set_text(document, "description", localized_from(request.form, "description"))
    return document
