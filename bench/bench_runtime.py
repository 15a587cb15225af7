"""GetRecommendations latency and throughput of the local Personalize service, on loopback.

Starts moto's S3 and the local service in this process, loads a generated catalogue (50,000 items by
default) through the real API (S3 CSV -> import jobs -> solution -> solution version -> campaign ->
filter), then a separate client process sends GetRecommendations at a fixed rate (open loop: each
request is due at t0 + i / rate, whether or not earlier ones have answered), without and with a
filter. Prints p50/p95/p99/max latency, the achieved throughput and CPU per request.
The goal (issue 3) is p99 < 10 ms at 200 requests/s with a 50k-item catalogue.

    PYTHONPATH=.:plugins .venv/bin/python bench/bench_runtime.py            # 4 x 60 s at 200/s
    PYTHONPATH=.:plugins .venv/bin/python bench/bench_runtime.py --seconds 10 --client http

Two clients: "http" posts the request body over kept-alive connections (the server's latency alone);
"boto3" calls as an app does, so botocore's signing and parsing in the client are in the figure.
Latency is also measured from the moment a request was due, so a client that falls behind shows up
as queueing instead of being hidden (coordinated omission). The machine's load average is printed:
on a shared 2-CPU machine other processes' CPU use shows up directly in the tail.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

# Fake credentials only: every endpoint here is on loopback.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("S3_UPLOAD_PART_MIN_SIZE", "1")

import numpy as np  # noqa: E402

from include.local_personalize import seed  # noqa: E402

REGION = "us-east-1"
BUCKET = "bench-runtime"
PREFERRED_RECIPE = "aws-user-personalization"
FALLBACK_RECIPE = "aws-popularity-count"
CATEGORY_COUNT = 40
FILTER_EXPRESSION = (
    "INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY) | "
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")'
)  # $CATEGORY: one of CATEGORY_COUNT categories per request, like an app's category pages
ITEMS_SCHEMA = seed.avro_schema("ITEMS", seed.ITEM_ID, seed.CATEGORY, seed.PRICE)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- data -----------------------------------------------------------------------------------------


def generate_data(items: int, users: int, interactions: int, seed: int) -> tuple[str, str, list[str]]:
    """Items and interactions CSVs with power-law item popularity and per-user category taste."""
    rng = np.random.default_rng(seed)
    item_ids = np.array([f"item-{i:06d}" for i in range(items)])
    item_category = rng.integers(0, CATEGORY_COUNT, items)
    second_category = rng.integers(0, CATEGORY_COUNT, items)
    prices = np.round(rng.lognormal(3.0, 0.8, items), 2)
    items_csv = io.StringIO()
    writer = csv.writer(items_csv, lineterminator="\n")
    writer.writerow(["ITEM_ID", "CATEGORY", "PRICE"])
    for item_id, first, second, price in zip(item_ids, item_category, second_category, prices, strict=True):
        categories = f"cat-{first}" if first == second else f"cat-{first}|cat-{second}"
        writer.writerow([item_id, categories, price])

    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    user_ids = np.array([f"user-{u:05d}" for u in range(users)])
    event_user = rng.integers(0, users, interactions)
    # Half of each user's events come from their favourite category, half from overall popularity.
    favourite = rng.integers(0, CATEGORY_COUNT, users)
    by_category = [np.flatnonzero(item_category == c) for c in range(CATEGORY_COUNT)]
    event_item = rng.choice(items, size=interactions, p=popularity)
    from_taste = rng.random(interactions) < 0.5
    for index in np.flatnonzero(from_taste):
        pool = by_category[favourite[event_user[index]]]
        event_item[index] = pool[rng.integers(0, len(pool))]
    timestamps = 1_700_000_000 + np.sort(rng.integers(0, 90 * 86_400, interactions))
    event_types = np.where(rng.random(interactions) < 0.2, "purchase", "click")
    interactions_csv = io.StringIO()
    writer = csv.writer(interactions_csv, lineterminator="\n")
    writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
    for user, item, timestamp, event_type in zip(
        event_user, event_item, timestamps, event_types, strict=True
    ):
        writer.writerow([user_ids[user], item_ids[item], int(timestamp), event_type])
    active_users = sorted({user_ids[u] for u in event_user})
    return items_csv.getvalue(), interactions_csv.getvalue(), active_users


# --- setup through the real API -------------------------------------------------------------------


def load_campaign(personalize, s3, args) -> dict:
    items_csv, interactions_csv, user_ids = generate_data(
        args.items, args.users, args.interactions, args.seed
    )
    log(f"generated {args.items} items, {args.interactions} interactions of {len(user_ids)} users")
    # Polling once a second keeps the client's share of the GIL small while the server trains.
    seeder = seed.Seeder(personalize, s3, bucket=BUCKET, timeout=1800.0, poll_seconds=1.0)
    started = time.monotonic()
    group_arn = seeder.dataset_group(
        "bench-runtime",
        {
            "ITEMS": (ITEMS_SCHEMA, items_csv.encode()),
            "INTERACTIONS": (seed.INTERACTIONS_SCHEMA, interactions_csv.encode()),
        },
    )["group"]
    log(f"dataset group, datasets and imports ACTIVE in {time.monotonic() - started:.1f} s")

    recipes = {r["name"] for r in personalize.list_recipes()["recipes"]}
    recipe = PREFERRED_RECIPE if PREFERRED_RECIPE in recipes else FALLBACK_RECIPE
    log(f"recipe: {recipe}" + ("" if recipe == PREFERRED_RECIPE else f" ({PREFERRED_RECIPE} not available)"))
    solution_arn = seeder.solution("bench-solution", group_arn, seed.recipe_arn(recipe))
    started = time.monotonic()
    version_arn = seeder.solution_version(solution_arn)
    log(f"solution version ACTIVE in {time.monotonic() - started:.1f} s")
    campaign_arn = seeder.campaign("bench-campaign", version_arn)
    filter_arn = seeder.filter("bench-filter", group_arn, FILTER_EXPRESSION)
    log("campaign and filter ACTIVE")
    return {"campaign_arn": campaign_arn, "filter_arn": filter_arn, "user_ids": user_ids, "recipe": recipe}


# --- load (runs in a separate process, so the client never competes with the server for the GIL) --


def boto3_caller(url: str):
    """GetRecommendations as an app calls it: boto3 signs, sends and parses (its CPU is in the figure)."""
    import boto3
    from botocore.config import Config

    runtime = boto3.client(
        "personalize-runtime",
        endpoint_url=url,
        region_name=REGION,
        config=Config(max_pool_connections=64, retries={"max_attempts": 1, "mode": "standard"}),
    )
    return lambda params: runtime.get_recommendations(**params)["itemList"]


def http_caller(url: str):
    """The same JSON body over a kept-alive connection per thread: the server's latency alone."""
    import http.client
    import threading

    host, port = url.removeprefix("http://").split(":")
    local = threading.local()

    def call(params: dict) -> list:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps(params)
        connection.request("POST", "/recommendations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload[:200]!r}")
        return json.loads(payload)["itemList"]

    return call


