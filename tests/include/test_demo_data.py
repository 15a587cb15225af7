from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include import demo_data

END = datetime(2026, 3, 1, tzinfo=UTC)
SMALL = {"users": 300, "items": 150, "days": 30, "seed": 7, "end": END}
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def small() -> demo_data.DemoData:
    return demo_data.build(**SMALL)


def test_same_seed_gives_identical_tables_and_another_seed_does_not(small):
    again = demo_data.build(**SMALL)
    for name in ("users", "items", "events"):
        pd.testing.assert_frame_equal(getattr(small, name), getattr(again, name))
    other = demo_data.build(**{**SMALL, "seed": 8})
    assert not small.events[["user_id", "item_id"]].equals(other.events[["user_id", "item_id"]])


def test_sizes_follow_the_flags_and_ids_are_unique(small):
    assert len(small.users) == 300 and small.users["user_id"].is_unique
    assert len(small.items) == 150 and small.items["item_id"].is_unique
    assert small.events["event_id"].tolist() == list(range(1, len(small.events) + 1))
    # Roughly 40 events per user over 60 days: the default stays small enough for 2 cores.
    assert 3_000 < len(small.events) < 12_000
    assert set(small.events["event_type"]) == {"click", "view", "cart", "purchase"}
    assert set(small.events["user_id"]) <= set(small.users["user_id"])
    assert set(small.events["item_id"]) <= set(small.items["item_id"])
    assert set(small.users["tier"]) == set(demo_data.TIERS)
    assert set(small.users["region"]) == set(demo_data.REGIONS)
    assert set(small.items["category"]) == set(demo_data.CATEGORIES)


def test_funnel_narrows_and_only_purchases_carry_a_value(small):
    counts = small.events["event_type"].value_counts()
    assert counts["click"] > counts["view"] > counts["cart"] > counts["purchase"] > 0
    purchases = small.events[small.events["event_type"] == "purchase"]
    prices = small.items.set_index("item_id")["price"]
    assert np.allclose(purchases["event_value"], prices.loc[purchases["item_id"]].to_numpy())
    assert small.events.loc[small.events["event_type"] != "purchase", "event_value"].isna().all()


def test_timestamps_stay_in_the_window_and_respect_signup_and_item_creation(small):
    start = pd.Timestamp(small.start)
    occurred = small.events["occurred_at"]
    assert occurred.min() >= start and occurred.max() < pd.Timestamp(END)
    assert occurred.is_monotonic_increasing
    joined = small.events.merge(small.users, on="user_id").merge(small.items, on="item_id")
    assert (joined["occurred_at"] > joined["signup_at"]).all()
    assert (joined["occurred_at"] > joined["created_at"]).all()
    # Some users and items arrive during the window: the drift UPDATE training has to absorb.
    assert (small.users["signup_at"] > start).any()
    assert (small.items["created_at"] > start).any()


