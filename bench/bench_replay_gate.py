"""The offline gate against the replay gate, over several seeds (bench/replay_scenario.py).

Per seed: two versions of aws-user-personalization trained on the same data (as good as each
other) and aws-popularity-count (clearly worse), on the local engine. Counts how often the offline
gate (GetSolutionMetrics, tolerance 0) and the replay gate (same held-out users and window,
tolerance auto) accept the same-recipe challenger, and how often each accepts popularity-count;
prints the medians and spreads of the differences each gate saw.

Run: PYTHONPATH=.:plugins nice -n 10 .venv/bin/python bench/bench_replay_gate.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.repeats import spread
from bench.replay_scenario import DEMO_SOLUTION_CONFIG, METRIC, run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--holdout-days", type=int, default=7)
    parser.add_argument("--sample", type=int, default=600)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--pair",
        choices=("demo", "default"),
        default="demo",
        help="the same-recipe pair's solution_config: the demo config's (ALS, 32 factors) or none (EASE)",
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    outcomes = []
    print(f"gate metric {METRIC}; demo shop {args.users} users x {args.items} items x {args.days} days, ")
    print(
        f"last {args.holdout_days} days held out; up to {args.sample} held-out users; {args.resamples} resamples"
    )
    print()
    print(
        "seed  offline diff  offline  replay diff [95% interval]       replay  | popularity: offline  replay diff [95%]                replay"
    )
    for seed in range(args.seeds):
        o = run_seed(
            seed,
            users=args.users,
            items=args.items,
            days=args.days,
            holdout_days=args.holdout_days,
            sample=args.sample,
            resamples=args.resamples,
            pair_solution_config=DEMO_SOLUTION_CONFIG if args.pair == "demo" else None,
        )
        outcomes.append(o)
        print(
            f"{seed:>4}  {o.offline_difference:+.4f}       {_verdict(o.offline_accepted):<8} "
            f"{o.replay_difference.text(signed=True):<32} {_verdict(o.replay_accepted):<7} | "
            f"{_verdict(o.popularity_offline_accepted):<19} {o.popularity_difference.text(signed=True):<32} "
            f"{_verdict(o.popularity_replay_accepted)}",
            flush=True,
        )
    n = len(outcomes)
    print()
    print("same recipe, same data, two training seeds:")
    print(f"  offline gate, tolerance 0: accepted {sum(o.offline_accepted for o in outcomes)}/{n}")
    print(f"  replay gate, tolerance auto: accepted {sum(o.replay_accepted for o in outcomes)}/{n}")
    print(f"  |offline difference| (split noise): {_four([abs(o.offline_difference) for o in outcomes])}")
    print(f"  |replay difference|: {_four([abs(o.replay_difference.value) for o in outcomes])}")
    print(
        "  replay interval width of the difference (paired): "
        f"{_four([o.replay_difference.high - o.replay_difference.low for o in outcomes])}"
    )
    print(
        "  replay interval width of the champion's own value: "
        f"{_four([o.replay_champion.high - o.replay_champion.low for o in outcomes])}"
    )
    print("popularity-count (clearly worse):")
    print(f"  offline gate, tolerance 0: accepted {sum(o.popularity_offline_accepted for o in outcomes)}/{n}")
    print(
        f"  replay gate, tolerance auto: accepted {sum(o.popularity_replay_accepted for o in outcomes)}/{n}"
    )
    print(f"  replay difference: {_four([o.popularity_difference.value for o in outcomes])}")
    print(f"held-out users per seed: {spread([float(o.users) for o in outcomes])}")
    print(f"wall time {time.perf_counter() - began:.0f} s")
    return 0


def _four(samples: list[float]) -> str:
    """spread() with 4 decimals: metric differences are small."""
    s = spread(samples)
    return f"median {s.median:.4f} (IQR {s.q1:.4f} to {s.q3:.4f}, range {s.low:.4f} to {s.high:.4f}, n={s.n})"


def _verdict(accepted: bool) -> str:
    return "accept" if accepted else "REJECT"


if __name__ == "__main__":
    sys.exit(main())
