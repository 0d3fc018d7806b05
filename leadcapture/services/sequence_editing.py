"""The sequence editor's decisions: what a button does to the steps being edited, and creating a sequence.

The editor is one plain form: every button sends the whole form back. `read_action` says what a button asks
for, `apply_action` does it to the steps as typed (nothing is stored), and `create_sequence` stores a new
sequence, refusing a slug that is taken even when another editor takes it at the same moment.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from leadcapture.errors import DomainError, InvalidInput
from leadcapture.extensions import db
from leadcapture.models import Sequence
from leadcapture.services import editing
from leadcapture.services.content import Change
from leadcapture.services.editing import StepText

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_STEP_ACTION = re.compile(r"(remove|up|down|preview)-(\d{1,4})")

Verb = Literal["save", "add-step", "remove", "up", "down", "preview", "other"]


@dataclass(frozen=True, slots=True)
class Action:
    """A button of the editor: the verb, and the step it is about (remove, up, down, preview)."""

    verb: Verb
    index: int = -1


class SlugTaken(DomainError):
    """A new sequence was given the slug of one that exists (perhaps created a moment ago by someone else)."""

    def __init__(self, slug: str) -> None:
        super().__init__(f"a sequence with the slug {slug!r} exists already")
        self.slug = slug


def read_action(value: str, steps: int) -> Action:
    """The action a posted button names; InvalidInput for one about a step the form does not have."""
    if value == "save":
        return Action("save")
    if value == "add-step":
        return Action("add-step")
    match = _STEP_ACTION.fullmatch(value)
    if match is None:
        return Action("other")
    index = int(match.group(2))
    if not 0 <= index < steps:
        raise InvalidInput({"action": f"there is no step {index + 1}"})
    return Action(cast(Verb, match.group(1)), index)


def apply_action(action: Action, steps: list[_T], blank: Callable[[], _T]) -> None:
    """Add, remove or move a step in the list being edited; other actions leave it as it is."""
    if action.verb == "add-step":
        steps.append(blank())
    elif action.verb == "remove":
        del steps[action.index]
    elif action.verb in ("up", "down"):
        other = action.index - 1 if action.verb == "up" else action.index + 1
        if 0 <= other < len(steps):
            steps[action.index], steps[other] = steps[other], steps[action.index]


def slug_taken(slug: str) -> bool:
    """Whether a sequence, switched on or off, has this slug."""
    return db.session.scalar(select(Sequence.id).where(Sequence.slug == slug)) is not None


def create_sequence(document: dict[str, Any], steps: list[StepText]) -> list[Change]:
    """Store a new sequence; SlugTaken when its slug is in use. Flushes, never commits."""
    slug = document.get("slug")
    if isinstance(slug, str) and slug_taken(slug):
        raise SlugTaken(slug)
    try:
        return editing.save_sequence(document, steps, new=True)
    except (editing.AlreadyStored, IntegrityError):
        # Created by someone else between the look-up above and this insert: the unique slug decides.
        log.info("refused to create sequence %s: the slug was taken meanwhile", slug)
        raise SlugTaken(str(slug)) from None
