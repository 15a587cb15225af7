import numpy as np
import pandas as pd

from include.local_personalize.engine import api
from include.local_personalize.engine.api import TrainingData, TrainingRequest


def _with_rising_item():
    """Steady traffic on 20 items over 10 days; "rising" appears only on the last day."""
    rng = np.random.default_rng(0)
    steady = pd.DataFrame(
        {
            "USER_ID": [f"u{n % 100}" for n in range(3000)],
            # Zipf-ish: i0 is by far the most popular item overall.
            "ITEM_ID": [f"i{min(int(x), 19)}" for x in rng.zipf(1.5, 3000) - 1],
            "TIMESTAMP": np.sort(rng.integers(0, 10 * 86_400, 3000)),
        }
    )
    last_day = 9 * 86_400 + 3600
    rising = pd.DataFrame(
        {
            "USER_ID": [f"u{n}" for n in range(80)],
            "ITEM_ID": "rising",
            "TIMESTAMP": last_day + np.arange(80) * 60,
        }
    )
    return pd.concat([steady, rising], ignore_index=True)


def test_trending_now_ranks_the_rising_item_first_and_popularity_does_not():
    data = TrainingData(_with_rising_item())
    trending, metrics = api.train(TrainingRequest("aws-trending-now"), data)
    popular, _ = api.train(TrainingRequest("aws-popularity-count"), data)
    assert trending.recommend("u1", num_results=3)[0][0] == "rising"
    assert popular.recommend("u1", num_results=3)[0][0] == "i0"
    assert set(metrics) >= {"coverage", "precision_at_25"}


def test_trending_round_trip(tmp_path):
    model, _ = api.train(TrainingRequest("aws-trending-now"), TrainingData(_with_rising_item()))
    model.save(tmp_path)
    assert api.load_model(tmp_path).recommend(num_results=20) == model.recommend(num_results=20)
