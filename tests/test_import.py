"""CSV import: every row checked like `enroll`, all-or-nothing unless told otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, snapshot

NOW = "2026-11-25T12:00:00+00:00"
HEADER = "email,name,scar,timezone,sessions\n"


def _write(cli: Cli, body: str, name: str = "clients.csv") -> str:
    path = cli.workdir / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_good_file_enrols_everyone(cli: Cli) -> None:
    """Every row of a clean file becomes an active course with its own settings."""
    path = _write(
        cli,
        HEADER + "ana@example.com,Ana Silva,atrophic;pih,Europe/London,6\n"
        'bo@example.com,"Bo, Jr.",pih,,\n',
    )
    result = cli.ok("import", path, now=NOW)
    assert "imported 2 client(s)" in result.out
    rows = {r["email"]: r for r in json.loads(cli.ok("clients", "--json").out)}
    assert rows["ana@example.com"]["sessions_planned"] == 6
    assert rows["bo@example.com"]["name"] == "Bo, Jr."
    assert rows["bo@example.com"]["timezone"] == "Europe/London"
    assert rows["bo@example.com"]["sessions_planned"] == 5


def test_bad_rows_refuse_whole_file_and_list_each_line(cli: Cli) -> None:
    """Any bad row refuses the file; every bad row is reported with its line number."""
    cli.ok("enroll", "dup@example.com", "--name", "Dup", "--scar", "pih", now=NOW)
    path = _write(
        cli,
        HEADER
        + "ok@example.com,Ok,pih,,\n"  # line 2: fine
        + "bad@@example.com,Bad,pih,,\n"  # line 3: email
        + "x@example.com,X,keloid,,\n"  # line 4: scar
        + "y@example.com,Y,pih,Mars/Base,\n"  # line 5: zone
        + "dup@example.com,Dup,pih,,\n"  # line 6: already active
        + "ok@example.com,Ok again,pih,,\n"  # line 7: repeated in file
        + "h@example.com,H,hypertrophic,,\n",
    )  # line 8: needs confirmation
    before = snapshot(cli.url)
    result = cli("import", path, now=NOW)
    assert result.code == 1
    bad_lines = [
        int(line.split(":")[1]) for line in result.err.splitlines() if line.startswith(path)
    ]
    assert bad_lines == [3, 4, 5, 6, 7, 8]
    assert "6 bad row(s); nothing imported" in result.err
    assert snapshot(cli.url) == before


def test_skip_invalid_imports_the_rest(cli: Cli) -> None:
    """--skip-invalid imports the good rows and still reports the bad ones."""
    path = _write(
        cli, HEADER + "ok@example.com,Ok,pih,,\nbad,Bad,pih,,\nok2@example.com,Ok2,atrophic,,3\n"
    )
    result = cli.ok("import", path, "--skip-invalid", now=NOW)
    assert "imported 2 client(s), skipped 1 bad row(s)" in result.out
    assert f"{path}:3: email:" in result.err
    emails = sorted(r["email"] for r in json.loads(cli.ok("clients", "--json").out))
    assert emails == ["ok2@example.com", "ok@example.com"]


def test_missing_column_is_refused(cli: Cli) -> None:
    """A file without the required columns is refused before any row is read."""
    path = _write(cli, "mail,name\na@example.com,A\n")
    result = cli("import", path, now=NOW)
    assert result.code == 1
    assert "lacks the column(s) email, scar" in result.err


def test_missing_file_is_a_clear_error(cli: Cli, tmp_path: Path) -> None:
    """A path that does not exist is reported as such."""
    result = cli("import", str(tmp_path / "nope.csv"), now=NOW)
    assert result.code == 1
    assert "does not exist" in result.err


def test_confirm_flag_admits_hypertrophic_only_rows(cli: Cli) -> None:
    """--confirm-hypertrophic stands for the therapist's confirmation of every such row."""
    path = _write(cli, HEADER + "h@example.com,H,hypertrophic,,\n")
    cli.ok("import", path, "--confirm-hypertrophic", now=NOW)
    assert json.loads(cli.ok("clients", "--json").out)[0]["email"] == "h@example.com"
