"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from nurture.db.engine import head_revision, upgrade
from nurture.db.models import Base


def test_upgrade_to_head_matches_models(empty_db_url: str) -> None:
    """An empty database upgraded to head has no difference from the models."""
    before, after = upgrade(empty_db_url)
    assert (before, after) == (None, head_revision())
    engine = create_engine(empty_db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert set(Base.metadata.tables) <= tables


def test_upgrade_twice_is_a_no_op(empty_db_url: str) -> None:
    """Running the upgrade on a database already at head changes nothing."""
    upgrade(empty_db_url)
    assert upgrade(empty_db_url) == (head_revision(), head_revision())
