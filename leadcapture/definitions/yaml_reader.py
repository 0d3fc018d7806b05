"""The hardened YAML reader: one document of plain types, YAML 1.2, refused if hostile; and front matter.

Every way a text can fail becomes one `Invalid` naming the line, so a content check lists it like any other
problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import Scanner, ScannerError

from leadcapture.definitions import fields
from leadcapture.definitions.fields import Invalid

# Hostile YAML: aliases let a small file expand to billions of values (the "billion laughs"), and deep
# nesting exhausts the recursive composer. Content files need neither, so both are capped well above any
# honest use; the expanded size is counted while composing, before anything is built from it.
MAX_NESTING = 32
MAX_ALIASES = 100
MAX_VALUES = 10_000


def parse_document(text: str) -> Any:
    """`_parse_yaml`, with every way a text can fail as one `Invalid` naming the line."""
    try:
        return _parse_yaml(text)
    except MarkedYAMLError as exc:
        raise Invalid("", _yaml_error(exc)) from None
    except ReaderError as exc:  # a character YAML does not allow, e.g. a raw control character
        raise Invalid("", _reader_error(text, exc)) from None
    except YAMLError as exc:
        raise Invalid("", "not valid YAML: " + " ".join(str(exc).split())) from None


@dataclass(frozen=True)
class FrontMatter:
    """A Markdown file's front matter, read as YAML, and its body, with where each is in the file."""

    fields: dict[str, Any]
    # The line of each field as written, for messages: the safe loader keeps no positions.
    field_lines: dict[str, int]
    body: str  # without the blank lines before it and the whitespace after it
    body_line: int  # the file's line number of the body's first line
    closing_line: int  # the line number of the --- that closes the front matter


def read_front_matter(text: str, *, needs: str) -> FrontMatter:
    """The fields between two `---` lines and the Markdown after them; `Invalid` if they cannot be read.

    `needs` names the fields for messages, e.g. "subject: …".
    """
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].rstrip() != "---":
        shape = f"front matter: a line ---, then {needs}, then a line ---, then the Markdown body"
        raise Invalid("", f"line 1: must start with {shape}", line=1, code="front-matter")
    close = next((index for index in range(1, len(lines)) if lines[index].rstrip() == "---"), None)
    if close is None:
        raise Invalid("", "line 1: the front matter has no closing --- line", line=1, code="front-matter")
    # Parsed with its opening --- (a YAML document marker), so YAML's line numbers are the file's.
    front = parse_document("\n".join(lines[:close]) + "\n")
    if front is None:
        raise Invalid("", f"line 2: the front matter is empty; it needs {needs}", line=2, code="front-matter")
    if not isinstance(front, dict):
        message = f"line 2: the front matter must be a mapping of fields, not {fields.kind_of(front)}"
        raise Invalid("", message, line=2, code="front-matter")
    field_lines: dict[str, int] = {}
    for number, line in enumerate(lines[1:close], start=2):
        name, colon, _ = line.partition(":")
        if colon and name and name == name.strip():
            field_lines.setdefault(name.strip("'\""), number)
    rest = lines[close + 1 :]
    blank = next((index for index, line in enumerate(rest) if line.strip()), len(rest))
    return FrontMatter(
        fields=front,
        field_lines=field_lines,
        body="\n".join(rest[blank:]).rstrip(),
        body_line=close + 2 + blank,
        closing_line=close + 1,
    )


def _parse_yaml(text: str) -> Any:
    """The single document in `text`, read as YAML 1.2 by ruamel.yaml's pure-Python safe loader + guards.

    YAML 1.2, not PyYAML's 1.1: content files are written like the examples in the docs, and 1.1 cannot read
    some of them (a plain `?` ending a text in a flow mapping, `{nl: Ervaring?, en: Experience?}`); 1.2 also
    keeps `yes`, `no`, `on` and `off` strings, so only true and false are booleans.
    The pure-Python loader on purpose: the guards hook into its composer, and a C composer recursing on deep
    nesting could crash the process instead of raising. A new loader per document, as the guards count.
    """
    loader = YAML(typ="safe", pure=True)
    loader.Scanner = _Scanner
    loader.Composer = _Composer
    loader.Constructor = _Constructor
    return loader.load(text)


class _Scanner(Scanner):
    """Refuses a `%YAML 1.1` directive, which would switch to 1.1's rules (`yes` and `no` booleans...)."""

    def scan_yaml_directive_value(self, start_mark: Any) -> Any:
        version = super().scan_yaml_directive_value(start_mark)
        if version != (1, 2):
            major, minor = version
            message = f"content files are YAML 1.2, not {major}.{minor}: remove the %YAML line"
            raise ScannerError(None, None, message, start_mark)
        return version


