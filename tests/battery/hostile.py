"""Hypothesis strategies for what staff (or a booking system) might type.

Mostly hostile: control characters, CR/LF header injection, RFC 2047
encoded-word tricks, unicode and IDN addresses, huge strings, impossible and
daylight-saving-gap dates, unknown scar types and zones.  Some of it valid,
so the "accepted and stored exactly" half of the property is exercised too.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

TRICKS = [
    "\r\nBcc: victim@example.org",
    "\nSubject: you won",
    "\r\n\r\n<html>body</html>",
    "=?utf-8?b?QWxpY2U=?=",
    "=?iso-8859-1?q?=0D=0ABcc:_x@example.org?=",
    "?=",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "\u0085",
    "\u202e",
    "\ufeff",
    '"',
    "<evil@example.org>",
    ", other@example.org",
    ";",
    "\\",
    "'; DROP TABLE clients; --",
    "{{7*7}}",
    "<script>",
]
NAMES = ["Ana Silva", "Zoë Ünïcødé", "名前 テスト", "Ngũgĩ wa Thiong'o", "O'Brien, Seán", "Łukasz"]


def _spliced(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, trick, b: a + trick + b, base, st.sampled_from(TRICKS), base)


names = st.one_of(
    st.sampled_from(NAMES),
    _spliced(st.sampled_from([*NAMES, ""])),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=80),
    st.integers(150, 400).map(lambda n: "N" * n),
    st.just("x" * 20000),
    st.sampled_from(["", " ", "   Padded Name   ", "-Dash", "--name"]),
)

_ascii_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}", fullmatch=True)
#: Letters IDNA maps or encodes (\uff46 is a fullwidth f, which maps to f).
_idn_label = st.text(st.sampled_from("abcdeéüßøπжλ中文\uff46"), min_size=1, max_size=12)
emails = st.one_of(
    st.emails(),
    st.builds(lambda local, label: f"{local}@{label}.example", _ascii_local, _idn_label),
    st.builds(lambda local: f"{local}@xn--bcher-kva.example", _ascii_local),
    st.builds(lambda local: f"JoSé.{local}@Example.COM", _ascii_local),
    _spliced(st.just("ana@example.com")),
    st.builds(lambda local: f"{local}@example.com{'x' * 250}", _ascii_local),
    st.sampled_from(
        [
            "",
            " ",
            "@",
            "a@",
            "@b.com",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "<a@b.com>",
            "Ana <a@b.com>",
            "a@[127.0.0.1]",
            "-a@b.com",
            "a@b.com, c@d.com",
            "a@b.com\r\nBcc: c@d.com",
            "=?utf-8?q?a?=@b.com",
            "a" * 300 + "@b.com",
        ]
    ),
    st.text(max_size=30),
)
zones = st.one_of(
    st.none(),
    st.sampled_from(
        ["Europe/London", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "UTC"]
    ),
    st.sampled_from(["Mars/Olympus", "../../etc/passwd", "europe/london", " Europe/London ", ""]),
    st.text(max_size=20),
)
scars = st.lists(
    st.one_of(
        st.sampled_from(["atrophic", "pih", "hypertrophic", "ATROPHIC", " pih "]),
        st.text(max_size=15),
    ),
    max_size=3,
)
sessions = st.one_of(
    st.integers(-3, 25).map(str),
    st.sampled_from(["1.5", "", "five", "99999999999999999999999", "٣", "0x5"]),
    st.text(max_size=6),
)
#: Naive on purpose: staff type a wall-clock time, local to the client.
_FIRST, _LAST = datetime.fromisoformat("2026-01-01"), datetime.fromisoformat("2028-12-31")
whens = st.one_of(
    st.datetimes(_FIRST, _LAST).map(lambda d: d.isoformat(timespec="minutes")),
    st.sampled_from(
        [
            "2026-02-30T10:00",
            "2026-13-01T10:00",
            "2026-12-03T25:00",
            "2026-12-03T10:61",
            "2026-03-29T01:30",
            "2026-10-25T01:30",
            "2026-10-25T01:30+01:00",
            "2026-12-03T10:30+25:00",
            "9999-12-31T23:59",
            "0001-01-01T00:00",
            "",
            "tomorrow",
            "2026-12-03",
            "2026-12-03T10:30\r\nBcc: x@y.z",
            "2026-12-03T10:30:00.999999Z",
        ]
    ),
    st.text(max_size=25),
)
session_numbers = st.one_of(st.integers(-2, 22).map(str), st.text(max_size=6))
