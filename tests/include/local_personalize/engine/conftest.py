import pytest

from include.local_personalize.engine import synthetic

CLUSTERS = 5


@pytest.fixture(scope="session")
def clustered():
    """600 users x 200 items x 12k events, 5 planted taste clusters (cluster = id number % 5)."""
    return synthetic.interactions(600, 200, 12_000, clusters=CLUSTERS, in_cluster=0.85, seed=7)
