"""Editor-written sequence steps: checked before they are loaded, rendered safely, sent as a marketing email."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import pytest
from jinja2 import TemplateError
from jinja2.exceptions import SecurityError

from leadcapture.config import TEMPLATES_DIR
from leadcapture.i18n import translate
from leadcapture.mail import (
    STEP_CONTEXT,
    Envelope,
    MailRenderer,
    RenderedStep,
    check_step_template,
    render_step,
    steps,
)
from tests.support.mail import (
    SENDER,
    UNSUBSCRIBE_URL,
    URL,
    assert_golden,
    envelope,
    html_links,
    html_words,
    parts,
    reparsed,
    text_words,
)

AVAILABLE = "(available: first_name, answers, links, site_name, site_url)"
PREFERENCES_URL = "https://beleggen.example/preferences/eyJzIjo0Mn0.Pr3f-s_x"
MESSAGE_ID = "<20260302T093000Z.5f0c2a.sequence@beleggen.example>"


def step_context(**overrides: Any) -> dict[str, Any]:
    """What the sending side passes to render_step for one subscriber."""
    context: dict[str, Any] = {
        "first_name": "Anna",
        "answers": {"is_investor": "yes", "investment_interests": ["stocks", "etfs"]},
        "links": {"unsubscribe": UNSUBSCRIBE_URL, "preferences": PREFERENCES_URL},
        "site_name": "Beleggen",
        "site_url": "https://beleggen.example",
    }
    return {**context, **overrides}


def render(body: str, subject: str = "Hallo", **overrides: Any) -> RenderedStep:
    return render_step(subject, body, step_context(**overrides))


def test_the_documented_context_is_exactly_these_names() -> None:
    assert list(STEP_CONTEXT) == ["first_name", "answers", "links", "site_name", "site_url"]
    assert all(isinstance(text, str) and text and "\n" not in text for text in STEP_CONTEXT.values())


# check_step_template


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Welkom", "Hallo,\n\nDit is *stap één*."),
        ('{{ first_name or "lezer" }}, welkom', 'Hallo {{ first_name or "lezer" }},'),
        (
            "Stap 1",
            '{% if answers.is_investor == "yes" %}\nJe belegt al.\n{% else %}\nNog niet.\n{% endif %}',
        ),
        ("Stap 1", "Pas je antwoorden aan: [x]({{ links.preferences }})."),
        (
            "Stap 1",
            "[Afmelden]({{ links.unsubscribe }}) · <{{ links.preferences }}> · {{ site_name }} {{ site_url }}",
        ),
        ("Stap 1", '{% if "etfs" in answers.investment_interests %}ETF\'s{% endif %}'),
        ("Stap 1", "{% for key in answers %}{{ key }}: {{ answers[key] }}\n{% endfor %}"),
        (
            "Stap 1",
            "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
        ),
        ("Stap 1", "{{ answers.daytrading_experience|default('onbekend') }} {{ site_name|upper }}"),
        (
            "Re: {{ site_name }}",
            "{% macro knop(url, label) %}[{{ label }}]({{ url }}){% endmacro %}{{ knop(links.preferences, 'Voorkeuren') }}",
        ),
        ("Stap 1", "Mail ons: <mailto:redactie@beleggen.example>"),
    ],
)
def test_good_templates_have_no_problems(subject: str, body: str) -> None:
    assert check_step_template(subject, body) == []


@pytest.mark.parametrize(
    ("subject", "body", "problem"),
    [
        ("Welkom", "Hallo\n\n{% if answers.x %}\nja\n", "line 4: Unexpected end of template"),
        ("Welkom", "een\ntwee\n{{ first_name }\n", "line 3: unexpected '}'"),
        ("Welkom", "een\n{% for %}", "line 2: Expected an expression"),
        ("Welkom {{ first_name", "goed", "subject: line 1: unexpected end of template"),
        ("Welkom {% if %}", "goed", "subject: line 1: Expected an expression"),
    ],
)
def test_syntax_errors_name_their_line(subject: str, body: str, problem: str) -> None:
    problems = check_step_template(subject, body)

    assert len(problems) == 1
    assert problems[0].lower().startswith(problem.lower())


def test_unknown_names_are_reported_once_each_at_their_first_line() -> None:
    body = "Hallo {{ first_name }},\n\n{{ voornaam }}\n\n{% if abonnement %}{{ voornaam }}{% endif %}\n"

    assert check_step_template("Welkom", body) == [
        f"line 3: unknown name 'voornaam' {AVAILABLE}",
        f"line 5: unknown name 'abonnement' {AVAILABLE}",
    ]


def test_unknown_names_in_the_subject_are_prefixed() -> None:
    assert check_step_template("Hallo {{ naam }}", "goed") == [
        f"subject: line 1: unknown name 'naam' {AVAILABLE}"
    ]


def test_names_set_in_the_template_are_not_unknown() -> None:
    body = "{% set groet = 'Hoi' %}{{ groet }}\n{% for item in answers.investment_interests %}{{ item }}{{ loop.index }}{% endfor %}"

    assert check_step_template("Welkom", body) == []


def test_a_name_set_only_inside_a_block_is_reported_where_it_is_read() -> None:
    body = "{% if first_name %}\n{% set groet = 'Hoi' %}\n{% endif %}\n{{ groet }}\n{% if answers.x %}{% set ongebruikt = 1 %}{% endif %}"

    assert check_step_template("Welkom", body) == [
        "line 4: 'groet' may not be set here: give it a value before the block that sets it"
    ]


def test_unknown_filters_and_tests_are_reported_even_in_a_branch_the_sample_skips() -> None:
    body = "een\n{% if answers.x %}\n{{ first_name|shout }}\n{% endif %}\n{% if first_name is famous %}x{% endif %}"

    assert check_step_template("Welkom", body) == [
        "line 3: unknown filter 'shout'",
        "line 5: unknown test 'famous'",
    ]


def test_a_typo_in_links_is_found_at_check_time() -> None:
    problems = check_step_template("Welkom", "een\n\n[Voorkeuren]({{ links.preference }})")

    assert problems == ["line 3: 'dict object' has no attribute 'preference'"]


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("Hallo\n{% include 'email/_layout.txt' %}", "line 2: {% include %}"),
        ("{% extends 'email/_layout.html' %}", "line 1: {% extends %}"),
        ("\n\n{% import 'macros.txt' as m %}", "line 3: {% import %}"),
        ("{% from 'macros.txt' import knop %}", "line 1: {% import %}"),
    ],
)
def test_include_import_and_extends_are_refused(body: str, tag: str) -> None:
    problems = check_step_template("Welkom", body)

    assert problems
    assert problems[0].startswith(tag)
    assert "not allowed" in problems[0]


SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ links.__class__ }}",
    "{{ links['__class__'] }}",
    "{{ links|attr('__class__') }}",
    "{{ links|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ links|attr('_' ~ '_class__') }}",
    "{{ '{0.__class__}'.format(links) }}",
    "{{ site_name.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ links.update({'unsubscribe': 'https://evil.example'}) }}",
    "{{ links.pop('unsubscribe') }}",
    "{% set x = links.setdefault('a', 1) %}",
    "{% if answers.is_investor %}{{ ''.__class__ }}{% endif %}",
    "{{ 9**999999999 }}",
    "{{ 'x' * 10**9 }}",
    "{{ lipsum(1000000) }}",
]


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_sandbox_escapes_are_refused_at_check_time(payload: str) -> None:
    started = time.monotonic()

    problems = check_step_template("Welkom", "Hallo,\n\n" + payload)

    assert problems
    assert all(problem.startswith("line 3: ") for problem in problems), problems
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    "payload",
    [
        "{{ links|attr('_' ~ '_class__') }}",
        "{{ '{0.__class__}'.format(links) }}",
        "{{ links.update({'unsubscribe': 'https://evil.example'}) }}",
        "{% if answers.is_investor %}{{ links|attr('_' ~ '_init__') }}{% endif %}",
    ],
)
def test_the_sandbox_still_refuses_them_at_send_time(payload: str) -> None:
    with pytest.raises(SecurityError):
        render(payload)


def test_in_the_subject_too() -> None:
    problems = check_step_template("Hi {{ links.__class__ }}", "goed")

    assert problems == ["subject: line 1: '__class__' is not allowed: names starting with '_' are internal"]


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("Welkom\nBcc: everyone@example.com", "subject: must be a single line"),
        ("Welkom{{ '\\n' }}Bcc: everyone@example.com", "subject: must be a single line"),
        ("{{ first_name }}", "subject: is empty when first_name is None"),
        ("   ", "subject: is empty"),
        ("x" * 201, "subject: is 201 characters long; at most 200 fit"),
        ("{{ 'x' * 150 }} {{ site_name * 10 }}", "subject: is 221 characters long; at most 200 fit"),
    ],
)
def test_a_subject_must_render_to_one_short_line(subject: str, problem: str) -> None:
    assert check_step_template(subject, "goed") == [problem]


def test_a_subject_of_exactly_200_characters_is_fine() -> None:
    assert check_step_template("x" * 200, "goed") == []


def test_links_that_would_not_be_clickable_are_reported() -> None:
    body = (
        "[a](javascript:alert(1)) [b](/preferences) [c](ftp://files.example/x) [d]() [e](https://ok.example)"
    )

    problems = check_step_template("Welkom", body)

    assert [re.sub(r" would.*", "", problem) for problem in problems] == [
        "link 'javascript:alert(1)'",
        "link '/preferences'",
        "link 'ftp://files.example/x'",
        "link ''",
    ]


def test_problems_from_subject_and_body_are_all_returned() -> None:
    problems = check_step_template("{{ naam }}", "{% include 'x' %}\n{{ voornaam }}")

    assert problems[0] == f"subject: line 1: unknown name 'naam' {AVAILABLE}"
    assert problems[1].startswith("line 1: {% include %}")
    assert problems[2] == f"line 2: unknown name 'voornaam' {AVAILABLE}"


FRAGMENTS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{-", "-%}", "if", "else", "endif", "for", "in", "endfor", "set", "=",
    "macro", "endmacro", "call", "raw", "endraw", "filter", "block", "(", ")", "[", "]", "'", '"', ".", "|",
    "~", "*", "**", "-", "+", "__class__", "answers", "links", "first_name", "x", "9", " ", "\n", "\t", "é",
    "\x00", "\\", "<script>", "](", "javascript:", "# ", "- ", "`", "\r",
]  # fmt: skip


def test_garbage_never_crashes_the_checker() -> None:
    rng = random.Random(20260302)
    for _ in range(300):
        subject = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 20)))
        body = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 120)))
        if rng.random() < 0.2:
            body = "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 200)))

        problems = check_step_template(subject, body)

        assert isinstance(problems, list)
        assert all(isinstance(problem, str) and problem for problem in problems)
        assert not any(problem.startswith("could not be checked") for problem in problems), (subject, body)


def test_pathological_nesting_is_a_problem_not_a_crash() -> None:
    problems = check_step_template("Welkom", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")

    assert problems
    assert all(isinstance(problem, str) for problem in problems)


# render_step


def test_markdown_becomes_sanitised_html() -> None:
    body = "# Welkom\n\nHallo **{{ first_name }}**, dit is *nieuw*.\n\n- een\n- [twee]({{ links.preferences }})\n\n> citaat\n\n`code`\n\n---\n\n### Tot slot"

    step = render(body)

    assert step.html.startswith('<h2 style="')
    assert ">Welkom</h2>" in step.html
    assert "<strong>Anna</strong>" in step.html
    assert "<em>nieuw</em>" in step.html
    assert "<li>een</li>" in step.html
    assert f'<a href="{PREFERENCES_URL}" style="color:#0b5cad;" rel="noopener">twee</a>' in step.html
    assert ">\n<p" in step.html  # blockquote
    assert "<code>code</code>" in step.html
    assert "<hr>" in step.html
    assert ">Tot slot</h3>" in step.html
    tags = set(re.findall(r"<([a-z0-9]+)", step.html))
    assert tags <= {
        "p",
        "a",
        "strong",
        "em",
        "ul",
        "ol",
        "li",
        "h2",
        "h3",
        "blockquote",
        "code",
        "pre",
        "br",
        "hr",
    }
    attributes = set(re.findall(r"\s([a-z-]+)=", step.html))
    assert attributes <= {"href", "rel", "style"}


def test_raw_html_in_the_source_is_shown_as_text() -> None:
    step = render("<script>alert(1)</script>\n\nHallo <img src=x onerror=alert(1)> en <b>vet</b>")

    assert "<script" not in step.html
    assert "<img" not in step.html
    assert "<b>" not in step.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in step.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in step.html
    assert "<script>alert(1)</script>" in step.text  # plain text is not HTML: shown as typed


@pytest.mark.parametrize(
    "first_name",
    [
        "<script>alert(1)</script>",
        '"><img src=x onerror=alert(1)>',
        "[Claim your prize](https://evil.example)",
        "<https://evil.example>",
        "Anna\n\n# Urgent",
        "**Anna** & <b>Bob</b>",
    ],
)
def test_values_from_the_context_are_text_in_html_and_markdown(first_name: str) -> None:
    step = render(
        "Hallo {{ first_name }},\n\n{{ first_name }}", subject="Hoi {{ first_name }}", first_name=first_name
    )

    assert "evil.example" not in html_links(step.html)
    assert not re.search(r"<(script|img|b|h2|strong)\b", step.html)
    assert step.html.count("<p") == 2
    shown = " ".join(first_name.split())
    assert step.text == f"Hallo {shown},\n\n{shown}"
    assert step.subject == f"Hoi {shown}"


@pytest.mark.parametrize(
    "link",
    [
        "[klik](javascript:alert(1))",
        "[klik](JavaScript:alert(1))",
        "[klik](java&#09;script:alert(1))",
        "<javascript:alert(1)>",
        "[klik](data:text/html;base64,PHNjcmlwdD4=)",
        "[klik](vbscript:msgbox(1))",
        "[klik](/relative/path)",
        "[klik]()",
    ],
)
def test_only_absolute_http_and_mailto_links_survive(link: str) -> None:
    step = render(
        f"Hallo {link} en [goed](https://beleggen.example/ok) en <mailto:redactie@beleggen.example>"
    )

    assert html_links(step.html) == {"https://beleggen.example/ok", "mailto:redactie@beleggen.example"}
    assert step.html.count("<a ") == 2
    assert set(URL.findall(step.text)) == {"https://beleggen.example/ok"}


def test_the_text_part_carries_the_same_links_as_the_html() -> None:
    body = (
        "Lees [het artikel](https://beleggen.example/artikel?id=7&ref=mail) of <https://beleggen.example/a_b>.\n\n"
        "- [Voorkeuren]({{ links.preferences }})\n"
        "- [Afmelden]({{ links.unsubscribe }})\n\n"
        "> Zie ook [de uitleg](https://beleggen.example/uitleg/é).\n"
    )

    step = render(body)

    links = html_links(step.html)
    assert links == set(URL.findall(step.text))
    assert links == {
        "https://beleggen.example/artikel?id=7&ref=mail",
        "https://beleggen.example/a_b",
        PREFERENCES_URL,
        UNSUBSCRIBE_URL,
        "https://beleggen.example/uitleg/%C3%A9",
    }


def test_links_tagged_for_one_subscriber_never_reach_another() -> None:
    body = "Lees [het artikel](https://beleggen.example/daytraden) of [elders](https://example.org/x)."

    def tagged_for(reader: str) -> Any:
        def tag(url: str, topic: str | None) -> str:
            return url + "?lc=" + reader if url.startswith("https://beleggen.example/") else url

        return tag

    plain = render_step("Hallo", body, step_context(first_name=None))
    anna = render_step("Hallo", body, step_context(first_name=None), tag_link=tagged_for("anna"))
    bert = render_step("Hallo", body, step_context(first_name=None), tag_link=tagged_for("bert"))
    again = render_step("Hallo", body, step_context(first_name=None))

    assert html_links(anna.html) == {"https://beleggen.example/daytraden?lc=anna", "https://example.org/x"}
    assert html_links(bert.html) == {"https://beleggen.example/daytraden?lc=bert", "https://example.org/x"}
    assert "?lc=anna" in anna.text
    assert "?lc=" not in bert.text.replace("?lc=bert", "")
    assert plain == again
    assert "?lc=" not in plain.html + plain.text


@pytest.mark.parametrize(
    "body",
    [
        "[Je voorkeuren]({{ links.preferences }}) of [uitschrijven]({{ links.unsubscribe }}).",
        "Hoi {{ first_name }}, ga naar {{ links.preferences }}",
        "<{{ links.preferences }}>",
        "[{{ links.preferences }}]({{ links.preferences }})",
        "`{{ links.unsubscribe }}`\n\n    {{ links.unsubscribe }}",
        '- *[een](  {{ links.preferences }}  )*\n- [twee]({{ links.preferences }} "titel")',
        "[artikel](https://beleggen.example/daytraden) en [hier]({{ links.preferences }})",
        "{% if links.preferences|length > 10 %}[lang]({{ links.preferences }}){% endif %}",
        "[x]({{ links.preferences }}?a=1&b=2)",
    ],
)
@pytest.mark.parametrize(
    "links",
    [
        {"unsubscribe": UNSUBSCRIBE_URL, "preferences": PREFERENCES_URL},
        {"unsubscribe": UNSUBSCRIBE_URL, "preferences": "https://beleggen.example/pr%C3%A9f/a_b*c_d&e"},
        {"unsubscribe": UNSUBSCRIBE_URL, "preferences": "https://beleggen.example/préférences/x y"},
    ],
)
@pytest.mark.parametrize("tagged", [False, True])
def test_a_step_renders_as_it_would_for_this_subscriber_alone(
    body: str, links: dict[str, str], tagged: bool
) -> None:
    def tag(url: str, topic: str | None) -> str:
        return url + "?lc=ref" if url.startswith("https://beleggen.example/") else url

    context = step_context(first_name="_Anna_ <b>", links=links)
    tag_link = tag if tagged else None
    alone = steps._render_markdown(steps._compiled(body, "body").render(steps._namespace(context)), tag_link)

    for _ in range(2):  # the second time from what is kept
        rendered = render_step("Hallo", body, context, tag_link=tag_link)
        assert (rendered.html, rendered.text) == (alone.html, alone.text)


def test_the_text_part_is_readable_plain_text() -> None:
    body = (
        "# Welkom\n\n"
        "Hallo **{{ first_name }}**, dit is *nieuw* en `code`.\n"
        "Een tweede regel.\n\n"
        "- een\n"
        "- [twee]({{ links.preferences }})\n"
        "  - genest\n\n"
        "1. eerst\n"
        "2. dan\n\n"
        "> citaat\n\n"
        "```\nregel 1\n  regel 2\n```\n\n"
        "---\n\n"
        "Mail <redactie@beleggen.example> of bezoek <https://beleggen.example>."
    )

    step = render(body)

    assert step.text == (
        "Welkom\n\n"
        "Hallo Anna, dit is nieuw en code.\n"
        "Een tweede regel.\n\n"
        "- een\n"
        f"- twee <{PREFERENCES_URL}>\n"
        "  - genest\n\n"
        "1. eerst\n"
        "2. dan\n\n"
        "> citaat\n\n"
        "    regel 1\n"
        "      regel 2\n\n"
        "----------\n\n"
        "Mail <redactie@beleggen.example> of bezoek <https://beleggen.example>."
    )


def test_block_tags_on_their_own_lines_keep_a_list_together() -> None:
    body = "- een\n{% if answers.is_investor == 'yes' %}\n- twee\n{% endif %}\n- drie\n"

    step = render(body)

    assert step.text == "- een\n- twee\n- drie"
    assert "<p" not in step.html  # a tight list, as written


def test_a_tag_that_ends_a_line_of_text_keeps_the_paragraph_break() -> None:
    body = "{% if first_name %}Hoi {{ first_name }},{% else %}Hoi,{% endif %}\n\nBedankt.\n{# noot #}\n"

    assert render(body).text == "Hoi Anna,\n\nBedankt."
    assert render(body, first_name=None).text == "Hoi,\n\nBedankt."


def test_lines_of_only_tags_keep_error_lines_right() -> None:
    body = "{% if first_name %}\n  {% set x = 1 %} {# noot #}\n{% endif %}\n\n{{ voornaam }}\n{{ first_name }"

    problems = check_step_template("Welkom", body)

    assert problems == ["line 6: unexpected '}'"]
    assert check_step_template("Welkom", body[: body.rindex("\n")]) == [
        f"line 5: unknown name 'voornaam' {AVAILABLE}"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{% if answers.is_investor %}ja{% else %}nee{% endif %}", "nee"),
        ("[{{ answers.is_investor }}]", "[]"),
        ("{{ answers.is_investor is defined }}", "False"),
        ("{{ answers.is_investor == 'yes' }} {{ answers.is_investor != 'yes' }}", "False True"),
        ("{{ 'etfs' in answers.investment_interests }}", "False"),
        ("{{ answers.investment_interests|length }}", "0"),
        ("{{ answers['is_investor']|default('onbekend') }}", "onbekend"),
        ("{% for item in answers.investment_interests %}{{ item }}{% else %}geen{% endfor %}", "geen"),
    ],
)
def test_an_unanswered_question_is_empty_and_false(body: str, expected: str) -> None:
    assert render(body, answers={}).text == expected


def test_an_unanswered_question_cannot_be_dug_into() -> None:
    with pytest.raises(TemplateError, match="the question 'is_investor' is not answered"):
        render("{{ answers.is_investor.lower() }}", answers={})


def test_answers_are_strings_or_lists() -> None:
    body = (
        "{% if answers.is_investor == 'yes' %}belegger{% endif %} "
        "{% if 'etfs' in answers.investment_interests %}etf{% endif %} "
        "{{ answers.investment_interests }} {{ answers.investment_interests|join('+') }}"
    )

    assert render(body).text == "belegger etf stocks, etfs stocks+etfs"


def test_a_question_key_that_is_also_a_dict_method_is_the_answer() -> None:
    answers = {"items": "veel", "values": "duurzaam", "get": "ja"}

    assert (
        render("{{ answers.items }} {{ answers.values }} {{ answers.get }}", answers=answers).text
        == "veel duurzaam ja"
    )


def test_a_missing_first_name_prints_nothing() -> None:
    step = render(
        "Hallo{{ ' ' ~ first_name if first_name }},", subject="Hoi {{ first_name }}", first_name=None
    )

    assert step.text == "Hallo,"
    assert step.subject == "Hoi"


def test_a_name_outside_the_context_is_an_error_at_send_time() -> None:
    with pytest.raises(TemplateError, match="'voornaam' is undefined"):
        render("{{ voornaam }}")


def test_the_context_needs_its_links() -> None:
    with pytest.raises(ValueError, match=r"links\.preferences"):
        render("x", links={"unsubscribe": UNSUBSCRIBE_URL})
    with pytest.raises(ValueError, match="site_url"):
        render_step("x", "y", {"links": {"unsubscribe": "u", "preferences": "p"}, "site_name": "B"})


def test_extra_context_names_are_not_visible_to_the_template() -> None:
    with pytest.raises(TemplateError, match="'locale' is undefined"):
        render("{{ locale }}", locale="nl")


# The whole message


def message_context(step: RenderedStep, locale: str, **overrides: Any) -> dict[str, Any]:
    """The context the services pass to MailRenderer for a `sequence` delivery."""
    context = {
        "locale": locale,
        "site_name": "Beleggen",
        "site_url": "https://beleggen.example",
        "site_link": "https://beleggen.example",
        "step_subject": step.subject,
        "step_html": step.html,
        "step_text": step.text,
        "preferences_url": PREFERENCES_URL,
    }
    return {**context, **overrides}


def sequence_envelope() -> Envelope:
    return envelope("sequence", message_id=MESSAGE_ID)


STEPS = {
    "nl": (
        "{{ first_name or 'lezer' }}, zo begin je met daytraden",
        """# Welkom bij de cursus