def test_popularity_is_heavy_tailed(small):
    per_item = small.events["item_id"].value_counts()
    top_tenth = per_item.iloc[: max(1, len(small.items) // 10)].sum()
    assert top_tenth / per_item.sum() > 0.3


def test_users_shop_mostly_in_their_clusters_favourite_categories(small):
    events = small.events.merge(small.items[["item_id", "category"]], on="item_id")
    events["cluster"] = small.user_cluster.loc[events["user_id"]].to_numpy()
    in_favourites = [
        category in small.cluster_categories[cluster]
        for cluster, category in zip(events["cluster"], events["category"], strict=True)
    ]
    # Favourites are 2-3 of 12 categories (17-25% by chance); taste plus drift keeps well above that.
    assert np.mean(in_favourites) > 0.5


def test_knowing_a_users_taste_cluster_beats_global_popularity_on_later_events():
    """The structure a recommender should find: per-cluster favourites predict the future far better."""
    data = demo_data.build(users=600, items=300, days=60, seed=3, end=END)
    events = data.events.assign(cluster=data.user_cluster.loc[data.events["user_id"]].to_numpy())
    cutoff = pd.Timestamp(data.start) + pd.Timedelta(days=50)
    train, test = events[events["occurred_at"] < cutoff], events[events["occurred_at"] >= cutoff]
    popular = set(train["item_id"].value_counts().index[:10])
    cluster_top = {k: set(g["item_id"].value_counts().index[:10]) for k, g in train.groupby("cluster")}
    popularity_precision, cluster_precision = [], []
    for (_, cluster), future in test.groupby(["user_id", "cluster"]):
        wanted = set(future["item_id"])
        popularity_precision.append(len(wanted & popular) / 10)
        cluster_precision.append(len(wanted & cluster_top[cluster]) / 10)
    assert len(cluster_precision) > 200
    assert np.mean(cluster_precision) > 1.5 * np.mean(popularity_precision)


def test_cluster_tastes_drift_over_the_months():
    data = demo_data.build(users=600, items=300, days=180, seed=3, end=END)
    events = data.events.merge(data.items[["item_id", "category"]], on="item_id")
    events["cluster"] = data.user_cluster.loc[events["user_id"]].to_numpy()
    events["month"] = (events["occurred_at"] - pd.Timestamp(data.start)).dt.days // 30
    share = (
        events.groupby(["cluster", "month"])["category"].value_counts(normalize=True).unstack(fill_value=0)
    )
    # Total-variation distance between each cluster's first and last month of category shares.
    moved = [0.5 * (share.loc[(k, 0)] - share.loc[(k, 5)]).abs().sum() for k in range(demo_data.N_CLUSTERS)]
    assert np.mean(moved) > 0.2


def test_enough_interactions_for_personalize_training(small):
    per_user = small.events["user_id"].value_counts()
    assert (per_user >= 2).sum() >= 25 and len(small.events) >= 1000


def _sqlite_counts(path) -> dict[str, int]:
    with sqlite3.connect(path) as connection:
        return {t: connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in demo_data.TABLES}


def test_sqlite_url_and_plain_path_write_the_same_rows_and_reseeding_replaces(tmp_path, small):
    summary = demo_data.generate(f"sqlite:///{tmp_path / 'a.db'}", **SMALL)
    demo_data.generate(tmp_path / "b.db", **SMALL)
    expected = {"users": 300, "items": 150, "events": len(small.events)}
    assert _sqlite_counts(tmp_path / "a.db") == expected == _sqlite_counts(tmp_path / "b.db")
    assert summary["events"] == len(small.events) and summary["end"] == END.isoformat()
    demo_data.generate(tmp_path / "a.db", **SMALL)
    assert _sqlite_counts(tmp_path / "a.db") == expected
    demo_data.generate(tmp_path / "a.db", **{**SMALL, "users": 100})
    assert _sqlite_counts(tmp_path / "a.db")["users"] == 100
    with sqlite3.connect(tmp_path / "b.db") as connection:
        first = connection.execute("SELECT * FROM events ORDER BY event_id LIMIT 1").fetchone()
        window = connection.execute("SELECT MIN(occurred_at), MAX(occurred_at) FROM events").fetchone()
        purchase = connection.execute("SELECT event_value FROM events WHERE event_type = 'purchase' LIMIT 1")
        assert purchase.fetchone()[0] > 0
    expected_first = small.events.iloc[0]
    assert first[:4] == (
        1,
        expected_first["user_id"],
        expected_first["item_id"],
        expected_first["event_type"],
    )
    assert first[5] == expected_first["occurred_at"].strftime("%Y-%m-%d %H:%M:%S")
    assert small.start.strftime("%Y-%m-%d %H:%M:%S") <= window[0] and window[1] < "2026-03-01 00:00:00"


def test_if_empty_leaves_a_seeded_database_alone(tmp_path, capsys):
    db = tmp_path / "seeded.db"
    assert demo_data.count_events(db) == 0
    first = demo_data.generate(db, if_empty=True, **SMALL)
    assert first["skipped"] is False and demo_data.count_events(db) == first["events"]
    second = demo_data.generate(db, if_empty=True, **{**SMALL, "users": 50, "seed": 1})
    assert second == {"database": "sqlite", "skipped": True, "events": first["events"]}
    assert _sqlite_counts(db)["users"] == 300
    assert demo_data.main(["--db", str(db), "--if-empty"]) == 0
    assert "left as it is" in capsys.readouterr().out


@pytest.mark.postgres
def test_postgresql_copy_writes_timestamptz_and_reseeding_replaces(small):
    psycopg = pytest.importorskip("psycopg")
    schema = f"demo_test_{uuid.uuid4().hex[:10]}"
    try:
        summary = demo_data.generate(POSTGRES_URL, schema=schema, **SMALL)
        demo_data.generate(
            POSTGRES_URL.replace("postgresql://", "postgresql+psycopg2://"), schema=schema, **SMALL
        )
        with psycopg.connect(POSTGRES_URL) as connection:
            connection.execute(f"SET search_path TO {schema}")
            counts = {
                t: connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in demo_data.TABLES
            }
            assert counts == {"users": 300, "items": 150, "events": summary["events"]}
            low, high = connection.execute("SELECT MIN(occurred_at), MAX(occurred_at) FROM events").fetchone()
            assert small.start <= low and high < END
            types = connection.execute(
                "SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND column_name = %s",
                (schema, "occurred_at"),
            ).fetchone()
            assert types == ("timestamp with time zone",)
            nulls = connection.execute("SELECT COUNT(*) FROM events WHERE event_value IS NULL").fetchone()[0]
            assert nulls == (small.events["event_type"] != "purchase").sum()
            price = connection.execute("SELECT price FROM items WHERE item_id = 'I00001'").fetchone()[0]
            assert float(price) == pytest.approx(small.items.loc[0, "price"])
        assert demo_data.count_events(POSTGRES_URL, schema=schema) == summary["events"]
        skipped = demo_data.generate(POSTGRES_URL, schema=schema, if_empty=True, **{**SMALL, "users": 20})
        assert skipped["skipped"] is True and skipped["events"] == summary["events"]
        assert demo_data.count_events(POSTGRES_URL, schema=f"{schema}_absent") == 0
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be an integer >= 1"),
        ({"items": 5}, "items must be an integer >= 12"),
        ({"days": -1}, "days must be an integer >= 1"),
        ({"end": datetime(2026, 3, 1)}, "end must be timezone-aware"),
    ],
)
def test_bad_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        demo_data.build(**{**SMALL, **kwargs})


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://relative.db"])
def test_unsupported_urls_are_rejected(url, tmp_path):
    with pytest.raises(ValueError, match="sqlite:///"):
        demo_data.generate(url, **SMALL)


def test_schema_is_refused_for_sqlite(tmp_path):
    with pytest.raises(ValueError, match="only meaningful for PostgreSQL"):
        demo_data.generate(tmp_path / "x.db", schema="s", **SMALL)


def test_cli_writes_and_reports(tmp_path, capsys):
    db = tmp_path / "cli.db"
    code = demo_data.main(
        ["--db", f"sqlite:///{db}", "--users", "50", "--items", "40", "--days", "10", "--end", "2026-03-01"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "wrote 50 users, 40 items" in out and "2026-02-19T00:00:00+00:00" in out
    assert _sqlite_counts(db)["users"] == 50
