"""The query CLI against the local Personalize service, with campaigns trained on demo shop data."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pandas as pd
import pytest

from include import demo_data, query
from include.local_personalize import seed

END = datetime(2026, 3, 1, tzinfo=UTC)
SHOP = {"users": 200, "items": 120, "days": 30, "seed": 11, "end": END}
PREFIX = "query-cli"
ITEMS_SCHEMA = seed.avro_schema("ITEMS", seed.ITEM_ID, seed.CATEGORY)


@pytest.fixture(scope="module")
def shop(personalize_endpoint, s3_endpoint, tmp_path_factory):
    """The demo shop in SQLite, and in the local service: a user-personalization and a SIMS campaign."""
    db = tmp_path_factory.mktemp("query") / "shop.db"
    demo_data.generate(db, **SHOP)
    data = demo_data.build(**SHOP)
    interactions = data.interactions()[["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]]
    items = data.items.rename(columns={"item_id": "ITEM_ID", "category": "CATEGORY"})[["ITEM_ID", "CATEGORY"]]
    seeder = seed.Seeder(
        personalize=boto3.client("personalize", endpoint_url=personalize_endpoint, region_name="us-east-1"),
        s3=boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1"),
        bucket="query-cli-shop",
    )
    group = seeder.dataset_group(
        f"{PREFIX}-group",
        {
            "INTERACTIONS": (seed.INTERACTIONS_SCHEMA, seed.csv_bytes(interactions)),
            "ITEMS": (ITEMS_SCHEMA, seed.csv_bytes(items)),
        },
    )["group"]
    campaigns = {}
    for kind, recipe in (("home", "aws-user-personalization"), ("similar", "aws-similar-items")):
        solution = seeder.solution(f"{PREFIX}-{kind}", group, seed.recipe_arn(recipe))
        campaigns[kind] = seeder.campaign(f"{PREFIX}-{kind}", seeder.solution_version(solution))
    seeder.filter(f"{PREFIX}-category", group, "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)")
    return {"db": str(db), "data": data, "campaigns": campaigns, "endpoint": personalize_endpoint}


def table(output: str) -> pd.DataFrame:
    """The printed table back as rows (rank, item, score, category, price)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["rank", "item", "score"])
    rows = [line.split() for line in lines[start + 1 :]]
    columns = lines[start].split()
    return pd.DataFrame(rows, columns=columns)


def test_recommend_prints_ranked_items_with_their_metadata(shop, capsys):
    user = "U00007"
    code = query.main(
        ["recommend", "--user", user, "--campaign", f"{PREFIX}-home", "--num", "8", "--db", shop["db"]]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"campaign {PREFIX}-home: 8 recommendations for user {user}")
    tier, region = shop["data"].users.set_index("user_id").loc[user, ["tier", "region"]]
    assert f"user {user}: {tier}, {region};" in out and "shops mostly:" in out
    rows = table(out)
    assert rows["rank"].tolist() == [str(r) for r in range(1, 9)]
    scores = rows["score"].astype(float).tolist()
    assert scores == sorted(scores, reverse=True)
    catalogue = shop["data"].items.set_index("item_id")
    for _, row in rows.iterrows():
        assert row["category"] == catalogue.loc[row["item"], "category"]
        assert float(row["price"]) == pytest.approx(catalogue.loc[row["item"], "price"])


def test_recommend_without_db_and_with_endpoint_flag_only(shop, capsys, monkeypatch):
    for name in ("AWS_ENDPOINT_URL_PERSONALIZE", "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME"):
        monkeypatch.delenv(name, raising=False)
    argv = [
        "recommend",
        "--user",
        "U00003",
        "--campaign",
        shop["campaigns"]["home"],
        "--endpoint",
        shop["endpoint"],
    ]
    assert query.main(argv) == 0
    rows = table(capsys.readouterr().out)
    assert list(rows.columns) == ["rank", "item", "score"] and len(rows) == 10


def test_filter_values_reach_the_campaign(shop, capsys):
    argv = ["recommend", "--user", "U00010", "--campaign", f"{PREFIX}-home", "--db", shop["db"]]
    argv += ["--filter", f"{PREFIX}-category", "--values", "CATEGORY=books,music"]
    assert query.main(argv) == 0
    out = capsys.readouterr().out
    assert f"filter {PREFIX}-category" in out
    rows = table(out)
    assert len(rows) > 0 and set(rows["category"]) <= {"books", "music"}


def test_similar_lists_other_items(shop, capsys):
    item = shop["data"].events["item_id"].value_counts().index[0]
    assert query.main(["similar", "--item", item, "--campaign", f"{PREFIX}-similar", "--db", shop["db"]]) == 0
    out = capsys.readouterr().out
    category = shop["data"].items.set_index("item_id").loc[item, "category"]
    assert f"item {item}: {category}," in out
    rows = table(out)
    assert len(rows) == 10 and item not in set(rows["item"])


def test_campaign_choice_errors_name_the_campaigns(shop, capsys):
    assert query.main(["recommend", "--user", "U00001"]) == 1
    err = capsys.readouterr().err
    assert "several campaigns are ACTIVE" in err and f"{PREFIX}-home" in err and f"{PREFIX}-similar" in err
    assert query.main(["recommend", "--user", "U00001", "--campaign", "nope"]) == 1
    err = capsys.readouterr().err
    assert "no campaign named 'nope'" in err and f"{PREFIX}-home" in err


def test_unknown_filter_and_values_without_filter_are_errors(shop, capsys):
    base = ["recommend", "--user", "U00001", "--campaign", f"{PREFIX}-home"]
    assert query.main([*base, "--filter", "nope"]) == 1
    assert "no filter named 'nope'" in capsys.readouterr().err
    assert query.main([*base, "--values", "CATEGORY=books"]) == 1
    assert "--values needs --filter" in capsys.readouterr().err


def test_endpoint_flag_works_without_credentials_in_the_environment(shop, capsys, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_PERSONALIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    argv = ["recommend", "--user", "U00003", "--campaign", f"{PREFIX}-home", "--endpoint", shop["endpoint"]]
    assert query.main(argv) == 0
    assert len(table(capsys.readouterr().out)) == 10
    monkeypatch.setenv("AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME", shop["endpoint"])
    assert query.main(argv[:-2]) == 1
    assert "no AWS credentials found" in capsys.readouterr().err


def test_unreachable_endpoint_says_so(capsys):
    assert (
        query.main(["recommend", "--user", "U1", "--campaign", "x", "--endpoint", "http://127.0.0.1:9"]) == 1
    )
    assert "is the service running?" in capsys.readouterr().err


def test_filter_values_are_quoted_as_personalize_expects():
    assert query.parse_filter_values(["CATEGORY=books, toys", "$TIER=plus"]) == {
        "CATEGORY": '"books","toys"',
        "TIER": '"plus"',
    }
    for bad in (["CATEGORY"], ["=x"], ["CATEGORY="], ['CATEGORY="x"'], ["A=x", "A=y"], ["A=x,,y"]):
        with pytest.raises(query.QueryError, match="--values"):
            query.parse_filter_values(bad)


def test_num_out_of_range_is_refused():
    with pytest.raises(SystemExit):
        query.main(["recommend", "--user", "U1", "--num", "0"])


def test_missing_sqlite_db_is_named(tmp_path):
    with pytest.raises(query.QueryError, match="no such SQLite file"):
        query.AppDatabase(str(tmp_path / "absent.db"))
