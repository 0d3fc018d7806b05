"""Report files: reports/<slug>.yaml and the file (or one per locale) readers download, checked byte by byte."""

from __future__ import annotations

import hashlib
import mimetypes
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from leadcapture.definitions import fields
from leadcapture.definitions.bundle import ReportDef, ReportFileDef
from leadcapture.definitions.fields import MAX_DESCRIPTION, MAX_TEXT, Checker, Invalid
from leadcapture.definitions.folder import FolderReader, unreadable
from leadcapture.i18n import LOCALES

MAX_REPORT_BYTES = 20 * 1024 * 1024

# A MimeTypes of Python's built-in table only, so a report's content type does not depend on the host's
# /etc/mime.types; the three formats the built-in table lacks are added by hand.
_MIME = mimetypes.MimeTypes()
_MIME.add_type("application/epub+zip", ".epub")
_MIME.add_type("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx")
_MIME.add_type("application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx")
REPORT_EXTENSIONS = ("pdf", "epub", "zip", "png", "jpg", "jpeg", "mp3", "mp4", "xlsx", "docx")
# Leading bytes a file of that type always starts with; a mismatch is almost always a wrong or broken file.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "epub": (b"PK\x03\x04",),
    "xlsx": (b"PK\x03\x04",),
    "docx": (b"PK\x03\x04",),
}
_FILE_RULE = (
    "give a path relative to the reports folder (files/guide.pdf) or a mapping of locale to path "
    "({nl: files/gids.pdf, en: files/guide.pdf})"
)


def parse_report(reader: FolderReader, data: dict[str, Any], checker: Checker) -> ReportDef | None:
    fields.check_fields(data, checker, ("slug", "title", "description", "file"))
    slug = checker.check(lambda: fields.slug(data, "slug"))
    title = checker.check(lambda: fields.text(data, "title", MAX_TEXT))
    description = checker.check(
        lambda: fields.text(data, "description", MAX_DESCRIPTION) if "description" in data else {}
    )
    files = _report_files(reader, data, checker)
    if slug is None or title is None or description is None or files is None or checker.errors:
        return None
    return ReportDef(slug=slug, title=title, description=description, files=files, source="")


def _report_files(
    reader: FolderReader, data: dict[str, Any], checker: Checker
) -> tuple[ReportFileDef, ...] | None:
    """`file:` as one path for every locale, or a mapping of locale to path; every problem recorded."""
    if "file" not in data:
        checker.add("file", "is required")
        return None
    given = data["file"]
    if isinstance(given, str):
        found = checker.check(lambda: _report_file(reader, given, "file", None))
        return None if found is None else (found,)
    if not isinstance(given, dict):
        checker.add("file", f"{_FILE_RULE}, not {fields.kind_of(given)}")
        return None
    if not given:
        checker.add("file", f"is empty: {_FILE_RULE}")
        return None
    files: list[ReportFileDef] = []
    for locale, path in given.items():
        if not isinstance(locale, str) or locale not in LOCALES:
            checker.add("file", f"unknown locale {fields.show(locale)} (expected {', '.join(LOCALES)})")
            continue
        if not isinstance(path, str):
            checker.add(
                f"file.{locale}", f"must be a path such as files/guide.pdf, not {fields.kind_of(path)}"
            )
            continue
        found = checker.check(partial(_report_file, reader, path, f"file.{locale}", locale))
        if found is not None:
            files.append(found)
    return tuple(files) if len(files) == len(given) else None


def _report_file(reader: FolderReader, given: str, where: str, locale: str | None) -> ReportFileDef:
    if not given.strip() or "\0" in given or len(given) > 255:
        raise Invalid(where, "must be a path relative to the reports folder, e.g. files/guide.pdf")
    relative = PurePosixPath(given)
    if relative.is_absolute() or "\\" in given:
        raise Invalid(where, f"{given!r} must be a relative path such as files/guide.pdf")
    if ".." in relative.parts:
        raise Invalid(where, f"{given!r} must not contain '..'")
    extension = relative.suffix.lower().lstrip(".")
    if extension not in REPORT_EXTENSIONS:
        allowed = ", ".join(REPORT_EXTENSIONS)
        raise Invalid(where, f"{given!r} has an unsupported file type (allowed: {allowed})")
    content_type = _MIME.guess_type(relative.name)[0]
    if content_type is None:  # pragma: no cover - every allowed extension is in _MIME
        raise Invalid(where, f"{given!r} has no known content type")
    path = reader.root / "reports" / relative
    shown = reader.shown(path)
    try:
        size, sha256, head = _examine(reader, path, shown, where)
    except (OSError, RuntimeError) as exc:  # unreadable, or a symbolic link loop
        raise Invalid(where, f"{shown} {unreadable(exc)}") from None
    magic = _MAGIC.get(extension)
    if magic is not None and not head.startswith(magic):
        raise Invalid(where, f"{shown} is not a {extension.upper()} file (it does not start like one)")
    return ReportFileDef(
        locale=locale,
        file=reader.resolved(path),
        shown=shown,
        filename=relative.name,
        content_type=content_type,
        size=size,
        sha256=sha256,
        held=reader.held(path),
    )


def _examine(reader: FolderReader, path: Path, shown: str, where: str) -> tuple[int, str, bytes]:
    """Size, SHA-256 and first bytes of a report file that is inside the reports folder."""
    if not reader.within(path, reader.resolved(reader.root / "reports")):
        raise Invalid(where, f"{shown} is a link to outside the reports folder")
    if not reader.exists(path):
        raise Invalid(where, f"{shown} does not exist")
    if not reader.is_file(path):
        raise Invalid(where, f"{shown} is not a regular file")
    size = reader.size(path)
    if size > MAX_REPORT_BYTES:
        limit = MAX_REPORT_BYTES // (1024 * 1024)
        raise Invalid(where, f"{shown} is {size / (1024 * 1024):.1f} MiB; the limit is {limit} MiB")
    if size == 0:
        raise Invalid(where, f"{shown} is empty")
    digest = hashlib.sha256()
    with reader.open(path) as stream:
        head = stream.read(16)
        digest.update(head)
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
    return size, digest.hexdigest(), head
