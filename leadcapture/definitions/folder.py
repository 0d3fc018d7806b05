"""Reading the files of a content folder: in name order, never through a link out of it, size-capped, UTF-8.

Each problem is recorded against the file as the editor sees it ('content/widgets/x.yaml'), never raised.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

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

    # The file system, in the few operations the checks need; `MemoryReader` answers them from memory.

    def entries(self, folder: Path) -> list[Path]:
        return sorted(folder.iterdir())

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def exists(self, path: Path) -> bool:
        return path.exists()

    def is_link(self, path: Path) -> bool:
        return path.is_symlink()

    def resolved(self, path: Path) -> Path:
        return path.resolve()

    def within(self, path: Path, folder: Path) -> bool:
        """Whether `path`, links followed, is inside `folder` (given resolved)."""
        return inside(path.resolve(), folder)

    def open(self, path: Path) -> BinaryIO:
        return path.open("rb")

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def parsed(self, path: Path) -> dict[str, Any] | None:
        """The mapping a YAML file holds, when it is known without reading it."""
        return None

    def held(self, path: Path) -> bytes | None:
        """A report file's bytes, when they are not read from disk at loading."""
        return None

    def checked_step(self, path: Path) -> tuple[str, str] | None:
        """A step's subject and body, when it was checked before (a step's checks depend on it alone)."""
        return None

    def documents(self, section: str) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """(shown path, top-level mapping) for every `*.yaml` file of a section, in name order.

        The mapping is None for a file that could not be read as one; its problem is recorded already.
        """
        folder = self.root / section
        if not self.is_dir(folder):
            return
        try:
            paths = self.entries(folder)
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
            parsed = self.parsed(path)
            if parsed is not None:
                return parsed
            return _mapping(parse_document(self.read_text(path, MAX_YAML_BYTES)), "the top level")
        except Invalid as exc:
            self.problems.append(exc.problem(shown))
        except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
            self.problems.append(Problem(shown, unreadable(exc)))
        return None

    def read_text(self, path: Path, limit: int) -> str:
        """A UTF-8 file inside the content directory, read no further than `limit` bytes."""
        if not self.within(path, self.root):
            raise Invalid("", "is a link to outside the content directory")
        if not self.is_file(path):
            raise Invalid("", "is not a regular file")
        with self.open(path) as stream:
            raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise Invalid("", f"is larger than {limit // 1024} KiB")
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise Invalid("", f"line {line}: not valid UTF-8 (byte {exc.start})", line=line) from None


# A file of a content directory held in memory: its bytes; or, for a definition checked when it was stored,
# the mapping its YAML holds, or a step's (subject, body): each needs no second reading.
MemoryFile = bytes | dict[str, Any] | tuple[str, str]


@dataclass
class MemoryReader(FolderReader):
    """A content directory held in memory: relative POSIX path → what `MemoryFile` says."""

    files: dict[str, MemoryFile] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)  # folder → the names in it

    def __post_init__(self) -> None:
        for name in self.files:
            path = PurePosixPath(name)
            while str(path.parent) != ".":
                self.children.setdefault(str(path.parent), set()).add(path.name)
                path = path.parent

    def _name(self, path: Path) -> str:
        return str(PurePosixPath(*path.relative_to(self.root).parts))

    def entries(self, folder: Path) -> list[Path]:
        return [folder / name for name in sorted(self.children.get(self._name(folder), ()))]

    def is_dir(self, path: Path) -> bool:
        return self._name(path) in self.children

    def is_file(self, path: Path) -> bool:
        return self._name(path) in self.files

    def exists(self, path: Path) -> bool:
        return self.is_file(path) or self.is_dir(path)

    def is_link(self, path: Path) -> bool:
        return False

    def resolved(self, path: Path) -> Path:
        return path

    def within(self, path: Path, folder: Path) -> bool:
        return inside(path, folder)

    def open(self, path: Path) -> BinaryIO:
        data = self.files[self._name(path)]
        return io.BytesIO(data if isinstance(data, bytes) else b"")

    def size(self, path: Path) -> int:
        data = self.files[self._name(path)]
        return len(data) if isinstance(data, bytes) else 0

    def parsed(self, path: Path) -> dict[str, Any] | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, dict) else None

    def held(self, path: Path) -> bytes | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, bytes) else None

    def checked_step(self, path: Path) -> tuple[str, str] | None:
        data = self.files.get(self._name(path))
        return data if isinstance(data, tuple) else None


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
