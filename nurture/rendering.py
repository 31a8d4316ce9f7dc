"""Rendering: Jinja templates to a complete, signed-off email message.

Templates live in the clinic-editable folder: ``emails/<template>/`` holds
``subject.txt``, ``body.txt`` and ``body.html`` for each step, which extend
``layout.txt`` / ``layout.html`` and include ``partials/``.  Jinja runs with
``StrictUndefined`` (a missing variable is an error, never a blank) and HTML
autoescaping.  The HTML part has its CSS inlined, so Gmail and Outlook show
it as designed.  A step with ``invite = true`` also carries its session as a
calendar invite (see ``nurture.invites``), built from the session as it
stands when the email is composed.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import css_inline
import jinja2
from email_validator import EmailNotValidError, validate_email

from nurture import invites, mime
from nurture.domain import CourseFacts, ScarType, SessionFacts, SessionStatus
from nurture.errors import SequenceError, TemplateError
from nurture.sequence import Sequence, Step
from nurture.timing import zone_named
from nurture.tracking import Unsubscribe

#: Headers may run to RFC 5322's 998 characters, so an unsubscribe URL is never
#: turned into an encoded-word (which mail clients would not recognise as a URL).
HEADERS = SMTP.clone(max_line_length=998)


@dataclass(frozen=True)
class Clinic:
    """Who sends the emails, as shown in them."""

    name: str
    address: str
    phone: str
    email: str
    sender: Address
    base_url: str


@dataclass(frozen=True)
class Recipient:
    """The client an email is for."""

    public_id: str
    name: str
    email: str
    timezone: str


@dataclass(frozen=True)
class Attachment:
    """A file carried by an email (a calendar invite, say)."""

    filename: str
    maintype: str
    subtype: str
    data: bytes
    params: dict[str, str] = field(default_factory=dict)
    #: Sent as one more alternative of the body, after text and HTML, instead
    #: of as a file: where Gmail and Outlook look for a calendar invite.
    alternative: bool = False


@dataclass(frozen=True)
class RenderedEmail:
    """The three texts of one email."""

    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class OutgoingEmail:
    """A message ready for a transport: envelope plus RFC 5322 bytes."""

    message_id: str
    envelope_from: str
    recipient: str
    data: bytes


class TemplateVars(dict[str, Any]):
    """The variables of one email, as templates read them: ``client.first_name``.

    A plain dict, but looked up key-first: Jinja reads ``a.b`` by trying the
    attribute ``b`` and only then the key, so every variable of a plain dict
    costs a raised and caught AttributeError (about forty per email).  None of
    these keys is the name of a dict method, so key-first finds what
    attribute-first would.
    """


def first_name(name: str) -> str:
    """The name a warm email opens with."""
    return name.split(maxsplit=1)[0] if name.split() else name


def zone_label(local: datetime, zone: str) -> str:
    """How a time's zone reads after the time: "GMT", "EST", else "Sao Paulo time"."""
    name = local.tzname() or ""
    if name[:1].isalpha():
        return name
    return f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} time"


def describe_time(at: datetime, zone: str) -> dict[str, str]:
    """Ways to write an instant in the client's zone, in plain English."""
    local = at.astimezone(zone_named(zone))
    # One strftime for every name (each call formats from scratch).
    weekday, month, wd, mon, clock = local.strftime("%A|%B|%a|%b|%H:%M").split("|")
    date = f"{weekday} {local.day} {month} {local.year}"
    return {
        "when": f"{date} at {clock}",
        "date": date,
        "short_date": f"{wd} {local.day} {mon}",
        "time": clock,
        "zone": zone_label(local, zone),
        "weekday": weekday,
        "iso": local.isoformat(timespec="minutes"),
    }


def session_view(session: SessionFacts, planned: int, zone: str) -> TemplateVars:
    """What templates know of one session."""
    at = session.scheduled_at
    return TemplateVars(
        {
            "number": session.number,
            "is_first": session.number == 1,
            "is_last": session.number == planned,
            "status": session.status.value,
            "revision": session.revision,
            **(describe_time(at, zone) if at is not None else {}),
            "at": at,
        }
    )


