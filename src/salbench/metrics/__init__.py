"""Metrics: importing this package registers every metric."""

from . import complexity, faithfulness, localisation, robustness  # noqa: F401  (registers the metrics)
from .base import METRICS, Metric, ScoringBatch, create_metric, list_metrics, register_metric

__all__ = ["METRICS", "Metric", "ScoringBatch", "create_metric", "list_metrics", "register_metric"]
