"""Retrieval-quality measures: nDCG, relevance grades from ground-truth label maps, a class-histogram baseline.

Used by the benchmark that reproduces the paper's evaluation (``bench/quality.py``); kept here, tested, so
that anyone can score their own rankings the same way.

- :func:`ndcg` — normalized discounted cumulative gain at a cutoff, with exponential gains ``2**rel - 1`` and
  the ``log2(rank + 1)`` discount (ranks from 1), the usual definition (Järvelin & Kekäläinen; Burges et al.).
- :func:`label_grid` and :func:`layout_agreement` — two photos' ground-truth label maps reduced to n x n
  cells (the most common label of each cell) and the fraction of cells that carry the same label;
  :func:`grade` turns agreements into relevance grades 0-3 with thresholds.
- :func:`class_histogram` and :func:`histogram_distances` — the baseline without spatial layout: each
  photo reduced to its mean class probabilities, compared by squared L2.
- :func:`query_maps` — the per-class query maps q_c of a sketch or a photo with strokes over it (the
  table in docs/how-it-works.md), for baselines that need them as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "dcg",
    "ndcg",
    "label_grid",
    "layout_agreement",
    "grade",
    "class_histogram",
    "histogram_distances",
    "query_maps",
]


# ---------------------------------------------------------------------------------------------- nDCG
def dcg(grades: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the first ``k`` grades of a ranking: sum of (2**g - 1) / log2(i + 1)
    over ranks i = 1..k."""
    g = np.asarray(grades, dtype=np.float64)[:k]
    if g.size == 0:
        return 0.0
    return float(np.sum((2.0**g - 1.0) / np.log2(np.arange(2, g.size + 2))))


def ndcg(ranked_grades: Sequence[float], all_grades: Sequence[float], k: int) -> float:
    """nDCG@k: the DCG of the ranking divided by the DCG of the ideal ranking of ``all_grades`` (the grades of
    every candidate, in any order). ``ranked_grades`` are the grades of the returned items, best first (at
    least ``min(k, len(all_grades))`` of them for a complete score). Returns NaN when no candidate has a
    grade above 0 (every ranking is then as good as any other)."""
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    ideal = dcg(np.sort(np.asarray(all_grades, dtype=np.float64))[::-1], k)
    if ideal == 0.0:
        return float("nan")
    return dcg(ranked_grades, k) / ideal


# ---------------------------------------------------------------------------------------------- relevance
def label_grid(labels, n: int, num_labels: int, ignore: Sequence[int] = ()) -> np.ndarray:
    """A label map (h, w) of ints 0..num_labels-1 reduced to n x n cells: each cell gets the most common
    label among its pixels (the lowest label on ties), skipping the ``ignore`` labels; cells with no other
    pixel get -1. Cell (i, j) covers rows i*h//n .. (i+1)*h//n - 1 and likewise for columns, so h, w >= n."""
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels must be a 2-D label map; got shape {lab.shape}")
    h, w = lab.shape
    if h < n or w < n:
        raise ValueError(f"a {h} x {w} label map cannot be reduced to {n} x {n} cells")
    lab = lab.astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= num_labels):
        raise ValueError(f"labels must lie in 0..{num_labels - 1}; found {lab.min()}..{lab.max()}")
    rows = np.arange(h) * n // h
    cols = np.arange(w) * n // w
    cell = rows[:, None] * n + cols[None, :]
    counts = np.bincount((cell * num_labels + lab).ravel(), minlength=n * n * num_labels)
    counts = counts.reshape(n * n, num_labels)
    counts[:, list(ignore)] = 0
    out = counts.argmax(axis=1)
    out[counts.max(axis=1) == 0] = -1
    return out.reshape(n, n)


def layout_agreement(a, b, background: int | None = None) -> np.ndarray:
    """Fraction of cells with the same label in two label grids (see :func:`label_grid`), over the cells
    labelled (not -1) in both. With ``background`` (e.g. 0 for COCO's unlabelled stuff), cells that are
    background in both are left out too, so the score is a class-aware intersection over union of the
    foreground. Broadcasts over leading axes: grids (Q, 1, n, n) and (1, N, n, n) give (Q, N). Pairs with no
    cell to compare score 0."""
    a, b = np.asarray(a), np.asarray(b)
    valid = (a >= 0) & (b >= 0)
    if background is not None:
        valid &= ~((a == background) & (b == background))
    same = (a == b) & valid
    axes = (-2, -1)
    n_valid = valid.sum(axis=axes)
    return np.where(n_valid > 0, same.sum(axis=axes) / np.maximum(n_valid, 1), 0.0)


def grade(agreement, thresholds: Sequence[float]) -> np.ndarray:
    """Relevance grades: the number of ``thresholds`` (ascending) that the agreement reaches, so three
    thresholds give grades 0-3 (agreement >= thresholds[i] earns grade i + 1)."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds must be ascending; got {list(thresholds)}")
    return np.searchsorted(t, np.asarray(agreement, dtype=np.float64), side="right").astype(np.int64)


# ---------------------------------------------------------------------------------------------- baseline
def class_histogram(probs) -> np.ndarray:
    """Mean class probability over the pixels: (..., C, n, n) maps -> (..., C) float64. No layout."""
    p = np.asarray(probs)
    return p.reshape(*p.shape[:-2], -1).mean(axis=-1, dtype=np.float64)


def histogram_distances(query_hist, db_hists, classes=None) -> np.ndarray:
    """Squared L2 distances (N,) between a query histogram (C,) and database histograms (N, C), over all
    classes or only the given ``classes`` (e.g. those a sketch draws, as the sketch distance does)."""
    q = np.asarray(query_hist, dtype=np.float64)
    d = np.asarray(db_hists, dtype=np.float64)
    if classes is not None:
        idx = np.asarray(classes, dtype=np.int64)
        q, d = q[idx], d[:, idx]
    return ((d - q[None]) ** 2).sum(axis=1)


def query_maps(labels, num_classes: int, probs=None) -> np.ndarray:
    """The per-class query maps (C, n, n) of a sketch ``labels`` (n, n; -1 = unspecified): 1 where the
    sketch draws class c, 0 where it draws another class; where it is -1, ``probs`` (the photo's maps) or 0
    without a photo. For a sketch only the drawn classes are compared (pass them as ``classes``)."""
    lab = np.asarray(labels)
    C = num_classes
    out = np.zeros((C, *lab.shape)) if probs is None else np.array(probs, dtype=np.float64)
    if out.shape != (C, *lab.shape):
        raise ValueError(f"probs must have shape {(C, *lab.shape)}; got {out.shape}")
    drawn = lab >= 0
    out[:, drawn] = 0.0
    rows, cols = np.nonzero(drawn)
    out[lab[drawn], rows, cols] = 1.0
    return out
