"""Editor-written sequence steps: a subject line and a Markdown body, both Jinja, rendered safely.

A step is data, not code (STYLE habit 10). It runs in Jinja's immutable sandbox and sees only the names in
`STEP_CONTEXT`. Values printed with `{{ … }}` are text: the Markdown characters in them are escaped, so
a first name cannot add a link, a heading or HTML; `links.*` and `site_url` are printed as they are, so
they work as link targets (`[Change your answers]({{ links.preferences }})`). Markdown → HTML runs with
raw HTML off and the result goes through an allow-list sanitiser; the text alternative is made from the
same Markdown, so both parts carry the same words and links.

`check_step_template` is what `content check` and the admin run; `render_step` is what sending runs.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any, Final

import nh3
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode
from markupsafe import Markup

STEP_CONTEXT: Final[Mapping[str, str]] = {
    "first_name": "the subscriber's first name, or None when unknown",
    "answers": (
        "current answers by question key: a string, or a list of strings for multi questions;"
        " an unanswered question is empty and false"
    ),
    "links": "URLs for this subscriber: links.unsubscribe and links.preferences",
    "site_name": "the publisher's name, as in the sender and the footer",
    "site_url": "the public base URL of the site",
}
AVAILABLE: Final = ", ".join(STEP_CONTEXT)
MAX_SUBJECT_LENGTH: Final = 200
LINK_SCHEMES: Final = ("http://", "https://", "mailto:")
_REQUIRED_LINKS: Final = ("unsubscribe", "preferences")
# A link's title starting with this names the topic a click on it shows interest in; no reader sees it.
TOPIC_TITLE: Final = "topic:"
# Rewrites a link target, given the topic the link names (None when it names none).
LinkTagger = Callable[[str, str | None], str]


@dataclass(frozen=True)
class RenderedStep:
    """One step for one subscriber: the subject line, the sanitised HTML and the plain-text alternative."""

    subject: str
    html: Markup
    text: str


class _Url(str):
    """A link from the context: printed verbatim so that it can be a Markdown link target."""

    __slots__ = ()


class _Answers(dict[str, Any]):
    """The answers mapping, told apart from other dicts by the environment's attribute lookup."""


_TAG = r"\{%(?:(?!%\}).)*%\}|\{#(?:(?!#\}).)*#\}"  # {% … %} or {# … #} on one line
_STANDALONE_TAGS = re.compile(rf"^[ \t]*((?:{_TAG})(?:[ \t]*(?:{_TAG}))*)[ \t]*\r?\n", re.MULTILINE)


