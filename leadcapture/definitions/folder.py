"""Reading the files of a content folder: in name order, never through a link out of it, size-capped, UTF-8.

Each problem is recorded against the file as the editor sees it ('content/widgets/x.yaml'), never raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from leadcapture.definitions import fields
from leadcapture.definitions.fields import Invalid
from leadcapture.definitions.problems import Problem
from leadcapture.definitions.yaml_reader import parse_document

MAX_YAML_BYTES = 256 * 1024


@dataclass
class FolderReader:
    """One content folder's files, and the problems found reading them."""

    root: Path
    label: str
    problems: list[Problem] = field(default_factory=list)

    def shown(self, path: Path) -> str:
        """How a path inside the content directory appears in problems: 'content/widgets/x.yaml'."""
        return str(PurePosixPath(self.label, *path.relative_to(self.root).parts))

    def documents(self, section: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(shown path, top-level mapping) for every `*.yaml` file of a section, in name order.

        The mapping is None for a file that could not be read as one; its problem is recorded already.
        """
        folder = self.root / section
        if not folder.is_dir():
            return
        try:
            paths = sorted(folder.iterdir())
        except OSError as exc:
            self.problems.append(Problem(self.shown(folder), unreadable(exc)))
            return
        for path in paths:
            if path.name.startswith(".") or path.suffix not in (".yaml", ".yml"):
                continue  # editor backups, README files, the reports' files/ folder...
            shown = self.shown(path)
            if path.suffix == ".yml":
                self.problems.append(Problem(shown, "rename to .yaml: only .yaml files are read"))
                continue
            yield shown, self.document(path, shown)

    def document(self, path: Path, shown: str) -> dict[str, Any] | None:
        """The top-level mapping of one YAML file, or None with its problem recorded."""
        try:
            return _mapping(parse_document(self.read_text(path, MAX_YAML_BYTES)), "the top level")
        except Invalid as exc:
            self.problems.append(Problem(shown, str(exc)))
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            self.problems.append(Problem(shown, unreadable(exc)))
        return None

    def read_text(self, path: Path, limit: int) -> str:
        """A UTF-8 file inside the content directory, read no further than `limit` bytes."""
        if not inside(path.resolve(), self.root):
            raise Invalid("", "is a link to outside the content directory")
        if not path.is_file():
            raise Invalid("", "is not a regular file")
        with path.open("rb") as stream:
            raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise Invalid("", f"is larger than {limit // 1024} KiB")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise Invalid("", f"line {line}: not valid UTF-8 (byte {exc.start})") from None


def _mapping(data: Any, what: str) -> dict[str, Any]:
    if data is None:
        raise Invalid("", "is empty")
    if not isinstance(data, dict):
        raise Invalid("", f"{what} must be a mapping of fields, not {fields.kind_of(data)}")
    return data


def unreadable(exc: OSError | RuntimeError) -> str:
    if isinstance(exc, RuntimeError):  # what Path.resolve() raises for a symbolic link loop
        return "is a symbolic link loop"
    return f"cannot be read: {exc.strerror or exc}"


def inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
