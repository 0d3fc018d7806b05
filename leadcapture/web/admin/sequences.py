"""Sequences in the admin: the list, the editor (audience rule builder, steps, previews), switching off.

The editor is one plain form that works without JavaScript: adding, removing, moving and previewing a step
are submit buttons that send the whole form back and show it again, unsaved. A small script only refreshes
the audience count while the rule is being edited (`audience_count`, read-only JSON).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from leadcapture.errors import InvalidInput, NotFound
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, QuestionKind, Sequence, localized
from leadcapture.services import editing
from leadcapture.services.audiences import count_audience, preview_step
from leadcapture.services.content import ContentHasProblems
from leadcapture.services.editing import EditConflict
from leadcapture.services.sequence_editing import SlugTaken, apply_action, create_sequence, read_action
from leadcapture.services.sequences import count_in_sequences
from leadcapture.web.admin import bp
from leadcapture.web.admin.auth import editor_required
from leadcapture.web.admin.content_forms import CHANGED_MEANWHILE, conflict_message, opened_version
from leadcapture.web.admin.sequence_forms import (
    LOCALE_NAMES,
    UNITS,
    Editor,
    SequenceForm,
    StepRow,
    describe_rule,
    document_from,
    locale_of,
    open_editor,
    place_problems,
    rule_from_form,
    steps_from_form,
)


def _questions() -> list[Question]:
    return list(
        db.session.scalars(select(Question).options(selectinload(Question.options)).order_by(Question.key))
    )


def _count(editor: Editor, locale: str | None, fresh_only: bool) -> None:
    try:
        editor.count = count_audience(editor.rule, locale, fresh_only)
    except InvalidInput as exc:
        editor.count_problem = "; ".join(exc.errors.values())


# --- views ----------------------------------------------------------------------------------------------


@bp.get("/sequences/")
@editor_required
def sequences() -> str:
    rows = db.session.scalars(
        select(Sequence).options(selectinload(Sequence.steps)).order_by(Sequence.active.desc(), Sequence.name)
    ).all()
    return render_template(
        "admin/sequences/list.html",
        sequences=rows,
        inside=count_in_sequences(),
        describe_rule=describe_rule,
    )


@bp.route("/sequences/new", methods=["GET", "POST"])
@editor_required
def new_sequence() -> Response | str | tuple[str, int]:
    return _edit(None)


@bp.route("/sequences/<slug>", methods=["GET", "POST"])
@editor_required
def edit_sequence(slug: str) -> Response | str | tuple[str, int]:
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    if sequence is None:
        abort(404)
    return _edit(sequence)


def _edit(sequence: Sequence | None) -> Response | str | tuple[str, int]:
    questions = _questions()
    if request.method != "POST":
        form = SequenceForm()
        editor = open_editor(form, sequence, questions)
        _count(editor, locale_of(form.locale.data), bool(form.fresh_only.data))
        return render_template("admin/sequences/edit.html", form=form, editor=editor, **_page())

    form = SequenceForm()
    editor = Editor(
        sequence, questions, rule_from_form(request.form, questions), steps_from_form(request.form)
    )
    _read_preview_fields(editor, questions)
    try:
        action = read_action(request.form.get("action", "save"), len(editor.steps))
    except InvalidInput:
        abort(400)
    valid = form.validate_on_submit()  # a priority that is a number (CSRFProtect checked the token)
    locale, fresh_only = locale_of(form.locale.data), bool(form.fresh_only.data)
    slug = sequence.slug if sequence is not None else (form.slug.data or "").strip()
    status = 200
    apply_action(action, editor.steps, StepRow)
    if action.verb == "preview":
        _preview(editor, action.index, form, slug)
    elif action.verb == "save" and valid:
        document, texts = document_from(form, slug, editor)
        try:
            if sequence is None:
                changes = create_sequence(document, texts)
            else:
                changes = editing.save_sequence(document, texts, version=opened_version(form.version.data))
        except SlugTaken as exc:
            editor.errors["slug"] = [str(exc)]
            status = 422
        except EditConflict as exc:
            db.session.rollback()
            editor.errors = {name: [CHANGED_MEANWHILE] for name in exc.fields}
            editor.general = [conflict_message("sequence")]
            form.version.data = str(exc.current or "")
            status = 409
        except ContentHasProblems as exc:
            place_problems(editor, exc.problems, [step.file for step in texts])
            status = 422
        else:
            db.session.commit()
            if changes:
                flash("Saved: " + "; ".join(str(change) for change in changes) + ".")
            else:
                flash("Nothing changed.")
            return redirect(url_for("admin.edit_sequence", slug=slug))
    elif action.verb == "save":
        status = 422
    _count(editor, locale, fresh_only)
    return render_template("admin/sequences/edit.html", form=form, editor=editor, **_page()), status


def _page() -> dict[str, Any]:
    return {"units": UNITS, "count_text": count_text, "locale_names": LOCALE_NAMES, "localized": localized}


def _read_preview_fields(editor: Editor, questions: list[Question]) -> None:
    data = request.form
    editor.preview_for = "subscriber" if data.get("preview-for") == "subscriber" else "answers"
    editor.preview_email = data.get("preview-email", "")[:254]
    editor.preview_first_name = data.get("preview-first_name", "")[:100]
    editor.preview_locale = data.get("preview-locale", "") if data.get("preview-locale") in LOCALES else "nl"
    for question in questions:
        chosen = [value for value in data.getlist(f"preview-answer-{question.key}") if value]
        if chosen:
            editor.preview_answers[question.key] = chosen


def _preview(editor: Editor, index: int, form: SequenceForm, slug: str) -> None:
    editor.preview_index = index
    step = editor.steps[index]
    kinds = {question.key: question.kind for question in editor.questions}
    answers: dict[str, str | list[str]] = {
        key: sorted(values) if kinds[key] is QuestionKind.MULTI else values[0]
        for key, values in editor.preview_answers.items()
    }
    # Only names the list (List-Id); never added to the session.
    name = " ".join((form.name.data or "").split()) or slug or "New sequence"
    listing = Sequence(slug=slug or "new-sequence", name=name[:200])
    locale = locale_of(form.locale.data) or editor.preview_locale
    try:
        if editor.preview_for == "subscriber":
            if not editor.preview_email.strip():
                editor.preview_problem = "Enter the email address of a subscriber to preview for."
                return
            editor.preview = preview_step(listing, step.subject, step.body, email=editor.preview_email)
        else:
            editor.preview = preview_step(
                listing,
                step.subject,
                step.body,
                answers=answers,
                first_name=editor.preview_first_name.strip() or None,
                locale=locale,
            )
    except InvalidInput as exc:
        editor.preview_problem = "; ".join(exc.errors.values())
    except NotFound as exc:
        editor.preview_problem = str(exc)


@bp.get("/sequences/audience-count")
@editor_required
def audience_count() -> Response | tuple[Response, int]:
    """The live count: how many subscribers the rule in the query string matches now."""
    rule = rule_from_form(request.args, _questions())
    try:
        count = count_audience(
            rule, locale_of(request.args.get("locale")), request.args.get("fresh_only") == "y"
        )
    except InvalidInput as exc:
        return jsonify({"errors": list(exc.errors.values())}), 422
    return jsonify({"count": count, "text": count_text(count)})


def count_text(count: int) -> str:
    return f"{count} subscriber{'' if count == 1 else 's'} match{'es' if count == 1 else ''} now"


@bp.route("/sequences/<slug>/switch-off", methods=["GET", "POST"])
@editor_required
def switch_off_sequence(slug: str) -> Response | str:
    sequence = db.session.scalar(select(Sequence).where(Sequence.slug == slug))
    if sequence is None:
        abort(404)
    if request.method == "POST":
        changes = editing.deactivate_sequence(slug)
        db.session.commit()
        flash(f"Switched off {sequence.name}." if changes else f"{sequence.name} was already switched off.")
        return redirect(url_for("admin.sequences"))
    inside = count_in_sequences(sequence.id).get(sequence.id, 0)
    return render_template("admin/sequences/deactivate.html", sequence=sequence, inside=inside)