def build_context(
    step: Step,
    course: CourseFacts,
    recipient: Recipient,
    clinic: Clinic,
    session_number: int | None,
    unsubscribe_url: str,
    invite: invites.SessionInvite | None = None,
) -> dict[str, Any]:
    """The variables every template sees (documented in templates/README.md)."""
    scars = set(course.scar_types)
    completed = sum(1 for s in course.sessions if s.status is SessionStatus.COMPLETED)
    session = course.session(session_number) if session_number is not None else None
    upcoming = [
        s
        for s in course.sessions
        if s.status is SessionStatus.BOOKED and (session is None or s.number > session.number)
    ]
    return {
        "step": TemplateVars({"name": step.name, "description": step.description}),
        "client": TemplateVars(
            {
                "name": recipient.name,
                "first_name": first_name(recipient.name),
                "email": recipient.email,
                "timezone": recipient.timezone,
            }
        ),
        "clinic": TemplateVars(
            {
                "name": clinic.name,
                "address": clinic.address,
                "phone": clinic.phone,
                "email": clinic.email,
                "url": clinic.base_url,
            }
        ),
        "course": TemplateVars(
            {
                "sessions_planned": course.sessions_planned,
                "sessions_completed": completed,
                "sessions_remaining": course.sessions_planned - completed,
                "scars": [s.value for s in course.scar_types],
                "has_atrophic": ScarType.ATROPHIC in scars,
                "has_pih": ScarType.PIH in scars,
                "has_hypertrophic": ScarType.HYPERTROPHIC in scars,
                "only_hypertrophic": scars == {ScarType.HYPERTROPHIC},
                "mixed": len(scars) > 1,
            }
        ),
        "session": (
            session_view(session, course.sessions_planned, recipient.timezone) if session else None
        ),
        "next_session": (
            session_view(upcoming[0], course.sessions_planned, recipient.timezone)
            if upcoming
            else None
        ),
        "invite": (
            TemplateVars({"method": invite.method.value.lower(), "filename": invites.FILENAME})
            if invite is not None
            else None
        ),
        "unsubscribe_url": unsubscribe_url,
    }


#: How long a template is trusted before its file is looked at again: edits
#: show within this, without a stat of every template file for every email.
RECHECK_SECONDS = 1.0


class _TemplateFolder(jinja2.FileSystemLoader):
    """A file loader whose up-to-date checks look at the disk at most once a second.

    Jinja asks whether a cached template is still current each time it is
    used (the email's templates, their layout, their partials): a ``stat``
    per file per email.  Editing a template still takes effect in a running
    worker, within ``RECHECK_SECONDS``.
    """

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        return source, filename, _throttled(uptodate)


def _throttled(uptodate: Callable[[], bool]) -> Callable[[], bool]:
    trusted_until = time.monotonic() + RECHECK_SECONDS

    def check() -> bool:
        nonlocal trusted_until
        now = time.monotonic()
        if now < trusted_until:
            return True
        if not uptodate():
            return False
        trusted_until = now + RECHECK_SECONDS
        return True

    return check


