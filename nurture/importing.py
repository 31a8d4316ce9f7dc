"""Enrol many clients from a CSV file, all-or-nothing by default.

Every row goes through the same checks as ``nurture enroll``.  Validation
happens for the whole file before anything is written; the rows that pass
are then recorded in one transaction.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.db.models import Client, Course
from nurture.domain import CourseStatus
from nurture.enrollment import Context, Enrolment, check_enrolment, enroll_many
from nurture.errors import NurtureError, ValidationError

REQUIRED = ("email", "name", "scar")
OPTIONAL = ("timezone", "sessions")
MAX_ROWS = 200_000


@dataclass(frozen=True)
class RowError:
    """Why one line of the file was refused."""

    line: int
    message: str


@dataclass
class ImportReport:
    """What an import found and did."""

    valid: list[tuple[int, Enrolment]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    imported: int = 0
    warnings: list[str] = field(default_factory=list)


def read_rows(
    path: Path, default_timezone: str, confirm_hypertrophic: bool = False
) -> ImportReport:
    """Parse and validate every row; nothing is written."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationError("file", f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise ValidationError("file", f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(
            "file",
            f"{path} lacks the column(s) {', '.join(missing)}; the first line must name "
            f"{', '.join(REQUIRED + OPTIONAL)}",
        )
    reader.fieldnames = header
    report = ImportReport()
    seen: dict[str, int] = {}
    for index, row in enumerate(reader):
        line = index + 2
        if index >= MAX_ROWS:
            raise ValidationError("file", f"more than {MAX_ROWS} rows; split the file")
        if None in row:
            report.errors.append(RowError(line, "has more fields than the header"))
            continue
        try:
            request = check_enrolment(
                email=row.get("email") or "",
                name=row.get("name") or "",
                scars=[s for s in (row.get("scar") or "").split(";") if s.strip()],
                timezone=(row.get("timezone") or "").strip() or None,
                sessions=(row.get("sessions") or "").strip() or None,
                confirm_hypertrophic=confirm_hypertrophic,
                default_timezone=default_timezone,
            )
        except NurtureError as exc:
            report.errors.append(RowError(line, str(exc)))
            continue
        if request.email in seen:
            report.errors.append(
                RowError(
                    line, f"email: {request.email} already appears on line {seen[request.email]}"
                )
            )
            continue
        seen[request.email] = line
        report.valid.append((line, request))
    return report


def check_against_database(db: Session, report: ImportReport) -> None:
    """Move rows whose client already has an active course into the errors."""
    emails = [r.email for _, r in report.valid]
    active: set[str] = set()
    for start in range(0, len(emails), 500):
        chunk = emails[start : start + 500]
        active.update(
            e
            for e in db.scalars(
                select(Client.email)
                .join(Course, Course.client_id == Client.id)
                .where(Client.email.in_(chunk), Course.status == CourseStatus.ACTIVE)
            )
            if e is not None
        )
    keep = []
    for line, request in report.valid:
        if request.email in active:
            report.errors.append(
                RowError(line, f"email: {request.email} already has an active course")
            )
        else:
            keep.append((line, request))
    report.valid = keep
    report.errors.sort(key=lambda e: e.line)


def record(db: Session, ctx: Context, report: ImportReport) -> None:
    """Enrol every valid row in the caller's transaction."""
    outcomes = enroll_many(db, ctx, [request for _, request in report.valid])
    for outcome in outcomes:
        report.warnings.extend(outcome.warnings)
    report.imported += len(outcomes)
