"""The default course content: every step, every scar mix, every shape of course.

Emails are rendered through the real Composer on the bundled templates; the
course-level rules are checked on a whole course sent through the CLI to a
real SMTP server.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import itertools
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nurture.config import DEFAULT_TEMPLATES, Settings
from nurture.domain import CourseFacts, ScarType
from nurture.errors import SequenceError, TemplateError
from nurture.previewing import sample_course
from nurture.rendering import (
    RECHECK_SECONDS,
    Composer,
    Draft,
    OutgoingEmail,
    Recipient,
    RenderedEmail,
    Renderer,
    Request,
    TemplateVars,
    build_context,
    describe_time,
)
from nurture.runtime import Runtime
from nurture.sequence import Trigger
from tests.conftest import TEST_SECRET, Cli, templates_failing_for
from tests.smtp_sink import SMTPSink

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
#: The longest first name the welcome subject still greets by name.
LONG_NAME = "Wilhelmina-Alexandra-Josephine Featherstonehaugh"
CLIENT = Recipient("content-test-client", LONG_NAME, "wilhelmina@example.com", "Europe/London")
MIXES = [
    combo
    for size in (1, 2, 3)
    for combo in itertools.combinations(
        (ScarType.ATROPHIC, ScarType.PIH, ScarType.HYPERTROPHIC), size
    )
]
#: (label, sessions planned, session the email is about)
SHAPES = [
    ("first-of-5", 5, 1),
    ("middle-of-5", 5, 3),
    ("last-of-5", 5, 5),
    ("one-session-course", 1, 1),
    ("last-but-one-of-20", 20, 19),
]
#: Words that would tell a reader of the inbox list (or a URL log) about health.
MEDICAL_WORDS = (
    "scar",
    "acne",
    "atrophic",
    "hypertrophic",
    "keloid",
    "pih",
    "pigment",
    "microneedl",
    "needl",
    "collagen",
    "derma",
    "skin",
    "treatment",
    "therapy",
    "wound",
    "redness",
    "lesion",
    "blemish",
    "breakout",
    "spot",
    "marks",
    "medical",
)
#: How the content asks for a booking: the verb "book" (or "rebook") itself.
BOOKING_NUDGE = re.compile(r"\b(?:re)?book\b", re.IGNORECASE)
CAUTION = "can make raised scars worse"
PROMISES = (
    "guarantee",
    "instant",
    "overnight",
    "cure",
    "permanent",
    "will disappear",
    "will remove",
)


@dataclass(frozen=True)
class Case:
    """One rendered email and the situation it was rendered for."""

    step: str
    scars: tuple[ScarType, ...]
    shape: str
    course: CourseFacts
    session_number: int | None
    rendered: RenderedEmail
    message: EmailMessage

    @property
    def texts(self) -> tuple[str, str, str]:
        """Subject, text part and HTML part."""
        return self.rendered.subject, self.rendered.text, self.rendered.html

    @property
    def everything(self) -> str:
        """Subject, text and HTML together, for content searches."""
        return "\n".join(self.texts)

    @property
    def label(self) -> str:
        """Which email this is, for assertion messages."""
        return f"{self.step} {'+'.join(self.scars)} {self.shape}"


def runtime(**settings: Any) -> Runtime:
    """The real wiring with the bundled templates and a fixed signing key."""
    return Runtime(Settings(secret_key=TEST_SECRET, **settings))


def situation(
    composer: Composer, step: str, scars: tuple[ScarType, ...], planned: int, number: int
) -> tuple[CourseFacts, int | None]:
    """A sample course at the moment ``step`` goes out, as `nurture preview` builds it."""
    trigger = composer.sequence.step(step).trigger
    course = sample_course(scars, planned, number, trigger, NOW)
    return course, number if trigger.per_session else None


def compose(
    composer: Composer,
    step: str,
    course: CourseFacts,
    session_number: int | None,
    recipient: Recipient = CLIENT,
) -> tuple[RenderedEmail, EmailMessage]:
    """Render one step through the Composer and parse the message it built."""
    rendered, outgoing = composer.compose(
        step, course, recipient, session_number, message_id="<content-test@example.com>", now=NOW
    )
    message = email.message_from_bytes(outgoing.data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return rendered, message


def render_all() -> list[Case]:
    """Every step for every scar mix and course shape (plus enrolment before any booking)."""
    composer = runtime().composer
    cases = []
    for step in composer.sequence.steps:
        for scars in MIXES:
            for shape, planned, number in SHAPES:
                course, session_number = situation(composer, step.name, scars, planned, number)
                variants = [(shape, course)]
                if step.trigger is Trigger.ENROLLED:
                    variants.append((f"{shape}-unbooked", dataclasses.replace(course, sessions=())))
                for label, facts in variants:
                    rendered, message = compose(composer, step.name, facts, session_number)
                    cases.append(
                        Case(step.name, scars, label, facts, session_number, rendered, message)
                    )
    return cases


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    """Every rendered email of the matrix, rendered once for the module."""
    return render_all()


def pick(cases: list[Case], step: str, **where: Any) -> list[Case]:
    """The cases of one step, optionally narrowed by a predicate on the scar mix."""
    chosen = [c for c in cases if c.step == step]
    if "has" in where:
        chosen = [c for c in chosen if where["has"] in c.scars]
    if "lacks" in where:
        chosen = [c for c in chosen if where["lacks"] not in c.scars]
    if where.get("only_raised"):
        chosen = [c for c in chosen if c.scars == (ScarType.HYPERTROPHIC,)]
    assert chosen, f"no cases for {step} {where}"
    return chosen


class _Tags(HTMLParser):
    """Collects start tags with their attributes, and the text of <style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def parse_html(html: str) -> _Tags:
    """The start tags and style text of an HTML part."""
    parser = _Tags()
    parser.feed(html)
    return parser


