"""SMTP delivery over one connection reused across a batch.

The MAIL, RCPT and DATA exchange is spelled out (rather than ``sendmail``) so
that a lost connection is told apart by when it happened: before the message
was handed over it is a plain temporary failure; after the final dot and
before the server's answer the server may have taken the message, and
``AmbiguousDeliveryError`` says so.  When the server offers PIPELINING
(RFC 2920), MAIL, RCPT and DATA go in one write and their replies are read
together: one round trip instead of three, with the same classification.

The exchange is also split in stages (``announce``, ``hand_over``,
``settle``) so the delivery loop can do its own work while the server
answers: record the email as in flight while the envelope's replies travel,
prepare the next email while the server takes the message.  ``send`` runs
the stages back to back.
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
        self._announced: OutgoingEmail | None = None  # envelope sent, replies not yet read
        self._awaiting = False  # message sent, the server's answer not yet read
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
        """Send one message and wait for the answer; map it to temporary or permanent."""
        self.hand_over(email)
        self.settle()

    def announce(self, email: OutgoingEmail) -> None:
        """Send the envelope (MAIL, RCPT, DATA) of ``email`` ahead of its hand-over.

        Only to a server that offers PIPELINING, and best effort: whatever
        goes wrong here is met again, and reported, by ``hand_over``.  Nothing
        can be delivered before ``hand_over`` sends the message; until then
        ``withdraw`` takes the envelope back.  The point is the round trip:
        the server answers while the worker records the email as in flight.
        """
        self._announced = None
        try:
            conn = self._connect()
        except TemporaryDeliveryError:
            return
        if not _can_pipeline(conn, email):
            return
        try:
            conn.send(_envelope(email))
        except _LOST:
            self._drop()
            return
        self._announced = email

    def withdraw(self) -> None:
        """Take back an announced envelope: the connection is closed before any message.

        A server that said 354 to DATA takes everything up to a final dot
        as the message, so the only safe way back is to hang up.
        """
        if self._announced is not None:
            self._announced = None
            self._drop()

    def hand_over(self, email: OutgoingEmail) -> None:
        """The envelope's answers, then the message up to its final dot.

        The server's answer to the message is read by ``settle``, so the
        worker can prepare the next email meanwhile.
        """
        announced, self._announced = self._announced, None
        conn = self._connect()
        try:
            if announced is email:
                replies = _envelope_replies(conn)
            else:
                replies = _envelope_exchange(conn, email)
            _check_envelope(email, *replies)
            conn.send(_dot_stuffed(email.data))
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
        self._awaiting = True

    def settle(self) -> None:
        """Read the server's answer to the last hand-over; raise unless it took the message."""
        if not self._awaiting:
            return
        self._awaiting = False
        try:
            if self._conn is None:
                raise smtplib.SMTPServerDisconnected("the connection was closed")
            code, text = self._conn.getreply()
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
        self._announced, self._awaiting = None, False
        _close_quietly(conn)

    def close(self) -> None:
        """Say QUIT and close the connection (hang up if a hand-over is half done)."""
        if self._announced is not None or self._awaiting:
            self._drop()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


Reply = tuple[int, bytes]


def _can_pipeline(conn: smtplib.SMTP, email: OutgoingEmail) -> bool:
    return bool(
        conn.has_extn("pipelining") and email.envelope_from.isascii() and email.recipient.isascii()
    )


def _envelope(email: OutgoingEmail) -> str:
    """MAIL, RCPT and DATA as one pipelined write (RFC 2920)."""
    return f"MAIL FROM:{_path(email.envelope_from)}\r\nRCPT TO:{_path(email.recipient)}\r\nDATA\r\n"


def _envelope_exchange(conn: smtplib.SMTP, email: OutgoingEmail) -> tuple[Reply, Reply, Reply]:
    """MAIL, RCPT and DATA with their replies: in one round trip where the server pipelines."""
    if _can_pipeline(conn, email):
        conn.send(_envelope(email))
        return _envelope_replies(conn)
    mail = conn.mail(email.envelope_from)
    rcpt = conn.rcpt(email.recipient) if mail[0] == 250 else (0, b"")
    data = conn.docmd("DATA") if rcpt[0] in (250, 251) else (0, b"")
    return mail, rcpt, data


def _envelope_replies(conn: smtplib.SMTP) -> tuple[Reply, Reply, Reply]:
    """The three replies to a pipelined envelope.

    Every reply is read, so the connection stays in step whatever the server
    refused.  A server that says 354 to DATA although it refused the sender
    or the recipient gets an empty message ended at once (RFC 2920, section
    3.1), which it must refuse for want of a recipient; the refusal that
    matters is reported.
    """
    mail, rcpt, data = conn.getreply(), conn.getreply(), conn.getreply()
    if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
        conn.send(".\r\n")
        conn.getreply()
    return mail, rcpt, data


def _check_envelope(email: OutgoingEmail, mail: Reply, rcpt: Reply, data: Reply) -> None:
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], email.envelope_from)
    if rcpt[0] not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({email.recipient: rcpt})
    if data[0] != 354:
        raise smtplib.SMTPDataError(*data)


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
    body = data.replace(b"\n.", b"\n..")
    if body.startswith(b"."):
        body = b"." + body
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
