"""Shared fixtures: real databases (an SQLite file, and PostgreSQL when reachable)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, make_url, text

from nurture.cli import main as cli_main
from nurture.config import DEFAULT_TEMPLATES
from nurture.db.engine import upgrade

PG_ADMIN_URL = os.environ.get(
    "NURTURE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
RUN_SLOW = IN_CI or os.environ.get("NURTURE_SLOW") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip slow tests unless CI=true or NURTURE_SLOW=1."""
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set NURTURE_SLOW=1 (CI runs them)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


_pg_state: dict[str, str | None] = {}


def postgres_error() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per run)."""
    if "error" not in _pg_state:
        try:
            engine = create_engine(PG_ADMIN_URL)
            with engine.connect() as conn:
                conn.execute(text("select 1"))
            engine.dispose()
            _pg_state["error"] = None
        except Exception as exc:
            _pg_state["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return _pg_state["error"]


def require_postgres() -> None:
    """Skip (or, under CI, fail) when PostgreSQL cannot be reached."""
    error = postgres_error()
    if error is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but PostgreSQL at {PG_ADMIN_URL} is unreachable: {error}")
    pytest.skip(f"PostgreSQL not reachable ({error})")


def _postgres_database() -> Iterator[str]:
    require_postgres()
    name = f"nurture_test_{secrets.token_hex(6)}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database: an SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nurture.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """URL of a database migrated to head, on each backend."""
    upgrade(empty_db_url)
    return empty_db_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file, for tests that are about SQLite alone."""
    url = f"sqlite:///{tmp_path / 'nurture.db'}"
    upgrade(url)
    return url


@dataclass
class Result:
    """What one CLI invocation did."""

    code: int
    out: str
    err: str
    lines: list[str] = field(default_factory=list)


@dataclass
class Cli:
    """Runs ``nurture`` in-process with a given database and clock."""

    url: str
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch
    workdir: Path

    def __call__(
        self, *args: str, now: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        """Run one command; ``now`` sets NURTURE_NOW for this call only."""
        self.capsys.readouterr()
        with self.monkeypatch.context() as m:
            m.chdir(self.workdir)
            m.setenv("NURTURE_DATABASE_URL", self.url)
            m.setenv("NURTURE_ACTOR", "test")
            if not self.url.startswith("sqlite"):
                m.setenv("NURTURE_SECRET_KEY", TEST_SECRET)
            if now is not None:
                m.setenv("NURTURE_NOW", now)
            for key, value in (env or {}).items():
                m.setenv(key, value)
            try:
                cli_main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        out, err = self.capsys.readouterr()
        return Result(code, out, err, out.splitlines())

    def ok(self, *args: str, now: str | None = None, env: dict[str, str] | None = None) -> Result:
        """Run and insist on success."""
        result = self(*args, now=now, env=env)
        assert result.code == 0, f"nurture {' '.join(args)} failed: {result.err}{result.out}"
        return result


@pytest.fixture
def cli(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Cli:
    """The CLI against a migrated database (each backend)."""
    for key in list(os.environ):
        if key.startswith("NURTURE_"):
            monkeypatch.delenv(key)
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Cli(db_url, capsys, monkeypatch, work)


#: Bookkeeping of who called, not facts: excluded when proving "nothing was written".
BOOKKEEPING = ("api_tokens",)


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but token bookkeeping, to prove that nothing was written."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sorted(set(inspect(conn).get_table_names()) - set(BOOKKEEPING))
            return {
                t: sorted(map(tuple, conn.execute(text(f'SELECT * FROM "{t}"'))), key=repr)
                for t in tables
            }
    finally:
        engine.dispose()


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server on loopback that records what it accepts."""
    from tests.smtp_sink import SMTPSink  # noqa: PLC0415

    sink = SMTPSink().start()
    try:
        yield sink
    finally:
        sink.stop()


CHROMIUM = Path(os.environ.get("NURTURE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(
    os.environ.get("NURTURE_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless chromium driven by Playwright (skipped, or failed under CI, if absent)."""
    if not CHROMIUM.exists():
        message = f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder kept after the run for screenshots (test-artifacts/<test name>)."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    folder = ARTIFACTS / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def templates_failing_for(first_name: str, tmp_path: Path) -> Path:
    """A copy of the bundled templates whose HTML sign-off fails to render for one first name.

    It fails at run time ({{ 1 // 0 }}), as a clinic's edit can: the
    ZeroDivisionError is raised from line 1 of partials/signoff.html.
    """
    folder = tmp_path / "clinic-templates"
    shutil.copytree(DEFAULT_TEMPLATES, folder)
    partial = folder / "partials" / "signoff.html"
    partial.write_text(
        f'{{% if client.first_name == "{first_name}" %}}{{{{ 1 // 0 }}}}{{% endif %}}\n'
        + partial.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    return folder
