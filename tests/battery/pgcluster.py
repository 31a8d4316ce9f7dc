"""A throwaway PostgreSQL cluster of the test's own, so it can be stopped and started.

``initdb`` into a temporary folder and ``postgres`` on a free loopback port
with its socket in that folder; never the machine's shared server.  PostgreSQL
refuses to run as root, so under root both run as the ``postgres`` OS user
in a folder it owns.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from tests.smtp_sink import free_port


def find_binary(name: str) -> str | None:
    """Path of a PostgreSQL server binary (Debian keeps them off PATH, newest version first)."""
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True)
    for folder in (os.environ.get("NURTURE_TEST_PG_BIN"), *map(str, debian), "/usr/local/bin"):
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    return shutil.which(name)


def _version(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


class Cluster:
    """initdb, start, stop, restart, and a URL; ``destroy()`` removes it all."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("initdb/pg_ctl not found; set NURTURE_TEST_PG_BIN")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="nurture-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if self.as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of the cluster's ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        result = subprocess.run(
            [*prefix, *cmd], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        """Start the server and wait until it answers."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            self.pg_ctl,
            "start",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until a connection succeeds."""
        deadline = time.monotonic() + timeout
        while True:
            engine = create_engine(self.url)
            try:
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                engine.dispose()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast`` ends every session, ``immediate`` is a crash)."""
        self._run(self.pg_ctl, "stop", "-D", str(self.data), "-w", "-m", mode)

    def running(self) -> bool:
        """True while the server process exists."""
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server if it runs and delete every file."""
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
