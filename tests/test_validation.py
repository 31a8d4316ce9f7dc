"""The pure input checks in nurture.validation: what each accepts, returns and refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.domain import ScarType
from nurture.errors import ValidationError
from nurture.validation import (
    MAX_NAME,
    MAX_SESSIONS,
    clean_email,
    clean_name,
    clean_scars,
    clean_session_number,
    clean_sessions,
    clean_zone,
    parse_local,
)

# --- clean_email -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("Ana.Silva@Example.COM", "ana.silva@example.com"),
        ("  bo@example.com \n", "bo@example.com"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    """A valid address comes back trimmed and entirely lower-case."""
    assert clean_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "a@bücher.de",
        "A@BÜCHER.DE",
        "a@bu\u0308cher.de",  # u + combining diaeresis, normalised to NFC ü
    ],
)
def test_idn_domain_is_accepted_and_normalised(raw: str) -> None:
    """An internationalised domain is accepted and normalised to NFC lower case."""
    assert clean_email(raw) == "a@b\u00fccher.de"


def test_non_ascii_local_part_is_refused() -> None:
    """A non-ASCII local part is refused on the email field, naming the address."""
    with pytest.raises(ValidationError) as info:
        clean_email("jöran@example.com")
    assert info.value.field == "email"
    assert "jöran@example.com" in info.value.reason


@pytest.mark.parametrize(
    "raw",
    ["not-an-email", "a@@example.com", "a@example", "@example.com", "a b@example.com"],
)
def test_malformed_email_is_refused(raw: str) -> None:
    """A syntactically invalid address is refused on the email field and echoed back."""
    with pytest.raises(ValidationError) as info:
        clean_email(raw)
    assert info.value.field == "email"
    assert "is not usable" in info.value.reason
    assert repr(raw) in info.value.reason


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_empty_email_is_refused(raw: str) -> None:
    """A blank address is refused with a message saying it is empty."""
    with pytest.raises(ValidationError) as info:
        clean_email(raw)
    assert info.value.field == "email"
    assert info.value.reason.startswith("is empty")


def test_email_longer_than_254_characters_is_refused() -> None:
    """An address over 254 characters is refused as too long."""
    domain = ".".join(["b" * 60] * 3) + ".example.com"
    raw = "a" * (255 - len(domain) - 1) + "@" + domain
    assert len(raw) == 255
    with pytest.raises(ValidationError) as info:
        clean_email(raw)
    assert info.value.field == "email"
    assert "longer than 254" in info.value.reason


def test_email_error_message_defangs_control_characters() -> None:
    """Control characters in a refused address are not echoed into the message."""
    with pytest.raises(ValidationError) as info:
        clean_email("a@exa\x00mple.com\r\nBcc: x@evil.com")
    assert info.value.field == "email"
    message = str(info.value)
    assert "\r" not in message
    assert "\n" not in message
    assert "\x00" not in message


# --- clean_name --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ana Silva", "Ana Silva"),
        ("  Bo, Jr.  ", "Bo, Jr."),
        ("Zoë Łukasiewicz-Ó'Brien", "Zoë Łukasiewicz-Ó'Brien"),
        ("李小龍", "李小龍"),
    ],
)
def test_name_is_trimmed_and_kept(raw: str, expected: str) -> None:
    """A one-line name comes back with surrounding whitespace removed, otherwise unchanged."""
    assert clean_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_empty_name_is_refused(raw: str) -> None:
    """A blank name is refused on the name field."""
    with pytest.raises(ValidationError) as info:
        clean_name(raw)
    assert info.value.field == "name"
    assert info.value.reason.startswith("is empty")


def test_name_of_exactly_max_length_is_accepted() -> None:
    """A name of exactly 200 characters is accepted whole."""
    name = "a" * MAX_NAME
    assert MAX_NAME == 200
    assert clean_name(name) == name


def test_name_one_over_max_length_is_refused() -> None:
    """A name of 201 characters is refused as too long."""
    with pytest.raises(ValidationError) as info:
        clean_name("a" * (MAX_NAME + 1))
    assert info.value.field == "name"
    assert "longer than 200" in info.value.reason


@pytest.mark.parametrize(
    "raw",
    [
        "Ana\rSilva",
        "Ana\nSilva",
        "Ana\r\nBcc: x@evil.com",
        "Ana\tSilva",
        "Ana\x00Silva",
        "Ana\x1bSilva",
        "Ana\x7fSilva",
        "Ana\x85Silva",  # NEL, a C1 control
        "Ana\u2028Silva",  # line separator
        "Ana\u2029Silva",  # paragraph separator
        "Ana\ue000Silva",  # private use
        "Ana\ud800Silva",  # lone surrogate
        "Ana\u0378Silva",  # unassigned code point
    ],
    ids=repr,
)
def test_name_with_control_character_or_line_break_is_refused(raw: str) -> None:
    """Line breaks, control, private-use, surrogate and unassigned characters are refused."""
    with pytest.raises(ValidationError) as info:
        clean_name(raw)
    assert info.value.field == "name"
    assert "control character or line break" in info.value.reason


@pytest.mark.parametrize("raw", ["=?utf-8?q?Ana?=", "Ana =? Silva", "Ana ?= Silva"])
def test_name_with_encoded_word_marker_is_refused(raw: str) -> None:
    """A name containing '=?' or '?=' (MIME encoded-word markers) is refused."""
    with pytest.raises(ValidationError) as info:
        clean_name(raw)
    assert info.value.field == "name"
    assert "'=?' or '?='" in info.value.reason


# --- clean_scars -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["atrophic"], (ScarType.ATROPHIC,)),
        (["PIH"], (ScarType.PIH,)),
        (["  Hypertrophic "], (ScarType.HYPERTROPHIC,)),
        (["post-inflammatory-hyperpigmentation"], (ScarType.PIH,)),
        (["Post Inflammatory Hyperpigmentation"], (ScarType.PIH,)),
        (["post_inflammatory_hyperpigmentation"], (ScarType.PIH,)),
    ],
)
def test_scar_names_and_aliases_are_recognised(
    raw: list[str], expected: tuple[ScarType, ...]
) -> None:
    """Scar types are matched ignoring case, surrounding space, '_' vs ' ' vs '-'."""
    assert clean_scars(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["pih", "atrophic"], (ScarType.ATROPHIC, ScarType.PIH)),
        (["hypertrophic", "pih"], (ScarType.PIH, ScarType.HYPERTROPHIC)),
        (["hypertrophic", "atrophic"], (ScarType.ATROPHIC, ScarType.HYPERTROPHIC)),
        (
            ["hypertrophic", "pih", "atrophic"],
            (ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC),
        ),
        (
            ["pih", "hypertrophic", "atrophic"],
            (ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC),
        ),
    ],
)
def test_scars_come_back_in_canonical_order(raw: list[str], expected: tuple[ScarType, ...]) -> None:
    """Scar types are returned ordered atrophic, pih, hypertrophic, whatever the input order."""
    assert clean_scars(raw) == expected


def test_repeated_scar_types_are_returned_once() -> None:
    """A scar type given several times, under any alias, appears once."""
    raw = ["PIH", "pih", "post inflammatory hyperpigmentation", "atrophic", "Atrophic"]
    assert clean_scars(raw) == (ScarType.ATROPHIC, ScarType.PIH)


def test_scars_accept_any_iterable() -> None:
    """clean_scars consumes a one-shot iterator as well as a list."""
    assert clean_scars(iter(["pih", "atrophic"])) == (ScarType.ATROPHIC, ScarType.PIH)


@pytest.mark.parametrize("raw", [["keloid"], ["atrophic", "acne"], [""]])
def test_unknown_scar_type_is_refused(raw: list[str]) -> None:
    """An unknown scar type is refused on the scar field, naming it and the valid types."""
    with pytest.raises(ValidationError) as info:
        clean_scars(raw)
    bad = next(r for r in raw if r != "atrophic")
    assert info.value.field == "scar"
    assert repr(bad) in info.value.reason
    assert "atrophic, hypertrophic or pih" in info.value.reason


def test_no_scar_types_is_refused() -> None:
    """An empty list of scar types is refused, asking for at least one."""
    with pytest.raises(ValidationError) as info:
        clean_scars([])
    assert info.value.field == "scar"
    assert "at least one" in info.value.reason


def test_unknown_scar_message_defangs_line_breaks() -> None:
    """A refused scar value is echoed with control characters replaced by '?'."""
    with pytest.raises(ValidationError) as info:
        clean_scars(["keloid\r\nBcc"])
    assert "\n" not in str(info.value)
    assert "\r" not in str(info.value)
    assert "'keloid??Bcc'" in info.value.reason


# --- clean_zone --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Europe/London", "Europe/London"),
        (" America/New_York ", "America/New_York"),
        ("Australia/Lord_Howe", "Australia/Lord_Howe"),
        ("UTC", "UTC"),
    ],
)
def test_iana_zone_is_accepted_and_trimmed(raw: str, expected: str) -> None:
    """A known IANA zone name is returned trimmed."""
    assert clean_zone(raw) == expected


@pytest.mark.parametrize("raw", ["Mars/Base", "europe/london", "GMT+25", "", "London"])
def test_unknown_zone_is_refused(raw: str) -> None:
    """A name that is not an IANA zone (names are case-sensitive) is refused on timezone."""
    with pytest.raises(ValidationError) as info:
        clean_zone(raw)
    assert info.value.field == "timezone"
    assert repr(raw.strip()) in info.value.reason
    assert "not an IANA time zone" in info.value.reason


def test_long_refused_value_is_shortened_in_the_message() -> None:
    """A refused value over 60 characters is echoed as its first 57 and '...'."""
    raw = "Z" * 100
    with pytest.raises(ValidationError) as info:
        clean_zone(raw)
    assert "'" + "Z" * 57 + "...'" in info.value.reason
    assert "Z" * 58 not in info.value.reason


# --- clean_sessions / clean_session_number -----------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [(1, 1), ("6", 6), (" 12 ", 12), (MAX_SESSIONS, 20), ("20", 20)]
)
def test_planned_sessions_in_range_are_accepted(raw: int | str, expected: int) -> None:
    """A whole number from 1 to 20, as int or string, is returned as an int."""
    assert clean_sessions(raw) == expected


@pytest.mark.parametrize("raw", [0, 21, -1, "0", "21", "abc", "1.5", "", "6 sessions"])
def test_planned_sessions_out_of_range_or_not_whole_are_refused(raw: int | str) -> None:
    """Anything other than a whole number from 1 to 20 is refused on the sessions field."""
    with pytest.raises(ValidationError) as info:
        clean_sessions(raw)
    assert info.value.field == "sessions"
    assert repr(str(raw)) in info.value.reason
    assert "from 1 to 20" in info.value.reason


@pytest.mark.parametrize(
    ("raw", "planned", "expected"), [(1, 6, 1), ("6", 6, 6), (" 3 ", 5, 3), (1, 1, 1)]
)
def test_session_number_within_plan_is_accepted(
    raw: int | str, planned: int, expected: int
) -> None:
    """A session number from 1 to the planned count is returned as an int."""
    assert clean_session_number(raw, planned) == expected


@pytest.mark.parametrize(
    ("raw", "planned"), [(0, 6), (7, 6), ("7", 6), ("-1", 6), ("two", 6), ("2.0", 6), (2, 1)]
)
def test_session_number_outside_plan_is_refused(raw: int | str, planned: int) -> None:
    """A session number outside 1..planned is refused on the session field, naming the range."""
    with pytest.raises(ValidationError) as info:
        clean_session_number(raw, planned)
    assert info.value.field == "session"
    assert repr(str(raw)) in info.value.reason
    assert f"from 1 to {planned}" in info.value.reason


# --- parse_local -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        # GMT in winter, BST (UTC+1) in summer
        ("2026-12-03T10:30", "Europe/London", datetime(2026, 12, 3, 10, 30, tzinfo=UTC)),
        ("2026-07-01T10:30", "Europe/London", datetime(2026, 7, 1, 9, 30, tzinfo=UTC)),
        # EST (UTC-5) in winter, EDT (UTC-4) in summer
        ("2026-12-03T10:30", "America/New_York", datetime(2026, 12, 3, 15, 30, tzinfo=UTC)),
        ("2026-07-01T10:30", "America/New_York", datetime(2026, 7, 1, 14, 30, tzinfo=UTC)),
        # the day after New York springs forward: already EDT
        ("2027-03-14T03:00", "America/New_York", datetime(2027, 3, 14, 7, 0, tzinfo=UTC)),
        ("  2026-12-03 10:30:15  ", "Europe/London", datetime(2026, 12, 3, 10, 30, 15, tzinfo=UTC)),
    ],
)
def test_local_time_converts_to_the_right_utc_instant(
    text: str, zone: str, expected: datetime
) -> None:
    """An unambiguous local time is returned as the matching UTC instant, tagged UTC."""
    result = parse_local(text, zone)
    assert result == expected
    assert result.utcoffset() == timedelta(0)
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-12-03T10:30+09:00", "Europe/London", datetime(2026, 12, 3, 1, 30, tzinfo=UTC)),
        ("2026-12-03T10:30-05:00", "Europe/London", datetime(2026, 12, 3, 15, 30, tzinfo=UTC)),
        ("2026-12-03T10:30Z", "America/New_York", datetime(2026, 12, 3, 10, 30, tzinfo=UTC)),
        # an offset settles even a wall time that the zone skips
        ("2027-03-28T01:30+00:00", "Europe/London", datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
    ],
)
def test_explicit_offset_is_honoured_over_the_zone(
    text: str, zone: str, expected: datetime
) -> None:
    """A time with an explicit UTC offset is taken as written, whatever the zone."""
    result = parse_local(text, zone)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("2027-03-28T01:30", "Europe/London"),  # 01:00 -> 02:00
        ("2027-03-28T01:00", "Europe/London"),
        ("2027-03-14T02:30", "America/New_York"),  # 02:00 -> 03:00
        ("2027-03-14T02:00", "America/New_York"),
    ],
)
def test_time_in_spring_forward_gap_is_refused(text: str, zone: str) -> None:
    """A wall time the clocks skip for daylight saving is refused, naming time and zone."""
    with pytest.raises(ValidationError) as info:
        parse_local(text, zone)
    assert info.value.field == "when"
    assert f"{text} does not exist in {zone}" in info.value.reason


def test_lord_howe_tz_data_has_a_half_hour_gap_on_2026_10_04() -> None:
    """Premise of the Lord Howe tests: tz data moves 02:00 +10:30 to 02:30 +11:00."""
    tz = ZoneInfo("Australia/Lord_Howe")
    assert datetime(2026, 10, 4, 1, 59, tzinfo=tz).utcoffset() == timedelta(hours=10, minutes=30)
    assert datetime(2026, 10, 4, 2, 30, tzinfo=tz).utcoffset() == timedelta(hours=11)
    last_before = datetime(2026, 10, 4, 1, 59, tzinfo=tz).astimezone(UTC)
    first_after = datetime(2026, 10, 4, 2, 30, tzinfo=tz).astimezone(UTC)
    assert first_after - last_before == timedelta(minutes=1)


@pytest.mark.parametrize("text", ["2026-10-04T02:00", "2026-10-04T02:15", "2026-10-04T02:29"])
def test_lord_howe_half_hour_gap_is_refused(text: str) -> None:
    """A wall time inside Lord Howe's 30-minute spring-forward gap is refused."""
    with pytest.raises(ValidationError) as info:
        parse_local(text, "Australia/Lord_Howe")
    assert info.value.field == "when"
    assert "does not exist in Australia/Lord_Howe" in info.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-04T01:59", datetime(2026, 10, 3, 15, 29, tzinfo=UTC)),  # +10:30
        ("2026-10-04T02:30", datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),  # +11:00
    ],
)
def test_lord_howe_times_either_side_of_gap_are_accepted(text: str, expected: datetime) -> None:
    """The minutes just before and just after Lord Howe's gap convert with the right offset."""
    assert parse_local(text, "Australia/Lord_Howe") == expected


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("2027-10-31T01:30", "Europe/London"),  # 02:00 BST -> 01:00 GMT
        ("2027-11-07T01:30", "America/New_York"),  # 02:00 EDT -> 01:00 EST
        ("2026-04-05T01:45", "Australia/Lord_Howe"),  # 02:00 +11 -> 01:30 +10:30
    ],
)
def test_ambiguous_fall_back_time_without_offset_is_refused(text: str, zone: str) -> None:
    """A wall time that happens twice when clocks go back is refused without an offset."""
    with pytest.raises(ValidationError) as info:
        parse_local(text, zone)
    assert info.value.field == "when"
    assert f"{text} happens twice in {zone}" in info.value.reason


