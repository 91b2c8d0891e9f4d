"""Evaluation and synthetic data for tests and benchmarks: nDCG, layout agreement, relevance grades
(:mod:`.metrics`), and maps and codes with realistic statistics (:mod:`.synthetic`)."""

from .metrics import class_histogram, dcg, grade, histogram_distances, label_grid, layout_agreement, ndcg, query_maps
from .synthetic import class_priors, synthetic_codes, synthetic_probs

__all__ = [
    "dcg",
    "ndcg",
    "label_grid",
    "layout_agreement",
    "grade",
    "class_histogram",
    "histogram_distances",
    "query_maps",
    "class_priors",
    "synthetic_probs",
    "synthetic_codes",
]
