"""Ask a campaign for recommendations and print a readable table, for people who would rather look
than read JSON.

    python -m include.query recommend --user U00042 [--campaign NAME] [--num 10] \\
        [--filter NAME --values CATEGORY=books,toys] [--db sqlite:///demo_app.db]
    python -m include.query similar --item I00017 [--campaign NAME] [--db ...]

Endpoints follow boto3's usual resolution (AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME and
AWS_ENDPOINT_URL_PERSONALIZE, else real AWS); --endpoint points both at one URL, which is how
the local service serves them. With --db (the app database) each item shows its category and
price and the user's own shopping profile is printed, so you can see whether the model fits.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from include.demo_data import parse_target

DEFAULT_REGION = "us-east-1"
LOCAL_KEY = "testing"


class QueryError(RuntimeError):
    """A problem the user can fix (unknown campaign, bad filter value, ...); printed without a traceback."""


def clients(endpoint: str | None, region: str | None) -> tuple[Any, Any]:
    """(personalize, personalize-runtime) clients."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    runtime_endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME")
    # The local service answers the control plane on the runtime's URL; real AWS needs neither set.
    control_endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL_PERSONALIZE") or runtime_endpoint
    session = boto3.Session(region_name=region)
    if endpoint and session.get_credentials() is None:
        # The local service checks no signature; any key signs. Real AWS (no --endpoint) never gets here.
        session = boto3.Session(
            region_name=region, aws_access_key_id=LOCAL_KEY, aws_secret_access_key=LOCAL_KEY
        )
    return (
        session.client("personalize", endpoint_url=control_endpoint),
        session.client("personalize-runtime", endpoint_url=runtime_endpoint),
    )


def _list(personalize: Any, operation: str, result_key: str) -> list[dict]:
    found: list[dict] = []
    for page in personalize.get_paginator(operation).paginate():
        found.extend(page.get(result_key, []))
    return found


def resolve_campaign(personalize: Any, name_or_arn: str | None) -> tuple[str, str]:
    """(name, ARN) of the campaign; without a name, the only ACTIVE campaign there is."""
    if name_or_arn and name_or_arn.startswith("arn:"):
        return name_or_arn.rsplit("/", 1)[-1], name_or_arn
    campaigns = _list(personalize, "list_campaigns", "campaigns")
    if name_or_arn:
        for campaign in campaigns:
            if campaign["name"] == name_or_arn:
                return campaign["name"], campaign["campaignArn"]
        names = ", ".join(sorted(c["name"] for c in campaigns)) or "none"
        raise QueryError(f"no campaign named {name_or_arn!r}; campaigns here: {names}")
    active = [c for c in campaigns if c.get("status") == "ACTIVE"]
    if len(active) == 1:
        return active[0]["name"], active[0]["campaignArn"]
    if not active:
        raise QueryError(
            "no ACTIVE campaign to ask: run the train_deploy DAG (or `make demo`) first, "
            "or pass --campaign NAME|ARN"
        )
    names = ", ".join(sorted(c["name"] for c in active))
    raise QueryError(f"several campaigns are ACTIVE ({names}): choose one with --campaign")