def words_in(text: str) -> list[str]:
    """The medical words that occur in ``text`` (case-insensitive)."""
    lowered = text.lower()
    return [w for w in MEDICAL_WORDS if w in lowered]


def test_every_step_renders_for_every_mix_and_course_shape(cases: list[Case]) -> None:
    """All 13 steps render for all 7 scar mixes and every course shape, with a body and subject."""
    steps = {c.step for c in cases}
    assert len(steps) == 13
    assert {c.scars for c in cases} == set(MIXES)
    for case in cases:
        assert case.rendered.subject, case.label
        assert case.rendered.text, case.label
        assert case.rendered.html, case.label


def plain(value: Any) -> Any:
    """``value`` with every TemplateVars turned back into a plain dict."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def shadowed(value: Any) -> set[str]:
    """Keys of TemplateVars within ``value`` that are also attributes of a dict."""
    if not isinstance(value, dict):
        return set()
    found = {key for key in value if isinstance(value, TemplateVars) and hasattr(dict, key)}
    return found.union(*(shadowed(item) for item in value.values()))


def test_template_variables_read_key_first_render_what_plain_dicts_render() -> None:
    """TemplateVars read key-first (the fast path) show exactly what Jinja's own lookup shows."""
    composer = runtime().composer
    renderer = composer.renderer
    checked = 0
    for step in composer.sequence.steps:
        for scars in MIXES:
            course, number = situation(composer, step.name, scars, 5, 3)
            invite = composer._invite(step, course, CLIENT, number)
            url = composer.unsubscribe.url(CLIENT.public_id)
            context = build_context(step, course, CLIENT, composer.clinic, number, url, invite)
            assert shadowed(context) == set(), "a template variable hides a dict method"
            assert any(isinstance(v, TemplateVars) for v in context.values())
            assert renderer.render(step.template, context) == renderer.render(
                step.template, plain(context)
            )
            checked += 1
    assert checked == len(composer.sequence.steps) * len(MIXES)


def every_request(composer: Composer) -> list[Request]:
    """One request per step and scar mix (a middle session of five), as a worker would make."""
    requests = []
    for step in composer.sequence.steps:
        for scars in MIXES:
            course, number = situation(composer, step.name, scars, 5, 3)
            message_id = f"<{step.name}-{'-'.join(scars)}@example.com>"
            requests.append(Request(step.name, course, CLIENT, number, message_id))
    return requests


def compose_alone(composer: Composer, request: Request) -> tuple[RenderedEmail, OutgoingEmail]:
    """``request`` through ``Composer.compose``, the one-email path."""
    return composer.compose(
        request.step,
        request.course,
        request.recipient,
        request.session_number,
        message_id=request.message_id,
        now=NOW,
    )


