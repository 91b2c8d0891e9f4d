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

A class the query emphasises (:mod:`segsearch.engine.emphasis`) has its emphasis term in its part: in the LUT
entry for the codes, added from the exact maps for exact distances, as the search adds it.

The terms are >= 0 (an exact one may be a rounding error below 0 where the photo's map equals the query's).
"""

from __future__ import annotations

import numpy as np

from .checks import check_eps
from .emphasis import emphasis_of
from .exact_maps import BLOCK, blocks_per_map
from .query import Query, query_rows
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
    emphasis = emphasis_of(index, query)
    if emphasis is not None:  # each emphasised class's term, from the exact maps, as the search adds it
        terms = emphasis.exact_terms(index, pos)
        row = {int(c): i for i, c in enumerate(classes.tolist())}
        for j, c in enumerate(emphasis.classes):
            for i, (_, parts) in enumerate(out):
                parts[row[c]] += terms[j, i]
    return out


def _reduce64(a: np.ndarray) -> np.ndarray:
    """The core's fixed reduction of 64 float32 lanes (``reduce64`` in kernels_generic.hpp), row by row."""
    r = (a[:, 0:16] + a[:, 16:32]) + (a[:, 32:48] + a[:, 48:64])
    t = r[:, 0:8] + r[:, 8:16]
    return ((t[:, 0] + t[:, 1]) + (t[:, 2] + t[:, 3])) + ((t[:, 4] + t[:, 5]) + (t[:, 6] + t[:, 7]))
