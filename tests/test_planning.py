"""Pure planning (nurture.planning.plan) and the send window (nurture.timing.SendWindow).

No database and no clock: every course is built by hand from CourseFacts and
SessionFacts, and every expected instant is worked out here with zoneinfo.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurture.config import DEFAULT_TEMPLATES
from nurture.domain import CourseFacts, CourseStatus, ScarType, SessionFacts, SessionStatus
from nurture.planning import PlannedMessage, plan
from nurture.sequence import Sequence, load_sequence
from nurture.timing import SendWindow

WINDOW = SendWindow(time(9), time(18))
OPENS, CLOSES = time(9), time(18)
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
ZONES = (
    LONDON,
    "America/New_York",
    "America/Santiago",
    LORD_HOWE,
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
)
ATROPHIC, PIH, HYPERTROPHIC = ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC
BOOKED, DONE, CANCELLED = SessionStatus.BOOKED, SessionStatus.COMPLETED, SessionStatus.CANCELLED


def at(zone: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """The UTC instant of a wall-clock time in ``zone``."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


# London is on summer time (BST) from 2027-03-28 to 2027-10-31: no clock change
# falls between these instants, so whole-day offsets keep the local hour.
ENROLLED = at(LONDON, 2027, 5, 3, 10)  # Monday, 10:00 local, inside the window
SESSION = at(LONDON, 2027, 6, 10, 10)  # Thursday, 10:00 local
BOOKED_AT = at(LONDON, 2027, 5, 20, 12)
ATTENDED = at(LONDON, 2027, 5, 17, 11)  # a session attended on a Monday at 11:00 local


@pytest.fixture(scope="module")
def sequence() -> Sequence:
    """The bundled default sequence, loaded once."""
    return load_sequence(DEFAULT_TEMPLATES)


def course(
    *sessions: SessionFacts,
    zone: str = LONDON,
    scars: tuple[ScarType, ...] = (ATROPHIC,),
    planned: int = 5,
    status: CourseStatus = CourseStatus.ACTIVE,
    enrolled_at: datetime = ENROLLED,
    ended_at: datetime | None = None,
    emailable: bool = True,
) -> CourseFacts:
    """Facts of one course, with sensible defaults."""
    return CourseFacts(
        course_id=1,
        client_id=1,
        timezone=zone,
        scar_types=scars,
        sessions_planned=planned,
        status=status,
        enrolled_at=enrolled_at,
        ended_at=ended_at,
        sessions=sessions,
        emailable=emailable,
    )


def booked(
    number: int, when: datetime, *, revision: int = 0, changed_at: datetime | None = None
) -> SessionFacts:
    """A session booked for ``when`` (recorded at ``changed_at``, default BOOKED_AT)."""
    return SessionFacts(number, BOOKED, when, None, revision, changed_at or BOOKED_AT)


def attended(number: int, when: datetime) -> SessionFacts:
    """A session attended at ``when``."""
    return SessionFacts(number, DONE, when, when, 0, when)


def cancelled(
    number: int, when: datetime, *, revision: int = 1, changed_at: datetime | None = None
) -> SessionFacts:
    """A session that was booked for ``when`` and then cancelled."""
    return SessionFacts(number, CANCELLED, when, None, revision, changed_at or BOOKED_AT)


def by_key(messages: list[PlannedMessage]) -> dict[str, PlannedMessage]:
    """The planned messages by key."""
    return {m.key: m for m in messages}


def in_window(instant: datetime, zone: str) -> bool:
    """True when ``instant`` is between 09:00 and 18:00 local (checked without SendWindow)."""
    return OPENS <= instant.astimezone(ZoneInfo(zone)).time() < CLOSES


def completed_course(zone: str = LONDON, planned: int = 5) -> CourseFacts:
    """A course whose ``planned`` sessions were all attended, 7 weeks apart, at 11:00 local."""
    first = datetime(2027, 1, 11, 11, tzinfo=ZoneInfo(zone))
    sessions = tuple(
        attended(n, (first + timedelta(weeks=7 * (n - 1))).astimezone(UTC))
        for n in range(1, planned + 1)
    )
    last = sessions[-1].completed_at
    assert last is not None
    return course(
        *sessions,
        zone=zone,
        planned=planned,
        status=CourseStatus.COMPLETED,
        enrolled_at=at(zone, 2027, 1, 4, 10),
        ended_at=last,
    )