def parsed(data: bytes) -> list[tuple[str, object]]:
    """A message's headers and decoded leaf parts (boundaries, random per message, left out)."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    leaves: list[tuple[str, object]] = list(message.items())
    for part in message.walk():
        if not part.is_multipart():
            leaves.append((part.get_content_type(), part.get_content()))
    return [item for item in leaves if item[0] != "Content-Type" or "boundary" not in str(item[1])]


def test_drafting_many_at_once_gives_what_composing_one_by_one_gives() -> None:
    """The worker's batch path (draft_many, then finish) builds the messages compose builds."""
    composer = runtime().composer
    requests = every_request(composer)
    drafts = composer.draft_many(requests)
    assert len(drafts) == len(requests) == len(composer.sequence.steps) * len(MIXES)
    for request, draft in zip(requests, drafts, strict=True):
        assert isinstance(draft, Draft), draft
        rendered, message = composer.finish(draft, NOW)
        alone, by_itself = compose_alone(composer, request)
        assert rendered == alone
        assert 'style="' in rendered.html  # inlined
        assert parsed(message.data) == parsed(by_itself.data)
        assert (message.recipient, message.envelope_from) == (
            by_itself.recipient,
            by_itself.envelope_from,
        )


def test_a_failing_email_in_a_batch_leaves_the_others_whole(tmp_path: Path) -> None:
    """A template error (or an unknown step) stands in for that email; the rest render as alone."""
    composer = runtime(templates_dir=templates_failing_for("Broken", tmp_path)).composer
    good = every_request(composer)[:3]
    broken = dataclasses.replace(
        good[1], recipient=dataclasses.replace(CLIENT, name="Broken Record")
    )
    unknown = dataclasses.replace(good[0], step="no_such_step")
    drafts = composer.draft_many([good[0], broken, good[1], unknown, good[2]])
    assert isinstance(drafts[1], TemplateError)
    assert str(drafts[1]) == "partials/signoff.html:1: ZeroDivisionError"
    assert isinstance(drafts[3], SequenceError)
    for request, draft in zip(good, (drafts[0], drafts[2], drafts[4]), strict=True):
        assert isinstance(draft, Draft)
        assert draft.request == request
        assert draft.rendered == compose_alone(composer, request)[0]
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        compose_alone(composer, broken)