class _StepEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, plus lenient answers and bounds on the arithmetic that could stall a worker."""

    # Jinja folds constant expressions while compiling, so `{{ 9**999999999 }}` would hang `content check`
    # itself; intercepted operators are never folded and go through call_binop at render time instead.
    intercepted_binops = frozenset({"*", "**"})

    def preprocess(self, source: str, name: str | None = None, filename: str | None = None) -> str:
        # Markdown is line-based, so a line holding only block tags must vanish with its newline: left
        # blank it would split a list in two. Jinja's trim_blocks eats the newline after *every* block
        # tag, which glues `Hoi,{% endif %}` to the next paragraph. The newline moves into a comment so
        # that line numbers in errors still match the editor's file.
        return super().preprocess(_STANDALONE_TAGS.sub(r"\1{#\n#}", source), name, filename)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _Answers):
            # `answers.<key>` is always the answer, even for a question keyed `items` or `values`.
            return _answer(obj, attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _Answers) and isinstance(argument, str):
            return _answer(obj, argument)
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if _too_big(operator, left, right):
            raise SecurityError(f"the result of {operator!r} would be too large for an email")
        return super().call_binop(context, operator, left, right)


def _answer(answers: _Answers, key: str) -> Any:
    if key in answers:
        return answers[key]
    # Lenient on purpose: "not answered (yet)" is a normal branch, not an error. The plain Undefined is
    # empty, false, `is not defined`, equal to nothing and iterates as empty, so `{% if answers.x %}`,
    # `answers.x == "yes"` and `"a" in answers.x` all work; anything more (answers.x.y) still fails.
    return Undefined(hint=f"the question {key!r} is not answered", name=key)


def _too_big(operator: str, left: Any, right: Any) -> bool:
    limit = 100_000  # characters or items; bits for integers
    if isinstance(left, int) and isinstance(right, (str, list, tuple)):
        left, right = right, left
    if isinstance(left, (str, list, tuple)) and isinstance(right, int):
        return len(left) * right > limit
    if isinstance(left, int) and isinstance(right, int):
        bits = left.bit_length() + right.bit_length() if operator == "*" else left.bit_length() * right
        return bits > limit
    return False


def _as_text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # a multi answer
        return ", ".join(str(item) for item in value)
    return value


# Every ASCII punctuation character may be backslash-escaped in CommonMark, and escaped it is plain text.
_MARKDOWN_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")


def _markdown_text(value: Any) -> Any:
    if isinstance(value, _Url):
        return value
    # Whitespace is collapsed too: a newline in a value could otherwise start a list or a code block.
    text = " ".join(str(_as_text(value)).split())
    return _MARKDOWN_PUNCTUATION.sub(r"\\\g<0>", text)


def _environment(finalize: Any) -> _StepEnvironment:
    env = _StepEnvironment(
        autoescape=False,  # the source is Markdown, not HTML: the Markdown renderer escapes
        undefined=StrictUndefined,
        finalize=finalize,
        auto_reload=False,
    )
    del env.globals["lipsum"]  # no use in an email, and lipsum(10**6) is a cheap way to stall a worker
    return env


_SUBJECT_ENV: Final = _environment(_as_text)
_BODY_ENV: Final = _environment(_markdown_text)


def _linkable(url: str) -> bool:
    # Absolute links only: an email has no base URL to resolve a relative one against.
    return url.lower().startswith(LINK_SCHEMES)


class _Markdown(MarkdownIt):
    """CommonMark without raw HTML (it is escaped), images or linkify, linking only where `accept` says."""

    def __init__(self, accept: Callable[[str], bool]) -> None:
        super().__init__("commonmark", {"html": False, "linkify": False, "typographer": False})
        self.disable("image")  # no images in these emails; `![alt](url)` stays a link to the image
        self._accept = accept

    def validateLink(self, url: str) -> bool:
        return self._accept(url)


_MD: Final = _Markdown(_linkable)
_MD_ANY_LINK: Final = _Markdown(lambda url: True)  # for `check`: finds the links _MD would refuse

_ALLOWED_TAGS: Final = {
    "p", "a", "strong", "em", "ul", "ol", "li", "h2", "h3", "blockquote", "code", "pre", "br", "hr",
}  # fmt: skip
# Email clients drop <style> blocks or apply them unevenly, so spacing is inline like the other kinds.
_INLINE_STYLES: Final = {
    "p": {"style": "margin:0 0 16px;"},
    "h2": {"style": "margin:24px 0 12px;font-size:20px;line-height:1.3;"},
    "h3": {"style": "margin:20px 0 8px;font-size:17px;line-height:1.3;"},
    "ul": {"style": "margin:0 0 16px;padding-left:24px;"},
    "ol": {"style": "margin:0 0 16px;padding-left:24px;"},
    "blockquote": {
        "style": "margin:0 0 16px;padding:0 0 0 12px;border-left:3px solid #d0d4da;color:#4a5059;"
    },
    "pre": {"style": "margin:0 0 16px;padding:12px;background-color:#f4f5f7;white-space:pre-wrap;"},
    "a": {"style": "color:#0b5cad;"},
}


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    if tag == "a" and attribute == "href" and not _linkable(value):
        return None
    return value


def _sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener",
        attribute_filter=_keep_attribute,
        set_tag_attribute_values=_INLINE_STYLES,
    )


def render_step(
    subject: str,
    body: str,
    context: Mapping[str, Any],
    tag_link: LinkTagger | None = None,
    *,
    tracked: bool = False,
) -> RenderedStep:
    """Render one step for one subscriber.

    `context` holds the STEP_CONTEXT names (others are ignored); `tag_link` may rewrite each link target, in
    the HTML and the text part alike, and is called once per link in the order they appear when `tracked`
    (it numbers them). Raises ValueError for a context without
    links.unsubscribe, links.preferences, site_name or site_url, and a jinja2.TemplateError (SecurityError,
    UndefinedError…) for a template that check_step_template would have refused.
    """
    names = _namespace(context)
    line = " ".join(_compiled(subject, "subject").render(names).split())
    template = _compiled(body, "body")
    shared = None if tracked else _shared_render(template, names, tag_link)
    if shared is not None:
        return RenderedStep(subject=line, html=shared.html, text=shared.text)
    markdown = _render_markdown(template.render(names), tag_link)
    return RenderedStep(subject=line, html=markdown.html, text=markdown.text)


# Stand-ins for the subscriber's own links, which make a step's Markdown the same for everyone with the
# same first name and answers: it renders once (`_markdown`), and each subscriber's links replace the
# stand-ins in the result. A fresh host each run, so that no step can hold one.
_STAND_IN: Final = f"https://{secrets.token_hex(8)}.invalid/"
_PLAIN_LINK: Final = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$()*+,;=%-]+")


def _shared_render(
    template: Template, names: dict[str, Any], tag_link: LinkTagger | None
) -> _Rendered | None:
    """The step rendered from the Markdown it shares with other subscribers, with this one's links put in;
    None where that would not be exactly what rendering it for them alone gives."""
    links: dict[str, _Url] = names["links"]
    if not all(
        _PLAIN_LINK.fullmatch(url)
        and _MD.normalizeLink(url) == url
        and (tag_link is None or tag_link(url, None) == url)
        for url in links.values()
    ):
        return None  # a link that Markdown, HTML or the reader's tagging would write otherwise
    stand_ins = {_STAND_IN + key: url for key, url in links.items()}
    markdown = _markdown(template.render({**names, "links": {key: _Url(_STAND_IN + key) for key in links}}))
    if tag_link is not None and any(tag_link(href, None) != href for href in markdown.links):
        return None  # links to pages that get this reader's reference
    html, text = str(markdown.html), markdown.text
    for stand_in, url in stand_ins.items():
        # Only as a link's target, where the HTML and the text part print it as it is.
        if html.count(stand_in) != html.count(f'href="{stand_in}"') or text.count(stand_in) != text.count(
            f"<{stand_in}>"
        ):
            return None
        html = html.replace(f'href="{stand_in}"', f'href="{url}"')
        text = text.replace(f"<{stand_in}>", f"<{url}>")
    return _Rendered(html=Markup(html), text=text, links=())  # noqa: S704 - nh3's output, links as checked


@dataclass(frozen=True)
class _Rendered:
    html: Markup
    text: str
    links: tuple[str, ...]  # every link target, as written


@lru_cache(maxsize=256)
def _markdown(source: str) -> _Rendered:
    return _render_markdown(source, None)


def _render_markdown(source: str, tag_link: LinkTagger | None) -> _Rendered:
    tokens = _MD.parse(source)
    links: list[str] = []
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            # The email's own title is the subject; editor headings are sections below it.
            token.tag = "h2" if token.tag in ("h1", "h2") else "h3"
        if token.children:
            token.children = _without_dead_links(token.children)
            for child in token.children:
                if child.type == "link_open":
                    links.append(str(child.attrs["href"]))
                    if tag_link is not None:
                        child.attrs["href"] = tag_link(links[-1], _topic_of(child))
    html = Markup(_sanitise(_MD.renderer.render(tokens, _MD.options, {})).strip())  # noqa: S704 - nh3's output
    return _Rendered(html=html, text=_plain_text(SyntaxTreeNode(tokens)), links=tuple(links))


def _topic_of(link: Token) -> str | None:
    """The topic a step's link names in its title (`[Read on](https://… "topic:daytrading")`), if any."""
    title = str(link.attrs.get("title") or "")
    return title[len(TOPIC_TITLE) :].strip() or None if title.startswith(TOPIC_TITLE) else None


