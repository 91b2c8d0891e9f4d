"""Why a result is there: its distance split by class.

A distance is a sum over the classes the query compares (every class for a photo query, the drawn ones for a
sketch) of one term per class. :func:`explain` returns those terms for a few photos:

- for distances from the codes (``rerank=0``), the lookup-table entries the scan summed, LUT[c, code_c] (see
  :meth:`~segsearch.engine.index.Index.lookup_table`; with the search's ``eps``);
- for exact distances (re-ranked results, ``exact=True``), lam ||x_c - q_c / lam||^2 of the photo's exact maps x_c
  and the query's q_c under the index's ranking (lam its photo weight; lam = 1: the squared L2 distance), computed
  as the core computes it (``scan_blocks.cpp``: the query's values as ``lut.cpp`` makes them, the dot products in
  the same float lanes and order, the squares in integers), so that the parts add up to the distance the search
  reported, to float rounding.

The terms are >= 0 (an exact one may be a rounding error below 0 where the photo's map equals the query's).
"""

from __future__ import annotations

import numpy as np

from .checks import check_eps
from .exact_maps import BLOCK, blocks_per_map
from .query import IMAGE, SKETCH, Query
from .sharded import codes_at

__all__ = ["explain", "query_rows"]


def explain(index, query: Query, positions, *, exact: bool, eps: float | None = None) -> list[tuple]:
    """Per photo at ``positions`` (of ``index``, an Index or a ShardedIndex), (classes int32 (E,), parts float64
    (E,)): the classes its distance to ``query`` sums, in increasing order, and each one's term. ``exact``: the
    distance was computed from the exact maps (a re-ranked or exact search), else from the codes with ``eps`` (the
    search's; default as in :meth:`~segsearch.engine.search.Searchable.search`)."""
    if not isinstance(query, Query):
        raise ValueError("query must be a segsearch.Query")
    pos = np.asarray(positions, np.int64).reshape(-1)
    if not exact:
        lut, classes = index.lookup_table(query, eps=check_eps(eps))
        classes = np.asarray(classes, np.int64)
        codes = codes_at(index, pos)
        return [(classes.astype(np.int32), lut[classes, codes[i, classes]].astype(np.float64)) for i in range(len(pos))]
    if not index.keep_exact:
        raise ValueError("exact distances need the exact maps, which this index does not keep; explain with rerank=0")
    classes, rows, qnorm2 = query_rows(index, query)
    lam = float(np.float32(index.ranking.photo_weight))
    D = index.dim
    nb = blocks_per_map(D)
    q = np.zeros((len(classes), nb * BLOCK), np.float32)
    q[:, :D] = rows
    q = q.reshape(len(classes), nb, BLOCK)
    out = []
    for p in pos.tolist():
        x = np.zeros((len(classes), nb * BLOCK), np.uint8)
        x[:, :D] = index.exact_photo(p)[classes]
        x = x.reshape(len(classes), nb, BLOCK)
        lanes = np.cumsum(q * x.astype(np.float32), axis=1, dtype=np.float32)[:, -1]  # lane by lane, block order
        dot = _reduce64(lanes).astype(np.float64)
        sq = (x.astype(np.int64) ** 2).sum(axis=(1, 2)).astype(np.float64)
        scale = 1.0 / 255.0
        parts = (1.0 / lam) * qnorm2 + (lam * (scale * scale) * sq - 2.0 * scale * dot)
        out.append((classes.astype(np.int32), parts))
    return out


def query_rows(index, query: Query) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(classes int64 (E,), q float32 (E, D), ||q_c||^2 float64 (E,)): the query's class maps under ``index``'s
    ranking for the classes it compares, as the core makes them for exact distances (``make_dense_query``): a
    photo's maps reweighted by the class prior (float32, class by class), drawn pixels one-hot."""
    kind, probs, labels = query.resolve(index.num_classes, index.size)
    C, D = index.num_classes, index.dim
    if kind == SKETCH:
        classes = np.unique(labels[labels >= 0]).astype(np.int64)
        rows = (labels[None, :] == classes[:, None]).astype(np.float32)
        return classes, rows, rows.sum(axis=1, dtype=np.float64)
    w = index.class_weights
    v = np.array(probs, np.float32)
    if w is not None:
        z = np.zeros(D, np.float32)
        for c in range(C):
            z += np.float32(w[c]) * v[c]
        inv = np.zeros(D, np.float32)
        np.divide(np.float32(1.0), z, out=inv, where=z > 0)
        v = (w.astype(np.float32)[:, None] * v) * inv[None, :]
    if kind != IMAGE:
        drawn = labels >= 0
        v[:, drawn] = (labels[drawn][None, :] == np.arange(C)[:, None]).astype(np.float32)
    return np.arange(C, dtype=np.int64), v, _squared_norms(v)


def _reduce64(a: np.ndarray) -> np.ndarray:
    """The core's fixed reduction of 64 float32 lanes (``reduce64`` in kernels_generic.hpp), row by row."""
    r = (a[:, 0:16] + a[:, 16:32]) + (a[:, 32:48] + a[:, 48:64])
    t = r[:, 0:8] + r[:, 8:16]
    return ((t[:, 0] + t[:, 1]) + (t[:, 2] + t[:, 3])) + ((t[:, 4] + t[:, 5]) + (t[:, 6] + t[:, 7]))


def _squared_norms(v: np.ndarray) -> np.ndarray:
    """||v_c||^2 per row as the core's ``squared_norm``: per chunk of 512 values 8 float32 lanes, summed in double."""
    E, D = v.shape
    out = np.zeros(E, np.float64)
    for j0 in range(0, D, 512):
        chunk = v[:, j0 : min(D, j0 + 512)]
        m = chunk.shape[1] // 8 * 8
        sq = chunk * chunk
        acc = np.zeros((E, 8), np.float32)
        if m:
            acc = np.cumsum(sq[:, :m].reshape(E, m // 8, 8), axis=1, dtype=np.float32)[:, -1].copy()
        for j in range(m, chunk.shape[1]):
            acc[:, 0] += sq[:, j]
        s = ((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])) + ((acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7]))
        out += s.astype(np.float64)
    return out
