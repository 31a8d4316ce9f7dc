"""What staff see of one email: the stored copy if sent, else a fresh render."""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.orm import Session

from nurture.db.models import Client, Message
from nurture.domain import MessageStatus
from nurture.errors import NurtureError
from nurture.privacy import stored_copy
from nurture.reconcile import course_facts
from nurture.rendering import Recipient
from nurture.runtime import Runtime


@dataclass(frozen=True)
class EmailView:
    """The parts of an email that a staff page shows."""

    step: str
    status: str
    subject: str
    sent: bool
    note: str
    text: str
    html: str


def email_view(db: Session, runtime: Runtime, client: Client, message: Message) -> EmailView:
    """The email as the client saw it, or a preview of how it would look now."""
    data = stored_copy(message)
    if data is not None:
        note = "Exactly as sent."
    elif client.email is None or client.name is None:
        return EmailView(
            message.step,
            message.status.value,
            "",
            False,
            "The client was erased; no copy is kept.",
            "",
            "",
        )
    else:
        recipient = Recipient(client.public_id, client.name, client.email, client.timezone)
        try:
            _, outgoing = runtime.composer.compose(
                message.step,
                course_facts(message.course, suppressed=False),
                recipient,
                message.session_number,
                message_id=message.message_id,
                now=runtime.now(),
            )
        except NurtureError as exc:
            return EmailView(
                message.step,
                message.status.value,
                "",
                False,
                f"This email cannot be shown: {exc}",
                "",
                "",
            )
        data = outgoing.data
        note = (
            "Sent before copies were kept: shown as it would look now."
            if message.status is MessageStatus.SENT
            else "Not sent: shown as it would look now."
        )
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    return EmailView(
        step=message.step,
        status=message.status.value,
        subject=str(parsed["Subject"]),
        sent=message.status is MessageStatus.SENT,
        note=note,
        text=text.get_content() if isinstance(text, EmailMessage) else "",
        html=html.get_content() if isinstance(html, EmailMessage) else "",
    )