def drive_load(
    url: str,
    client: str,
    campaign_arn: str,
    filter_arn: str | None,
    user_ids: list[str],
    rate: float,
    seconds: float,
    seed: int,
) -> dict:
    get_recommendations = boto3_caller(url) if client == "boto3" else http_caller(url)
    rng = np.random.default_rng(seed)
    total = int(rate * seconds)
    users = rng.choice(np.array(user_ids), total)
    categories = rng.integers(0, CATEGORY_COUNT, total)

    def request(index: int) -> dict:
        params = {"campaignArn": campaign_arn, "userId": str(users[index]), "numResults": 25}
        if filter_arn:
            params["filterArn"] = filter_arn
            params["filterValues"] = {"CATEGORY": f'"cat-{categories[index]}"'}
        return params

    for index in range(min(50, total)):  # connections, botocore's model loading, server caches
        get_recommendations(request(index))
    # One request at a time first: the floor that queueing at the target rate adds to.
    sequential = []
    for index in range(min(200, total)):
        started = time.perf_counter()
        get_recommendations(request(index))
        sequential.append(time.perf_counter() - started)

    service = np.full(total, np.nan)
    since_due = np.full(total, np.nan)
    errors: list[str] = []
    returned = np.zeros(total, dtype=int)
    completed_at = np.full(total, np.nan)

    def call(index: int, due: float) -> None:
        started = time.perf_counter()
        try:
            item_list = get_recommendations(request(index))
        except Exception as error:  # a failed request is a result to report, not a crash
            errors.append(f"{type(error).__name__}: {error}")
            return
        finished = time.perf_counter()
        service[index] = finished - started
        since_due[index] = finished - due
        completed_at[index] = finished
        returned[index] = len(item_list)

    client_cpu = time.process_time()
    with ThreadPoolExecutor(max_workers=32) as pool:
        t0 = time.perf_counter() + 0.05
        for index in range(total):
            due = t0 + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(call, index, due)
    elapsed = float(np.nanmax(completed_at) - t0) if not np.isnan(completed_at).all() else seconds
    return {
        "service": service,
        "since_due": since_due,
        "errors": errors,
        "elapsed": elapsed,
        "returned": returned,
        "sequential": np.array(sequential),
        "client_cpu": time.process_time() - client_cpu,
        "requests": total,
    }


