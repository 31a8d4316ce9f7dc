"""Health data (scar types) never reaches the logs, whatever the log level."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Cli
from tests.smtp_sink import SMTPSink

NOW = "2026-11-30T10:00:00+00:00"
HEALTH_WORDS = ("atrophic", "hypertrophic", "pih", "hyperpigmentation", "scar")


def test_a_whole_course_logs_no_scar_type(
    cli: Cli, smtp: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    """Enrol, book, send, fail, unsubscribe at DEBUG: no log line names a scar type."""
    caplog.set_level(logging.DEBUG)
    env = {"NURTURE_TRANSPORT": smtp.url, "NURTURE_LOG_LEVEL": "debug"}
    cli.ok(
        "enroll",
        "ana@example.com",
        "--name",
        "Ana",
        "--scar",
        "atrophic",
        "--scar",
        "hypertrophic",
        "--scar",
        "pih",
        now=NOW,
        env=env,
    )
    cli.ok("book", "ana@example.com", "1", "2026-12-10T10:30", now=NOW, env=env)
    smtp.behaviour.temporary_failures = 1
    outputs = [cli.ok("tick", now=NOW, env=env)]
    outputs.append(cli.ok("tick", now="2026-11-30T10:06:00+00:00", env=env))
    outputs.append(cli.ok("unsubscribe", "ana@example.com", now=NOW, env=env))
    assert len(smtp.received) >= 1
    # The test's own SMTP server (aiosmtpd, logger "mail.log") logs what it receives: not ours.
    records = [r.getMessage().lower() for r in caplog.records if not r.name.startswith("mail")]
    assert any("email_sent" in r for r in records)
    assert any("send_deferred" in r for r in records)
    logged = "\n".join(records + [o.err.lower() for o in outputs])
    for word in HEALTH_WORDS:
        assert word not in logged