def test_clinic_templates_keep_jinjas_own_globals_in_partials(tmp_path: Path) -> None:
    """range and namespace work in an included partial, as in any Jinja template."""
    folder = tmp_path / "clinic-templates"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    partial = folder / "partials" / "signoff.txt"
    partial.write_text(
        "{% set ns = namespace(total=0) %}{% for i in range(4) %}"
        "{% set ns.total = ns.total + i %}{% endfor %}Counted {{ ns.total }}.\n"
        + partial.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    composer = runtime(templates_dir=folder).composer
    rendered, _ = compose_alone(composer, every_request(composer)[0])
    assert "Counted 6." in rendered.text


def test_a_failing_line_is_named_in_a_folder_given_as_a_relative_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NURTURE_TEMPLATES=clinic-templates (relative): the error still names the template line."""
    templates_failing_for("Broken", tmp_path)
    monkeypatch.chdir(tmp_path)
    composer = runtime(templates_dir=Path("clinic-templates")).composer
    request = every_request(composer)[0]
    broken = dataclasses.replace(
        request, recipient=dataclasses.replace(CLIENT, name="Broken Record")
    )
    with pytest.raises(TemplateError) as caught:
        compose_alone(composer, broken)
    assert str(caught.value) == "partials/signoff.html:1: ZeroDivisionError"


def test_subjects_are_under_60_characters(cases: list[Case]) -> None:
    """Every subject, even for a long first name and a 20-session course, is under 60 characters."""
    too_long = {c.rendered.subject for c in cases if len(c.rendered.subject) >= 60}
    assert too_long == set()


def test_subjects_carry_no_scar_type_or_medical_word(cases: list[Case]) -> None:
    """No subject names a scar type or anything medical."""
    exposed = {c.rendered.subject: words_in(c.rendered.subject) for c in cases}
    assert {s: w for s, w in exposed.items() if w} == {}


def test_urls_carry_no_scar_type_or_medical_word(cases: list[Case]) -> None:
    """No link or URL in any part names a scar type or anything medical."""
    for case in cases:
        urls = re.findall(r"""https?://[^\s"'<>]+""", case.rendered.text + case.rendered.html)
        assert urls, case.label
        for url in urls:
            assert words_in(url) == [], (case.label, url)


def test_no_unrendered_jinja_or_none(cases: list[Case]) -> None:
    """No part of any email shows a Jinja marker or the word None."""
    for case in cases:
        for part in case.texts:
            for marker in ("{{", "}}", "{%", "%}", "{#", "#}"):
                assert marker not in part, (case.label, marker)
            assert not re.search(r"\bNone\b", part), case.label


def test_html_styles_are_inlined(cases: list[Case]) -> None:
    """Every styled element carries inline CSS; only @media rules stay in <style>."""
    styled = {"body", "table", "td", "p", "h1", "h2", "ul", "li", "a", "div", "strong"}
    for case in cases:
        parsed = parse_html(case.rendered.html)
        missing = {tag for tag, attrs in parsed.tags if tag in styled and not attrs.get("style")}
        assert missing == set(), case.label
        outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", parsed.style)
        assert outside_media.strip() == "", case.label


def test_every_link_is_absolute_https(cases: list[Case]) -> None:
    """Every href in every HTML part is an absolute https URL."""
    for case in cases:
        hrefs = [a["href"] for t, a in parse_html(case.rendered.html).tags if "href" in a]
        assert hrefs, case.label
        assert all(h is not None and h.startswith("https://") for h in hrefs), case.label


def test_both_parts_carry_the_unsubscribe_url(cases: list[Case]) -> None:
    """The text part spells out the List-Unsubscribe URL and the HTML part links to it."""
    for case in cases:
        url = str(case.message["List-Unsubscribe"]).strip("<>")
        assert url.startswith("https://"), case.label
        assert url in case.rendered.text, case.label
        assert f'href="{url}"' in case.rendered.html, case.label


def test_footer_says_who_where_and_why(cases: list[Case]) -> None:
    """Every email, in both parts, names the clinic, its postal address and why it came."""
    settings = Settings()
    for case in cases:
        for part in (case.rendered.text, case.rendered.html):
            assert settings.clinic_name in part, case.label
            assert settings.clinic_address in part, case.label
            assert "You are getting this email because" in part, case.label


def test_text_part_is_written_as_text(cases: list[Case]) -> None:
    """The text part has no HTML tags or entities and no runs of blank lines."""
    for case in cases:
        text = case.rendered.text
        assert not re.search(r"</?[a-zA-Z][^>]*>", text), case.label
        assert not re.search(r"&[a-z]+;|&#\d+;", text), case.label
        assert "\n\n\n" not in text, case.label
        assert text.startswith("Hello "), case.label


def test_emails_open_with_the_clients_first_name(cases: list[Case]) -> None:
    """Both parts greet the client by first name."""
    first = LONG_NAME.split(maxsplit=1)[0]
    for case in cases:
        assert f"Hello {first}," in case.rendered.text, case.label
        assert first in case.rendered.html, case.label


def test_welcome_subject_greets_a_short_name() -> None:
    """A first name that fits is in the welcome subject."""
    composer = runtime().composer
    course, number = situation(composer, "welcome", (ScarType.PIH,), 5, 1)
    ana = dataclasses.replace(CLIENT, name="Ana Silva")
    rendered, _ = compose(composer, "welcome", course, number, ana)
    assert rendered.subject == "Welcome to your course, Ana"


def test_session_emails_name_session_date_local_time_and_clinic() -> None:
    """Session emails give session k of N and its date and time in the client's own zone."""
    composer = runtime().composer
    client = dataclasses.replace(CLIENT, timezone="America/New_York")
    clinic = composer.clinic
    for step in ("booking_confirmed", "prepare", "day_before", "session_moved"):
        course, number = situation(composer, step, (ScarType.ATROPHIC,), 5, 2)
        at = course.sessions[-1].scheduled_at
        assert at is not None
        local = at.astimezone(ZoneInfo("America/New_York"))
        rendered, _ = compose(composer, step, course, number, client)
        for part in (rendered.text, rendered.html):
            assert "Session 2 of 5" in part, step
            assert f"{local:%A} {local.day} {local:%B %Y}" in part, step
            assert f"{local:%H:%M} {local:%Z}" in part, step
            assert clinic.name in part, step
            assert clinic.phone in part, step


def test_a_time_reads_in_the_clients_zone_in_every_form_templates_use() -> None:
    """Each form of a session time: local day, date, clock and zone, across date lines."""
    at = datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    assert describe_time(at, "Europe/London") == {
        "when": "Thursday 3 December 2026 at 10:30",
        "date": "Thursday 3 December 2026",
        "short_date": "Thu 3 Dec",
        "time": "10:30",
        "zone": "GMT",
        "weekday": "Thursday",
        "iso": "2026-12-03T10:30+00:00",
    }
    tokyo = describe_time(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "Asia/Tokyo")
    assert (tokyo["when"], tokyo["short_date"], tokyo["zone"]) == (
        "Tuesday 1 December 2026 at 08:30",
        "Tue 1 Dec",
        "JST",
    )
    sao_paulo = describe_time(at, "America/Sao_Paulo")  # its zone has no letters, only -03
    assert (sao_paulo["time"], sao_paulo["zone"], sao_paulo["iso"]) == (
        "07:30",
        "Sao Paulo time",
        "2026-12-03T07:30-03:00",
    )


def test_welcome_explains_exactly_the_clients_scar_types(cases: list[Case]) -> None:
    """The welcome explains each scar type the client has, and none they have not."""
    explained = {
        ScarType.ATROPHIC: "Dips and pitted scars",
        ScarType.PIH: "Dark marks left after breakouts",
        ScarType.HYPERTROPHIC: CAUTION,
    }
    for case in pick(cases, "welcome"):
        for scar, phrase in explained.items():
            for part in (case.rendered.text, case.rendered.html):
                assert (phrase.lower() in part.lower()) == (scar in case.scars), (case.label, scar)


@pytest.mark.parametrize("step", ["welcome", "what_to_expect"])
def test_every_mix_with_raised_scars_carries_the_caution(cases: list[Case], step: str) -> None:
    """Welcome and what-to-expect warn every client with raised scars, in both parts."""
    for case in pick(cases, step, has=ScarType.HYPERTROPHIC):
        assert CAUTION in case.rendered.text, case.label
        assert CAUTION in case.rendered.html, case.label


def test_no_caution_without_raised_scars(cases: list[Case]) -> None:
    """Clients without raised scars are not told about them."""
    for case in cases:
        if ScarType.HYPERTROPHIC not in case.scars:
            assert "raised" not in case.everything.lower(), case.label


def test_raised_only_welcome_sends_the_client_to_the_therapist(cases: list[Case]) -> None:
    """A client with only raised scars is asked to talk options over with the therapist."""
    for case in pick(cases, "welcome", only_raised=True):
        for part in (case.rendered.text, case.rendered.html):
            assert "talk to your therapist about the options" in part, case.label
            assert "no pressure to go ahead" in part, case.label


def test_raised_only_client_is_never_nudged_to_book(cases: list[Case]) -> None:
    """No step the sequence sends to a raised-scars-only client asks them to book."""
    sequence = runtime().sequence
    sent = [s.name for s in sequence.steps if ScarType.HYPERTROPHIC in s.scars]
    assert "book_next" not in sent
    for step in sent:
        for case in pick(cases, step, only_raised=True):
            assert BOOKING_NUDGE.findall(case.everything) == [], case.label


def test_booking_reminders_do_ask_to_book(cases: list[Case]) -> None:
    """The booking reminders ask in words the nudge check recognises (so that check can fail)."""
    for step in ("book_first", "book_next", "book_next_last_call"):
        for case in pick(cases, step, lacks=ScarType.HYPERTROPHIC):
            assert BOOKING_NUDGE.search(case.rendered.text), case.label


def test_expectations_are_honest(cases: list[Case]) -> None:
    """What-to-expect says session numbers vary, results build over time, and no quick fix."""
    for case in pick(cases, "what_to_expect"):
        for part in (case.rendered.text, case.rendered.html):
            assert "varies from person to person" in part, case.label
            assert "no quick fix" in part, case.label
            assert re.search(r"builds? (slowly )?over time|keeps building", part), case.label


def test_no_email_promises_a_result(cases: list[Case]) -> None:
    """No email promises a guaranteed, instant or permanent result."""
    for case in cases:
        lowered = case.everything.lower()
        assert [p for p in PROMISES if p in lowered] == [], case.label


@pytest.mark.parametrize(
    "phrase",
    [
        "retinoids",
        "exfoliating acids",
        "sunburnt",
        "clean skin",
        "no make-up",
        "breakout",
        "infection",
        "cold sore",
    ],
)
def test_prepare_carries_the_pre_care_guidance(cases: list[Case], phrase: str) -> None:
    """The few-days-before email gives each default pre-care point, in both parts."""
    for case in pick(cases, "prepare"):
        assert phrase in case.rendered.text.lower(), case.label
        assert phrase in case.rendered.html.lower(), case.label


@pytest.mark.parametrize(
    "phrase",
    [
        "mild sunburn",
        "one to three days",
        "gentle cleanser",
        "make-up for about a day",
        "sauna",
        "hard exercise",
        "broad-spectrum sunscreen every day",
    ],
)
def test_aftercare_carries_the_aftercare_guidance(cases: list[Case], phrase: str) -> None:
    """The aftercare email gives each default aftercare point, in both parts."""
    for case in pick(cases, "aftercare"):
        assert phrase in case.rendered.text.lower(), case.label
        assert phrase in case.rendered.html.lower(), case.label


@pytest.mark.parametrize("step", ["prepare", "aftercare", "course_complete"])
def test_sun_protection_is_stressed_for_dark_marks(cases: list[Case], step: str) -> None:
    """Clients with dark marks get the sun-protection note; others do not."""
    for case in pick(cases, step):
        stressed = "sunscreen matters most for dark marks" in case.rendered.text.lower()
        assert stressed == (ScarType.PIH in case.scars), case.label


def test_one_session_course_reads_right(cases: list[Case]) -> None:
    """A one-session course is not described in plurals or with spacing between sessions."""
    for step in ("welcome", "what_to_expect", "course_complete"):
        for case in pick(cases, step):
            if case.course.sessions_planned == 1:
                assert "1 sessions" not in case.everything, case.label
                assert "weeks apart" not in case.everything, case.label


def test_last_session_aftercare_does_not_promise_a_next_one(cases: list[Case]) -> None:
    """After the last session, aftercare says the plan is done rather than pointing to another."""
    for case in pick(cases, "aftercare"):
        last = case.session_number == case.course.sessions_planned
        assert ("last session in your plan" in case.rendered.text) == last, case.label
        if last:
            assert "next session" not in case.rendered.text.lower(), case.label


def test_invite_steps_explain_their_attachment(cases: list[Case]) -> None:
    """Emails carrying a calendar file say so; the others do not mention one."""
    sequence = runtime().sequence
    for case in cases:
        carries = sequence.step(case.step).invite
        assert ("invite.ics" in case.rendered.text) == carries, case.label


# --- the clinic's own templates and `nurture preview` -------------------------------------


def test_a_template_edited_while_running_is_used_within_a_second(tmp_path: Path) -> None:
    """A running worker keeps its parsed templates, but looks at the files again each second."""
    folder = tmp_path / "emails" / "note"
    folder.mkdir(parents=True)
    (folder / "body.txt").write_text("Text\n")
    (folder / "body.html").write_text("<p>Html</p>")
    subject = folder / "subject.txt"
    subject.write_text("Hello {{ name }}")
    renderer = Renderer(tmp_path)
    assert renderer.render("note", {"name": "Ana"}).subject == "Hello Ana"
    subject.write_text("See you soon, {{ name }}")
    later = subject.stat().st_mtime + 10
    os.utime(subject, (later, later))
    assert renderer.render("note", {"name": "Ana"}).subject == "Hello Ana"  # not looked at yet
    time.sleep(RECHECK_SECONDS + 0.1)
    assert renderer.render("note", {"name": "Ana"}).subject == "See you soon, Ana"


def test_clinic_template_folder_changes_the_guidance(cli: Cli, tmp_path: Path) -> None:
    """NURTURE_TEMPLATES points at the clinic's folder: an edited partial shows in the email."""
    folder = tmp_path / "clinic-templates"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    partial = folder / "partials" / "preparation.txt"
    partial.write_text(
        partial.read_text(encoding="utf-8") + "- Bring your favourite playlist.\n",
        encoding="utf-8",
    )
    env = {"NURTURE_TEMPLATES": str(folder)}
    result = cli.ok("preview", "prepare", "--scar", "pih", env=env, now=NOW.isoformat())
    assert "- Bring your favourite playlist." in result.out
    default = cli.ok("preview", "prepare", "--scar", "pih", now=NOW.isoformat())
    assert "playlist" not in default.out


def test_preview_writes_the_inlined_html(cli: Cli, tmp_path: Path) -> None:
    """`nurture preview STEP --scar ... --html FILE` writes the styled HTML part of a sample."""
    out = tmp_path / "welcome.html"
    result = cli.ok(
        "preview",
        "welcome",
        "--scar",
        "atrophic",
        "--scar",
        "hypertrophic",
        "--html",
        str(out),
        now=NOW.isoformat(),
    )
    assert "Subject: Welcome to your course, Alex" in result.out
    html = out.read_text(encoding="utf-8")
    assert CAUTION in html
    assert '<td class="content" style="' in html


# --- a whole course through the CLI and a real SMTP server --------------------------------


def deliver_until(cli: Cli, smtp: SMTPSink, email_address: str, until: str) -> None:
    """Tick at each pending email's due time until nothing is due before ``until``."""
    for _ in range(60):
        entries = json.loads(cli.ok("timeline", email_address, "--json").out)
        due = sorted(
            e["due_at"] for e in entries if e["status"] == "pending" and e["due_at"] <= until
        )
        if not due:
            return
        cli.ok("tick", now=due[0], env={"NURTURE_TRANSPORT": smtp.url})
    raise AssertionError("emails kept falling due; the course never settled")


def run_course(cli: Cli, smtp: SMTPSink, address: str, *scars: str) -> dict[str, str]:
    """Enrol, book, move, cancel, rebook and attend a two-session course.

    Returns what arrived, by step (and session): subject, text and HTML together.
    """
    flags = [x for s in scars for x in ("--scar", s)]
    script: list[tuple[str, tuple[str, ...]]] = [
        ("2026-11-30T10:00:00+00:00", ("enroll", address, "--name", "Cara Jones", *flags)),
        ("2026-12-03T10:00:00+00:00", ("book", address, "1", "2026-12-14T10:30")),
        ("2026-12-05T10:00:00+00:00", ("book", address, "1", "2026-12-16T14:00")),
        ("2026-12-16T15:30:00+00:00", ("complete", address, "1")),
        ("2026-12-20T10:00:00+00:00", ("book", address, "2", "2027-02-01T11:00")),
        ("2026-12-27T10:00:00+00:00", ("cancel", address, "2")),
        ("2027-01-05T10:00:00+00:00", ("book", address, "2", "2027-02-03T11:00")),
        ("2027-02-03T12:30:00+00:00", ("complete", address, "2")),
        ("2027-03-31T10:00:00+00:00", ()),
    ]
    for index, (when, command) in enumerate(script):
        if index:
            deliver_until(cli, smtp, address, when)
        if command:
            extra = ["--sessions", "2", "--confirm-hypertrophic"] if command[0] == "enroll" else []
            cli.ok(*command, *extra, now=when)
    entries = json.loads(cli.ok("timeline", address, "--json").out)
    keys = {
        e["message_id"]: e["step"] + (f"/{e['session']}" if e["session"] else "") for e in entries
    }
    received = {}
    for r in smtp.to(address):
        message = r.message
        parts = [str(message["Subject"])]
        parts += [message.get_body((kind,)).get_content() for kind in ("plain", "html")]
        received[keys[r.message_id]] = "\n".join(parts)
    return received


def test_raised_only_course_never_asks_to_book(cli: Cli, smtp: SMTPSink) -> None:
    """A raised-scars-only client's whole course, moves and cancellation too, never says book."""
    received = run_course(cli, smtp, "cara@example.com", "hypertrophic")
    assert set(received) == {
        "welcome",
        "what_to_expect",
        "booking_confirmed/1",
        "session_moved/1",
        "prepare/1",
        "day_before/1",
        "aftercare/1",
        "halfway/1",
        "booking_confirmed/2",
        "session_cancelled/2",
        "session_moved/2",
        "prepare/2",
        "day_before/2",
        "aftercare/2",
        "course_complete",
    }
    nudges = {step: BOOKING_NUDGE.findall(body) for step, body in received.items()}
    assert {step: found for step, found in nudges.items() if found} == {}


def test_mixed_course_with_raised_scars_carries_the_caution(cli: Cli, smtp: SMTPSink) -> None:
    """A client with pitted and raised scars is warned in the welcome and what-to-expect emails."""
    received = run_course(cli, smtp, "dev@example.com", "atrophic", "hypertrophic")
    assert CAUTION in received["welcome"]
    assert CAUTION in received["what_to_expect"]
    assert "book_next/1" not in received  # session 2 was booked in time
    assert "Dips and pitted scars" in received["welcome"]