def _without_dead_links(children: list[Token]) -> list[Token]:
    """The inline tokens minus the <a> of `[label]()`: a link-coloured word that goes nowhere confuses."""
    kept: list[Token] = []
    dropping = False  # CommonMark links do not nest
    for token in children:
        if token.type == "link_open":
            dropping = not _linkable(str(token.attrs.get("href", "")))
            if dropping:
                continue
        elif token.type == "link_close" and dropping:
            dropping = False
            continue
        kept.append(token)
    return kept


def _namespace(context: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in ("links", "site_name", "site_url") if name not in context]
    if missing:
        raise ValueError(f"a step context needs {', '.join(missing)}")
    links = context["links"]
    absent = [key for key in _REQUIRED_LINKS if not links.get(key)]
    if absent:
        raise ValueError(f"a step context needs links.{' and links.'.join(absent)}")
    return {
        "first_name": context.get("first_name") or None,
        "answers": _Answers(context.get("answers") or {}),
        "links": {key: _Url(url) for key, url in links.items()},
        "site_name": str(context["site_name"]),
        "site_url": _Url(context["site_url"]),
    }


@lru_cache(maxsize=256)
def _compiled(source: str, part: str) -> Template:
    # Sending renders the same few steps thousands of times; compiling is the expensive part.
    return (_SUBJECT_ENV if part == "subject" else _BODY_ENV).from_string(source)


