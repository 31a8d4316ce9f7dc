"""The lean message writer keeps every header guarantee the standard library would."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.errors import TemplateError
from nurture.rendering import Attachment, Recipient, RenderedEmail, build_message

SENDER = Address("Glow Clinic", "hello", "clinic.example.com")
DATE = datetime(2026, 11, 30, 10, tzinfo=UTC)
EXPECTED_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "MIME-Version",
    "Content-Type",
}
one_line = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=120
).filter(lambda s: s.strip() == s and s != "")


def build(
    name: str = "Ana Silva",
    subject: str = "Hello",
    text: str = "Text\n",
    html: str = "<p>Html</p>",
    attachments: tuple[Attachment, ...] = (),
) -> EmailMessage:
    """Build one message and parse it back with the standard library."""
    rendered = RenderedEmail(subject=subject, text=text, html=html, attachments=attachments)
    out = build_message(
        rendered,
        message_id="<m1@clinic.example.com>",
        sender=SENDER,
        recipient=Recipient("pid", name, "ana@example.com", "Europe/London"),
        date=DATE,
        unsubscribe_url="https://clinic.example.com/nurture/unsubscribe/tok.en",
    )
    parsed = email.message_from_bytes(out.data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    parsed.raw = out.data  # type: ignore[attr-defined]  (the bytes as nurture wrote them)
    return parsed


@settings(max_examples=300, deadline=None)
@given(name=one_line, subject=one_line)
def test_any_one_line_name_and_subject_round_trip(name: str, subject: str) -> None:
    """Unicode, quotes, commas and encoded-word lookalikes come back exactly, one recipient."""
    msg = build(name=name, subject=subject)
    assert set(msg.keys()) == EXPECTED_HEADERS
    assert len(msg["To"].addresses) == 1
    # runs of spaces and tabs read back as one space, in any mail program
    assert msg["To"].addresses[0].display_name == re.sub(r"[ \t]+", " ", name)
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert str(msg["Subject"]) == subject
    assert msg.defects == []


@pytest.mark.parametrize("bad", ["Ana\r\nBcc: x@evil.com", "Ana\nX", "Ana\rX", "Ana\x00"])
def test_line_breaks_in_header_values_are_refused(bad: str) -> None:
    """A CR, LF or NUL in a name or subject is refused, never passed on."""
    with pytest.raises(TemplateError, match="one line"):
        build(name=bad)
    with pytest.raises(TemplateError, match="one line"):
        build(subject=bad)


def test_unsubscribe_header_is_one_unencoded_line() -> None:
    """List-Unsubscribe stays a plain <https://...> URL whatever its length."""
    msg = build()
    assert msg["List-Unsubscribe"] == "<https://clinic.example.com/nurture/unsubscribe/tok.en>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000))
def test_bodies_round_trip_with_short_lines(text: str) -> None:
    """Any text comes back exactly (line ends aside), in quoted-printable lines of <= 76."""
    msg = build(text=text + "\n", html=f"<p>{text}</p>")
    body = msg.get_body(("plain",))
    assert body is not None
    expected = (text + "\n").replace("\r\n", "\n").replace("\r", "\n")
    assert body.get_content().replace("\r\n", "\n") == expected
    raw: bytes = msg.raw  # type: ignore[attr-defined]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_quoted_printable_lines_are_at_most_76() -> None:
    """Long lines are soft-broken inside the body parts."""
    msg = build(text="x" * 500 + "\n", html="<p>" + "y" * 500 + "</p>")
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            encoded = part.get_payload(decode=False)
            assert max(len(line) for line in encoded.splitlines()) <= 76


def test_attachments_nest_as_mixed_and_alternative() -> None:
    """An alternative calendar part sits beside text and HTML; a file is attached after."""
    invite = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"
    msg = build(
        attachments=(
            Attachment(
                "invite.ics", "text", "calendar", invite, {"method": "REQUEST"}, alternative=True
            ),
            Attachment("invite.ics", "application", "ics", invite),
        )
    )
    assert msg.get_content_type() == "multipart/mixed"
    alternative, attached = list(msg.iter_parts())
    kinds = [p.get_content_type() for p in alternative.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    assert list(alternative.iter_parts())[2].get_param("method") == "REQUEST"
    assert attached.get_filename() == "invite.ics"
    assert attached.get_content() == invite


def test_non_ascii_sender_and_subject_are_encoded_words() -> None:
    """Non-ASCII text in headers is RFC 2047-encoded on the wire, decoded on reading."""
    msg = build(name="Zoë Ünal", subject="Séance 1 réservée")
    raw = msg.raw.split(b"\r\n\r\n", 1)[0]  # type: ignore[attr-defined]
    assert raw.isascii()
    assert b"=?utf-8?" in raw
    assert str(msg["Subject"]) == "Séance 1 réservée"
