"""Operators for the Amazon Personalize lifecycle, one per AWS action (a provider-style public API:
import them from ``personalize.operators``). The shared converging behaviour is in ``base``."""

from personalize.operators.base import PersonalizeBaseOperator, attempt_name, run_scoped_name
from personalize.operators.batch import PersonalizeCreateBatchInferenceJobOperator
from personalize.operators.campaign import PersonalizeDeployCampaignOperator
from personalize.operators.data_jobs import (
    PersonalizeCreateDataDeletionJobOperator,
    PersonalizeCreateDatasetExportJobOperator,
)
from personalize.operators.import_job import PersonalizeCreateDatasetImportJobOperator
from personalize.operators.recommender import PersonalizeDeployRecommenderOperator
from personalize.operators.resources import PersonalizeEnsureResourcesOperator
from personalize.operators.solution_version import PersonalizeCreateSolutionVersionOperator

__all__ = [
    "PersonalizeBaseOperator",
    "PersonalizeCreateBatchInferenceJobOperator",
    "PersonalizeCreateDataDeletionJobOperator",
    "PersonalizeCreateDatasetExportJobOperator",
    "PersonalizeCreateDatasetImportJobOperator",
    "PersonalizeCreateSolutionVersionOperator",
    "PersonalizeDeployCampaignOperator",
    "PersonalizeDeployRecommenderOperator",
    "PersonalizeEnsureResourcesOperator",
    "attempt_name",
    "run_scoped_name",
]