class _Environment(jinja2.Environment):
    """Jinja with ``TemplateVars`` read key-first (see there) and plain-dict globals.

    Jinja gives each template a ChainMap of its globals over the
    environment's, and copies that map into a fresh context for each render
    and each include (about ten per email); a ChainMap is iterated by
    building a dict of all its maps, every time.  A dict made once per
    template holds the same names (nurture sets the environment's globals
    only when it builds it, as Jinja asks), and costs a plain copy.
    """

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is TemplateVars:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class Renderer:
    """Renders steps from one template folder."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        loader = _TemplateFolder(str(templates_dir))
        # Every template of the folder stays compiled (a plain dict, where
        # Jinja's default LRU pays a linear bookkeeping step on each use,
        # includes too); edits are still picked up, see _TemplateFolder.
        self._html = _Environment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            autoescape=True,
            cache_size=-1,
        )
        self._text = _Environment(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            cache_size=-1,
            autoescape=False,  # text/plain: escaping would show &amp; to clients
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    def render(self, template: str, context: dict[str, Any]) -> RenderedEmail:
        """Render the subject, text and HTML of one step."""
        return self._inlined(template, self._texts(template, context))

    def render_many(
        self, items: list[tuple[str, dict[str, Any]]]
    ) -> list[RenderedEmail | TemplateError]:
        """Render several emails: ``render`` for each, an error in place of a failed one.

        Jinja runs for each in turn, then css_inline inlines all the HTML in
        one call (``inline_many``).  The gain measured is that each library's
        code stays hot in the cache; css_inline's own threads added nothing
        measurable against a loop of ``inline``.
        """
        drafts: list[RenderedEmail | TemplateError] = []
        for template, context in items:
            try:
                drafts.append(self._texts(template, context))
            except TemplateError as exc:
                drafts.append(exc)
        ready = [d for d in drafts if isinstance(d, RenderedEmail)]
        try:
            inlined = iter(self._inliner.inline_many([d.html for d in ready]))
        except css_inline.InlineError:  # find which, one by one
            return [
                d if isinstance(d, TemplateError) else self._inlined_or_error(template, d)
                for (template, _), d in zip(items, drafts, strict=True)
            ]
        return [
            d if isinstance(d, TemplateError) else replace(d, html=next(inlined)) for d in drafts
        ]

    def _texts(self, template: str, context: dict[str, Any]) -> RenderedEmail:
        """Subject, text and HTML from Jinja, the HTML not inlined yet."""
        folder = f"emails/{template}"
        subject = " ".join(self._run(self._text, f"{folder}/subject.txt", context).split())
        if not subject:
            raise TemplateError(f"{folder}/subject.txt rendered an empty subject")
        text = self._run(self._text, f"{folder}/body.txt", context)
        html = self._run(self._html, f"{folder}/body.html", context)
        return RenderedEmail(subject=subject, text=_tidy_text(text), html=html)

    def _inlined(self, template: str, draft: RenderedEmail) -> RenderedEmail:
        try:
            html = self._inliner.inline(draft.html)
        except css_inline.InlineError as exc:
            raise TemplateError(
                f"emails/{template}/body.html: CSS could not be inlined: {exc}"
            ) from None
        return replace(draft, html=html)

    def _inlined_or_error(
        self, template: str, draft: RenderedEmail
    ) -> RenderedEmail | TemplateError:
        try:
            return self._inlined(template, draft)
        except TemplateError as exc:
            return exc

    def _run(self, env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
        try:
            return env.get_template(name).render(context)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name} not found in the template folder") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{name}: {exc.message}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or name}:{exc.lineno}: {exc.message}") from None
        except Exception as exc:  # a clinic's template is code: {{ 1 // 0 }} fails at run time
            # The type and the template line only: the message could quote a client's details.
            raise TemplateError(f"{self._where(exc) or name}: {type(exc).__name__}") from None

    def _where(self, exc: Exception) -> str | None:
        """``emails/x/body.html:3``: the innermost template line the error passed through."""
        where = None
        frame = exc.__traceback__
        root = self.templates_dir.resolve()
        while frame is not None:
            path = Path(frame.tb_frame.f_code.co_filename).resolve()  # as Jinja opened it
            if path.is_relative_to(root):
                where = f"{path.relative_to(root).as_posix()}:{frame.tb_lineno}"
            frame = frame.tb_next
        return where


def _tidy_text(text: str) -> str:
    """Collapse the blank lines template logic leaves behind."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def envelope_address(email: str) -> str:
    """The ASCII form of an address for SMTP (IDN domains in punycode).

    Addresses are validated and normalised when they are recorded, so an ASCII
    one is already in its SMTP form; only an internationalised domain needs
    the (slow) validator again.
    """
    if email.isascii():
        return email
    try:
        ascii_form = validate_email(email, check_deliverability=False).ascii_email
    except EmailNotValidError:
        ascii_form = None
    return ascii_form or email


@functools.lru_cache(maxsize=8)
def _sender(display_name: str, addr_spec: str) -> str:
    """The From header: the same clinic on every email, so written once."""
    return mime.address(display_name, addr_spec)


