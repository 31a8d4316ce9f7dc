"""The peer: django-post-office queuing and delivering N emails to the bench's sink.

Runs inside ``bench/.peer-venv`` (Django and django-post-office only; nurture
is not installed there).  It configures Django in-process: an SQLite file,
Django's SMTP backend pointed at the sink, post_office with its defaults
(batches of 100, 5 threads per process, every delivery logged) plus fixed
Message-IDs so the bench can check exactly-once at the sink.  One
``EmailTemplate`` carries a subject, text and HTML the size of nurture's
median email.  Queuing (``mail.send_many``, which renders the template, as
post_office does by default) and delivery (``send_queued_mail_until_done``
with one process, what ``manage.py send_queued_mail`` runs) are timed apart.

    python bench/peer_app.py SPEC.json

SPEC holds ``database``, ``port``, ``count``, ``subject``, ``text``, ``html``
and ``ids`` (where to write the queued Message-IDs); one JSON line is printed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.management import call_command

CHUNK = 1000


def configure(database: str, port: int) -> None:
    """Django settings for a stand-alone post_office."""
    settings.configure(
        INSTALLED_APPS=["post_office"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=port,
        EMAIL_TIMEOUT=60,
        DEFAULT_FROM_EMAIL="Sample Skin Clinic <hello@clinic.example.com>",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
        POST_OFFICE={"MESSAGE_ID_ENABLED": True, "MESSAGE_ID_FQDN": "clinic.example.com"},
        LOGGING_CONFIG=None,
    )
    django.setup()


def queue(spec: dict[str, Any]) -> float:
    """Queue ``count`` emails from one template; return the seconds it took."""
    from post_office import mail  # noqa: PLC0415  (needs Django configured first)
    from post_office.models import EmailTemplate  # noqa: PLC0415

    template = EmailTemplate.objects.create(
        name="bench", subject=spec["subject"], content=spec["text"], html_content=spec["html"]
    )
    started = time.perf_counter()
    for start in range(0, spec["count"], CHUNK):
        mail.send_many(
            [
                {
                    "recipients": [f"client{i:06d}@example.com"],
                    "template": template,
                    "context": {"first_name": f"Client{i}", "unsubscribe_url": _link(i)},
                    "headers": {"List-Unsubscribe": f"<{_link(i)}>"},
                }
                for i in range(start, min(start + CHUNK, spec["count"]))
            ]
        )
    return time.perf_counter() - started


def _link(i: int) -> str:
    return f"https://clinic.example.com/nurture/unsubscribe/token-{i:06d}"


def deliver(lockfile: Path) -> float:
    """Deliver everything queued with one process; return the seconds it took."""
    from post_office.mail import send_queued_mail_until_done  # noqa: PLC0415

    started = time.perf_counter()
    send_queued_mail_until_done(lockfile=str(lockfile), processes=1)
    return time.perf_counter() - started


def main() -> None:
    """Queue, deliver, and print the timings and the delivery count as JSON."""
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    configure(spec["database"], spec["port"])
    call_command("migrate", verbosity=0)
    from post_office.models import STATUS, Email  # noqa: PLC0415

    queued = queue(spec)
    delivered = deliver(Path(spec["database"]).with_suffix(".lock"))
    ids = list(Email.objects.values_list("message_id", flat=True))
    Path(spec["ids"]).write_text("".join(f"{i}\n" for i in ids), encoding="ascii")
    sent = Email.objects.filter(status=STATUS.sent).count()
    print(json.dumps({"queue_seconds": queued, "deliver_seconds": delivered, "sent": sent}))


if __name__ == "__main__":
    main()
