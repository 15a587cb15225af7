"""Personalize's resources and rules: what exists, which calls are allowed, how jobs run.

Knows nothing of HTTP: the API layer hands each operation's parsed parameters to the method of the
same name (CreateDatasetGroup -> create_dataset_group) and serialises what it returns. Training is
delegated to the engine through `engine.api` only.
"""

from __future__ import annotations

from include.local_personalize.backend.actions import ActionsMixin
from include.local_personalize.backend.batch import BatchJobsMixin
from include.local_personalize.backend.batch_segments import BatchSegmentsMixin
from include.local_personalize.backend.campaigns import CampaignsMixin
from include.local_personalize.backend.catalog import CatalogMixin
from include.local_personalize.backend.core import (  # the shared names keep their old import path
    ACCOUNT_ID,
    DEFAULT_NUM_RESULTS,
    KINDS,
    LATEST_VERSION,
    MAX_NUM_RESULTS,
    MAX_PENDING_IMPORT_JOBS,
    MAX_TAGS,
    RUNNING,
    BackendCore,
    GroupFrames,
    Kind,
    camel_to_field,
    freeze_long_lived_objects,
    public,
)
from include.local_personalize.backend.data_jobs import DataJobsMixin
from include.local_personalize.backend.dataset_groups import DatasetGroupsMixin
from include.local_personalize.backend.events import EventsMixin
from include.local_personalize.backend.metric_attributions import MetricAttributionsMixin
from include.local_personalize.backend.recommenders import RecommendersMixin
from include.local_personalize.backend.solutions import SolutionsMixin

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_NUM_RESULTS",
    "KINDS",
    "LATEST_VERSION",
    "MAX_NUM_RESULTS",
    "MAX_PENDING_IMPORT_JOBS",
    "MAX_TAGS",
    "RUNNING",
    "GroupFrames",
    "Kind",
    "PersonalizeBackend",
    "camel_to_field",
    "freeze_long_lived_objects",
    "public",
]


class PersonalizeBackend(
    DatasetGroupsMixin,
    SolutionsMixin,
    CampaignsMixin,
    EventsMixin,
    BatchJobsMixin,
    RecommendersMixin,
    DataJobsMixin,
    MetricAttributionsMixin,
    BatchSegmentsMixin,
    CatalogMixin,
    ActionsMixin,
    BackendCore,
):
    """Every Personalize operation the local service implements, one method each, by resource family
    (include/local_personalize/backend/)."""