def busy_course(zone: str) -> CourseFacts:
    """A course mid-way with sessions at awkward local hours and every kind of session."""
    return course(
        attended(1, at(zone, 2027, 2, 1, 7, 30)),
        attended(2, at(zone, 2027, 3, 27, 20, 45)),
        booked(3, at(zone, 2027, 5, 15, 8), revision=2, changed_at=at(zone, 2027, 5, 1, 22)),
        cancelled(4, at(zone, 2027, 7, 1, 19), revision=1, changed_at=at(zone, 2027, 5, 2, 3)),
        zone=zone,
        scars=(ATROPHIC, PIH, HYPERTROPHIC),
        enrolled_at=at(zone, 2027, 1, 20, 23, 15),
    )


BUSY_NOW = datetime(2027, 5, 3, 12, tzinfo=UTC)
BUSY_INVITES = {3: 1, 4: 0}
#: Steps the busy course must produce, so that checks over its plan cover every trigger.
BUSY_STEPS = {
    "welcome",
    "what_to_expect",
    "booking_confirmed",
    "prepare",
    "day_before",
    "aftercare",
    "session_moved",
    "session_cancelled",
}


# --- at enrolment ----------------------------------------------------------------


def test_welcome_is_due_at_enrolment_inside_the_window(sequence: Sequence) -> None:
    """An enrolment inside the client's window makes the welcome due at that very moment."""
    welcome = by_key(plan(course(), sequence, WINDOW, ENROLLED))["welcome"]
    assert welcome.due_at == ENROLLED
    assert welcome.skip_reason is None


@pytest.mark.parametrize(
    ("zone", "enrolled_local", "opening_day", "opening_utc"),
    [
        # 20:00 BST on 3 May; 09:00 BST (UTC+1) on 4 May.
        (LONDON, (2027, 5, 3, 20), date(2027, 5, 4), datetime(2027, 5, 4, 8, tzinfo=UTC)),
        # 06:30 BST; the same morning at 09:00 BST.
        (LONDON, (2027, 5, 3, 6, 30), date(2027, 5, 3), datetime(2027, 5, 3, 8, tzinfo=UTC)),
        # 20:00 GMT in winter; 09:00 GMT (UTC+0) next day.
        (LONDON, (2027, 1, 5, 20), date(2027, 1, 6), datetime(2027, 1, 6, 9, tzinfo=UTC)),
        # 20:00 at UTC+10:30 the evening before Lord Howe's summer time starts
        # (02:00 -> 02:30 on 3 October); 09:00 at UTC+11 next morning.
        (LORD_HOWE, (2027, 10, 2, 20), date(2027, 10, 3), datetime(2027, 10, 2, 22, tzinfo=UTC)),
        # 20:00 at UTC+10:30 in winter; 09:00 at UTC+10:30 next morning.
        (LORD_HOWE, (2027, 7, 5, 20), date(2027, 7, 6), datetime(2027, 7, 5, 22, 30, tzinfo=UTC)),
    ],
)
def test_welcome_outside_the_window_waits_for_the_next_local_opening(
    sequence: Sequence,
    zone: str,
    enrolled_local: tuple[int, ...],
    opening_day: date,
    opening_utc: datetime,
) -> None:
    """An enrolment outside the window makes the welcome due at the next 09:00 local."""
    enrolled_at = at(zone, *enrolled_local)
    facts = course(zone=zone, enrolled_at=enrolled_at)
    welcome = by_key(plan(facts, sequence, WINDOW, enrolled_at))["welcome"]
    assert welcome.due_at == opening_utc
    local = welcome.due_at.astimezone(ZoneInfo(zone))
    assert (local.date(), local.time()) == (opening_day, OPENS)
    assert welcome.skip_reason is None


def test_what_to_expect_is_due_two_days_after_enrolment(sequence: Sequence) -> None:
    """what_to_expect is due two days after an enrolment made inside the window."""
    message = by_key(plan(course(), sequence, WINDOW, ENROLLED))["what_to_expect"]
    assert message.due_at == ENROLLED + timedelta(days=2)
    assert message.skip_reason is None


