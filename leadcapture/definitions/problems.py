"""A problem found in content files: the file, as shown to the editor, and what is wrong in it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the content: the file (as shown to the editor) and what is wrong in it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"
