"""Scenario 10: markup and template syntax typed into a client's name.

The emails are delivered to a real SMTP server and their HTML part is read
back with an HTML parser: a name can add no element, attribute or script,
and template syntax in it is shown as typed, never evaluated.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from tests.battery.invariants import check
from tests.battery.sink import FaultSink
from tests.conftest import Cli

NOW = "2026-11-30T10:00:00+00:00"
PLAIN = "Ann Plain"
#: Templates show the first name (the first word), so each payload is one word.
MARKUP = [
    "<script>alert(1)</script> Smith",
    '"><img/src=x/onerror=alert(1)> Jones',
    "<a/href='javascript:alert(1)'>Ann</a> Lee",
    "Ann</h1><iframe/src=//evil.example> Lee",
    "&lt;b&gt;Bold&lt;/b&gt; Ng",
]
TEMPLATE_SYNTAX = [
    "{{7*191}} Smith",
    "{{clinic.address}} Jones",
    "{{''.__class__.__mro__}} Ng",
    "{%raw%}Ann{%endraw%} Lee",
    "{#hidden#}Ann Lee",
]


_TOKEN = re.compile(r"/unsubscribe/[A-Za-z0-9_.-]+")  # each client's own link


class _Elements(HTMLParser):
    """Collects every element, attribute and text run of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(name, _TOKEN.sub("/TOKEN", value or "")) for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def shown(self) -> str:
        """The text a reader sees."""
        return "".join(self.text)


def _deliver(cli: Cli, sink: FaultSink, names: list[str]) -> list[tuple[_Elements, str]]:
    """Enrol one client per name, deliver the welcomes; each one's parsed HTML and text."""
    for n, name in enumerate(names):
        cli.ok("enroll", f"c{n}@example.com", "--name", name, "--scar", "atrophic", now=NOW)
    cli.ok("tick", now=NOW, env={"NURTURE_TRANSPORT": sink.url})
    check(cli.url, sink, settled_by=datetime.fromisoformat(NOW).astimezone(UTC))
    parts = []
    for n in range(len(names)):
        (arrival,) = [a for a in sink.arrivals if a.rcpt_tos == [f"c{n}@example.com"]]
        parsed = _Elements()
        parsed.feed(arrival.message.get_body(("html",)).get_content())
        parts.append((parsed, arrival.message.get_body(("plain",)).get_content()))
    return parts


def _same_but_for_the_name(hostile: str, plain: str, first: str) -> bool:
    """True when ``hostile`` reads exactly like ``plain`` with the first name swapped."""
    return _TOKEN.sub("/TOKEN", hostile.replace(first, "Ann")) == _TOKEN.sub("/TOKEN", plain)


@pytest.mark.parametrize("name", MARKUP)
def test_markup_in_a_name_is_escaped_in_the_html_part(cli: Cli, sink: FaultSink, name: str) -> None:
    """A name full of markup adds no element or attribute, and reads exactly as typed."""
    (plain, _), (hostile, _) = _deliver(cli, sink, [PLAIN, name])
    assert hostile.tags == plain.tags
    assert hostile.attributes == plain.attributes
    first = name.split(maxsplit=1)[0]
    assert first in hostile.shown
    assert _same_but_for_the_name(hostile.shown, plain.shown, first)


@pytest.mark.parametrize("name", TEMPLATE_SYNTAX)
def test_template_syntax_in_a_name_is_shown_not_run(cli: Cli, sink: FaultSink, name: str) -> None:
    """Jinja syntax in a name appears literally in both parts and is never evaluated."""
    (plain, plain_text), (hostile, text) = _deliver(cli, sink, [PLAIN, name])
    first = name.split(maxsplit=1)[0]
    assert first in hostile.shown
    assert first in text
    assert _same_but_for_the_name(hostile.shown, plain.shown, first)
    assert _same_but_for_the_name(text, plain_text, first)
