"""A problem found in content files: the file, as shown to the editor, where in it, and what is wrong."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Where in a file's mapping a problem is: ('options', 2, 'value') is options[2].value, () the file as a whole.
FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the content: the file (as shown to the editor) and what is wrong in it.

    `message` is what `content check` prints after the path (it names the field and line for people);
    `field`, `line` and `code` say the same for programs: the admin places a problem by them, never by its
    wording, so a message may be reworded freely. `code` names the rule broken and does not change.
    """

    path: str
    message: str
    field: FieldPath = ()
    line: int | None = None  # in the file, where known
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def field_path_text(field: FieldPath) -> str:
    """A field path as messages write it: ('options', 2, 'value') → 'options[2].value'."""
    text = ""
    for part in field:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def field_path(where: str) -> FieldPath:
    """The field path of one written as messages write it: 'options[2].value' → ('options', 2, 'value')."""
    return tuple(
        int(part[1:-1]) if part.startswith("[") else part
        for part in re.findall(r"\[[0-9]+\]|[^.\[\]]+", where)
    )
