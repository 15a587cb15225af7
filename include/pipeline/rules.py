"""Personalize's data rules: moved to the neutral contract package, `personalize_contract.data_rules`.

This module keeps the pipeline's old import path (`from include.pipeline import rules`); new code
imports `personalize_contract.data_rules`. `DATASET_TYPES` here keeps its old meaning, the three
dataset types the rules cover (the contract calls them `CORE_DATASET_TYPES`).
"""

from personalize_contract.data_rules import *  # noqa: F403 - the old import path, re-exported whole
from personalize_contract.data_rules import CORE_DATASET_TYPES as DATASET_TYPES  # noqa: F401