def test_ambiguous_time_message_suggests_both_offsets() -> None:
    """The refusal of an ambiguous time offers both offset-qualified spellings."""
    with pytest.raises(ValidationError) as info:
        parse_local("2027-10-31T01:30", "Europe/London")
    assert "2027-10-31T01:30+01:00" in info.value.reason
    assert "2027-10-31T01:30+00:00" in info.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-10-31T01:30+01:00", datetime(2027, 10, 31, 0, 30, tzinfo=UTC)),
        ("2027-10-31T01:30+00:00", datetime(2027, 10, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_ambiguous_time_with_offset_is_accepted(text: str, expected: datetime) -> None:
    """Either occurrence of a repeated wall time is accepted when its offset is given."""
    assert parse_local(text, "Europe/London") == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:00",
        "2026-02-29T10:00",
        "2026-13-01T10:00",
        "2026-12-03T25:00",
        "tomorrow",
        "",
    ],
)
def test_nonexistent_date_or_garbage_is_refused(text: str) -> None:
    """A date that does not exist, or text that is not ISO 8601, is refused with an example."""
    with pytest.raises(ValidationError) as info:
        parse_local(text, "Europe/London")
    assert info.value.field == "when"
    assert "is not a valid date and time" in info.value.reason
    assert "YYYY-MM-DDTHH:MM" in info.value.reason


