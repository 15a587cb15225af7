"""How fast the Personalize view's pages load with a year of daily training runs, through the real API server.

    PYTHONPATH=$PWD:$PWD/plugins .venv/bin/python bench/bench_personalize_ui.py [--runs 365] [--repeats 15] [--solutions 3]

Builds the world of tests/plugins/ui/server.py with `--runs` daily training runs (recorded by the
pipeline's own `record_solution`; the reports' two matplotlib PNGs are replaced by empty files
here only to keep the setup short: the pages never read them), starts `airflow api-server` on
loopback with a viewer login, and times each page `--repeats` times over HTTP:
- cold: `?refresh=true`, every S3 and Personalize read done again (what the first visitor after
  the cache's TTL waits for);
- cached: within the TTL (every other visitor).
Prints median, min, max and the spread (max - min) in milliseconds, and the page sizes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.plugins.ui.server import airflow_env, api_server, build_world, login, run_airflow


def timed(client: httpx.Client, url: str, repeats: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=365, help="daily training runs in the history")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--solutions",
        type=int,
        choices=(1, 3),
        default=1,
        help="3: the demo's three solutions, each with --runs runs",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pp-ui-bench-"))
    started = time.perf_counter()
    with (
        mock.patch("include.pipeline.report._metrics_history_png", return_value=b""),
        mock.patch("include.pipeline.report._coverage_png", return_value=b""),
    ):
        extra = build_world(work, runs=args.runs, every_days=1, solutions=args.solutions)
    print(
        f"setup: {args.runs} daily runs x {args.solutions} solution(s) recorded in "
        f"{time.perf_counter() - started:.0f} s"
    )
    home = work / "airflow-home"
    home.mkdir()
    env = airflow_env(home, all_admins=False, **extra)
    run_airflow(env, "db", "migrate")
    with api_server(env, work / "api-server.log") as url:
        token = login(url, env)
        client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120)
        pages = {"overview": f"{url}/personalize/", "pipeline": f"{url}/personalize/pipelines/demo_retail"}
        client.get(pages["overview"]).raise_for_status()  # first request: imports, config load
        print(f"{'page':<10} {'mode':<7} {'median ms':>10} {'min':>8} {'max':>8} {'spread':>8} {'KiB':>6}")
        for name, page in pages.items():
            for mode, suffix in (("cold", "?refresh=true"), ("cached", "")):
                times, size = timed(client, page + suffix, args.repeats)
                print(
                    f"{name:<10} {mode:<7} {statistics.median(times):>10.0f} {min(times):>8.0f} "
                    f"{max(times):>8.0f} {max(times) - min(times):>8.0f} {size / 1024:>6.0f}"
                )
        html = client.get(pages["pipeline"]).text
        points, rows = html.count('<circle class="point'), html.count('<tr class="decision"')
        print(f"pipeline page: {points} chart points, {rows} gate decisions")


if __name__ == "__main__":
    main()
