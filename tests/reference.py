"""Plain numpy references of the method's distances, written straight from the equations."""
from __future__ import annotations

import math

import numpy as np
from segsearch.evaluation import query_maps


def query_vectors(kind: str, probs, labels, C: int, D: int):
    """(classes summed, q (C, D) float64) for a query kind: 'image', 'sketch' or 'image_and_sketch'."""
    if kind == "image":
        return np.arange(C), np.asarray(probs, np.float64).reshape(C, D)
    n = math.isqrt(D)
    lab = np.asarray(labels).reshape(n, n)
    if kind == "sketch":  # drawn pixels one-hot, the rest 0; only the drawn classes are summed
        return np.unique(lab[lab >= 0]), query_maps(lab, C).reshape(C, D)
    return np.arange(C), query_maps(lab, C, np.asarray(probs, np.float64).reshape(C, n, n)).reshape(C, D)


def reweighted(probs, prior, power: float, axis: int = 1) -> np.ndarray:
    """The class-prior correction of the "balanced" ranking, float64: p_c(j) prior_c^-power, each pixel divided
    by its sum over the classes (the class axis is ``axis``: 1 for maps (N, C, n, n), 0 for one query (C, D))."""
    p = np.asarray(probs, np.float64)
    shape = [1] * p.ndim
    shape[axis] = -1
    y = p * (np.asarray(prior, np.float64) ** -power).reshape(shape)
    return y / y.sum(axis=axis, keepdims=True)


def distances(kind: str, probs, labels, maps: np.ndarray, index=None) -> np.ndarray:
    """Distances over the classes that count, for database maps (N, C, D) as the index holds them: squared L2
    (the paper's), or under ``index``'s ranking: the query photo reweighted by the class prior, then per class
    lam ||x_c - q_c / lam||^2 = ||q_c||^2 / lam - 2 q_c.x_c + lam ||x_c||^2, lam = photo_weight."""
    N, C, D = maps.shape
    lam = 1.0
    if index is not None:
        lam = index.ranking.photo_weight
        if index.ranking.prior_power and probs is not None:
            probs = reweighted(np.asarray(probs).reshape(C, D), index.class_prior, index.ranking.prior_power, 0)
    cls, q = query_vectors(kind, probs, labels, C, D)
    x = maps[:, cls, :].astype(np.float64)
    qc = q[None, cls, :]
    return ((qc * qc).sum(axis=(1, 2)) / lam - 2.0 * (qc * x).sum(axis=(1, 2)) + lam * (x * x).sum(axis=(1, 2)))


def adc_maps(codebook: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reconstruction (N, C, D) of each image from codebook (C, K, n, n) and codes (N, C)."""
    C, K = codebook.shape[:2]
    cb = codebook.reshape(C, K, -1)
    return cb[np.arange(C)[None, :], codes.astype(np.int64)]


def exact_maps(probs: np.ndarray, index=None) -> np.ndarray:
    """What keep_exact=True stores: maps (reweighted by ``index``'s class prior if its ranking has one) quantized
    to uint8 steps of 1/255, read back as floats."""
    N, C = probs.shape[:2]
    if index is not None and index.ranking.prior_power:
        probs = reweighted(probs, index.class_prior, index.ranking.prior_power)
    return (np.rint(probs.reshape(N, C, -1) * 255.0).clip(0, 255) / 255.0)


def topk(d: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, ties to the smaller position."""
    return np.argsort(d, kind="stable")[:k]