@pytest.mark.parametrize(
    ("scars", "sessions", "expected"),
    [
        ((ATROPHIC,), (), True),
        ((PIH,), (), True),
        ((ATROPHIC, PIH), (), True),
        ((ATROPHIC, HYPERTROPHIC), (), True),
        ((HYPERTROPHIC,), (), False),
        ((ATROPHIC,), (booked(1, SESSION),), False),
        ((ATROPHIC,), (attended(1, SESSION),), False),
        ((ATROPHIC,), (cancelled(1, SESSION),), True),
        ((HYPERTROPHIC,), (cancelled(1, SESSION),), False),
    ],
    ids=[
        "atrophic",
        "pih",
        "atrophic+pih",
        "atrophic+hypertrophic",
        "hypertrophic only",
        "session 1 booked",
        "session 1 attended",
        "session 1 cancelled",
        "hypertrophic only, session 1 cancelled",
    ],
)
def test_book_first_only_while_session_one_is_unbooked_for_atrophic_or_pih(
    sequence: Sequence,
    scars: tuple[ScarType, ...],
    sessions: tuple[SessionFacts, ...],
    expected: bool,
) -> None:
    """book_first is planned only while session 1 is unbooked, and only for atrophic or PIH."""
    facts = course(*sessions, scars=scars)
    assert ("book_first" in by_key(plan(facts, sequence, WINDOW, ENROLLED))) is expected


# --- around a booked session ------------------------------------------------------


def test_booked_session_gets_prepare_four_days_before(sequence: Sequence) -> None:
    """A booked session gets its prepare email due four days before it."""
    prepare = by_key(plan(course(booked(1, SESSION)), sequence, WINDOW, BOOKED_AT))["prepare/1"]
    assert prepare.due_at == SESSION - timedelta(days=4)
    assert prepare.session_number == 1
    assert prepare.skip_reason is None


@pytest.mark.parametrize(
    ("session_local", "due_local"),
    [
        ((2027, 6, 10, 10), (2027, 6, 9, 10)),  # a day before, already inside the window
        ((2027, 6, 10, 7, 30), (2027, 6, 9, 9)),  # 07:30 the day before waits for 09:00
        ((2027, 6, 10, 19), (2027, 6, 10, 9)),  # 19:00 the day before: the next 09:00
    ],
)
def test_day_before_is_due_a_day_before_adjusted_into_the_window(
    sequence: Sequence, session_local: tuple[int, ...], due_local: tuple[int, ...]
) -> None:
    """day_before is due one day before the session, moved forward into the send window."""
    facts = course(booked(1, at(LONDON, *session_local)))
    message = by_key(plan(facts, sequence, WINDOW, BOOKED_AT))["day_before/1"]
    assert message.due_at == at(LONDON, *due_local)
    assert message.skip_reason is None


@pytest.mark.parametrize(
    "after_start", [timedelta(0), timedelta(minutes=30), timedelta(days=1)], ids=str
)
@pytest.mark.parametrize("step", ["prepare", "day_before"])
def test_session_reminders_are_skipped_once_the_session_has_started(
    sequence: Sequence, step: str, after_start: timedelta
) -> None:
    """Once a still-booked session has started, its prepare and day_before carry a skip reason."""
    messages = by_key(plan(course(booked(1, SESSION)), sequence, WINDOW, SESSION + after_start))
    assert messages[f"{step}/1"].skip_reason is not None


def test_attended_session_has_no_prepare_or_day_before(sequence: Sequence) -> None:
    """An attended session has no prepare or day_before planned."""
    messages = plan(course(attended(1, SESSION)), sequence, WINDOW, SESSION + timedelta(hours=1))
    assert not [m for m in messages if m.step in ("prepare", "day_before")]


@pytest.mark.parametrize(
    ("booked_before", "prepare_viable", "day_before_viable"),
    [
        # prepare is worth sending until a day before, day_before until 3 hours before.
        (timedelta(days=6), True, True),
        (timedelta(days=2), True, True),
        (timedelta(hours=20), False, True),
        (timedelta(hours=2), False, False),
    ],
    ids=str,
)
def test_late_booking_skips_only_reminders_that_can_no_longer_be_useful(
    sequence: Sequence, booked_before: timedelta, prepare_viable: bool, day_before_viable: bool
) -> None:
    """A booking made close to the session skips prepare (after -1d) and day_before (after -3h)."""
    now = SESSION - booked_before
    messages = by_key(plan(course(booked(1, SESSION, changed_at=now)), sequence, WINDOW, now))
    assert (messages["prepare/1"].skip_reason is None) is prepare_viable
    assert (messages["day_before/1"].skip_reason is None) is day_before_viable


