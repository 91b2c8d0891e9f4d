"""An indexing run's progress database, ``work/state.sqlite`` (WAL mode): every photo's status and codes, and the
run's settings, so that a killed run resumes where it stopped. Every batch is one transaction."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

__all__ = ["BuildState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,            -- insertion order = order in the index
    path TEXT UNIQUE NOT NULL,         -- relative to the photos folder, '/'-separated
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    error TEXT,
    sample_row INTEGER,                -- in the training sample: its row in sample.f16 once segmented
    sampled INTEGER NOT NULL DEFAULT 0, -- 1 once its maps are in sample.f16
    codes BLOB                         -- once done, its record (library.records): C bytes of codes, then its
                                       -- exact maps until they are written to the index folder
);
"""


class BuildState:
    """The progress database (``work/state.sqlite``, WAL mode)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def count(self, where: str = "1", args=()) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM photos WHERE {where}", args).fetchone()[0]

    def rows(self, sql: str, args=()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def mark_failed(self, rows: list[tuple], failed: list[tuple[int, str]]) -> None:
        """Mark ``rows[i]`` failed with its error, for each (i, error) in ``failed`` (inside a transaction)."""
        self.db.executemany(
            "UPDATE photos SET status='failed', error=? WHERE id=?", ((err, rows[i][0]) for i, err in failed)
        )

    def close(self) -> None:
        self.db.close()
