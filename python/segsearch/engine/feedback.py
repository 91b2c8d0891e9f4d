"""More / fewer like these (``PhotoIndex.search(like=, unlike=)``, ``segsearch search --like ID --unlike ID``).

The query moves toward the maps of the photos liked and away from those of the photos unliked (Rocchio's relevance
feedback): with p the query photo's maps (if any), L and U the means of the liked and the unliked photos' maps,

    p' = normalize(max(0, ALPHA p + BETA L - GAMMA U))          (per pixel: sum over the classes = 1)

and p' is searched as a photo query (drawn pixels of a sketch still override it). The photos' maps come from the
index itself, never from the photos (nothing is segmented again): their exact maps where the index keeps them,
else the centroids their codes name; both are stored reweighted by the class prior under the "balanced" ranking,
which is undone here (divided by the class weights, renormalized per pixel), so p' is a photo's probabilities like
any query photo's. A pixel where nothing is left after subtracting U keeps ALPHA p + BETA L. The constants were
measured with ``python bench/refine.py`` (docs/cli.md, "More / fewer like these").
"""

from __future__ import annotations

import numpy as np

from .sharded import codes_at

__all__ = ["ALPHA", "BETA", "GAMMA", "check_feedback", "moved_probs", "photo_probs"]

#: Rocchio's weights of the query photo, the liked photos' mean and the unliked photos' mean.
ALPHA, BETA, GAMMA = 1.0, 0.75, 1.0


def check_feedback(index, like, unlike) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the liked photos, of the unliked ones), int64, of ``like`` / ``unlike`` (lists of ids, or None);
    a one-line ValueError for anything else, an id the index does not hold, or an id in both."""
    lists = []
    for name, ids in (("like", like), ("unlike", unlike)):
        if ids is None:
            ids = []
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
            raise ValueError(f"{name} must be a list of photo ids (as searches return them); got {type(ids).__name__}")
        for i in ids:
            if i not in index:
                raise ValueError(f"{name}: photo {i!r} is not in the index; give ids that searches return")
        lists.append(list(ids))
    unliked = set(lists[1])
    both = [i for i in lists[0] if i in unliked]
    if both:
        raise ValueError(f"photo {both[0]!r} is both liked and unliked; give it once")
    return tuple(np.unique(index.positions(ids)) if ids else np.zeros(0, np.int64) for ids in lists)


def photo_probs(index, positions) -> np.ndarray:
    """float32 (P, C, n, n): the maps of the photos at ``positions`` as probabilities (per pixel summing to 1), from
    the index: the exact maps where it keeps them (and reads them in this process), else the decoded codes; the
    class prior's reweighting undone. A pixel with no mass at all is uniform."""
    pos = np.asarray(positions, np.int64).reshape(-1)
    C, n = index.num_classes, index.size
    if not len(pos):
        return np.zeros((0, C, n, n), np.float32)
    if index.keep_exact and hasattr(index, "exact_photo"):
        x = np.stack([index.exact_photo(int(p)).astype(np.float32) for p in pos.tolist()]) / np.float32(255.0)
    else:
        x = index.decode(codes_at(index, pos)).reshape(len(pos), C, n * n)
    w = index.class_weights
    if w is not None:
        x = x / np.asarray(w, np.float32)[None, :, None]
    s = x.sum(axis=1, keepdims=True)
    x = np.where(s > 0, x / np.where(s > 0, s, 1), np.float32(1.0 / C))
    return x.reshape(len(pos), C, n, n).astype(np.float32)


def moved_probs(probs, liked: np.ndarray, unliked: np.ndarray) -> np.ndarray:
    """The query's maps float32 (C, n, n) moved toward ``liked`` and away from ``unliked`` (maps (P, C, n, n), as
    :func:`photo_probs` gives) from the query photo's ``probs`` (C, n, n), or None when there is none (then
    ``liked`` must not be empty)."""
    keep = np.zeros(liked.shape[1:], np.float64) if probs is None else ALPHA * np.asarray(probs, np.float64)
    if len(liked):
        keep = keep + BETA * liked.astype(np.float64).mean(axis=0)
    moved = keep
    if len(unliked):
        moved = np.maximum(keep - GAMMA * unliked.astype(np.float64).mean(axis=0), 0.0)
    s = moved.sum(axis=0, keepdims=True)
    empty = s <= 1e-12
    moved = np.where(empty, keep, moved)
    s = moved.sum(axis=0, keepdims=True)
    return (moved / s).astype(np.float32)
