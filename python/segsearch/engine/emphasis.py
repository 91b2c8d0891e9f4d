"""Emphasising a class (``Query.emphasized``, ``PhotoIndex.search(weights=)``, ``segsearch search --emphasize``).

A photo query finds layouts, not objects: a bus covering 3% of the query photo weighs little against the street
around it, and plain L2 on the bus's own map does not help, since two photos' buses rarely cover the same pixels
(||q - x||^2 of two small maps that do not overlap exceeds ||q||^2: a photo with no bus at all is nearer). So an
emphasised class c adds to the distance a term that rewards the class being *there, near where the query has it*,
whatever its exact pixels: a spatial pyramid match of the class's map. With Q and X the sums of the query's and the
photo's class-c map (under the index's ranking: reweighted by the class prior for "balanced") over the cells of a
1 x 1, 2 x 2 and 4 x 4 grid, the photo *covers*

    cov_c = mean over the three grids of  sum_cells min(X, Q) / sum_cells Q          (in [0, 1])

of the query's class c (at every scale: the whole photo, its quarters, its sixteenths), and the term is

    E_c = w_c * S * (1 - cov_c)

with w_c the class's weight and S = sum_c' ||q_c'||^2 over the classes the query compares (the query's own
size in the distance's units, so a weight means the same for a photo or a sketch query): a photo without the
class is pushed back by w_c * S, one that has at least as much of it in the same cells not at all. The weight
:data:`DEFAULT_WEIGHT` and the grids were measured (``python bench/refine.py``: nDCG@10 and hits@5 of
photo queries for an object class, relevant photos the others that show it).

The term is a function of the photo's class-c map alone, so it is exact where the rest is: a PQ search adds it to
the lookup table (E_c of each of class c's centroids: the scan costs the same), a re-rank or an exact search adds
E_c of each candidate's exact maps to its exact distance, and :mod:`segsearch.engine.explain` adds it to class c's
part (the parts still add up to the distance). The query must have the class: at least :data:`MIN_QUERY_SHARE`
of its pixels' mass for a photo, drawn pixels for a sketch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .checks import class_items
from .query import Query, query_rows

__all__ = [
    "DEFAULT_WEIGHT",
    "GRIDS",
    "MIN_QUERY_SHARE",
    "Emphasis",
    "check_reads_exact_maps",
    "check_weights",
    "coverage",
    "emphasis_of",
]

#: The weight of ``--emphasize CLASS`` without one (measured: see the module docstring and docs/cli.md).
DEFAULT_WEIGHT = 6.0
#: The grids (cells per side) the coverage is averaged over.
GRIDS = (1, 2, 4)
#: The least mass (a fraction of the pixels) of an emphasised class in a query photo.
MIN_QUERY_SHARE = 0.001


def check_weights(weights, class_names) -> dict[int, float]:
    """``weights`` as {class number: weight}: a dict {class: weight} or a list of classes (each with
    :data:`DEFAULT_WEIGHT`), classes by name (any case) or number, weights numbers > 0; ValueError (one line, naming
    close class names) for bad input."""
    out: dict[int, float] = {}
    for c, w in class_items(weights, class_names, DEFAULT_WEIGHT, "weights", "{class name: weight}"):
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not (0 < float(w) < math.inf):
            raise ValueError(
                f"weights: the weight of {class_names[c]!r} must be a number > 0 (default {DEFAULT_WEIGHT:g}); "
                f"got {w!r}"
            )
        if c in out:
            raise ValueError(f"weights: {class_names[c]!r} is given twice; give each class once")
        out[c] = float(w)
    return out


def cell_ids(size: int) -> np.ndarray:
    """The cell of the finest grid (4 x 4) of each of the n * n pixels, int64 (n * n,), row-major. A pixel of row r
    lies in cell row floor(4 r / n); the coarser grids' cells are unions of these (floor(floor(4 r / n) / 2) =
    floor(2 r / n))."""
    g = GRIDS[-1]
    r = np.arange(size) * g // size
    return (r[:, None] * g + r[None, :]).reshape(-1).astype(np.int64)


def coverage(x_cells: np.ndarray, q_cells: np.ndarray) -> np.ndarray:
    """cov (P,) float64 of photos' class sums over the finest grid's cells ``x_cells`` (P, 16) against the query's
    ``q_cells`` (16,) (sum > 0): the mean over :data:`GRIDS` of sum min(X, Q) / sum Q."""
    x = np.asarray(x_cells, np.float64)
    q = np.asarray(q_cells, np.float64)
    total = q.sum()
    out = np.zeros(len(x))
    g = GRIDS[-1]
    for grid in GRIDS:
        f = g // grid
        xs = x.reshape(len(x), grid, f, grid, f).sum(axis=(2, 4)).reshape(len(x), grid * grid)  # 0 photos too
        qs = q.reshape(grid, f, grid, f).sum(axis=(1, 3)).reshape(-1)
        out += np.minimum(xs, qs[None, :]).sum(axis=1) / total
    return out / len(GRIDS)


class Emphasis:
    """A query's emphasis, made ready for an index: per emphasised class its weight and the query's cell sums, and
    S (see the module docstring). :meth:`terms` gives E_c of photos' class-c maps."""

    def __init__(self, index, query: Query):
        classes, rows, qnorm2 = query_rows(index, query)
        C, D = index.num_classes, index.dim
        names = index.class_names or [str(c) for c in range(C)]
        self.cells = cell_ids(index.size)
        self.scale = float(qnorm2.sum())
        self.classes: list[int] = []
        self.weights: list[float] = []
        self.q_cells: list[np.ndarray] = []
        row_of = {int(c): i for i, c in enumerate(classes.tolist())}
        for c, w in query.weights:
            if c >= C:
                raise ValueError(f"the emphasised class {c} is not a class of this index (0..{C - 1})")
            if c not in row_of:
                raise ValueError(
                    f"the sketch does not draw {names[c]!r}, so it cannot be emphasised; draw it, or give a photo"
                )
            q = np.bincount(self.cells, weights=rows[row_of[c]].astype(np.float64), minlength=16)
            if q.sum() < MIN_QUERY_SHARE * D:
                raise ValueError(
                    f"the query shows almost no {names[c]!r} (under {MIN_QUERY_SHARE:.1%} of it), so it cannot be "
                    "emphasised; emphasise a class the query shows, or draw it"
                )
            self.classes.append(c)
            self.weights.append(float(w))
            self.q_cells.append(q)

    def terms(self, j: int, x_cells: np.ndarray) -> np.ndarray:
        """E_c (P,) float64 of the ``j``-th emphasised class, for photos whose class map sums over the finest grid's
        cells are ``x_cells`` (P, 16) (in the map's units: bytes / 255)."""
        return self.weights[j] * self.scale * (1.0 - coverage(x_cells, self.q_cells[j]))

    def lut_terms(self, index, j: int) -> np.ndarray:
        """E_c (K,) float64 of each centroid of the ``j``-th emphasised class."""
        c = self.classes[j]
        cb = index.codebook_u8
        if cb is not None:
            a = np.asarray(cb[c], np.float64).reshape(index.n_centroids, -1) / 255.0
        else:
            a = np.asarray(index.codebook[c], np.float64).reshape(index.n_centroids, -1)
        x = np.zeros((index.n_centroids, 16))
        for cell in range(16):
            x[:, cell] = a[:, self.cells == cell].sum(axis=1)
        return self.terms(j, x)

    def add_to_lut(self, index, lut: np.ndarray) -> None:
        """Add E_c to lookup table rows ``lut`` (C, K) float32, in place, for each emphasised class c (as float64
        sums rounded once to float32: :func:`segsearch.engine.explain.explain` reads these entries back)."""
        for j, c in enumerate(self.classes):
            lut[c] = (lut[c].astype(np.float64) + self.lut_terms(index, j)).astype(np.float32)

    def exact_terms(self, index, positions) -> np.ndarray:
        """E (len(self.classes), P) float64 of the photos at ``positions`` from their exact maps (an index that
        keeps them, searched in this process)."""
        pos = np.asarray(positions, np.int64).reshape(-1)
        check_reads_exact_maps(index)
        if not index.keep_exact:
            raise ValueError("this index keeps no exact maps: search with rerank=0")
        out = np.zeros((len(self.classes), len(pos)))
        for j, c in enumerate(self.classes):
            out[j] = self.terms(j, index.exact_cell_sums(pos, c))
        return out


def check_reads_exact_maps(index) -> None:
    """A ValueError unless ``index`` reads its photos' exact maps in this process (a search on Ray does not), as
    an emphasis with re-ranking needs."""
    if not hasattr(index, "exact_cell_sums"):
        raise ValueError(
            "emphasising a class with re-ranking needs the photos' exact maps, which a search on Ray does not "
            "read here; search with rerank=0 (--rerank 0)"
        )


def emphasis_of(index, query: Query) -> Emphasis | None:
    """The :class:`Emphasis` of ``query`` against ``index``, or None for a query without weights."""
    return Emphasis(index, query) if query.weights else None
