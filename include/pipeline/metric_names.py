"""The metric names: moved to the neutral contract package; this keeps the pipeline's old import path."""

from personalize_contract.metrics import METRIC_NAMES  # noqa: F401