@pytest.mark.parametrize("step", ["prepare", "day_before"])
def test_moving_a_session_moves_its_reminders(sequence: Sequence, step: str) -> None:
    """Rescheduling a session keeps the reminder's key and moves its due time with the session."""
    moved_to = at(LONDON, 2027, 6, 17, 10)
    moved_at = at(LONDON, 2027, 5, 25, 12)
    before = by_key(plan(course(booked(1, SESSION)), sequence, WINDOW, BOOKED_AT))
    after = by_key(
        plan(
            course(booked(1, moved_to, revision=1, changed_at=moved_at)),
            sequence,
            WINDOW,
            moved_at,
        )
    )
    key = f"{step}/1"
    offset = before[key].due_at - SESSION
    assert after[key].due_at == moved_to + offset
    assert after[key].due_at - before[key].due_at == timedelta(days=7)


@pytest.mark.parametrize(
    ("session", "invites", "step"),
    [
        (booked(1, SESSION, changed_at=SESSION - timedelta(days=1)), None, "booking_confirmed"),
        (
            booked(1, SESSION, revision=1, changed_at=SESSION - timedelta(days=1)),
            {1: 0},
            "session_moved",
        ),
    ],
    ids=["booking_confirmed", "session_moved"],
)
def test_session_messages_expire_when_the_session_starts(
    sequence: Sequence, session: SessionFacts, invites: dict[int, int] | None, step: str
) -> None:
    """A message about a booking made a day ahead stops being worth sending at the session start."""
    now = session.changed_at
    messages = [m for m in plan(course(session), sequence, WINDOW, now, invites) if m.step == step]
    assert len(messages) == 1
    assert messages[0].expires_at == SESSION
    assert messages[0].skip_reason is None


def test_cancelled_session_has_no_reminders(sequence: Sequence) -> None:
    """A cancelled session has no prepare or day_before planned."""
    messages = plan(course(cancelled(1, SESSION)), sequence, WINDOW, BOOKED_AT)
    assert not [m for m in messages if m.step in ("prepare", "day_before")]


# --- after attended sessions ------------------------------------------------------


def test_aftercare_follows_each_attended_session(sequence: Sequence) -> None:
    """Each attended session gets its own aftercare, two hours after it."""
    sessions = [attended(n, ATTENDED + timedelta(weeks=7 * (n - 1))) for n in (1, 2, 3)]
    now = ATTENDED + timedelta(weeks=14, hours=1)
    messages = by_key(plan(course(*sessions), sequence, WINDOW, now))
    aftercare = {k: m for k, m in messages.items() if m.step == "aftercare"}
    assert set(aftercare) == {"aftercare/1", "aftercare/2", "aftercare/3"}
    for s in sessions:
        assert s.completed_at is not None
        assert aftercare[f"aftercare/{s.number}"].due_at == s.completed_at + timedelta(hours=2)


@pytest.mark.parametrize(
    ("step", "due_after", "expires_after"),
    [
        ("book_next", timedelta(weeks=6), timedelta(weeks=7)),
        ("book_next_last_call", timedelta(weeks=7, days=3), timedelta(weeks=8)),
    ],
)
def test_book_next_reminders_fall_in_the_six_to_eight_week_window(
    sequence: Sequence, step: str, due_after: timedelta, expires_after: timedelta
) -> None:
    """book_next is due 6 weeks after a session and the last call 7w3d, both gone by 8 weeks."""
    facts = course(attended(1, ATTENDED))
    message = by_key(plan(facts, sequence, WINDOW, ATTENDED + timedelta(hours=1)))[f"{step}/1"]
    assert message.due_at == ATTENDED + due_after
    assert message.expires_at == ATTENDED + expires_after
    assert timedelta(weeks=6) <= message.due_at - ATTENDED < timedelta(weeks=8)
    assert message.expires_at - ATTENDED <= timedelta(weeks=8)
    assert message.skip_reason is None


@pytest.mark.parametrize("planned", [1, 2, 5])
def test_book_next_is_not_planned_after_the_final_session(sequence: Sequence, planned: int) -> None:
    """The final session of a course gets no book-next reminders."""
    facts = completed_course(planned=planned)
    last = facts.sessions[-1].completed_at
    assert last is not None
    keys = by_key(plan(facts, sequence, WINDOW, last + timedelta(hours=1)))
    assert f"book_next/{planned}" not in keys
    assert f"book_next_last_call/{planned}" not in keys


