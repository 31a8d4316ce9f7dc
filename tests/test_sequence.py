"""The email sequence (nurture.sequence) and the offsets it is written in (parse_duration)."""

from __future__ import annotations

import math
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from nurture.config import DEFAULT_TEMPLATES
from nurture.domain import ScarType
from nurture.errors import SequenceError
from nurture.sequence import Condition, Step, Trigger, load_sequence
from nurture.timing import parse_duration

REQUIRED_STEPS = (
    "welcome",
    "what_to_expect",
    "prepare",
    "day_before",
    "aftercare",
    "book_next",
    "book_next_last_call",
    "halfway",
    "course_complete",
)

#: Marks the line a refusal must point at; a TOML comment, so it changes nothing else.
HERE = "# <- here"

GOOD_STEP = """\
[[step]]
name = "welcome"
event = "enrolled"
offset = "0"
expires = "3d"
"""

#: Follows the bad step, so a key missing from the bad step must not be found here.
LATER_STEP = """\
[[step]]
name = "later"
template = "welcome"
event = "session_completed"
offset = "1d"
expires = "3d"
"""


def _template_folder(root: Path, sequence: str, emails: tuple[str, ...] = ("welcome",)) -> Path:
    """A minimal template folder: the given sequence.toml and one folder per email."""
    root.mkdir(parents=True, exist_ok=True)
    for name in emails:
        folder = root / "emails" / name
        folder.mkdir(parents=True)
        (folder / "subject.txt").write_text(f"{name} subject\n", encoding="utf-8")
        (folder / "body.txt").write_text(f"{name} body\n", encoding="utf-8")
        (folder / "body.html").write_text(f"<p>{name} body</p>\n", encoding="utf-8")
    (root / "sequence.toml").write_text(sequence, encoding="utf-8")
    return root


def _marked_line(text: str) -> int:
    """The 1-based number of the single line carrying the HERE marker."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if HERE in line]
    assert len(found) == 1, "each bad sequence marks exactly one line"
    return found[0]


def _step(sessions: str | tuple[int, ...]) -> Step:
    """A session step that differs from others only in its session filter."""
    return Step(
        name="probe",
        template="probe",
        trigger=Trigger.SESSION_COMPLETED,
        offset=timedelta(0),
        expires=timedelta(days=1),
        scars=frozenset(ScarType),
        sessions=sessions,
        conditions=(),
        invite=False,
        description="",
        line=1,
    )


# --- the bundled default sequence ---------------------------------------------


def test_default_sequence_loads() -> None:
    """The bundled default template folder loads without a SequenceError."""
    sequence = load_sequence(DEFAULT_TEMPLATES)
    assert sequence.path == DEFAULT_TEMPLATES / "sequence.toml"
    assert sequence.steps


@pytest.mark.parametrize("name", REQUIRED_STEPS)
def test_default_sequence_has_required_step(name: str) -> None:
    """Every email the product requires is a step of the default sequence."""
    assert load_sequence(DEFAULT_TEMPLATES).step(name).name == name


@pytest.mark.parametrize(
    ("name", "trigger"),
    [
        ("welcome", Trigger.ENROLLED),
        ("what_to_expect", Trigger.ENROLLED),
        ("prepare", Trigger.SESSION_BOOKED),
        ("day_before", Trigger.SESSION_BOOKED),
        ("aftercare", Trigger.SESSION_COMPLETED),
        ("book_next", Trigger.SESSION_COMPLETED),
        ("book_next_last_call", Trigger.SESSION_COMPLETED),
        ("halfway", Trigger.SESSION_COMPLETED),
        ("course_complete", Trigger.COURSE_COMPLETED),
    ],
)
def test_default_step_hangs_on_its_event(name: str, trigger: Trigger) -> None:
    """Each required default step hangs on the course event its content is about."""
    assert load_sequence(DEFAULT_TEMPLATES).step(name).trigger is trigger


@pytest.mark.parametrize(("name", "days_before"), [("prepare", 4), ("day_before", 1)])
def test_default_pre_session_steps_fall_before_the_session(name: str, days_before: int) -> None:
    """prepare is sent 4 days and day_before 1 day before the session, both ending before it."""
    step = load_sequence(DEFAULT_TEMPLATES).step(name)
    assert step.offset == -timedelta(days=days_before)
    assert step.expires <= timedelta(0)


@pytest.mark.parametrize("name", ["book_first", "book_next", "book_next_last_call"])
def test_default_booking_nudges_exclude_hypertrophic_only_clients(name: str) -> None:
    """Booking nudges go to atrophic and PIH clients, never to raised scars alone."""
    step = load_sequence(DEFAULT_TEMPLATES).step(name)
    assert step.scars == {ScarType.ATROPHIC, ScarType.PIH}
    assert Condition.NEXT_NOT_BOOKED in step.conditions


@pytest.mark.parametrize(
    ("name", "weeks"), [("book_next", (6, 7)), ("book_next_last_call", (7, 8))]
)
def test_default_booking_nudges_sit_in_the_six_to_eight_week_window(
    name: str, weeks: tuple[int, int]
) -> None:
    """Each book-next nudge opens and expires inside the 6-8 weeks after a session."""
    step = load_sequence(DEFAULT_TEMPLATES).step(name)
    assert step.sessions == "not_last"
    assert timedelta(weeks=weeks[0]) <= step.offset < step.expires <= timedelta(weeks=weeks[1])


def test_default_halfway_step_uses_the_halfway_filter() -> None:
    """The halfway encouragement is chosen with the 'halfway' session filter."""
    assert load_sequence(DEFAULT_TEMPLATES).step("halfway").sessions == "halfway"


def test_copied_default_folder_loads_the_same_steps(tmp_path: Path) -> None:
    """A copy of the default folder (the base of the refusal tests) loads the same steps."""
    copy = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, copy)
    original = load_sequence(DEFAULT_TEMPLATES)
    copied = load_sequence(copy)
    assert [s.name for s in copied.steps] == [s.name for s in original.steps]


# --- refusals, each naming the file and the line -------------------------------

BAD_STEPS = {
    "unknown event": f"""\
