"""SMTP delivery over one connection reused across a batch.

The MAIL, RCPT and DATA exchange is spelled out (rather than ``sendmail``) so
that a lost connection is told apart by when it happened: before the message
was handed over it is a plain temporary failure; after the final dot and
before the server's answer the server may have taken the message, and
``AmbiguousDeliveryError`` says so.  When the server offers PIPELINING
(RFC 2920), MAIL, RCPT and DATA go in one write and their replies are read
together: one round trip instead of three, with the same classification.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import ssl

from nurture.errors import (
    AmbiguousDeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from nurture.rendering import OutgoingEmail

_LOST = (TimeoutError, smtplib.SMTPServerDisconnected, OSError)


class SMTPTransport:
    """Sends through an SMTP server (plain, STARTTLS or implicit TLS)."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        ssl: bool = False,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        cafile: str | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.cafile = cafile
        self.use_ssl, self.starttls = ssl, starttls
        self.username, self.password = username, password
        self._conn: smtplib.SMTP | None = None
        self.connections_opened = 0

    def _connect(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        where = f"{self.host}:{self.port}"
        conn: smtplib.SMTP | None = None
        try:
            if self.use_ssl:
                conn = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self._tls()
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=self._tls())
                conn.ehlo()
            if self.username:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close_quietly(conn)
            raise TemporaryDeliveryError(
                f"SMTP login refused at {where} ({exc.smtp_code})"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(conn)
            raise TemporaryDeliveryError(f"cannot connect to {where}: {exc}") from None
        self._conn = conn
        self.connections_opened += 1
        return conn

    def _tls(self) -> ssl.SSLContext:
        """Verify the server against the system CAs, or the CA file given."""
        return ssl.create_default_context(cafile=self.cafile)

    def send(self, email: OutgoingEmail) -> None:
        """Send one message; map the server's answer to temporary or permanent."""
        conn = self._connect()
        try:
            _hand_over(conn, email)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._after_refusal(code)
            raise _classify(code, text, recipient=True) from None
        except smtplib.SMTPResponseException as exc:
            self._after_refusal(exc.smtp_code)
            raise _classify(exc.smtp_code, exc.smtp_error, recipient=False) from None
        except _LOST as exc:
            self._drop()
            raise TemporaryDeliveryError(f"connection lost: {exc}") from None
        try:
            code, text = conn.getreply()
        except _LOST as exc:
            self._drop()
            raise AmbiguousDeliveryError(
                f"connection lost after the message was handed over, before the server "
                f"confirmed it: {exc}"
            ) from None
        if code != 250:
            self._after_refusal(code)
            raise _classify(code, text, recipient=False)

    def _after_refusal(self, code: int) -> None:
        if code == 421:  # the server is closing the connection
            self._drop()
        else:
            self._reset_after_refusal()

    def _reset_after_refusal(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _close_quietly(conn)

    def close(self) -> None:
        """Say QUIT and close the connection."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


def _hand_over(conn: smtplib.SMTP, email: OutgoingEmail) -> None:
    """MAIL, RCPT, DATA and the message up to its final dot; the answer is read after."""
    if conn.has_extn("pipelining") and email.envelope_from.isascii() and email.recipient.isascii():
        mail, rcpt, data = _pipelined_envelope(conn, email)
    else:
        mail = conn.mail(email.envelope_from)
        rcpt = conn.rcpt(email.recipient) if mail[0] == 250 else (0, b"")
        data = conn.docmd("DATA") if rcpt[0] in (250, 251) else (0, b"")
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], email.envelope_from)
    if rcpt[0] not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({email.recipient: rcpt})
    if data[0] != 354:
        raise smtplib.SMTPDataError(*data)
    conn.send(_dot_stuffed(email.data))


def _pipelined_envelope(
    conn: smtplib.SMTP, email: OutgoingEmail
) -> tuple[tuple[int, bytes], tuple[int, bytes], tuple[int, bytes]]:
    """MAIL, RCPT and DATA in one write, then their three replies (RFC 2920).

    One round trip instead of three.  Every reply is read, so the
    connection stays in step whatever the server refused.  A server that
    says 354 to DATA although it refused the sender or the recipient gets
    an empty message ended at once (RFC 2920, section 3.1), which it must
    refuse for want of a recipient; the refusal that matters is reported.
    """
    commands = (
        f"MAIL FROM:{_path(email.envelope_from)}\r\nRCPT TO:{_path(email.recipient)}\r\nDATA\r\n"
    )
    conn.send(commands)
    mail, rcpt, data = conn.getreply(), conn.getreply(), conn.getreply()
    if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
        conn.send(".\r\n")
        conn.getreply()
    return mail, rcpt, data


def _path(address: str) -> str:
    """An address as an SMTP path, ``<local@domain>``.

    Addresses are validated when recorded, so a plain one is wrapped as it
    is; anything unusual (spaces, angle brackets, control characters) goes
    through smtplib's parser, which is slow but careful.
    """
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


_PLAIN_ADDRESS = re.compile(r"[!#-;=?-~]+")  # printable ASCII but space, '"', '<' and '>'


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: lines starting with a dot doubled, then the final dot (RFC 5321)."""
    body = re.sub(rb"(?m)^\.", b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


def _close_quietly(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()


def _classify(code: int, text: bytes | str, *, recipient: bool) -> Exception:
    message = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    summary = f"{code} {message}".strip()[:250]
    if 500 <= code < 600:
        return PermanentDeliveryError(summary, recipient_rejected=recipient)
    return TemporaryDeliveryError(summary)
