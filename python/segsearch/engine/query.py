"""Queries: a photo's probability maps, a sketch (label map), or a photo with a partial sketch over it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import QueryKind
from .checks import as_numpy

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
    a = np.ascontiguousarray(a, dtype=np.float32)
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
    """A search query. Build it with :meth:`image`, :meth:`sketch` or :meth:`image_and_sketch`."""

    kind: QueryKind
    probs: np.ndarray | None = None
    labels: np.ndarray | None = None

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