class _Composer(Composer):
    """Refuses documents that nest too deep or expand too far through aliases, and redefined anchors."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) → how many values it expands to, once composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.parser.peek_event()
        mark: Any = event.start_mark
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ComposerError(None, None, f"more than {MAX_ALIASES} aliases", mark)
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self._sizes:
                message = "an alias may not refer to a value that contains it"
                raise ComposerError(None, None, message, mark)
            return super().compose_node(parent, index)  # an unknown alias is reported there
        if event.anchor is not None and event.anchor in self.anchors:
            # YAML 1.2 lets a later anchor of the same name win; in a content file it is a mistake.
            first = self.anchors[event.anchor].start_mark.line + 1
            message = f"the anchor &{event.anchor} is already defined on line {first}"
            raise ComposerError(None, None, message, mark)
        if self._depth >= MAX_NESTING:
            raise ComposerError(None, None, f"nested more than {MAX_NESTING} levels deep", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        size = 1
        if isinstance(node, SequenceNode):
            size += sum(self._sizes[id(child)] for child in node.value)
        elif isinstance(node, MappingNode):
            size += sum(self._sizes[id(key)] + self._sizes[id(value)] for key, value in node.value)
        if size > MAX_VALUES:
            message = f"expands to more than {MAX_VALUES} values"
            if self._aliases:
                message += " (too many aliases)"
            raise ComposerError(None, None, message, mark)
        self._sizes[id(node)] = size
        return node


_MERGE_TAG = "tag:yaml.org,2002:merge"
# The types a content file can use. !!binary, !!set, !!omap and !!pairs are never valid content, and
# ruamel.yaml's !!omap fails with an AssertionError on a repeated key, so they are unknown tags here.
_TAGS = ("null", "bool", "int", "float", "str", "timestamp", "seq", "map")


class _Constructor(SafeConstructor):
    """SafeConstructor for the plain types only, refusing duplicate keys; merge keys (`<<`) allowed."""

    yaml_constructors = {
        **{
            f"tag:yaml.org,2002:{tag}": SafeConstructor.yaml_constructors[f"tag:yaml.org,2002:{tag}"]
            for tag in _TAGS
        },
        None: SafeConstructor.construct_undefined,
    }

    def __init__(self, preserve_quotes: bool | None = None, loader: Any = None) -> None:
        super().__init__(preserve_quotes=preserve_quotes, loader=loader)
        self._checked: set[int] = set()  # id() of the mappings whose keys were checked

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except (ValueError, LookupError, ArithmeticError):
            # A scalar its tag cannot convert: a date such as 2024-13-45, `!!int x`, `!!bool maybe`...
            if not isinstance(node, ScalarNode):  # pragma: no cover - only scalars convert values
                raise
            kind = str(tag or node.tag).rpartition(":")[2]
            message = f"{fields.show(node.value)} is not a valid {kind}"
            raise ConstructorError(None, None, message, node.start_mark) from None

    def flatten_mapping(self, node: Any) -> Any:
        # Called on every mapping before it is built, and on each mapping merged into another, which it
        # rewrites (merged keys first, then the overriding ones): check the keys as written, once.
        if id(node) not in self._checked:
            self._checked.add(id(node))
            self._refuse_duplicate_keys(node)
        return super().flatten_mapping(node)

    def _refuse_duplicate_keys(self, node: MappingNode) -> None:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                # ruamel.yaml would make a list key a tuple, and fail on a mapping inside it
                what = "list" if isinstance(key_node, SequenceNode) else "mapping"
                message = f"a key must be a single value, not a {what}"
                raise ConstructorError(None, None, message, key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                continue  # merged keys may be overridden; a second `<<` is refused by flatten_mapping
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {fields.show(key)}", key_node.start_mark)
            seen.add(key)


def _yaml_error(exc: MarkedYAMLError) -> str:
    """A one-line message with the line number, from ruamel.yaml's multi-line one."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    if exc.problem and exc.context and exc.problem.startswith("but "):
        problem = f"{exc.context}, {exc.problem}"  # "expected a single document..., but found another"
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _reader_error(text: str, exc: ReaderError) -> str:
    """A one-line message for a character YAML refuses anywhere in a file, such as a raw control character."""
    if not isinstance(exc.character, int) or not 0 <= exc.position <= len(text):  # pragma: no cover
        return "not valid YAML: " + " ".join(str(exc).split())
    line = text.count("\n", 0, exc.position) + 1
    return f"line {line}: contains the character U+{exc.character:04X}, which YAML does not allow"