def resolve_filter(personalize: Any, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    filters = _list(personalize, "list_filters", "Filters")  # sic: Personalize capitalises this key
    for found in filters:
        if found["name"] == name_or_arn:
            return found["filterArn"]
    names = ", ".join(sorted(f["name"] for f in filters)) or "none"
    raise QueryError(f"no filter named {name_or_arn!r}; filters here: {names}")


def parse_filter_values(pairs: Sequence[str]) -> dict[str, str]:
    """["CATEGORY=books,toys"] -> {"CATEGORY": '"books","toys"'}, the quoting Personalize expects."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip().lstrip("$")
        if not sep or not name or not raw.strip():
            raise QueryError(
                f"--values {pair!r}: write PLACEHOLDER=value[,value...], e.g. CATEGORY=books,toys"
            )
        if name in values:
            raise QueryError(f"--values: placeholder {name} given twice")
        parts = [p.strip() for p in raw.split(",")]
        if any(not p for p in parts) or any('"' in p for p in parts):
            raise QueryError(f"--values {pair!r}: values must be non-empty and contain no double quotes")
        values[name] = ",".join(f'"{p}"' for p in parts)
    return values


class AppDatabase:
    """Read-only look-ups in the app DB (demo schema: users, items, events)."""

    def __init__(self, url_or_path: str) -> None:
        self.kind, target = parse_target(url_or_path)
        if self.kind == "sqlite":
            if not os.path.exists(target):
                raise QueryError(f"--db {url_or_path}: no such SQLite file")
            self.connection = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        else:
            import psycopg

            self.connection = psycopg.connect(target, autocommit=True)

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        if self.kind == "postgresql":
            sql = sql.replace("?", "%s")
        return list(self.connection.execute(sql, params).fetchall())

    def items(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not item_ids:
            return {}
        marks = ", ".join("?" * len(item_ids))
        rows = self._rows(f"SELECT item_id, category, price FROM items WHERE item_id IN ({marks})", item_ids)
        return {item: {"category": category, "price": float(price)} for item, category, price in rows}

    def user_profile(self, user_id: str) -> str | None:
        """'plus, eu; shops mostly: books 41%, music 30%' or None when the user is unknown."""
        found = self._rows("SELECT tier, region FROM users WHERE user_id = ?", [user_id])
        if not found:
            return None
        tier, region = found[0]
        counts = self._rows(
            "SELECT i.category, COUNT(*) FROM events e JOIN items i ON i.item_id = e.item_id "
            "WHERE e.user_id = ? GROUP BY i.category ORDER BY COUNT(*) DESC, i.category",
            [user_id],
        )
        total = sum(n for _, n in counts)
        if not total:
            return f"{tier}, {region}; no events yet"
        top = ", ".join(f"{category} {100 * n / total:.0f}%" for category, n in counts[:3])
        return f"{tier}, {region}; {total} events, shops mostly: {top}"

    def close(self) -> None:
        self.connection.close()


def format_table(item_list: Sequence[dict], metadata: dict[str, dict[str, Any]] | None) -> str:
    header = ["rank", "item", "score"] + (["category", "price"] if metadata is not None else [])
    rows = [header]
    for rank, entry in enumerate(item_list, start=1):
        score = entry.get("score")
        row = [str(rank), entry["itemId"], "-" if score is None else f"{score:.4f}"]
        if metadata is not None:
            meta = metadata.get(entry["itemId"])
            row += ["(not in app DB)", ""] if meta is None else [meta["category"], f"{meta['price']:.2f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    numeric = {0, 2, 4}
    return "\n".join(
        "  ".join(
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def run(args: argparse.Namespace) -> str:
    personalize, runtime = clients(args.endpoint, args.region)
    campaign_name, campaign_arn = resolve_campaign(personalize, args.campaign)
    request: dict[str, Any] = {"campaignArn": campaign_arn, "numResults": args.num}
    if args.command == "recommend":
        request["userId"] = args.user
        subject = f"user {args.user}"
    else:
        request["itemId"] = args.item
        subject = f"item {args.item}"
    if args.filter:
        request["filterArn"] = resolve_filter(personalize, args.filter)
        if args.values:
            request["filterValues"] = parse_filter_values(args.values)
    elif args.values:
        raise QueryError("--values needs --filter NAME")
    try:
        response = runtime.get_recommendations(**request)
    except ClientError as error:
        raise QueryError(f"GetRecommendations on {campaign_name} for {subject} failed: {error}") from error
    item_list = response.get("itemList", [])
    database = AppDatabase(args.db) if args.db else None
    try:
        lines = [f"campaign {campaign_name}: {len(item_list)} recommendations for {subject}"]
        if database is not None:
            if args.command == "recommend":
                lines.append(f"  user {args.user}: {database.user_profile(args.user) or 'not in the app DB'}")
            else:
                source = database.items([args.item]).get(args.item)
                described = f"{source['category']}, {source['price']:.2f}" if source else "not in the app DB"
                lines.append(f"  item {args.item}: {described}")
        if args.filter:
            lines.append(
                f"  filter {args.filter}" + (f" {request.get('filterValues')}" if args.values else "")
            )
        metadata = None if database is None else database.items([e["itemId"] for e in item_list])
        lines.append(format_table(item_list, metadata) if item_list else "(no items)")
        return "\n".join(lines)
    finally:
        if database is not None:
            database.close()


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--campaign", help="campaign name or ARN (default: the only ACTIVE campaign)")
    common.add_argument("--num", type=int, default=10, help="number of results (1-500, default 10)")
    common.add_argument("--filter", help="filter name or ARN")
    common.add_argument("--values", nargs="+", default=[], metavar="PLACEHOLDER=V[,V]", help="filter values")
    common.add_argument(
        "--db", help="app DB for item metadata: SQLite path, sqlite:///PATH or postgresql://..."
    )
    common.add_argument(
        "--endpoint", help="one URL for personalize and personalize-runtime (the local service)"
    )
    common.add_argument(
        "--region", help=f"AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or {DEFAULT_REGION})"
    )
    top = argparse.ArgumentParser(prog="python -m include.query", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    recommend = commands.add_parser("recommend", parents=[common], help="recommendations for a user")
    recommend.add_argument("--user", required=True)
    similar = commands.add_parser("similar", parents=[common], help="items related to an item")
    similar.add_argument("--item", required=True)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    arg_parser = parser()
    args = arg_parser.parse_args(argv)
    if not 1 <= args.num <= 500:
        arg_parser.error(f"--num must be between 1 and 500, got {args.num}")
    try:
        print(run(args))
    except QueryError as error:
        print(f"query: {error}", file=sys.stderr)
        return 1
    except NoCredentialsError:
        print("query: no AWS credentials found (for the local service pass --endpoint URL)", file=sys.stderr)
        return 1
    except ClientError as error:
        print(f"query: {error}", file=sys.stderr)
        return 1
    except EndpointConnectionError as error:
        print(
            f"query: {error}: is the service running? (--endpoint, AWS_ENDPOINT_URL_PERSONALIZE*)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