def build_message(
    rendered: RenderedEmail,
    *,
    message_id: str,
    sender: Address,
    recipient: Recipient,
    date: datetime,
    unsubscribe_url: str,
    extra_headers: dict[str, str] | None = None,
) -> OutgoingEmail:
    """Assemble the message (multipart/alternative, mixed when it carries files)."""
    to_addr = envelope_address(recipient.email)
    try:
        headers = [
            ("From", _sender(sender.display_name, sender.addr_spec)),
            ("To", mime.address(recipient.name, to_addr)),
            ("Subject", mime.unstructured(rendered.subject)),
            ("Date", format_datetime(date)),
            ("Message-ID", message_id),
            ("List-Unsubscribe", f"<{unsubscribe_url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            *(extra_headers or {}).items(),
        ]
        alternative: list[mime.Part | mime.Multipart] = [
            mime.text_part(rendered.text, "plain"),
            mime.text_part(rendered.html, "html"),
        ]
        alternative += [
            mime.binary_part(f"{a.maintype}/{a.subtype}", a.data, a.params.items())
            for a in rendered.attachments
            if a.alternative
        ]
        body: mime.Part | mime.Multipart = mime.Multipart("alternative", alternative)
        files = [
            mime.binary_part(f"{a.maintype}/{a.subtype}", a.data, a.params.items(), a.filename)
            for a in rendered.attachments
            if not a.alternative
        ]
        if files:
            body = mime.Multipart("mixed", [body, *files])
        data = mime.write(headers, body)
    except mime.HeaderInjectionError as exc:
        raise TemplateError(f"refused to build the message: {exc}") from None
    return OutgoingEmail(
        message_id=message_id, envelope_from=sender.addr_spec, recipient=to_addr, data=data
    )


@dataclass(frozen=True)
class Request:
    """One email to compose: which step, for whom, as the facts stand."""

    step: str
    course: CourseFacts
    recipient: Recipient
    session_number: int | None
    message_id: str


@dataclass(frozen=True)
class Draft:
    """A rendered email (CSS inlined) still to be dated and assembled (``Composer.finish``)."""

    request: Request
    rendered: RenderedEmail
    url: str
    invite: invites.SessionInvite | None


#: What an email needs before Jinja runs: its step, unsubscribe link, invite, variables.
_Prepared = tuple[Step, str, invites.SessionInvite | None, dict[str, Any]]


@dataclass(frozen=True)
class Composer:
    """Turns (step, course, client) into the exact message a client receives."""

    sequence: Sequence
    renderer: Renderer
    clinic: Clinic
    unsubscribe: Unsubscribe

    def compose(
        self,
        step_name: str,
        course: CourseFacts,
        recipient: Recipient,
        session_number: int | None,
        *,
        message_id: str,
        now: datetime,
    ) -> tuple[RenderedEmail, OutgoingEmail]:
        """Render one step and assemble its message."""
        request = Request(step_name, course, recipient, session_number, message_id)
        return self.finish(self.draft(request), now)

    def draft(self, request: Request) -> Draft:
        """Render one email, still to be dated and assembled (``finish``)."""
        step, url, invite, context = self._prepare(request)
        return Draft(request, self.renderer.render(step.template, context), url, invite)

    def draft_many(self, requests: list[Request]) -> list[Draft | TemplateError | SequenceError]:
        """Render several emails (``Renderer.render_many``), an error in place of a failed one."""
        prepared: list[_Prepared | TemplateError | SequenceError] = []
        for request in requests:
            try:
                prepared.append(self._prepare(request))
            except (TemplateError, SequenceError) as exc:
                prepared.append(exc)
        ready = [p for p in prepared if isinstance(p, tuple)]
        rendered = iter(
            self.renderer.render_many([(step.template, ctx) for step, _, _, ctx in ready])
        )
        drafts: list[Draft | TemplateError | SequenceError] = []
        for request, p in zip(requests, prepared, strict=True):
            if not isinstance(p, tuple):
                drafts.append(p)
                continue
            _, url, invite, _ = p
            result = next(rendered)
            drafts.append(
                result if isinstance(result, TemplateError) else Draft(request, result, url, invite)
            )
        return drafts

    def finish(self, draft: Draft, now: datetime) -> tuple[RenderedEmail, OutgoingEmail]:
        """The message of a rendered email, dated ``now`` (its invite stamped ``now`` too)."""
        rendered = draft.rendered
        if draft.invite is not None:
            rendered = replace(
                rendered, attachments=rendered.attachments + invite_attachments(draft.invite, now)
            )
        email = build_message(
            rendered,
            message_id=draft.request.message_id,
            sender=self.clinic.sender,
            recipient=draft.request.recipient,
            date=now,
            unsubscribe_url=draft.url,
        )
        return rendered, email

    def _prepare(self, request: Request) -> _Prepared:
        """The step, unsubscribe link, invite and template variables of one email."""
        step = self.sequence.step(request.step)
        recipient = request.recipient
        url = self.unsubscribe.url(recipient.public_id)
        invite = self._invite(step, request.course, recipient, request.session_number)
        context = build_context(
            step, request.course, recipient, self.clinic, request.session_number, url, invite
        )
        return step, url, invite, context

    def _invite(
        self, step: Step, course: CourseFacts, recipient: Recipient, session_number: int | None
    ) -> invites.SessionInvite | None:
        """The calendar entry a step with ``invite = true`` carries, as the session stands now."""
        if not step.invite or session_number is None:
            return None
        session = course.session(session_number)
        if session is None or session.scheduled_at is None:
            return None
        sender = self.clinic.sender
        return invites.SessionInvite(
            uid=invites.session_uid(
                recipient.public_id, course.course_id, session.number, sender.domain
            ),
            sequence=session.revision,
            method=(
                invites.Method.CANCEL
                if session.status is SessionStatus.CANCELLED
                else invites.Method.REQUEST
            ),
            start=session.scheduled_at,
            clinic_name=self.clinic.name,
            clinic_address=self.clinic.address,
            clinic_phone=self.clinic.phone,
            organizer=sender,
            attendee_name=recipient.name,
            attendee_email=envelope_address(recipient.email),
            label=f"Session {session.number} of {course.sessions_planned}",
        )


def invite_attachments(invite: invites.SessionInvite, now: datetime) -> tuple[Attachment, ...]:
    """The invite twice, as mail clients expect it: a body alternative and an invite.ics file."""
    data = invites.to_ics(invite, now)
    method = invite.method.value
    return (
        Attachment(
            invites.FILENAME,
            "text",
            "calendar",
            data,
            {"method": method, "charset": "UTF-8"},
            alternative=True,
        ),
        Attachment(invites.FILENAME, "application", "ics", data, {"name": invites.FILENAME}),
    )
