"""The wiring shared by the front doors: settings, engine, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import Settings
from nurture.db.engine import ensure_ready, make_engine, session_factory
from nurture.enrollment import Context


@dataclass
class Runtime:
    """One process's view of the world, built once from ``Settings``."""

    settings: Settings
    actor: str = "system"
    _checked: bool = field(default=False, init=False)

    @cached_property
    def engine(self) -> Engine:
        """The database engine (created on first use)."""
        path = self.settings.sqlite_path()
        if path is not None and not path.parent.exists():
            path.parent.mkdir(parents=True)
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Session factory bound to ``engine``."""
        return session_factory(self.engine)

    def ready(self) -> Runtime:
        """Check once that the database is migrated; return self."""
        if not self._checked:
            ensure_ready(self.engine)
            self._checked = True
        return self

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work on a migrated database."""
        self.ready()
        with self.sessions.begin() as session:
            yield session

    def context(self) -> Context:
        """A fact-change context stamped with the current (possibly simulated) time."""
        return Context(
            now=self.settings.now(),
            actor=self.actor,
            default_timezone=self.settings.timezone,
            min_spacing=self.settings.min_spacing,
        )

    def close(self) -> None:
        """Release database connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()
