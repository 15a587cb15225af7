"""Durable state of the local service: one SQLite file under the state dir.

Resources are kept in memory (the runtime path must never wait on disk) and written through to SQLite
on every change, so a restarted server finds exactly what the previous one acknowledged. A resource is
the dict its Describe call returns; keys starting with "_" are private bookkeeping, never sent.
"""

from __future__ import annotations

import copy
import json
import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    arn TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (arn, tag_key)
);
CREATE TABLE IF NOT EXISTS recommendations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    recommendation_id TEXT NOT NULL,
    source_arn TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_group_arn TEXT NOT NULL,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    sent_at REAL NOT NULL,
    received_at REAL NOT NULL,
    record TEXT NOT NULL
);
"""


class StateStore:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (what the restart test does) without an fsync per call.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._resources: dict[str, dict] = {}
        self._kinds: dict[str, str] = {}
        for arn, kind, body in self._db.execute("SELECT arn, kind, body FROM resources ORDER BY created"):
            self._resources[arn] = json.loads(body)
            self._kinds[arn] = kind

    @property
    def lock(self) -> threading.RLock:
        """Held by the models around every read-modify-write of a resource."""
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # resources -----------------------------------------------------------------------------------
    def put(self, kind: str, arn: str, body: dict) -> None:
        with self._lock:
            created = body.get("creationDateTime", 0.0)
            self._db.execute(
                "INSERT INTO resources (arn, kind, created, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(arn) DO UPDATE SET body = excluded.body",
                (arn, kind, created, json.dumps(body)),
            )
            self._resources[arn] = copy.deepcopy(body)
            self._kinds[arn] = kind

    def get(self, arn: str, kind: str | None = None) -> dict | None:
        """A copy of the resource, or None; with `kind`, only a resource of that kind."""
        with self._lock:
            body = self._resources.get(arn)
            if body is None or (kind is not None and self._kinds[arn] != kind):
                return None
            return copy.deepcopy(body)

    def peek(self, arn: str) -> dict | None:
        """The live resource without copying, for the hot runtime path; callers must not modify it."""
        return self._resources.get(arn)

    def kind_of(self, arn: str) -> str | None:
        return self._kinds.get(arn)

    def update(self, arn: str, **changes) -> dict:
        with self._lock:
            body = copy.deepcopy(self._resources[arn])
            body.update(changes)
            self.put(self._kinds[arn], arn, body)
            return body

    def list(self, kind: str, **where) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(body)
                for arn, body in self._resources.items()
                if self._kinds[arn] == kind and all(body.get(k) == v for k, v in where.items())
            ]

    def delete(self, arn: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM resources WHERE arn = ?", (arn,))
            self._db.execute("DELETE FROM tags WHERE arn = ?", (arn,))
            self._resources.pop(arn, None)
            self._kinds.pop(arn, None)

    # tags ----------------------------------------------------------------------------------------
    def tags(self, arn: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT tag_key, tag_value FROM tags WHERE arn = ? ORDER BY tag_key", (arn,)
            )
            return dict(rows.fetchall())

    def set_tags(self, arn: str, tags: dict[str, str]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT INTO tags (arn, tag_key, tag_value) VALUES (?, ?, ?) "
                "ON CONFLICT(arn, tag_key) DO UPDATE SET tag_value = excluded.tag_value",
                [(arn, k, v) for k, v in tags.items()],
            )

    def remove_tags(self, arn: str, keys: list[str]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM tags WHERE arn = ? AND tag_key = ?", [(arn, k) for k in keys])

    # events --------------------------------------------------------------------------------------
    def add_events(self, rows: list[tuple]) -> None:
        """rows: (dataset_group_arn, user_id, item_id, event_type, sent_at, received_at, record as JSON)."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO events (dataset_group_arn, user_id, item_id, event_type, sent_at, received_at, record) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def all_events(self) -> list[tuple]:
        with self._lock:
            return self._db.execute(
                "SELECT dataset_group_arn, user_id, item_id, event_type, sent_at, received_at, record "
                "FROM events ORDER BY seq"
            ).fetchall()

    def delete_events(self, dataset_group_arn: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE dataset_group_arn = ?", (dataset_group_arn,))

    def delete_user_events(self, dataset_group_arn: str, user_ids: list[str]) -> int:
        """Forget these users' recorded events (a data deletion job); returns how many were deleted."""
        with self._lock:
            deleted = 0
            for start in range(0, len(user_ids), 500):  # SQLite's bound-parameter limit
                chunk = user_ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                cursor = self._db.execute(
                    f"DELETE FROM events WHERE dataset_group_arn = ? AND user_id IN ({marks})",
                    (dataset_group_arn, *chunk),
                )
                deleted += cursor.rowcount
            return deleted

    # recommendation IDs ---------------------------------------------------------------------------
    def add_recommendations(self, rows: list[tuple[str, str]], keep: int) -> None:
        """(recommendation_id, source_arn) rows; only the newest `keep` are kept."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO recommendations (recommendation_id, source_arn) VALUES (?, ?)", rows
            )
            self._db.execute(
                "DELETE FROM recommendations WHERE seq <= (SELECT MAX(seq) FROM recommendations) - ?", (keep,)
            )

    def recommendations(self) -> list[tuple[str, str]]:
        with self._lock:
            return self._db.execute(
                "SELECT recommendation_id, source_arn FROM recommendations ORDER BY seq"
            ).fetchall()
