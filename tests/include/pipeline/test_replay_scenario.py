"""The done-when of the replay gate on the local engine (bench/replay_scenario.py, fewer seeds than
bench/bench_replay_gate.py): two versions of one recipe on the same data are accepted by the
replay gate, while the offline gate with tolerance 0 decides either way from seed to seed; a
clearly worse challenger (popularity-count) is rejected by the replay gate."""

from __future__ import annotations

from bench.replay_scenario import run_seed

SEEDS = range(4)


def test_replay_accepts_an_equal_retrain_that_the_offline_gate_flips_on_and_rejects_popularity():
    outcomes = [run_seed(seed, users=1000, items=300, days=40, sample=600, resamples=500) for seed in SEEDS]
    offline = [o.offline_accepted for o in outcomes]
    assert True in offline and False in offline, [o.offline_difference for o in outcomes]
    assert all(o.replay_accepted for o in outcomes), [o.replay_difference for o in outcomes]
    # The paired replay difference is much smaller than the offline split noise.
    assert max(abs(o.replay_difference.value) for o in outcomes) < max(
        abs(o.offline_difference) for o in outcomes
    )
    assert not any(o.popularity_replay_accepted for o in outcomes), [
        o.popularity_difference for o in outcomes
    ]
    assert all(o.popularity_difference.high < 0 for o in outcomes)
