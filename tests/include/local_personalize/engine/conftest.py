import pytest

from include.local_personalize.engine import api, synthetic
from include.local_personalize.engine.api import TrainingData, TrainingRequest

CLUSTERS = 10


def cluster(item_or_user_id: str) -> int:
    """Planted cluster of a generated id such as "u12" or "i40" (see engine/synthetic.py)."""
    return int(item_or_user_id[1:]) % CLUSTERS


@pytest.fixture(scope="session")
def clustered():
    """1000 users x 200 items x 15k events in 10 planted taste clusters, 90% of events in-cluster."""
    return synthetic.interactions(1000, 200, 15_000, clusters=CLUSTERS, in_cluster=0.9, seed=7)


@pytest.fixture(scope="session")
def personalization(clustered):
    """aws-user-personalization trained on `clustered`: (model, metrics)."""
    return api.train(TrainingRequest("aws-user-personalization"), TrainingData(clustered))