@pytest.mark.parametrize(
    ("second", "expected"),
    [
        (None, True),
        (booked(2, ATTENDED + timedelta(weeks=6)), False),
        (attended(2, ATTENDED + timedelta(weeks=6)), False),
        (cancelled(2, ATTENDED + timedelta(weeks=6)), True),
    ],
    ids=["not booked", "booked", "attended", "cancelled"],
)
@pytest.mark.parametrize("step", ["book_next", "book_next_last_call"])
def test_book_next_only_while_the_next_session_is_not_booked(
    sequence: Sequence, step: str, second: SessionFacts | None, expected: bool
) -> None:
    """Book-next reminders after session 1 stay only while session 2 is unbooked or cancelled."""
    sessions = (attended(1, ATTENDED),) + ((second,) if second else ())
    now = ATTENDED + timedelta(days=1)
    assert (f"{step}/1" in by_key(plan(course(*sessions), sequence, WINDOW, now))) is expected


@pytest.mark.parametrize(
    ("scars", "expected"),
    [
        ((HYPERTROPHIC,), False),
        ((ATROPHIC,), True),
        ((PIH,), True),
        ((PIH, HYPERTROPHIC), True),
    ],
    ids=["hypertrophic only", "atrophic", "pih", "pih+hypertrophic"],
)
@pytest.mark.parametrize("step", ["book_next", "book_next_last_call"])
def test_book_next_is_never_planned_for_hypertrophic_only_clients(
    sequence: Sequence, step: str, scars: tuple[ScarType, ...], expected: bool
) -> None:
    """Book-next reminders never go to a client whose only scars are hypertrophic."""
    facts = course(attended(1, ATTENDED), scars=scars)
    now = ATTENDED + timedelta(days=1)
    assert (f"{step}/1" in by_key(plan(facts, sequence, WINDOW, now))) is expected


def test_halfway_follows_only_session_three_of_five(sequence: Sequence) -> None:
    """In a five-session course, halfway is planned after session 3 and no other."""
    facts = completed_course(planned=5)
    now = facts.sessions[-1].completed_at
    assert now is not None
    halfway = [m for m in plan(facts, sequence, WINDOW, now) if m.step == "halfway"]
    assert [(m.key, m.session_number) for m in halfway] == [("halfway/3", 3)]


@pytest.mark.parametrize(
    ("status", "expected"), [(CourseStatus.COMPLETED, True), (CourseStatus.ACTIVE, False)]
)
def test_course_complete_only_when_the_course_is_completed(
    sequence: Sequence, status: CourseStatus, expected: bool
) -> None:
    """course_complete is planned only once the course status is COMPLETED."""
    done = completed_course()
    facts = course(
        *done.sessions,
        status=status,
        enrolled_at=done.enrolled_at,
        ended_at=done.ended_at,
    )
    assert done.ended_at is not None
    messages = by_key(plan(facts, sequence, WINDOW, done.ended_at + timedelta(hours=1)))
    assert ("course_complete" in messages) is expected


def test_course_complete_is_due_a_day_after_the_course_ends(sequence: Sequence) -> None:
    """course_complete is due one day after the final session was attended."""
    facts = completed_course()
    assert facts.ended_at is not None
    message = by_key(plan(facts, sequence, WINDOW, facts.ended_at))["course_complete"]
    assert message.due_at == facts.ended_at + timedelta(days=1)


# --- nothing at all ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("emailable", "status"),
    [(False, CourseStatus.ACTIVE), (True, CourseStatus.WITHDRAWN), (False, CourseStatus.WITHDRAWN)],
    ids=["not emailable", "withdrawn", "both"],
)
def test_nothing_is_planned_for_an_unemailable_client_or_withdrawn_course(
    sequence: Sequence, emailable: bool, status: CourseStatus
) -> None:
    """A client who cannot be emailed, or a withdrawn course, gets no planned emails at all."""
    busy = busy_course(LONDON)
    facts = course(
        *busy.sessions,
        scars=busy.scar_types,
        enrolled_at=busy.enrolled_at,
        status=status,
        emailable=emailable,
    )
    assert plan(busy, sequence, WINDOW, BUSY_NOW, BUSY_INVITES)  # the same course, emailable
    assert plan(facts, sequence, WINDOW, BUSY_NOW, BUSY_INVITES) == []


