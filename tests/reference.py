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


def distances(kind: str, probs, labels, maps: np.ndarray) -> np.ndarray:
    """Squared L2 over the classes that count, for database maps (N, C, D)."""
    N, C, D = maps.shape
    cls, q = query_vectors(kind, probs, labels, C, D)
    diff = q[None, cls, :] - maps[:, cls, :].astype(np.float64)
    return (diff * diff).sum(axis=(1, 2))


def adc_maps(codebook: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reconstruction (N, C, D) of each image from codebook (C, K, n, n) and codes (N, C)."""
    C, K = codebook.shape[:2]
    cb = codebook.reshape(C, K, -1)
    return cb[np.arange(C)[None, :], codes.astype(np.int64)]


def exact_maps(probs: np.ndarray) -> np.ndarray:
    """What keep_exact=True stores: maps quantized to uint8 steps of 1/255, read back as floats."""
    N, C = probs.shape[:2]
    return (np.rint(probs.reshape(N, C, -1) * 255.0).clip(0, 255) / 255.0)


def topk(d: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, ties to the smaller position."""
    return np.argsort(d, kind="stable")[:k]
