"""A lean RFC 5322 / MIME writer for nurture's one shape of message.

``email.message.EmailMessage`` parses and re-folds every header through its
policy machinery, which costs milliseconds per message; nurture sends
thousands of messages of one known shape, so it writes them directly.
Every guarantee is kept: header values may not contain CR or LF (a refusal,
never a silent fix), non-ASCII display names and subjects become RFC 2047
encoded-words, display names are quoted where RFC 5322 needs it, bodies are
quoted-printable with lines of at most 76 characters, attachments base64.
Messages are parsed back with the standard library in the tests.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.header import Header
from email.quoprimime import body_encode
from email.utils import formataddr

CRLF = "\r\n"
_UTF8 = Charset("utf-8")
_UTF8.header_encoding = QP


class HeaderInjectionError(ValueError):
    """A header value carried a line break."""


@dataclass(frozen=True)
class Part:
    """One leaf of the MIME tree."""

    content_type: str
    body: bytes
    encoding: str  # "quoted-printable" or "base64"
    params: Sequence[tuple[str, str]] = ()
    disposition: str | None = None


@dataclass(frozen=True)
class Multipart:
    """A multipart container (alternative or mixed)."""

    subtype: str
    parts: Sequence[Part | Multipart] = field(default_factory=tuple)


def address(name: str, addr_spec: str) -> str:
    """``Name <addr>``, quoted or encoded as needed; refuses line breaks.

    Runs of spaces and tabs in the name become one space: mail programs
    read them so anyway (RFC 5322 folds the whitespace between words).
    """
    _one_line(name)
    _one_line(addr_spec)
    return formataddr((_BLANKS.sub(" ", name).strip(" "), addr_spec), charset="utf-8")


_BLANKS = re.compile(r"[ \t]+")


def unstructured(value: str) -> str:
    """A Subject-like value: ASCII as is (folded), anything else as encoded-words."""
    _one_line(value)
    if value.isascii():
        return _fold(value)
    return Header(value, _UTF8, maxlinelen=76, header_name="Subject").encode(linesep=CRLF)


def text_part(text: str, subtype: str) -> Part:
    """A UTF-8 text part, quoted-printable, CRLF line ends."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)
    return Part(
        f"text/{subtype}",
        quoted_printable(normal.encode("utf-8")),
        "quoted-printable",
        (("charset", "utf-8"),),
    )


def quoted_printable(data: bytes) -> bytes:
    """``data`` (CRLF line ends) as quoted-printable with lines of at most 76 (RFC 2045).

    binascii's C encoder does it in microseconds, but in a few corner cases
    (trailing whitespace at a soft break, text with no line end at all) it
    writes a 77-character line or a bare LF; those rare inputs go through the
    standard library's pure-Python encoder instead, which gets them right.
    """
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    lines = encoded.split(b"\r\n")
    breaks = len(lines) - 1
    if max(map(len, lines)) <= 76 and encoded.count(b"\n") == encoded.count(b"\r") == breaks:
        return encoded
    raw = data.replace(b"\r\n", b"\n").decode("latin-1")
    return body_encode(raw, maxlinelen=76, eol=CRLF).encode("ascii")


def binary_part(
    content_type: str,
    data: bytes,
    params: Iterable[tuple[str, str]] = (),
    filename: str | None = None,
) -> Part:
    """A base64 part; with ``filename`` it is an attachment."""
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    disposition = f'attachment; filename="{_quoted(filename)}"' if filename else None
    return Part(content_type, encoded, "base64", tuple(params), disposition)


def write(headers: Sequence[tuple[str, str]], body: Part | Multipart) -> bytes:
    """The whole message: headers (each checked for line breaks) then the MIME body."""
    lines = []
    for name, value in headers:
        if "\r" in name or "\n" in name or ":" in name:
            raise HeaderInjectionError(f"bad header name {name!r}")
        if "\n" in value.replace("\r\n ", "").replace("\r\n\t", ""):
            raise HeaderInjectionError(f"{name} contains a line break")
        lines.append(f"{name}: {value}")
    lines.append("MIME-Version: 1.0")
    return (CRLF.join(lines) + CRLF).encode("ascii") + _entity(body)


def _entity(node: Part | Multipart) -> bytes:
    if isinstance(node, Part):
        head = f"Content-Type: {node.content_type}{_params(node.params)}{CRLF}"
        head += f"Content-Transfer-Encoding: {node.encoding}{CRLF}"
        if node.disposition:
            head += f"Content-Disposition: {node.disposition}{CRLF}"
        return (head + CRLF).encode("ascii") + node.body
    boundary = "=_nurture_" + secrets.token_hex(12)
    out = [
        f'Content-Type: multipart/{node.subtype};{CRLF} boundary="{boundary}"{CRLF}{CRLF}'.encode(
            "ascii"
        )
    ]
    for child in node.parts:
        out.append(f"--{boundary}{CRLF}".encode("ascii"))
        out.append(_entity(child) + b"\r\n")  # this CRLF belongs to the next delimiter
    out.append(f"--{boundary}--{CRLF}".encode("ascii"))
    return b"".join(out)


def _params(params: Iterable[tuple[str, str]]) -> str:
    return "".join(f'; {key}="{_quoted(value)}"' for key, value in params)


def _quoted(value: str) -> str:
    _one_line(value)
    if not value.isascii():
        raise HeaderInjectionError("parameter values must be ASCII")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _one_line(value: str) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise HeaderInjectionError("header values must be one line")


def _fold(value: str, width: int = 78) -> str:
    """Fold an ASCII header value at spaces so no line is needlessly long."""
    if len(value) <= width - 10:
        return value
    words, lines, current = value.split(" "), [], ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > width - 10:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return (CRLF + " ").join(lines)