Hallo {{ first_name or "lezer" }},

{% if answers.is_investor == "yes" %}
Je belegt al, dus je kent het verschil tussen **kopen** en *verkopen*.
{% else %}
Beleg je nog niet? Geen probleem: we beginnen bij het begin.
{% endif %}

Deze week:

- wat daytraden is;
- waarom risico *eerst* komt;
- je eerste oefenorder.

{% if "etfs" in answers.investment_interests %}
Je gaf aan interesse te hebben in ETF's; daar komen we op terug.
{% endif %}

Klopt iets niet meer? [Pas je antwoorden aan]({{ links.preferences }}).
""",
    ),
    "en": (
        "{{ first_name or 'reader' }}, here is how to start daytrading",
        """# Welcome to the course

Hello {{ first_name or "reader" }},

{% if answers.is_investor == "yes" %}
You already invest, so you know the difference between **buying** and *selling*.
{% else %}
Not investing yet? No problem: we start at the beginning.
{% endif %}

This week:

- what daytrading is;
- why risk comes *first*;
- your first practice order.

{% if "etfs" in answers.investment_interests %}
You told us you are interested in ETFs; we will come back to that.
{% endif %}

Has something changed? [Update your answers]({{ links.preferences }}).
""",
    ),
}


@pytest.fixture(scope="module")
def renderer() -> MailRenderer:
    return MailRenderer(TEMPLATES_DIR)


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_the_example_steps_pass_the_check(locale: str) -> None:
    assert check_step_template(*STEPS[locale]) == []


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_a_sequence_email_follows_the_spec(renderer: MailRenderer, locale: str) -> None:
    step = render_step(*STEPS[locale], step_context())

    rendered = renderer.render(sequence_envelope(), "sequence", message_context(step, locale))

    raw = bytes(rendered)
    assert raw.isascii()
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE_URL}>\r\n".encode() in raw
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    message = reparsed(rendered)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert (
        str(message["Subject"])
        == step.subject
        == ("Anna, zo begin je met daytraden" if locale == "nl" else "Anna, here is how to start daytrading")
    )
    assert message["From"].addresses == (SENDER,)
    assert str(message["Message-ID"]) == MESSAGE_ID
    assert str(message["Auto-Submitted"]) == "auto-generated"
    assert str(message["X-Leadcapture-Kind"]) == "sequence"
    assert str(message["List-Id"]) == "Beleggen <beleggen.example>"
    assert "Date" in message
    text, document = (part.replace("\r\n", "\n") for part in parts(message))
    identity = translate(locale, "email.sender", name="Beleggen", address="nieuws@beleggen.example")
    for part in (text, document):
        assert identity in part
        assert translate(locale, "email.footer_marketing", site="Beleggen") in part
        assert translate(locale, "email.unsubscribe_question") in part
        assert translate(locale, "email.preferences") in part
    assert f"{translate(locale, 'email.unsubscribe')}: {UNSUBSCRIBE_URL}" in text
    assert (
        f'<a href="{UNSUBSCRIBE_URL}" style="color:#0b5cad;font-weight:bold;">{translate(locale, "email.unsubscribe")}</a>'
        in document
    )
    assert f">{translate(locale, 'email.preferences')}</a>" in document
    assert step.html in document
    assert step.text in text
    assert set(URL.findall(text)) == html_links(document)
    assert {UNSUBSCRIBE_URL, PREFERENCES_URL} <= html_links(document)
    assert text_words(text) == html_words(document)


@pytest.mark.parametrize("preferences_url", [None, "absent"])
def test_without_a_preferences_url_there_is_no_preferences_line(
    renderer: MailRenderer, preferences_url: str | None
) -> None:
    step = render("Hallo.")
    context = message_context(step, "en", preferences_url=preferences_url)
    if preferences_url == "absent":
        del context["preferences_url"]

    text, document = parts(renderer.render(sequence_envelope(), "sequence", context))

    assert translate("en", "email.preferences") not in text
    assert translate("en", "email.preferences") not in document
    assert PREFERENCES_URL not in text + document
    assert UNSUBSCRIBE_URL in text


def test_hostile_values_stay_text_in_the_whole_message(renderer: MailRenderer) -> None:
    step = render(
        "Hallo {{ first_name }}", subject="Hoi {{ first_name }}", first_name="<script>alert(1)</script>"
    )

    message = reparsed(renderer.render(sequence_envelope(), "sequence", message_context(step, "nl")))

    text, document = parts(message)
    assert "<script>" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "Hallo <script>alert(1)</script>" in text
    assert str(message["Subject"]) == "Hoi <script>alert(1)</script>"


@pytest.mark.parametrize("locale", ["nl", "en"])
def test_text_part_matches_golden_file(renderer: MailRenderer, locale: str) -> None:
    step = render_step(*STEPS[locale], step_context())

    message = renderer.render(sequence_envelope(), "sequence", message_context(step, locale))

    text, _ = parts(message)
    assert_golden(f"sequence.{locale}.txt", f"Subject: {message['Subject']}\n\n{text}")
