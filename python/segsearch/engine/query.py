"""Queries: a photo's probability maps, a sketch (label map), or a photo with a partial sketch over it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .._core import QueryKind
from .checks import as_float32, as_numpy, check_class_weights
from .ranking import reweight

# Query kinds: the core's enum.
IMAGE, SKETCH, IMAGE_SKETCH = QueryKind.image, QueryKind.sketch, QueryKind.image_and_sketch
_KIND_NAMES = {IMAGE: "image", SKETCH: "sketch", IMAGE_SKETCH: "image_and_sketch"}

#: How far per-pixel class sums may stray from 1 (float16 network outputs stay well inside this).
SUM_TOLERANCE = 1e-3


def check_probs(p, what: str = "probabilities", *, batched: bool) -> np.ndarray:
    """Validate softmax maps: float (C, n, n) or (N, C, n, n), finite, in [0, 1], summing to 1 per pixel.

    Returns a C-contiguous float32 array. Raises ValueError saying what is wrong and what to pass.
    """
    a = as_numpy(p, what)
    ndim = 4 if batched else 3
    shape_txt = "(N, C, n, n)" if batched else "(C, n, n)"
    if a.ndim != ndim:
        raise ValueError(f"{what} must have shape {shape_txt}; got an array of shape {a.shape}")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{what} maps must be square (n x n); got {a.shape[-2]} x {a.shape[-1]}")
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be a float array; got dtype {a.dtype}")
    a = as_float32(a)
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contain NaN or inf; pass the network's softmax output")
    if a.size and (a.min() < -SUM_TOLERANCE or a.max() > 1 + SUM_TOLERANCE):
        raise ValueError(
            f"{what} must lie in [0, 1] (found values from {a.min():.4g} to {a.max():.4g}); "
            "apply softmax over the class axis to the network's logits"
        )
    s = a.sum(axis=-3, dtype=np.float64)
    bad = np.abs(s - 1.0) > SUM_TOLERANCE
    if bad.any():
        where = np.unravel_index(int(np.argmax(bad)), s.shape)
        raise ValueError(
            f"{what} must sum to 1 over the classes at every pixel (softmax output); at {tuple(int(i) for i in where)} "
            f"they sum to {float(s[where]):.4g}. Apply softmax over the class axis"
        )
    return a


#: Photos :func:`check_maps` validates at a time when asked to keep the array as given: ~10 MB of float32 at C = 151,
#: n = 64, so the checks' passes (finite, range, per-pixel sums) run in the cache. 256 at a time was 1.5-4x slower on
#: the development VM (0.23-0.62 s against 0.09-0.17 s for 256 float16 photos).
CHECK_CHUNK = 4


def check_maps(probs, num_classes: int, size: int, *, chunk: int | None = None) -> np.ndarray:
    """Validated maps (N, C, n, n) for an index of ``num_classes`` maps of ``size`` x ``size``. ``chunk``: validate
    that many images at a time and return the array as given (float16 or float32, possibly memory-mapped) instead
    of one float32 copy of the whole batch."""
    a = as_numpy(probs, "probs")
    if a.ndim != 4 or a.shape[1:] != (num_classes, size, size):
        raise ValueError(f"probs must have shape (N, {num_classes}, {size}, {size}) for this index; got {a.shape}")
    if chunk is None or a.dtype not in (np.float16, np.float32):
        return check_probs(a, "probs", batched=True)
    for s in range(0, len(a), chunk):
        check_probs(a[s : s + chunk], "probs", batched=True)
    return a


def check_labels(labels, what: str = "sketch") -> np.ndarray:
    """Validate a label map: integer (h, w), -1 = unspecified, 0.. = class. Returns int32."""
    a = as_numpy(labels, what)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D label map (h, w); got an array of shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be an integer array (-1 = unspecified, 0..C-1 = class); got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    if a.min() < -1:
        raise ValueError(f"{what} has label {int(a.min())}; use -1 for unspecified pixels and 0..C-1 for classes")
    if a.max() > np.iinfo(np.int32).max:
        raise ValueError(f"{what} has label {int(a.max())}, far beyond any class list")
    return np.ascontiguousarray(a, dtype=np.int32)


def resize_nearest(labels: np.ndarray, n: int) -> np.ndarray:
    """Resize an (h, w) label map to (n, n) by nearest neighbour (pixel centres)."""
    h, w = labels.shape
    if (h, w) == (n, n):
        return labels
    rows = np.minimum(((np.arange(n) + 0.5) * h / n).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(n) + 0.5) * w / n).astype(np.int64), w - 1)
    return np.ascontiguousarray(labels[np.ix_(rows, cols)])


@dataclass(frozen=True, eq=False)
class Query:
    """A search query. Build it with :meth:`image`, :meth:`sketch` or :meth:`image_and_sketch`; :meth:`emphasized`
    makes some classes count more (``weights``: ((class, weight), ...), by class; see
    :mod:`segsearch.engine.emphasis`)."""

    kind: QueryKind
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None
    weights: tuple[tuple[int, float], ...] = ()

    @classmethod
    def image(cls, p) -> Query:
        """Query by a photo: its softmax maps ``p`` of shape (C, n, n). Distance sums all classes."""
        return cls(IMAGE, probs=check_probs(p, "query probabilities", batched=False))

    @classmethod
    def sketch(cls, labels) -> Query:
        """Query by a sketch: an int label map (h, w), -1 = unspecified, 0..C-1 = class.

        Only the drawn classes count. A sketch of another size than the index's maps is resized
        (nearest neighbour) at search time.
        """
        lab = check_labels(labels, "sketch")
        if (lab < 0).all():
            raise ValueError("the sketch is empty: every pixel is -1 (unspecified); draw at least one class")
        return cls(SKETCH, labels=lab)

    @classmethod
    def image_and_sketch(cls, p, labels) -> Query:
        """Query by a photo with a partial sketch drawn over it: drawn pixels override the photo's maps.

        ``p``: softmax maps (C, n, n); ``labels``: int (h, w), -1 where the photo's maps are kept.
        """
        probs = check_probs(p, "query probabilities", batched=False)
        return cls(IMAGE_SKETCH, probs=probs, labels=check_labels(labels, "sketch"))

    def emphasized(self, weights) -> Query:
        """This query with classes emphasised: ``weights`` {class number: weight > 0} (or (class, weight) pairs);
        a search then rewards photos that show each class where this query has it (see
        :mod:`segsearch.engine.emphasis`). An empty ``weights`` gives the query without emphasis."""
        return replace(self, weights=check_class_weights(weights))

    @property
    def kind_name(self) -> str:
        return _KIND_NAMES[self.kind]

    def resolve(self, num_classes: int, size: int) -> tuple[QueryKind, np.ndarray | None, np.ndarray | None]:
        """The query as the core wants it for an index of C classes and n x n maps:
        (kind, probs (C, n*n) float32 or None, labels (n*n,) int32 or None)."""
        probs = labels = None
        if self.probs is not None:
            c, h, w = self.probs.shape
            if c != num_classes:
                raise ValueError(f"the query has {c} class maps but the index has {num_classes} classes")
            if h != size:
                raise ValueError(
                    f"the query maps are {h} x {w} but the index uses {size} x {size}; segment the photo at size={size}"
                )
            probs = self.probs.reshape(num_classes, size * size)
        if self.labels is not None:
            lab = resize_nearest(self.labels, size)
            if lab.max() >= num_classes:
                raise ValueError(
                    f"the sketch uses class {int(lab.max())} but the index has classes 0..{num_classes - 1}"
                )
            if self.kind == SKETCH and (lab < 0).all():
                raise ValueError("the sketch is empty after resizing to the index's map size; draw larger strokes")
            labels = np.ascontiguousarray(lab.reshape(-1))
        return self.kind, probs, labels


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
    if w is not None:  # the ranking's own reweighting of one photo's maps (the same floats)
        v = reweight(v.reshape(1, C, index.size, index.size), w).reshape(C, D)
    if kind != IMAGE:
        drawn = labels >= 0
        v[:, drawn] = (labels[drawn][None, :] == np.arange(C)[:, None]).astype(np.float32)
    return np.arange(C, dtype=np.int64), v, _squared_norms(v)


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
