"""Deterministic demo e-commerce app database: users, items and click/view/cart/purchase events.

The data has the structure real shops have and a recommender can learn:
- taste clusters: every user belongs to one hidden cluster that prefers two or three categories and
  one item "style", so a per-user model clearly beats "most popular";
- power-law popularity: a few items get most of the traffic, as in every catalogue;
- a funnel: click -> view -> cart -> purchase with falling probabilities (premium tiers buy more);
- seasonality: weekends, paydays and the run-up to the December holidays are busier; users in
  other regions shop at other UTC hours;
- drift: each cluster's category preferences move over the period, new items and new users arrive.

The same seed and end give the same rows, byte for byte. `end` only positions the window: sessions
are drawn in day offsets first, so the same seed gives the same users, items and funnel for any end
except that calendar effects (weekends, holidays) follow the real dates.

Writes SQLite (a path or ``sqlite:///PATH``) or PostgreSQL (``postgresql://...``, bulk COPY).
Re-seeding drops and recreates the three tables in one transaction: it replaces, never duplicates.

    python -m include.demo_data --db sqlite:///demo.db --users 1000 --items 500 --days 60 --seed 7
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

# The model; the names callers used from here keep their path.
from include.demo_shop import (  # noqa: F401
    CATEGORIES,
    N_CLUSTERS,
    REGIONS,
    TIERS,
    DemoData,
    build,
    default_end,
)

TABLE_DDL = {
    "sqlite": (
        "CREATE TABLE users (user_id TEXT PRIMARY KEY, tier TEXT NOT NULL, region TEXT NOT NULL, "
        "signup_at TIMESTAMP NOT NULL)",
        "CREATE TABLE items (item_id TEXT PRIMARY KEY, category TEXT NOT NULL, price REAL NOT NULL, "
        "created_at TIMESTAMP NOT NULL)",
        "CREATE TABLE events (event_id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
        "event_type TEXT NOT NULL, event_value REAL, occurred_at TIMESTAMP NOT NULL)",
    ),
    "postgresql": (
        "CREATE TABLE users (user_id TEXT PRIMARY KEY, tier TEXT NOT NULL, region TEXT NOT NULL, "
        "signup_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE items (item_id TEXT PRIMARY KEY, category TEXT NOT NULL, price NUMERIC(10, 2) NOT NULL, "
        "created_at TIMESTAMPTZ NOT NULL)",
        "CREATE TABLE events (event_id BIGINT PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
        "event_type TEXT NOT NULL, event_value DOUBLE PRECISION, occurred_at TIMESTAMPTZ NOT NULL)",
    ),
}
INDEX_DDL = (
    "CREATE INDEX events_occurred_at_idx ON events (occurred_at)",
    "CREATE INDEX events_user_id_idx ON events (user_id)",
)
TABLES = ("events", "items", "users")
SQLITE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


# --------------------------------------------------------------------------------------- writing


def parse_target(url_or_path: str | Path) -> tuple[str, str]:
    """('sqlite', file path) or ('postgresql', libpq URL) from a path, sqlite:/// or postgresql:// URL."""
    target = str(url_or_path)
    if target.startswith("sqlite:"):
        if not target.startswith("sqlite:///") or target == "sqlite:///":
            raise ValueError(
                f"SQLite URL must look like sqlite:///relative.db or sqlite:////abs.db: {target!r}"
            )
        return "sqlite", target[len("sqlite:///") :]
    scheme, sep, rest = target.partition("://")
    if sep and scheme.split("+")[0] in ("postgresql", "postgres"):
        # SQLAlchemy-style driver suffixes (postgresql+psycopg2://) mean nothing to libpq.
        return "postgresql", "postgresql://" + rest
    if sep:
        raise ValueError(
            f"unsupported database URL scheme {scheme!r} in {target!r}: use sqlite:/// or postgresql://"
        )
    return "sqlite", target


