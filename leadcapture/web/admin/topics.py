"""Topics: the list (with a look-up of the topic a URL falls under), and one page to create or edit a topic.

A topic's URL rules are edited as lines of a text box, one rule per line; blank lines are left out, and a
problem with a rule is shown with its line number. A retired topic (its file was removed from the content
folder while interest in it was on record) opens with no rules: giving it some and saving brings it back.
"""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import HiddenField, SelectChoice, SelectField, StringField, TextAreaField

from leadcapture import urlrules
from leadcapture.definitions.topics import DEFAULT_HALF_LIFE_DAYS
from leadcapture.extensions import db
from leadcapture.i18n import LOCALES
from leadcapture.models import Question, Topic, localized
from leadcapture.services import editing
from leadcapture.services.content import ContentConflict, ContentHasProblems
from leadcapture.services.editing import AlreadyStored, EditConflict
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

# Far above the 100 rules a topic may have, low enough that a hostile form is cut short before it is read.
MAX_URL_LINES = 500


class TopicForm(FlaskForm):  # type: ignore[misc]
    version = HiddenField()
    key = StringField("Key")
    urls = TextAreaField("URL rules")
    half_life_days = StringField("Half-life (days)")
    question = SelectField("Question it is about", choices=[], validate_choice=False)


for _locale in LOCALES:
    setattr(TopicForm, f"name_{_locale}", StringField(locale_name(_locale)))


@bp.get("/topics/")
@editor_required
def topics() -> str:
    rows = db.session.scalars(select(Topic).options(selectinload(Topic.question)).order_by(Topic.key)).all()
    url = request.args.get("url", "").strip()[: urlrules.MAX_URL_LENGTH + 1]
    found: Topic | None = None
    if url:
        key = urlrules.topic_for_url(((topic.key, topic.urls) for topic in rows), url)
        found = next((topic for topic in rows if topic.key == key), None)
    return render_template("admin/topics/list.html", topics=rows, url=url, found=found)


@bp.route("/topics/new", methods=["GET", "POST"])
@editor_required
def new_topic() -> Response | str:
    return _edit(None)


@bp.route("/topics/<key>", methods=["GET", "POST"])
@editor_required
def edit_topic(key: str) -> Response | str:
    topic = db.session.scalar(
        select(Topic).where(Topic.key == key[:64]).options(selectinload(Topic.question))
    )
    if topic is None:
        abort(404)
    return _edit(topic)


def _edit(topic: Topic | None) -> Response | str:
    form = TopicForm()
    questions = db.session.scalars(select(Question).order_by(Question.key)).all()
    form.question.choices = [SelectChoice("", "None")] + [
        SelectChoice(question.key, f"{question.key}: {localized(question.text, 'en')}")
        for question in questions
    ]
    problems = Problems()
    if request.method != "POST":
        _fill(form, topic)
    elif request.form.get("action", "save") == "save":
        document, lines = _document(form, topic)
        try:
            changes = editing.save_topic(
                document, new=topic is None, version=opened_version(form.version.data)
            )
        except AlreadyStored as exc:
            db.session.rollback()
            message = f"A topic with the key {exc.key!r} exists already; open it from the list to edit it."
            problems = Problems(fields={"key": [message]})
        except (ContentHasProblems, ContentConflict, EditConflict) as exc:
            db.session.rollback()
            problems = problems_of(exc, {"urls": lines})
            if isinstance(exc, EditConflict):
                form.version.data = str(exc.current or "")
        else:
            db.session.commit()
            flash_changes(changes)
            return redirect(url_for("admin.edit_topic", key=document["key"]))
    return render_template(
        "admin/topics/edit.html",
        form=form,
        topic=topic,
        problems=problems,
        url_problems=_url_problems(problems),
        locales=LOCALES,
        default_half_life=DEFAULT_HALF_LIFE_DAYS,
    )


def _fill(form: TopicForm, topic: Topic | None) -> None:
    """Put the topic's document in the form."""
    if topic is None:
        form.half_life_days.data = str(DEFAULT_HALF_LIFE_DAYS)
        form.question.data = ""
        return
    document = editing.topic_document(topic)
    form.version.data = str(topic.version)
    form.key.data = topic.key
    name = as_localized(document.get("name"))
    for locale in LOCALES:
        getattr(form, f"name_{locale}").data = name.get(locale, "")
    form.urls.data = "\n".join(str(rule) for rule in document.get("urls") or [])
    form.half_life_days.data = str(document.get("half_life_days", DEFAULT_HALF_LIFE_DAYS))
    form.question.data = str(document.get("question") or "")


def _document(form: TopicForm, topic: Topic | None) -> tuple[dict[str, Any], list[int]]:
    """The topic as its content file would hold it, and the text box's line of each URL rule in it."""
    key = topic.key if topic is not None else (form.key.data or "").strip()
    document: dict[str, Any] = {"key": key}
    set_text(document, "name", localized_from(request.form, "name"))
    lines = (form.urls.data or "").splitlines()[:MAX_URL_LINES]
    numbers = [index for index, line in enumerate(lines) if line.strip()]
    document["urls"] = [lines[index].strip() for index in numbers]
    half_life = (form.half_life_days.data or "").strip()
    if half_life:  # left empty: the default; a whole number goes in as one, anything else as written
        document["half_life_days"] = (
            int(half_life) if half_life.isascii() and half_life.isdigit() and len(half_life) < 9 else half_life
        )
    if form.question.data:
        document["question"] = form.question.data
    return document, numbers


def _url_problems(problems: Problems) -> list[str]:
    """The problems of the URL rules as shown at the text box: a rule's own problems by its line."""
    shown = list(problems.of("urls"))
    for line, messages in sorted(problems.rows.get("urls", {}).items()):
        shown.extend(f"Line {line + 1}: {message}" for message in messages)
    return shown
