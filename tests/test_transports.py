"""Every transport passes one contract: what is sent arrives, once, intact."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Callable, Iterator
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from nurture.errors import ConfigurationError, PermanentDeliveryError, TemporaryDeliveryError
from nurture.rendering import OutgoingEmail, Recipient, RenderedEmail, build_message
from nurture.transports import MemoryTransport, OutboxTransport, SMTPTransport, open_transport
from nurture.transports.base import Transport
from tests.smtp_sink import SMTPSink, free_port

SENDER = Address("Clinic", "hello", "clinic.example.com")


def make_email(n: int, name: str = "Ana Silva", address: str = "ana@example.com") -> OutgoingEmail:
    """A small finished email."""
    rendered = RenderedEmail(subject=f"Hello {n}", text=f"Text {n}\n", html=f"<p>Html {n}</p>")
    return build_message(
        rendered,
        message_id=f"<m{n}@clinic.example.com>",
        sender=SENDER,
        recipient=Recipient("pid", name, address, "Europe/London"),
        date=__import__("datetime").datetime(2026, 11, 30, 10, tzinfo=__import__("datetime").UTC),
        unsubscribe_url="https://clinic.example.com/u/x",
    )


def _tls_pair() -> tuple[ssl.SSLContext, str, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    return server, "", ca


class _Authenticator:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"clinic",
            b"s3cret",
        )
        return AuthResult(success=ok, handled=False)


Factory = Callable[[Path], tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]]


def _memory(_: Path) -> tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]:
    transport = MemoryTransport()
    return transport, lambda: [e.data for e in transport.sent], lambda: None


def _outbox(tmp: Path) -> tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]:
    folder = tmp / "outbox"
    transport = open_transport(f"outbox:{folder}")
    return transport, lambda: [p.read_bytes() for p in sorted(folder.glob("*.eml"))], lambda: None


def _smtp(_: Path) -> tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]:
    sink = SMTPSink().start()
    return open_transport(sink.url), lambda: [r.data for r in sink.received], sink.stop


def _starttls(tmp: Path) -> tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]:
    server_ctx, _, ca = _tls_pair()
    cafile = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    sink = SMTPSink(
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=_Authenticator(),
        auth_required=True,
    ).start()
    spec = f"smtp://clinic:s3cret@127.0.0.1:{sink.port}?starttls=1&cafile={cafile}"
    return open_transport(spec), lambda: [r.data for r in sink.received], sink.stop


def _smtps(tmp: Path) -> tuple[Transport, Callable[[], list[bytes]], Callable[[], None]]:
    server_ctx, _, ca = _tls_pair()
    cafile = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    sink = SMTPSink(ssl_context=server_ctx).start()
    spec = f"smtps://127.0.0.1:{sink.port}?cafile={cafile}"
    return open_transport(spec), lambda: [r.data for r in sink.received], sink.stop


FACTORIES = {
    "memory": _memory,
    "outbox": _outbox,
    "smtp": _smtp,
    "starttls+auth": _starttls,
    "smtps": _smtps,
}


@pytest.fixture(params=list(FACTORIES))
def contract(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Transport, Callable[[], list[bytes]]]]:
    """A transport and a way to read what it delivered."""
    transport, delivered, stop = FACTORIES[request.param](tmp_path)
    try:
        yield transport, delivered
    finally:
        transport.close()
        stop()


def _parsed(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_what_is_sent_arrives_intact(contract: tuple[Transport, Callable[[], list[bytes]]]) -> None:
    """Each email arrives once with its headers and both parts as built."""
    transport, delivered = contract
    for n in range(3):
        transport.send(make_email(n))
    transport.close()
    got = sorted(delivered(), key=lambda d: str(_parsed(d)["Message-ID"]))
    assert [str(_parsed(d)["Message-ID"]) for d in got] == [
        f"<m{n}@clinic.example.com>" for n in range(3)
    ]
    for n, data in enumerate(got):
        msg = _parsed(data)
        assert msg["Subject"] == f"Hello {n}"
        assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == f"Text {n}\n"
        assert msg.get_body(("html",)).get_content().strip() == f"<p>Html {n}</p>"


@pytest.fixture(params=["pipelining", "plain"])
def either_smtp(request: pytest.FixtureRequest) -> Iterator[SMTPSink]:
    """A real SMTP server that advertises PIPELINING (RFC 2920), and one that does not."""
    sink = SMTPSink(pipelining=request.param == "pipelining").start()
    try:
        yield sink
    finally:
        sink.stop()


def test_smtp_reuses_one_connection(either_smtp: SMTPSink) -> None:
    """Many emails in one batch go over a single SMTP connection, pipelined or not."""
    transport = open_transport(either_smtp.url)
    assert isinstance(transport, SMTPTransport)
    for n in range(5):
        transport.send(make_email(n))
    transport.close()
    assert transport.connections_opened == 1
    assert sorted(either_smtp.ids()) == sorted(make_email(n).message_id for n in range(5))


def test_smtp_stages_overlap_and_deliver_in_order(either_smtp: SMTPSink) -> None:
    """Announced, handed over and settled one after another, every email arrives once.

    The answer to each hand-over is read before the next envelope goes out, so
    replies never cross; a server without PIPELINING gets the plain exchange.
    """
    transport = open_transport(either_smtp.url)
    assert isinstance(transport, SMTPTransport)
    for n in range(5):
        email_n = make_email(n)
        transport.settle()
        transport.announce(email_n)
        transport.hand_over(email_n)
    transport.settle()
    transport.close()
    assert transport.connections_opened == 1
    assert either_smtp.ids() == [make_email(n).message_id for n in range(5)]


def test_lines_starting_with_a_dot_arrive_intact(either_smtp: SMTPSink) -> None:
    """A body line that is a lone dot, or starts with one, is not taken for the end of data."""
    text = ".\n.. two dots\n.hidden\nend\n"
    rendered = RenderedEmail(subject="Dots", text=text, html="<p>.</p>")
    outgoing = build_message(
        rendered,
        message_id="<dots@clinic.example.com>",
        sender=SENDER,
        recipient=Recipient("pid", "Ana Silva", "ana@example.com", "Europe/London"),
        date=__import__("datetime").datetime(2026, 11, 30, 10, tzinfo=__import__("datetime").UTC),
        unsubscribe_url="https://clinic.example.com/u/x",
    )
    transport = open_transport(either_smtp.url)
    transport.send(outgoing)
    transport.close()
    [received] = either_smtp.received
    assert received.data.replace(b"\r\n", b"\n") == outgoing.data.replace(b"\r\n", b"\n")
    body = _parsed(received.data).get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == text


def test_smtp_withdrawn_envelope_delivers_nothing(smtp: SMTPSink) -> None:
    """An envelope taken back (the email changed meanwhile) never becomes a message."""
    transport = open_transport(smtp.url)
    assert isinstance(transport, SMTPTransport)
    transport.announce(make_email(1))
    transport.withdraw()
    transport.send(make_email(2))
    transport.close()
    assert smtp.ids() == [make_email(2).message_id]
    assert transport.connections_opened == 2  # hanging up was the way back


def test_smtp_refusal_of_an_announced_envelope_is_reported(smtp: SMTPSink) -> None:
    """A recipient refused in reply to an announced envelope fails its hand-over, as send would."""
    smtp.behaviour.reject["ana@example.com"] = "550 5.1.1 No such user"
    transport = open_transport(smtp.url)
    assert isinstance(transport, SMTPTransport)
    refused = make_email(1)
    transport.announce(refused)
    with pytest.raises(PermanentDeliveryError) as caught:
        transport.hand_over(refused)
    assert caught.value.recipient_rejected
    transport.send(make_email(2, address="bo@example.com"))
    transport.close()
    assert [r.rcpt_tos for r in smtp.received] == [["bo@example.com"]]
    assert transport.connections_opened == 1


def test_outbox_retry_replaces_its_own_file(tmp_path: Path) -> None:
    """Sending the same Message-ID twice to the outbox leaves one file."""
    transport = OutboxTransport(tmp_path / "out")
    transport.send(make_email(1))
    transport.send(make_email(1))
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1


def test_outbox_unwritable_is_temporary(tmp_path: Path) -> None:
    """An outbox that cannot be written is a temporary failure, not a crash."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TemporaryDeliveryError):
        OutboxTransport(blocker / "out").send(make_email(1))