# --- calendar invites and change notices --------------------------------------------

MOVED_AT = at(LONDON, 2027, 5, 25, 12)


@pytest.mark.parametrize(
    ("session", "held", "expected_key"),
    [
        (booked(1, SESSION, revision=2, changed_at=MOVED_AT), 1, "session_moved/1/r2"),
        (booked(1, SESSION, revision=2, changed_at=MOVED_AT), 0, "session_moved/1/r2"),
        (cancelled(1, SESSION, revision=1, changed_at=MOVED_AT), 0, "session_cancelled/1/r1"),
        (cancelled(1, SESSION, revision=3, changed_at=MOVED_AT), 2, "session_cancelled/1/r3"),
    ],
    ids=["moved, held r1", "moved, held r0", "cancelled, held r0", "cancelled, held r2"],
)
def test_change_notice_is_planned_when_an_older_invite_is_held(
    sequence: Sequence, session: SessionFacts, held: int, expected_key: str
) -> None:
    """A session changed after its invite was sent gets one notice keyed by its new revision."""
    messages = plan(course(session), sequence, WINDOW, MOVED_AT, {1: held})
    notices = [m.key for m in messages if m.step in ("session_moved", "session_cancelled")]
    assert notices == [expected_key]


@pytest.mark.parametrize(
    ("session", "invites"),
    [
        (booked(1, SESSION, revision=2, changed_at=MOVED_AT), {1: 2}),
        (cancelled(1, SESSION, revision=1, changed_at=MOVED_AT), {1: 1}),
        (booked(1, SESSION, revision=2, changed_at=MOVED_AT), None),
        (cancelled(1, SESSION, revision=1, changed_at=MOVED_AT), {}),
        (booked(1, SESSION, revision=2, changed_at=MOVED_AT), {2: 0}),
    ],
    ids=["moved, current held", "cancelled, current held", "no invites", "none held", "other"],
)
def test_no_change_notice_without_an_older_invite_for_that_session(
    sequence: Sequence, session: SessionFacts, invites: dict[int, int] | None
) -> None:
    """No change notice is planned unless the client holds an older invite for that session."""
    messages = plan(course(session), sequence, WINDOW, MOVED_AT, invites)
    assert not [m for m in messages if m.step in ("session_moved", "session_cancelled")]


def test_invite_revision_is_set_exactly_on_invite_steps(sequence: Sequence) -> None:
    """Steps with invite=true carry their session's current revision; all others carry None."""
    invite_steps = {s.name for s in sequence.steps if s.invite}
    facts = busy_course(LONDON)
    messages = plan(facts, sequence, WINDOW, BUSY_NOW, BUSY_INVITES)
    with_invite = [m for m in messages if m.step in invite_steps]
    assert {m.step for m in with_invite} >= {"day_before", "session_moved", "session_cancelled"}
    for m in messages:
        if m.step in invite_steps:
            assert m.session_number is not None
            session = facts.session(m.session_number)
            assert session is not None
            assert m.invite_revision == session.revision, m.key
        else:
            assert m.invite_revision is None, m.key


# --- every plan ----------------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES)
def test_every_due_time_is_inside_the_local_send_window(sequence: Sequence, zone: str) -> None:
    """Every planned email is due between 09:00 and 18:00 in the client's own zone."""
    messages = plan(busy_course(zone), sequence, WINDOW, BUSY_NOW, BUSY_INVITES)
    assert {m.step for m in messages} >= BUSY_STEPS
    assert [m.key for m in messages if not in_window(m.due_at, zone)] == []


@pytest.mark.parametrize("zone", ZONES)
def test_planned_keys_are_unique(sequence: Sequence, zone: str) -> None:
    """No two planned emails of one course share a key."""
    messages = plan(busy_course(zone), sequence, WINDOW, BUSY_NOW, BUSY_INVITES)
    duplicates = [k for k, n in Counter(m.key for m in messages).items() if n > 1]
    assert duplicates == []