class GcPauses:
    """Collector pauses in this (the server's) process: a stop-the-world pause lands in the tail."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.pauses: list[tuple[int, float]] = []
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif self.started is not None:
            self.pauses.append((info["generation"], time.perf_counter() - self.started))

    def take(self) -> list[tuple[int, float]]:
        pauses, self.pauses = self.pauses, []
        return pauses


def report(title: str, result: dict, rate: float) -> None:
    ok = ~np.isnan(result["service"])
    completed = int(ok.sum())
    print(f"\n{title}   (load average during the phase: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    if completed == 0:
        print(f"  all {len(ok)} requests failed; first error: {result['errors'][:1]}")
        return
    floor = result["sequential"] * 1000
    print(
        f"  one at a time ({len(floor)} requests): p50 {np.percentile(floor, 50):6.2f} ms  "
        f"p99 {np.percentile(floor, 99):6.2f} ms"
    )
    for name in ("service", "since_due"):
        ms = result[name][ok] * 1000
        label = "latency (call)         " if name == "service" else "latency (from due time)"
        print(
            f"  {label}: p50 {np.percentile(ms, 50):6.2f} ms  p95 {np.percentile(ms, 95):6.2f} ms  "
            f"p99 {np.percentile(ms, 99):6.2f} ms  max {ms.max():7.2f} ms"
        )
    print(
        f"  throughput: {completed / result['elapsed']:.1f} requests/s achieved (target {rate:.0f}/s), "
        f"{completed} ok, {len(result['errors'])} failed, {result['returned'][ok].mean():.1f} items per answer"
    )
    # CPU time does not depend on how busy the machine is; 1000 / (server CPU ms per request) is the
    # most one server process could answer per second on an idle core.
    server_ms = result["server_cpu"] / (result["requests"] + len(result["sequential"]) + 50) * 1000
    client_ms = result["client_cpu"] / result["requests"] * 1000
    print(
        f"  CPU per request: server {server_ms:.2f} ms (incl. HTTP; ceiling ~{1000 / server_ms:.0f} requests/s "
        f"on one idle core), client {client_ms:.2f} ms"
    )
    pauses = result.get("gc_pauses", [])
    if pauses:
        longest = max(duration for _, duration in pauses) * 1000
        oldest = sum(1 for generation, _ in pauses if generation == 2)
        print(f"  server GC: {len(pauses)} collections ({oldest} of generation 2), longest {longest:.1f} ms")
    if result["errors"]:
        print(f"  first error: {result['errors'][0]}")
    p99 = np.percentile(result["service"][ok] * 1000, 99)
    print(f"  goal p99 < 10 ms: {'met' if p99 < 10 else 'NOT met'}")


def profile_in_process(backend, setup: dict, requests: int, seed: int) -> None:
    """cProfile of GetRecommendations from the request body on (JSON, input validation, backend), no socket."""
    import cProfile
    import pstats

    from include.local_personalize.server import call

    rng = np.random.default_rng(seed)
    for title, filter_arn in (("no filter", None), ("filter", setup["filter_arn"])):
        bodies = []
        for _ in range(requests):
            params = {"campaignArn": setup["campaign_arn"], "userId": str(rng.choice(setup["user_ids"]))}
            if filter_arn:
                category = rng.integers(0, CATEGORY_COUNT)
                params |= {"filterArn": filter_arn, "filterValues": {"CATEGORY": f'"cat-{category}"'}}
            bodies.append(json.dumps(params).encode())
        call(backend, "personalize-runtime", "GetRecommendations", bodies[0])
        profiler = cProfile.Profile()
        cpu_started = time.thread_time()
        profiler.enable()
        for body in bodies:
            call(backend, "personalize-runtime", "GetRecommendations", body)
        profiler.disable()
        per_call = (time.thread_time() - cpu_started) / requests * 1000
        print(f"\nprofile, {title}: {per_call:.2f} CPU ms per call under cProfile ({requests} calls)")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(22)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each load phase (default 60)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--interactions", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--client",
        choices=["http", "boto3", "both"],
        default="both",
        help="http: raw keep-alive POSTs (the server alone); boto3: as an app calls it (default both)",
    )
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="also cProfile N in-process calls per phase"
    )
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    from include.local_personalize.server import start_in_thread

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    os.environ["AWS_ENDPOINT_URL_S3"] = f"http://{host}:{port}"
    service = None
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as state_dir:
        try:
            service = start_in_thread(Path(state_dir))
            log(f"local service on {service.url}, S3 on http://{host}:{port}")
            personalize = boto3.client("personalize", endpoint_url=service.url, region_name=REGION)
            s3 = boto3.client("s3", region_name=REGION)
            setup = load_campaign(personalize, s3, args)
            print(
                f"\nGetRecommendations, {args.items} items, recipe {setup['recipe']}, {args.rate:.0f} requests/s "
                f"for {args.seconds:.0f} s per phase, numResults 25, client in a separate process"
            )
            clients = ["http", "boto3"] if args.client == "both" else [args.client]
            phases = [
                (client, title, filter_arn)
                for client in clients
                for title, filter_arn in (
                    ("no filter", None),
                    (f"filter: {FILTER_EXPRESSION}", setup["filter_arn"]),
                )
            ]
            if args.profile:
                profile_in_process(service.backend, setup, args.profile, args.seed)
            gc_pauses = GcPauses()
            with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as load_process:
                for client, title, filter_arn in phases:
                    title = f"{client} client, {title}"
                    log(f"load phase: {title}")
                    server_cpu = time.process_time()
                    gc_pauses.take()
                    result = load_process.submit(
                        drive_load,
                        service.url,
                        client,
                        setup["campaign_arn"],
                        filter_arn,
                        setup["user_ids"],
                        args.rate,
                        args.seconds,
                        args.seed,
                    ).result()
                    result["server_cpu"] = time.process_time() - server_cpu
                    result["gc_pauses"] = gc_pauses.take()
                    report(title, result, args.rate)
        finally:
            if service is not None:
                service.stop()
            moto.stop()


if __name__ == "__main__":
    sys.exit(main())
