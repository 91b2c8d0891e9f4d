"""How much of each photo each class covers, for searches that leave a class out (``exclude=``).

A photo's *share* of class c is the fraction of its n x n pixels whose most likely class is c (the argmax of its
maps): what a person means by "the photo shows a car on 3% of it". An index that keeps exact maps stores each
photo's pixel counts, uint16 (C,) per photo (uint32 for maps of more than 65535 pixels), class-major as
``shares`` (C, capacity) beside the codes: 2 * C bytes a photo (302 B at C = 151). They are counted from the
photo's maps when it is added (from its exact maps for photos added by their codes), and read one class row at a
time when a search leaves that class out.

An index without them (made without exact maps, or saved before they existed) judges a share from the codes: the
mass of the class's centroid over the pixels. bench/class_shares.py measured both against the network's own maps
(CamVid, K = 16): the stored counts agree on every (photo, class) pair; the codes' estimate keeps 12 of the 2319
pairs with a share >= 3% that ``exclude`` at 1% must drop, and drops 569 of 67647 pairs under 1%.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .checks import class_items

#: The share a class must cover for ``exclude=["car"]`` to leave the photo out.
DEFAULT_EXCLUDE_SHARE = 0.01

__all__ = [
    "DEFAULT_EXCLUDE_SHARE",
    "check_exclude",
    "check_shares",
    "count_dtype",
    "shares_from_maps",
    "shares_from_blocks",
    "excluded",
]


def count_dtype(dim: int) -> np.dtype:
    """The dtype of pixel counts of maps of ``dim`` pixels: uint16, or uint32 past 65535 pixels."""
    return np.dtype(np.uint16 if dim <= np.iinfo(np.uint16).max else np.uint32)


def _counts_of_labels(lab: np.ndarray, C: int, dim: int) -> np.ndarray:
    """(N, C) pixel counts of label maps (N, D)."""
    N = len(lab)
    flat = (lab + (np.arange(N, dtype=np.int64) * C)[:, None]).reshape(-1)
    return np.bincount(flat, minlength=N * C).reshape(N, C).astype(count_dtype(dim))


def shares_from_maps(maps, *, chunk: int = 64) -> np.ndarray:
    """Pixel counts (N, C) of each class being the most likely one, of maps (N, C, n, n) (read ``chunk`` photos at
    a time; ties go to the smaller class)."""
    N, C = maps.shape[:2]
    dim = int(np.prod(maps.shape[2:]))
    out = np.zeros((N, C), count_dtype(dim))
    for s in range(0, N, chunk):
        part = np.asarray(maps[s : s + chunk]).reshape(-1, C, dim)
        out[s : s + chunk] = _counts_of_labels(np.argmax(part, axis=1), C, dim)
    return out


def shares_from_blocks(blocks, num_classes: int, dim: int, class_weights=None) -> np.ndarray:
    """Pixel counts (N, C) of each class being the most likely one, of photos kept as exact block maps
    (:class:`~segsearch.engine.exact_maps.BlockMaps`, bytes of the maps reweighted by ``class_weights`` (C,) when
    the ranking has a class prior: the weighting is undone before the argmax)."""
    N, C = blocks.n, num_classes
    out = np.zeros((N, C), count_dtype(dim))
    inv_w = None if class_weights is None else (1.0 / np.asarray(class_weights, np.float64)).astype(np.float32)
    for i in range(N):
        x = blocks.dense(i, C, dim)
        x = x if inv_w is None else x * inv_w[:, None]
        out[i] = np.bincount(np.argmax(x, axis=0), minlength=C)
    return out


def check_shares(shares, n: int, num_classes: int, dim: int) -> np.ndarray:
    """Pixel counts (n, C) given for n photos, checked (integers >= 0, each photo's adding up to ``dim``) and as
    the index stores them; ValueError otherwise."""
    a = np.asarray(shares)
    if a.shape != (n, num_classes) or a.dtype.kind not in "iu":
        raise ValueError(
            f"shares must be integer pixel counts of shape ({n}, {num_classes}) (shares_from_maps(probs)); "
            f"got {a.dtype} {a.shape}"
        )
    if n and (a.min() < 0 or (a.sum(axis=1, dtype=np.int64) != dim).any()):
        raise ValueError(f"shares must be pixel counts >= 0 adding up to n * n = {dim} for each photo")
    return a.astype(count_dtype(dim))


def check_exclude(exclude, class_names) -> list[tuple[int, float]]:
    """``exclude`` as [(class, share)]: a dict {class: share} or a sequence of classes (each with the default share
    :data:`DEFAULT_EXCLUDE_SHARE`), classes by name (any case) or number, shares in (0, 1]; a class given twice
    keeps its smallest share. ValueError (one line, naming close class names) for bad input."""
    out: dict[int, float] = {}
    for c, share in class_items(exclude, class_names, DEFAULT_EXCLUDE_SHARE, "exclude", "{class name: share}"):
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not (0 < float(share) <= 1):
            raise ValueError(
                f"exclude: the share of {class_names[c]!r} must be a number in (0, 1] (0.01 = 1% of the photo); "
                f"got {share!r}"
            )
        out[c] = min(float(share), out.get(c, math.inf))
    return sorted(out.items())


def min_count(share: float, dim: int) -> int:
    """The fewest pixels of ``dim`` that cover at least ``share`` of a photo (>= 1)."""
    return max(1, math.ceil(share * dim - 1e-9 * dim))


def excluded(snapshot, rules: list[tuple[int, float]], *, dim: int, codebook=None) -> np.ndarray:
    """bool (n,): the photos of ``snapshot`` (a :class:`~segsearch.engine.snapshot.Snapshot`) where some class of
    ``rules`` ([(class, share)], :func:`check_exclude`) covers at least its share: by the stored pixel counts, or
    for a snapshot without them, by the codes (``codebook``: the index's codebook uint8 (C, D, K) as stored, whose
    centroid masses stand in for the shares)."""
    n = snapshot.n
    out = np.zeros(n, bool)
    for c, share in rules:
        if snapshot.shares is not None:
            out |= snapshot.shares[c, :n] >= min_count(share, dim)
        else:
            cb = np.asarray(codebook[c])
            mass = cb.sum(axis=0, dtype=np.float64) / (255.0 if cb.dtype == np.uint8 else 1.0)  # (K,)
            out |= (mass >= share * dim)[snapshot.codes[c, :n]]
    return out
