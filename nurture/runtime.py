"""The wiring shared by the front doors: settings, engine, sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import Settings
from nurture.db.engine import ensure_ready, make_engine, session_factory
from nurture.delivery import Dispatcher
from nurture.enrollment import Context
from nurture.reconcile import Planner
from nurture.rendering import Clinic, Composer, Renderer
from nurture.sequence import Sequence, load_sequence
from nurture.timing import SendWindow
from nurture.tracking import Unsubscribe
from nurture.transports import Transport, open_transport


@dataclass
class Runtime:
    """One process's view of the world, built once from ``Settings``."""

    settings: Settings
    actor: str = "system"
    #: Replaces the clock for this process (the demo's simulated time).
    now_override: datetime | None = None
    _checked: bool = field(default=False, init=False)

    def now(self) -> datetime:
        """The current instant: the override, else NURTURE_NOW, else the real clock."""
        return self.now_override if self.now_override is not None else self.settings.now()

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

    @cached_property
    def sequence(self) -> Sequence:
        """The validated email sequence of the configured template folder."""
        return load_sequence(self.settings.templates_dir)

    @cached_property
    def window(self) -> SendWindow:
        """The clinic's send window."""
        return SendWindow(self.settings.send_window_start, self.settings.send_window_end)

    @cached_property
    def planner(self) -> Planner:
        """Plans courses with the configured sequence and window."""
        domain = self.settings.from_address.rpartition("@")[2]
        return Planner(self.sequence, self.window, domain)

    @cached_property
    def renderer(self) -> Renderer:
        """Renders the configured templates."""
        return Renderer(self.settings.templates_dir)

    @cached_property
    def clinic(self) -> Clinic:
        """The clinic as shown in emails."""
        s = self.settings
        return Clinic(
            s.clinic_name, s.clinic_address, s.clinic_phone, s.clinic_email, s.sender, s.base_url
        )

    @cached_property
    def unsubscribe(self) -> Unsubscribe:
        """Signs and reads unsubscribe links."""
        return Unsubscribe(self.settings.signing_key(), self.settings.base_url)

    @cached_property
    def composer(self) -> Composer:
        """Builds finished messages from steps."""
        return Composer(self.sequence, self.renderer, self.clinic, self.unsubscribe)

    def dispatcher(self, transport: Transport | None = None) -> Dispatcher:
        """A delivery worker on the configured transport (or the one given)."""
        s = self.settings
        return Dispatcher(
            engine=self.ready().engine,
            transport=transport or open_transport(s.transport, s.smtp_timeout),
            composer=self.composer,
            planner=self.planner,
            window=self.window,
            clock=self.now,
            lease=timedelta(seconds=s.lease_seconds),
            send_timeout=s.smtp_timeout,
            batch_size=s.batch_size,
        )

    def context(self) -> Context:
        """A fact-change context stamped with the current (possibly simulated) time."""
        return Context(
            now=self.now(),
            actor=self.actor,
            planner=self.planner,
            default_timezone=self.settings.timezone,
            min_spacing=self.settings.min_spacing,
        )

    def close(self) -> None:
        """Release database connections."""
        if "engine" in self.__dict__:
            self.engine.dispose()