def test_leap_day_in_leap_year_is_accepted() -> None:
    """29 February exists in 2028 and converts normally."""
    assert parse_local("2028-02-29T10:00", "Europe/London") == datetime(
        2028, 2, 29, 10, 0, tzinfo=UTC
    )


def test_parse_local_errors_carry_the_callers_field_name() -> None:
    """The field passed to parse_local is the field named by its refusal."""
    with pytest.raises(ValidationError) as info:
        parse_local("2027-03-28T01:30", "Europe/London", field="first_session")
    assert info.value.field == "first_session"
    assert str(info.value).startswith("first_session: ")


_ZONES = ["Europe/London", "America/New_York", "Australia/Lord_Howe"]


@settings(max_examples=300, deadline=None, database=None)
@given(
    naive=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001  (wall times are naive by design)
        max_value=datetime(2028, 12, 31),  # noqa: DTZ001
    ).map(lambda d: d.replace(microsecond=0)),
    zone=st.sampled_from(_ZONES),
)
def test_parse_local_accepts_exactly_the_wall_times_with_one_instant(
    naive: datetime, zone: str
) -> None:
    """A wall time is accepted iff it names exactly one instant, and that instant is returned."""
    tz = ZoneInfo(zone)
    instants = {naive.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)}
    exists = all(i.astimezone(tz).replace(tzinfo=None) == naive for i in instants)
    text = naive.isoformat()
    if exists and len(instants) == 1:
        assert parse_local(text, zone) == instants.pop()
    else:
        with pytest.raises(ValidationError) as info:
            parse_local(text, zone)
        assert info.value.field == "when"