# --- SendWindow ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "opening_day", "opening_utc"),
    [
        # At 18:00 the window has closed: the next morning.
        (LONDON, (2027, 5, 3, 18), date(2027, 5, 4), datetime(2027, 5, 4, 8, tzinfo=UTC)),
        # Europe/London: clocks go forward 01:00 GMT -> 02:00 BST on 2027-03-28.
        (LONDON, (2027, 3, 27, 20), date(2027, 3, 28), datetime(2027, 3, 28, 8, tzinfo=UTC)),
        (LONDON, (2027, 3, 28, 0, 30), date(2027, 3, 28), datetime(2027, 3, 28, 8, tzinfo=UTC)),
        # ... and back 02:00 BST -> 01:00 GMT on 2027-10-31.
        (LONDON, (2027, 10, 30, 19), date(2027, 10, 31), datetime(2027, 10, 31, 9, tzinfo=UTC)),
        (LONDON, (2027, 10, 31, 5), date(2027, 10, 31), datetime(2027, 10, 31, 9, tzinfo=UTC)),
        # America/New_York: EST -> EDT on 2027-03-14, EDT -> EST on 2027-11-07.
        (
            "America/New_York",
            (2027, 3, 13, 20),
            date(2027, 3, 14),
            datetime(2027, 3, 14, 13, tzinfo=UTC),
        ),
        (
            "America/New_York",
            (2027, 11, 6, 20),
            date(2027, 11, 7),
            datetime(2027, 11, 7, 14, tzinfo=UTC),
        ),
        # America/Santiago: -03 -> -04 at midnight into 2027-04-04, -04 -> -03 into 2027-09-05.
        (
            "America/Santiago",
            (2027, 4, 3, 20),
            date(2027, 4, 4),
            datetime(2027, 4, 4, 13, tzinfo=UTC),
        ),
        (
            "America/Santiago",
            (2027, 9, 4, 20),
            date(2027, 9, 5),
            datetime(2027, 9, 5, 12, tzinfo=UTC),
        ),
        # Australia/Lord_Howe: half-hour shifts, +11 -> +10:30 on 2027-04-04, back on 10-03.
        (LORD_HOWE, (2027, 4, 3, 20), date(2027, 4, 4), datetime(2027, 4, 3, 22, 30, tzinfo=UTC)),
        (LORD_HOWE, (2027, 10, 2, 20), date(2027, 10, 3), datetime(2027, 10, 2, 22, tzinfo=UTC)),
    ],
)
def test_next_open_is_nine_local_on_the_right_day_across_clock_changes(
    zone: str, local: tuple[int, ...], opening_day: date, opening_utc: datetime
) -> None:
    """Outside the window, next_open is 09:00 local on the next opening day, at the right UTC."""
    opening = WINDOW.next_open(at(zone, *local), zone)
    assert opening == opening_utc
    assert opening.utcoffset() == timedelta(0)
    in_zone = opening.astimezone(ZoneInfo(zone))
    assert (in_zone.date(), in_zone.time()) == (opening_day, OPENS)


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (LONDON, (2027, 3, 28)),
        (LONDON, (2027, 10, 31)),
        ("America/New_York", (2027, 3, 14)),
        ("America/Santiago", (2027, 9, 5)),
        (LORD_HOWE, (2027, 10, 3)),
    ],
)
def test_next_open_inside_the_window_is_the_instant_itself(
    zone: str, day: tuple[int, int, int]
) -> None:
    """An instant already inside the window, even on a clock-change day, opens at once."""
    noon = at(zone, *day, 12, 15)
    assert WINDOW.next_open(noon, zone) == noon


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        (LONDON, (2027, 3, 28)),
        (LONDON, (2027, 10, 31)),
        ("America/New_York", (2027, 11, 7)),
        ("America/Santiago", (2027, 4, 4)),
        (LORD_HOWE, (2027, 4, 4)),
        ("UTC", (2027, 6, 1)),
    ],
)
@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [(9, 0, True), (18, 0, False), (8, 59, False), (17, 59, True)],
    ids=["09:00", "18:00", "08:59", "17:59"],
)
def test_window_contains_from_opening_until_before_closing(
    zone: str, day: tuple[int, int, int], hour: int, minute: int, expected: bool
) -> None:
    """contains() is true from 09:00 local up to, not including, 18:00 local."""
    assert WINDOW.contains(at(zone, *day, hour, minute), zone) is expected


# --- properties over random courses ------------------------------------------------------