[[step]]
name = "second"
template = "welcome"
event = "birthday"  {HERE}
expires = "3d"
""",
    "unknown scar type": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
expires = "3d"
scars = ["atrophic", "keloid"]  {HERE}
""",
    "bad offset text": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
offset = "3 days"  {HERE}
expires = "5d"
""",
    "expires equal to offset": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
offset = "2d"
expires = "2d"  {HERE}
""",
    "expires before offset": f"""\
[[step]]
name = "second"
template = "welcome"
event = "session_booked"
offset = "-1d"
expires = "-4d"  {HERE}
""",
    "unknown key": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
expires = "3d"
offest = "1d"  {HERE}
""",
    "missing name": f"""\
[[step]]  {HERE}
template = "welcome"
event = "enrolled"
expires = "3d"
""",
    "missing event": f"""\
[[step]]  {HERE}
name = "second"
template = "welcome"
expires = "3d"
""",
    "missing expires": f"""\
[[step]]  {HERE}
name = "second"
template = "welcome"
event = "enrolled"
""",
    "unknown template folder": f"""\
[[step]]
name = "second"
template = "no_such_folder"  {HERE}
event = "enrolled"
expires = "3d"
""",
    "duplicate step name": f"""\
[[step]]
event = "enrolled"
name = "welcome"  {HERE}
expires = "3d"
""",
    "invite on a non-session event": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
expires = "3d"
invite = true  {HERE}
""",
    "sessions filter on a course-level event": f"""\
[[step]]
name = "second"
template = "welcome"
event = "course_completed"
expires = "3d"
sessions = "first"  {HERE}
""",
    "unknown condition in when": f"""\
[[step]]
name = "second"
template = "welcome"
event = "enrolled"
expires = "3d"
when = ["sometimes"]  {HERE}
""",
}


@pytest.mark.parametrize("bad_step", BAD_STEPS.values(), ids=BAD_STEPS.keys())
def test_invalid_step_is_refused_naming_file_and_line(tmp_path: Path, bad_step: str) -> None:
    """A bad step between good ones is refused with the file and the line of its bad key."""
    text = f"# a clinic's sequence\n\n{GOOD_STEP}\n{bad_step}\n{LATER_STEP}"
    folder = _template_folder(tmp_path / "templates", text)
    with pytest.raises(SequenceError) as info:
        load_sequence(folder)
    assert f"{folder / 'sequence.toml'}:{_marked_line(text)}:" in str(info.value)


def test_invalid_step_in_copied_default_folder_names_its_line(tmp_path: Path) -> None:
    """An unknown event appended to a copy of the default sequence is refused at its line."""
    copy = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, copy)
    path = copy / "sequence.toml"
    text = path.read_text(encoding="utf-8") + (
        f'\n[[step]]\nname = "extra"\ntemplate = "welcome"\nevent = "birthday"  {HERE}\n'
        'expires = "3d"\n'
    )
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SequenceError) as info:
        load_sequence(copy)
    assert f"{path}:{_marked_line(text)}:" in str(info.value)


# These refusals also name the offending value.
NAMED_REFUSALS = {
    "unknown template folder": (
        '[[step]]\nname = "second"\ntemplate = "no_such_folder"\nevent = "enrolled"\n'
        'expires = "3d"\n',
        "'no_such_folder'",
    ),
    "duplicate step name": (
        '[[step]]\nname = "welcome"\nevent = "enrolled"\nexpires = "3d"\n',
        "'welcome' is used twice",
    ),
}


@pytest.mark.parametrize(("bad_step", "named"), NAMED_REFUSALS.values(), ids=NAMED_REFUSALS.keys())
def test_invalid_step_is_refused_naming_file_and_value(
    tmp_path: Path, bad_step: str, named: str
) -> None:
    """An unknown template folder or a reused step name is refused, naming file and value."""
    folder = _template_folder(tmp_path / "templates", f"{GOOD_STEP}\n{bad_step}")
    with pytest.raises(SequenceError) as info:
        load_sequence(folder)
    message = str(info.value)
    assert message.startswith(f"{folder / 'sequence.toml'}:")
    assert named in message


