"""The email sequence: content the clinic edits, validated before anything is sent.

``templates/sequence.toml`` lists the steps of a course.  Each ``[[step]]``
names its template folder, the event it hangs on, an offset from that event,
who gets it, and until when it is still worth sending.  Loading checks every
step and reports the first problem with the file and line it is on.
"""

from __future__ import annotations

import enum
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from nurture.domain import ScarType
from nurture.errors import SequenceError
from nurture.timing import parse_duration

TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")


class Trigger(enum.StrEnum):
    """The course events a step can hang on.

    ``session_booked`` is anchored at the session's start (negative offsets
    fall before it); ``booking_made`` at the moment the booking was recorded.
    """

    ENROLLED = "enrolled"
    BOOKING_MADE = "booking_made"
    SESSION_BOOKED = "session_booked"
    SESSION_COMPLETED = "session_completed"
    COURSE_COMPLETED = "course_completed"
    SESSION_MOVED = "session_moved"
    SESSION_CANCELLED = "session_cancelled"

    @property
    def per_session(self) -> bool:
        """True when the step happens once per session."""
        return self not in (Trigger.ENROLLED, Trigger.COURSE_COMPLETED)


class Condition(enum.StrEnum):
    """Extra conditions a step can require."""

    #: The next session (session 1 for an enrolment step) is not booked yet.
    NEXT_NOT_BOOKED = "next_not_booked"


SESSION_FILTERS = ("all", "first", "last", "not_last", "halfway")
_KEYS = {
    "name",
    "template",
    "event",
    "offset",
    "expires",
    "scars",
    "sessions",
    "when",
    "invite",
    "description",
}


@dataclass(frozen=True)
class Step:
    """One email of the sequence."""

    name: str
    template: str
    trigger: Trigger
    offset: timedelta
    expires: timedelta
    scars: frozenset[ScarType]
    sessions: str | tuple[int, ...]
    conditions: tuple[Condition, ...]
    invite: bool
    description: str
    line: int

    def applies_to_session(self, number: int, planned: int) -> bool:
        """True when the step is meant for session ``number`` of ``planned``."""
        match self.sessions:
            case "all":
                return True
            case "first":
                return number == 1
            case "last":
                return number == planned
            case "not_last":
                return number < planned
            case "halfway":
                return number == (planned + 1) // 2 and number < planned
            case numbers:
                return number in numbers


@dataclass(frozen=True)
class Sequence:
    """The validated steps, in file order."""

    steps: tuple[Step, ...]
    path: Path

    def step(self, name: str) -> Step:
        """The step called ``name``; ``SequenceError`` when there is none."""
        for s in self.steps:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.steps)
        raise SequenceError(f"no step named {name!r} in {self.path}; known steps: {known}")


def load_sequence(templates_dir: Path) -> Sequence:
    """Read and validate ``sequence.toml`` in ``templates_dir``."""
    path = templates_dir / "sequence.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SequenceError(
            f"{path}: not found; the template folder needs a sequence.toml"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SequenceError(f"{path}: not valid TOML: {exc}") from None
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SequenceError(f"{path}: no [[step]] tables; the sequence needs at least one step")
    lines = _step_lines(text)
    steps: list[Step] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        line = lines[index] if index < len(lines) else 0
        step = _parse_step(raw, path, line, text)
        if step.name in seen:
            where = _key_line(text, line, "name")
            raise SequenceError(f"{path}:{where}: name: {step.name!r} is used twice")
        seen.add(step.name)
        _check_templates(templates_dir, step, path, _key_line(text, line, "template"))
        steps.append(step)
    return Sequence(tuple(steps), path)


def _step_lines(text: str) -> list[int]:
    return [
        n for n, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*step\s*\]\]", line)
    ]


def _key_line(text: str, start: int, key: str) -> int:
    """The line of ``key =`` inside the step whose header is on line ``start``."""
    lines = text.splitlines()
    for index in range(start, len(lines)):  # ``start`` is 1-based: this is the next line
        stripped = lines[index].strip()
        if stripped.startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", stripped):
            return index + 1
    return start


def _parse_step(raw: dict[str, Any], path: Path, line: int, text: str) -> Step:
    def fail(key: str, message: str) -> SequenceError:
        return SequenceError(f"{path}:{_key_line(text, line, key)}: {key}: {message}")

    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key; a step may set {', '.join(sorted(_KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", name):
        raise fail("name", "required; lower-case letters, digits and _ (e.g. 'welcome')")
    template = raw.get("template", name)
    if not isinstance(template, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,47}", template):
        raise fail("template", "must be the name of a folder under emails/")
    try:
        trigger = Trigger(str(raw.get("event")))
    except ValueError:
        raise fail("event", f"{raw.get('event')!r} is not one of {', '.join(Trigger)}") from None
    offset = _duration(raw.get("offset", "0"), fail, "offset")
    expires = _duration(raw.get("expires"), fail, "expires")
    if expires <= offset:
        raise fail("expires", "must be later than offset, or the email could never be sent")
    scars = _scars(raw.get("scars", [s.value for s in ScarType]), fail)
    sessions = _sessions(raw.get("sessions", "all"), fail, trigger)
    conditions = _conditions(raw.get("when", []), fail)
    invite = raw.get("invite", False)
    if not isinstance(invite, bool):
        raise fail("invite", "must be true or false")
    if invite and not trigger.per_session:
        raise fail("invite", "only a step that hangs on a session can carry a calendar invite")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be a string")
    return Step(
        name=name,
        template=template,
        trigger=trigger,
        offset=offset,
        expires=expires,
        scars=scars,
        sessions=sessions,
        conditions=conditions,
        invite=invite,
        description=description,
        line=line,
    )


def _duration(value: Any, fail: Any, key: str) -> timedelta:
    if not isinstance(value, str):
        raise fail(key, "required; a duration such as '3d', '-1d' or '6w'")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail(key, str(exc)) from None


def _scars(value: Any, fail: Any) -> frozenset[ScarType]:
    if not isinstance(value, list) or not value:
        raise fail("scars", "must be a non-empty list, e.g. ['atrophic', 'pih']")
    try:
        return frozenset(ScarType(v) for v in value)
    except ValueError:
        raise fail("scars", f"{value!r}: scar types are atrophic, hypertrophic and pih") from None


def _sessions(value: Any, fail: Any, trigger: Trigger) -> str | tuple[int, ...]:
    if not trigger.per_session and value != "all":
        raise fail("sessions", f"a step on event {trigger.value!r} has no sessions to choose")
    if isinstance(value, str) and value in SESSION_FILTERS:
        return value
    if isinstance(value, list) and value and all(isinstance(v, int) and v >= 1 for v in value):
        return tuple(value)
    raise fail("sessions", f"use one of {', '.join(SESSION_FILTERS)} or a list of numbers")


def _conditions(value: Any, fail: Any) -> tuple[Condition, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fail("when", f"must be a list of conditions: {', '.join(Condition)}")
    try:
        return tuple(Condition(v) for v in value)
    except ValueError:
        raise fail("when", f"{value!r}: known conditions are {', '.join(Condition)}") from None


def _check_templates(templates_dir: Path, step: Step, path: Path, line: int) -> None:
    folder = templates_dir / "emails" / step.template
    missing = [f for f in TEMPLATE_FILES if not (folder / f).is_file()]
    if missing:
        raise SequenceError(
            f"{path}:{line}: template: {step.template!r} has no {', '.join(missing)} in {folder}"
        )