# The text alternative


def _plain_text(root: SyntaxTreeNode) -> str:
    return _blocks(root.children, "\n\n")


def _blocks(children: list[SyntaxTreeNode], separator: str) -> str:
    return separator.join(text for child in children if (text := _block(child)))


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in ("paragraph", "heading"):
        return "".join(_inline(child) for child in node.children)
    if kind in ("bullet_list", "ordered_list"):
        tight = any(
            child.type == "paragraph" and child.hidden for item in node.children for child in item.children
        )
        items = []
        for number, item in enumerate(node.children, start=1):
            marker = "- " if kind == "bullet_list" else f"{number}. "
            first, *rest = _blocks(item.children, "\n" if tight else "\n\n").split("\n")
            indent = " " * len(marker)
            items.append("\n".join([marker + first, *(indent + line if line else "" for line in rest)]))
        return ("\n" if tight else "\n\n").join(items)
    if kind == "blockquote":
        return "\n".join(("> " + line).rstrip() for line in _blocks(node.children, "\n\n").split("\n"))
    if kind in ("fence", "code_block"):
        return "\n".join(("    " + line).rstrip() for line in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "----------"
    return _blocks(node.children, "\n\n")


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind in ("text", "code_inline"):
        return node.content
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    label = "".join(_inline(child) for child in node.children)
    if kind != "link":
        return label  # emphasis and the inline container: the words without their markers
    href = str(node.attrs.get("href", ""))
    # Angle brackets end a URL unambiguously, even before a full stop (RFC 3986, appendix C).
    return f"<{label}>" if href in (label, "mailto:" + label) else f"{label} <{href}>"


# Checking


def check_step_template(subject: str, body: str) -> list[str]:
    """Every problem with a step's subject and body, as `line N: message`; an empty list when it is fine."""
    problems: list[str] = []
    try:
        subject_template = _checked(subject, _SUBJECT_ENV, "subject: ", problems)
        body_template = _checked(body, _BODY_ENV, "", problems)
        samples = list(_samples())
        if subject_template is not None:
            _check_subject(subject_template, samples, problems)
        if body_template is not None:
            for sample in samples:
                _check_body(body_template, sample, problems)
    except Exception as exc:  # a checker reports; it must never take `content check` or the admin down
        problems.append(f"could not be checked: {_message(exc)}")
    return list(dict.fromkeys(problems))


def _checked(source: str, env: _StepEnvironment, prefix: str, problems: list[str]) -> Template | None:
    """The compiled template, or None after adding its static problems to `problems`."""
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        problems.append(f"{prefix}line {exc.lineno}: {_message(exc)}")
        return None
    found: list[str] = []
    try:
        found.extend(_static_problems(tree, env))
        if not found:
            return env.from_string(tree)
    except TemplateSyntaxError as exc:  # TemplateAssertionError from the compiler
        found.append(f"line {exc.lineno}: {_message(exc)}")
    problems.extend(prefix + problem for problem in found)
    return None


_REFUSED_TAGS: Final = {nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import"}


def _static_problems(tree: nodes.Template, env: _StepEnvironment) -> Iterator[str]:
    for statement in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        tag = _REFUSED_TAGS.get(type(statement), "import")
        yield f"line {statement.lineno}: {{% {tag} %}} is not allowed: a step is a single template"
    for access in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name = _private_name(access)
        if name is not None:
            yield f"line {access.lineno}: {name!r} is not allowed: names starting with '_' are internal"
    unknown_callables = [
        (node.lineno, "filter", node.name)
        for node in tree.find_all(nodes.Filter)
        if node.name not in env.filters
    ] + [(node.lineno, "test", node.name) for node in tree.find_all(nodes.Test) if node.name not in env.tests]
    for lineno, what, name in sorted(unknown_callables):
        yield f"line {lineno}: unknown {what} {name!r}"
    if unknown_callables:
        return  # find_undeclared_variables compiles the template, which stops at the first unknown filter
    loads: dict[str, int] = {}
    for node in tree.find_all(nodes.Name):
        if node.ctx == "load":
            loads[node.name] = min(node.lineno, loads.get(node.name, node.lineno))
    stored = {node.name for node in tree.find_all(nodes.Name) if node.ctx == "store"}
    # Jinja also counts a name that is only {% set %} inside an if-block or loop; it matters only if read.
    unknown = meta.find_undeclared_variables(tree) - set(STEP_CONTEXT) - set(env.globals) & loads.keys()
    for name in sorted(unknown, key=lambda name: (loads[name], name)):
        if name in stored:
            yield f"line {loads[name]}: {name!r} may not be set here: give it a value before the block that sets it"
        else:
            yield f"line {loads[name]}: unknown name {name!r} (available: {AVAILABLE})"


def _private_name(node: nodes.Node) -> str | None:
    """The `_name` that `obj._name`, `obj['_name']` or `obj|attr('_name')` reaches for, if any."""
    if isinstance(node, nodes.Getattr):
        name: Any = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        name = node.arg.value
    elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
        first = node.args[0]
        name = first.value if isinstance(first, nodes.Const) else None
    else:
        return None
    return name if isinstance(name, str) and name.startswith("_") else None


def _samples() -> Iterator[dict[str, Any]]:
    """Contexts to render at check time, without a first name and then with one.

    A sandbox refusal or a typo in `links` shows up here rather than in the worker.
    """
    for first_name in (None, "Anna"):
        yield _namespace(
            {
                "first_name": first_name,
                "answers": {},
                "links": {key: f"https://example.com/{key}/sample-token" for key in _REQUIRED_LINKS},
                "site_name": "Example",
                "site_url": "https://example.com",
            }
        )


def _check_subject(template: Template, samples: list[dict[str, Any]], problems: list[str]) -> None:
    lines = []
    for sample in samples:
        try:
            rendered = template.render(sample).strip()
        except Exception as exc:  # SecurityError, UndefinedError, RecursionError, a filter's TypeError…
            problems.append("subject: " + _render_problem(exc))
            return
        if len(rendered.splitlines()) > 1:
            problems.append("subject: must be a single line")
            return
        lines.append(" ".join(rendered.split()))
    longest = max(len(line) for line in lines)
    if not longest:
        problems.append("subject: is empty")
    elif not all(lines):
        problems.append("subject: is empty when first_name is None")
    elif longest > MAX_SUBJECT_LENGTH:
        problems.append(f"subject: is {longest} characters long; at most {MAX_SUBJECT_LENGTH} fit")


def _check_body(template: Template, sample: dict[str, Any], problems: list[str]) -> None:
    try:
        source = template.render(sample)
    except Exception as exc:
        problems.append(_render_problem(exc))
        return
    for href in _links(_MD_ANY_LINK.parse(source)):
        if not _linkable(href):
            problems.append(f"link {href!r} would not be clickable: use an absolute http(s) or mailto URL")


def link_topics(body: str) -> list[str]:
    """The topics a step's links name in their titles (`[…](https://… "topic:etfs")`), in order, read off the
    Markdown as written."""
    return list(dict.fromkeys(_named_topics(_MD_ANY_LINK.parse(body))))


def _named_topics(tokens: list[Token]) -> Iterator[str]:
    for token in tokens:
        if token.type == "link_open":
            topic = _topic_of(token)
            if topic is not None:
                yield topic
        if token.children:
            yield from _named_topics(token.children)


def _links(tokens: list[Token]) -> Iterator[str]:
    for token in tokens:
        if token.type == "link_open":
            yield str(token.attrs.get("href", ""))
        if token.children:
            yield from _links(token.children)


def _render_problem(exc: Exception) -> str:
    line = _template_line(exc.__traceback__)
    where = f"line {line}: " if line is not None else ""
    if isinstance(exc, SecurityError):
        return f"{where}not allowed: {_message(exc)}"
    return where + _message(exc)


def _template_line(traceback: TracebackType | None) -> int | None:
    # Jinja rewrites tracebacks so that template code appears as frames of the file "<template>".
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == "<template>":
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return line


def _message(exc: BaseException) -> str:
    message = exc.message if isinstance(exc, TemplateSyntaxError) else None
    return " ".join((message or str(exc) or type(exc).__name__).split())
