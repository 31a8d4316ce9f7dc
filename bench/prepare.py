"""Build the prepared SQLite file with N due emails, one process per core.

The stories are split into contiguous shards; each is recorded through
``nurture.enrollment`` into its own SQLite file by its own process, then the
shards are merged into one file (ids shifted past the rows already there,
foreign keys with them, found from the models' metadata) and settled: older
emails marked as history, the due set checked.  The merged file holds exactly
what recording every story in one file would.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import Table

from bench import scenario
from bench.workspace import Workspace, new_sqlite, settle_file, sqlite_url
from nurture.db.models import Base


def record_shard(work: Workspace, name: str, stories: list[scenario.Story]) -> Path:
    """Record ``stories`` into a new SQLite file ``name`` of the workspace; its path."""
    path = work.path(name)
    runtime = work.runtime(new_sqlite(path), "memory:", scenario.NOW.isoformat())
    try:
        scenario.record(runtime, stories)
    finally:
        runtime.close()
    settle_file(path)
    return path


def merge(target: Path, shard: Path) -> None:
    """Append every row of ``shard`` to ``target``, ids and foreign keys shifted past target's."""
    with sqlite3.connect(target) as conn:
        conn.execute("ATTACH DATABASE ? AS shard", (str(shard),))
        tables = Base.metadata.sorted_tables
        shift = {t.name: _top_id(conn, t.name) for t in tables}
        for table in tables:
            columns = ", ".join(f'"{c.name}"' for c in table.columns)
            values = ", ".join(_shifted(table, c.name, shift) for c in table.columns)
            conn.execute(
                f'INSERT INTO main."{table.name}" ({columns}) '  # noqa: S608  (names from the models)
                f'SELECT {values} FROM shard."{table.name}"'
            )
    conn.execute("DETACH DATABASE shard")
    conn.close()


def _top_id(conn: sqlite3.Connection, table: str) -> int:
    found = conn.execute(f'SELECT coalesce(max(id), 0) FROM main."{table}"').fetchone()  # noqa: S608  (names from the models)
    return int(found[0])


def _shifted(table: Table, name: str, shift: dict[str, int]) -> str:
    column = table.c[name]
    if name == "id" and column.primary_key:
        return f'"{name}" + {shift[table.name]}'
    for key in column.foreign_keys:
        return f'"{name}" + {shift[key.column.table.name]}'
    return f'"{name}"'


def build(work: Workspace, n: int) -> tuple[Path, scenario.DueSet, float]:
    """The prepared file, its due set, and the seconds recording took."""
    stories = scenario.stories(n)
    shards = max(1, min(os.cpu_count() or 1, 4, n // 500))
    size = -(-n // shards)
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(shards, mp_context=spawn) as pool:
        futures = [
            pool.submit(record_shard, work, f"shard{i}.db", stories[i * size : (i + 1) * size])
            for i in range(shards)
        ]
        paths = [f.result() for f in futures]
    for shard in paths[1:]:
        merge(paths[0], shard)
        shard.unlink()
    runtime = work.runtime(sqlite_url(paths[0]), "memory:", scenario.NOW.isoformat())
    try:
        due = scenario.settle(runtime, stories)
    finally:
        runtime.close()
    settle_file(paths[0])
    return paths[0], due, time.perf_counter() - started