def test_smtp_unreachable_is_temporary() -> None:
    """A server that does not answer is a temporary failure."""
    transport = SMTPTransport("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(TemporaryDeliveryError, match="cannot connect"):
        transport.send(make_email(1))


def test_smtp_wrong_password_is_temporary(tmp_path: Path) -> None:
    """Refused credentials are reported (and retried: the clinic can fix them)."""
    transport, _, stop = _starttls(tmp_path)
    assert isinstance(transport, SMTPTransport)
    transport.password = "wrong"
    try:
        with pytest.raises(TemporaryDeliveryError, match="login refused"):
            transport.send(make_email(1))
    finally:
        stop()


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", PermanentDeliveryError),
        ("452 4.2.2 Mailbox full", TemporaryDeliveryError),
    ],
)
def test_smtp_recipient_replies_are_classified(
    either_smtp: SMTPSink, reply: str, error: type[Exception]
) -> None:
    """5xx for a recipient is permanent and names the rejection; 4xx is temporary.

    The connection stays in step after the refusal: the next email goes out on it.
    """
    either_smtp.behaviour.reject["ana@example.com"] = reply
    transport = open_transport(either_smtp.url)
    assert isinstance(transport, SMTPTransport)
    with pytest.raises(error) as caught:
        transport.send(make_email(1))
    if isinstance(caught.value, PermanentDeliveryError):
        assert caught.value.recipient_rejected
    transport.send(make_email(2, address="bo@example.com"))
    transport.close()
    assert [r.rcpt_tos for r in either_smtp.received] == [["bo@example.com"]]
    assert transport.connections_opened == 1


def test_memory_transport_records_and_closes() -> None:
    """The in-memory transport keeps emails in order and notes close()."""
    transport = MemoryTransport()
    transport.send(make_email(1))
    transport.send(make_email(2))
    transport.close()
    assert [e.message_id for e in transport.sent] == [
        "<m1@clinic.example.com>",
        "<m2@clinic.example.com>",
    ]
    assert transport.closed


@pytest.mark.parametrize(
    "spec", ["pigeon:coop", "smtp://", "smtp://host:notaport", "smtp://host?timeout=0"]
)
def test_bad_transport_spec_is_a_configuration_error(spec: str) -> None:
    """A malformed NURTURE_TRANSPORT names the setting."""
    with pytest.raises(ConfigurationError, match="NURTURE_TRANSPORT"):
        open_transport(spec)


def test_idn_recipient_goes_out_in_ascii(smtp: SMTPSink) -> None:
    """An internationalised domain is sent as punycode in the envelope and header."""
    transport = open_transport(smtp.url)
    transport.send(make_email(1, address="ana@bücher.de"))
    transport.close()
    assert smtp.received[0].rcpt_tos == ["ana@xn--bcher-kva.de"]
    assert _parsed(smtp.received[0].data)["To"].addresses[0].domain == "xn--bcher-kva.de"