def generate(
    url_or_path: str | Path,
    *,
    users: int = 1000,
    items: int = 500,
    days: int = 60,
    seed: int = 42,
    end: datetime | None = None,
    schema: str | None = None,
    if_empty: bool = False,
) -> dict[str, object]:
    """Build the demo data and (re)write users, items and events. Returns counts and the time range.

    `schema` (PostgreSQL only) puts the tables in that schema, created if missing. With `if_empty`,
    a database whose events table already has rows is left alone (summary["skipped"] is True):
    a restarted stack keeps the history the pipeline has already imported.
    """
    kind, target = parse_target(url_or_path)
    if schema is not None and kind != "postgresql":
        raise ValueError(f"schema={schema!r} is only meaningful for PostgreSQL, not {url_or_path!r}")
    if if_empty:
        existing = count_events(url_or_path, schema=schema)
        if existing:
            return {"database": kind, "skipped": True, "events": existing}
    data = build(users=users, items=items, days=days, seed=seed, end=end)
    if kind == "sqlite":
        _write_sqlite(Path(target), data)
    else:
        _write_postgresql(target, data, schema)
    return {
        "database": kind,
        "skipped": False,
        "users": len(data.users),
        "items": len(data.items),
        "events": len(data.events),
        "event_types": data.events["event_type"].value_counts().to_dict(),
        "start": data.start.isoformat(),
        "end": data.end.isoformat(),
    }


def count_events(url_or_path: str | Path, *, schema: str | None = None) -> int:
    """Rows in the events table; 0 when the database or the table does not exist yet."""
    kind, target = parse_target(url_or_path)
    if kind == "sqlite":
        if not Path(target).exists():
            return 0
        with sqlite3.connect(target) as connection:
            found = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")
            if found.fetchone() is None:
                return 0
            return connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "events") if schema else sql.Identifier("events")
    with psycopg.connect(target) as connection:
        if connection.execute("SELECT to_regclass(%s)", (table.as_string(connection),)).fetchone()[0] is None:
            return 0
        return connection.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(table)).fetchone()[0]


def _sqlite_rows(frame: pd.DataFrame) -> list[tuple]:
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.strftime(SQLITE_TIME_FORMAT)
    frame = frame.astype(object).where(frame.notna(), None)
    return list(frame.itertuples(index=False, name=None))


def _write_sqlite(path: Path, data: DemoData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        # One transaction: readers see the old tables or the new ones, never a half-written mix.
        connection.execute("BEGIN IMMEDIATE")
        for table in TABLES:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
        for ddl in TABLE_DDL["sqlite"]:
            connection.execute(ddl)
        for table, frame in (("users", data.users), ("items", data.items), ("events", data.events)):
            placeholders = ", ".join("?" * len(frame.columns))
            connection.executemany(
                f"INSERT INTO {table} ({', '.join(frame.columns)}) VALUES ({placeholders})",
                _sqlite_rows(frame),
            )
        for ddl in INDEX_DDL:
            connection.execute(ddl)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    finally:
        connection.close()


def _write_postgresql(url: str, data: DemoData, schema: str | None) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        # psycopg opens a transaction; the context manager commits on success and rolls back on error.
        if schema:
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            cursor.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for table in TABLES:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
        for ddl in TABLE_DDL["postgresql"]:
            cursor.execute(ddl)
        for table, frame in (("users", data.users), ("items", data.items), ("events", data.events)):
            buffer = io.StringIO()
            # ISO timestamps with +00:00 offsets; NaN event values become empty (NULL) fields.
            frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S+00:00")
            copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
            )
            with cursor.copy(copy_sql) as copy:
                copy.write(buffer.getvalue())
        for ddl in INDEX_DDL:
            cursor.execute(ddl)
        cursor.execute("ANALYZE users")
        cursor.execute("ANALYZE items")
        cursor.execute("ANALYZE events")


def _parse_end(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m include.demo_data", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db", required=True, help="SQLite path, sqlite:///PATH or postgresql://USER@HOST/DB"
    )
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--end",
        type=_parse_end,
        default=None,
        help="exclusive end of the data, ISO date/time in UTC (default: today 00:00)",
    )
    parser.add_argument(
        "--schema", default=None, help="PostgreSQL schema for the tables (default: search_path)"
    )
    parser.add_argument(
        "--if-empty", action="store_true", help="leave a database whose events table has rows untouched"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = generate(
            args.db,
            users=args.users,
            items=args.items,
            days=args.days,
            seed=args.seed,
            end=args.end,
            schema=args.schema,
            if_empty=args.if_empty,
        )
    except ValueError as error:
        parser.error(str(error))
    if summary["skipped"]:
        print(f"demo_data: {args.db} already has {summary['events']} events; left as it is (--if-empty)")
        return 0
    print(
        f"demo_data: wrote {summary['users']} users, {summary['items']} items, {summary['events']} events "
        f"{summary['event_types']} from {summary['start']} to {summary['end']} into {args.db}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