Scenario = tuple[CourseFacts, datetime, dict[int, int]]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random course with its sessions booked in order, a random now and held invites."""
    zone = draw(st.sampled_from(ZONES))
    scars = tuple(sorted(draw(st.sets(st.sampled_from(list(ScarType)), min_size=1))))
    planned = draw(st.integers(1, 6))
    enrolled_at = draw(
        st.datetimes(
            min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
            max_value=datetime(2028, 12, 31),  # noqa: DTZ001
            timezones=st.just(UTC),
        )
    )
    n_attended = draw(st.integers(0, planned))
    n_booked = draw(st.integers(0, planned - n_attended))
    one_cancelled = n_attended + n_booked < planned and draw(st.booleans())
    statuses = [DONE] * n_attended + [BOOKED] * n_booked + [CANCELLED] * one_cancelled
    gaps = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=70))
    cursor = enrolled_at
    sessions: list[SessionFacts] = []
    invites: dict[int, int] = {}
    for number, status in enumerate(statuses, 1):
        changed_at = cursor + draw(gaps)
        scheduled_at = changed_at + draw(gaps)
        revision = draw(st.integers(1 if status is CANCELLED else 0, 3))
        completed_at = scheduled_at if status is DONE else None
        sessions.append(
            SessionFacts(number, status, scheduled_at, completed_at, revision, changed_at)
        )
        cursor = scheduled_at
        if draw(st.booleans()):
            invites[number] = draw(st.integers(0, revision))
    finished = n_attended == planned
    facts = CourseFacts(
        course_id=1,
        client_id=1,
        timezone=zone,
        scar_types=scars,
        sessions_planned=planned,
        status=CourseStatus.COMPLETED if finished else CourseStatus.ACTIVE,
        enrolled_at=enrolled_at,
        ended_at=sessions[-1].completed_at if finished else None,
        sessions=tuple(sessions),
        emailable=True,
    )
    now = enrolled_at + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=500)))
    return facts, now, invites


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_plan_is_deterministic(sequence: Sequence, scenario: Scenario) -> None:
    """Planning the same facts at the same now twice gives exactly the same messages."""
    facts, now, invites = scenario
    first = plan(facts, sequence, WINDOW, now, invites)
    again = plan(facts, sequence, WINDOW, now, dict(invites))
    assert first == again


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_plan_keys_are_always_unique(sequence: Sequence, scenario: Scenario) -> None:
    """Whatever the course, no two planned messages share a key."""
    facts, now, invites = scenario
    keys = [m.key for m in plan(facts, sequence, WINDOW, now, invites)]
    assert len(keys) == len(set(keys))


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_plan_never_leaves_an_unsendable_message_unskipped(
    sequence: Sequence, scenario: Scenario
) -> None:
    """Every planned message either expires after it is due or carries a skip reason."""
    facts, now, invites = scenario
    for m in plan(facts, sequence, WINDOW, now, invites):
        assert m.expires_at > m.due_at or m.skip_reason is not None, m


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_plan_due_times_are_always_inside_the_local_window(
    sequence: Sequence, scenario: Scenario
) -> None:
    """Whatever the course and zone, every due time is between 09:00 and 18:00 local."""
    facts, now, invites = scenario
    for m in plan(facts, sequence, WINDOW, now, invites):
        assert in_window(m.due_at, facts.timezone), m


@pytest.mark.parametrize(
    ("window", "zone", "after", "expected"),
    [
        # Chile moves its clocks from 00:00 to 01:00 on 2027-09-05: the window opens at the jump.
        (
            (0, 18),
            "America/Santiago",
            datetime(2027, 9, 5, 0, 0, tzinfo=UTC),
            datetime(2027, 9, 5, 4, 0, tzinfo=UTC),
        ),
        # Lord Howe jumps from 02:00 (+10:30) to 02:30 on 2027-10-03, 15:30 UTC the day before.
        (
            (2, 18),
            "Australia/Lord_Howe",
            datetime(2027, 10, 2, 9, 30, tzinfo=UTC),
            datetime(2027, 10, 2, 15, 30, tzinfo=UTC),
        ),
    ],
)
def test_window_start_swallowed_by_a_gap_opens_at_the_jump(
    window: tuple[int, int], zone: str, after: datetime, expected: datetime
) -> None:
    """A window starting inside a clock-change gap opens when the clocks jump, not a day late."""
    opening = SendWindow(time(window[0]), time(window[1])).next_open(after, zone)
    assert opening == expected
    assert SendWindow(time(window[0]), time(window[1])).contains(opening, zone)