def test_invalid_toml_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """A sequence.toml that is not TOML is refused with the file and the broken line."""
    text = f'{GOOD_STEP}\n[[step]]\nname = "second\nevent = "enrolled"\n'
    folder = _template_folder(tmp_path / "templates", text)
    broken = text.splitlines().index('name = "second') + 1
    with pytest.raises(SequenceError) as info:
        load_sequence(folder)
    message = str(info.value)
    assert str(folder / "sequence.toml") in message
    assert f"line {broken}," in message


@pytest.mark.parametrize(
    "text",
    ["", "# nothing here yet\n", 'title = "steps to come"\n', "step = []\n"],
    ids=["empty", "comment only", "no step table", "empty step list"],
)
def test_sequence_without_steps_is_refused(tmp_path: Path, text: str) -> None:
    """A sequence.toml without any [[step]] is refused, naming the file."""
    folder = _template_folder(tmp_path / "templates", text)
    with pytest.raises(SequenceError, match="no \\[\\[step\\]\\]") as info:
        load_sequence(folder)
    assert str(folder / "sequence.toml") in str(info.value)


def test_missing_sequence_file_is_refused(tmp_path: Path) -> None:
    """A template folder without sequence.toml is refused, naming the missing file."""
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    (folder / "sequence.toml").unlink()
    with pytest.raises(SequenceError, match="not found") as info:
        load_sequence(folder)
    assert str(folder / "sequence.toml") in str(info.value)


@pytest.mark.parametrize("missing", ["subject.txt", "body.txt", "body.html"])
def test_template_folder_missing_a_file_is_refused(tmp_path: Path, missing: str) -> None:
    """A step whose template folder lacks one of its three files is refused, naming the file."""
    folder = _template_folder(tmp_path / "templates", GOOD_STEP)
    (folder / "emails" / "welcome" / missing).unlink()
    with pytest.raises(SequenceError) as info:
        load_sequence(folder)
    message = str(info.value)
    assert str(folder / "sequence.toml") in message
    assert missing in message


# --- which sessions a step is for ----------------------------------------------


@pytest.mark.parametrize(
    ("sessions", "planned", "expected"),
    [
        ("all", 5, {1, 2, 3, 4, 5}),
        ("all", 1, {1}),
        ("first", 5, {1}),
        ("first", 1, {1}),
        ("last", 5, {5}),
        ("last", 3, {3}),
        ("last", 1, {1}),
        ("not_last", 5, {1, 2, 3, 4}),
        ("not_last", 2, {1}),
        ("not_last", 1, set()),
        ((1, 3), 5, {1, 3}),
        ((2,), 5, {2}),
        ((4, 9), 5, {4}),
    ],
)
def test_session_filter_selects_sessions(
    sessions: str | tuple[int, ...], planned: int, expected: set[int]
) -> None:
    """Each session filter picks exactly the sessions it names out of a planned course."""
    step = _step(sessions)
    chosen = {n for n in range(1, planned + 1) if step.applies_to_session(n, planned)}
    assert chosen == expected


@pytest.mark.parametrize(
    ("planned", "expected"), [(5, {3}), (4, {2}), (3, {2}), (2, {1}), (1, set())]
)
def test_halfway_filter_picks_the_middle_session(planned: int, expected: set[int]) -> None:
    """'halfway' is session 3 of 5, 2 of 4, and none for a one-session course."""
    step = _step("halfway")
    chosen = {n for n in range(1, planned + 1) if step.applies_to_session(n, planned)}
    assert chosen == expected


@pytest.mark.parametrize("planned", range(2, 13))
def test_halfway_filter_is_one_middle_session_never_the_last(planned: int) -> None:
    """For any course of 2+ sessions, 'halfway' is one session, the rounded-up middle, not last."""
    step = _step("halfway")
    chosen = [n for n in range(1, planned + 1) if step.applies_to_session(n, planned)]
    assert chosen == [math.ceil(planned / 2)]
    assert planned not in chosen


# --- parse_duration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("3d", timedelta(days=3)),
        ("-1d", -timedelta(days=1)),
        ("+6w", timedelta(weeks=6)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("7w3d", timedelta(weeks=7, days=3)),
        ("90m", timedelta(minutes=90)),
        ("-3h", -timedelta(hours=3)),
        (" 2d ", timedelta(days=2)),
    ],
)
def test_parse_duration_accepts_offsets(text: str, expected: timedelta) -> None:
    """Offsets written as a signed number and unit (w, d, h, m) parse to their timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "d", "3", "3x", "3 days", "1.5d", "--1d", "d3", "3d-1d", "abc", "six weeks", "+-1d"],
)
def test_parse_duration_refuses_garbage(text: str) -> None:
    """Text that is not a number-and-unit duration is refused with a ValueError."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
