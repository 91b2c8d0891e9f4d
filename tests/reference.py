"""Plain numpy references of the method's distances, written straight from the equations.

Nothing here reads the package's definitions: the query vectors are built from the README's table (drawn
pixels one-hot, undrawn pixels unspecified; drawn pixels override the photo) and the rankings' constants are
the README's (``RANKING_PARAMS``), not the index's."""

from __future__ import annotations

import numpy as np

#: (prior power a, photo weight lam) of each named ranking, as the README states them: "balanced" divides the
#: maps by the class prior to the power 1/4 and weighs a photo's own mass by 1/2; "l2" is plain squared L2.
RANKING_PARAMS = {"balanced": (0.25, 0.5), "l2": (0.0, 1.0)}


def ranking_params(index) -> tuple[float, float]:
    """(a, lam) of ``index``'s ranking: the README's constants for a named ranking, a custom Ranking's own."""
    r = index.ranking
    return RANKING_PARAMS.get(r.name, (r.prior_power, r.photo_weight))


def query_vectors(kind: str, probs, labels, C: int, D: int):
    """(classes summed, q (C, D) float64) for a query kind: 'image', 'sketch' or 'image_and_sketch'.

    image: q_c = p_c, all classes. sketch: q_c = 1 where the sketch draws c, else 0; only the drawn classes
    are summed (undrawn pixels are unspecified). image_and_sketch: drawn pixels one-hot, undrawn ones p_c."""
    if kind == "image":
        return np.arange(C), np.asarray(probs, np.float64).reshape(C, D)
    lab = np.asarray(labels).reshape(D)
    drawn = lab >= 0
    one_hot = (lab[None, :] == np.arange(C)[:, None]).astype(np.float64)  # (C, D); 0 for every class where -1
    if kind == "sketch":
        return np.unique(lab[drawn]), one_hot
    photo = np.asarray(probs, np.float64).reshape(C, D)
    return np.arange(C), np.where(drawn[None, :], one_hot, photo)


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
    (the paper's), or under ``index``'s ranking (constants from ``ranking_params``): the query photo reweighted
    by the class prior, then per class lam ||x_c - q_c / lam||^2 = ||q_c||^2 / lam - 2 q_c.x_c + lam ||x_c||^2,
    lam = the photo weight."""
    N, C, D = maps.shape
    power, lam = (0.0, 1.0) if index is None else ranking_params(index)
    if power and probs is not None:
        probs = reweighted(np.asarray(probs).reshape(C, D), index.class_prior, power, 0)
    cls, q = query_vectors(kind, probs, labels, C, D)
    x = maps[:, cls, :].astype(np.float64)
    qc = q[None, cls, :]
    return (qc * qc).sum(axis=(1, 2)) / lam - 2.0 * (qc * x).sum(axis=(1, 2)) + lam * (x * x).sum(axis=(1, 2))


def adc_maps(codebook: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Reconstruction (N, C, D) of each image from codebook (C, K, n, n) and codes (N, C)."""
    C, K = codebook.shape[:2]
    cb = codebook.reshape(C, K, -1)
    return cb[np.arange(C)[None, :], codes.astype(np.int64)]


def exact_maps(probs: np.ndarray, index=None) -> np.ndarray:
    """What keep_exact=True stores: maps (reweighted by ``index``'s class prior if its ranking has one) quantized
    to uint8 steps of 1/255, read back as floats."""
    N, C = probs.shape[:2]
    power = 0.0 if index is None else ranking_params(index)[0]
    if power:
        probs = reweighted(probs, index.class_prior, power)
    return np.rint(probs.reshape(N, C, -1) * 255.0).clip(0, 255) / 255.0


def topk(d: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, ties to the smaller position."""
    return np.argsort(d, kind="stable")[:k]


def class_parts(kind: str, probs, labels, maps: np.ndarray, index=None) -> np.ndarray:
    """The terms of :func:`distances`, class by class: float64 (N, C), lam ||x_c - q_c / lam||^2 for the classes
    that count and 0 for the others; each row adds up to the photo's distance."""
    N, C, D = maps.shape
    power, lam = (0.0, 1.0) if index is None else ranking_params(index)
    if power and probs is not None:
        probs = reweighted(np.asarray(probs).reshape(C, D), index.class_prior, power, 0)
    cls, q = query_vectors(kind, probs, labels, C, D)
    out = np.zeros((N, C))
    x = maps[:, cls, :].astype(np.float64)
    out[:, cls] = lam * ((x - q[None, cls, :] / lam) ** 2).sum(axis=2)
    return out


def argmax_counts(maps) -> np.ndarray:
    """int64 (N, C): per photo, the pixels whose largest value over the classes is class c's (ties: the first), of
    maps (N, C, ...)."""
    m = np.asarray(maps)
    N, C = m.shape[:2]
    lab = m.reshape(N, C, -1).argmax(axis=1)
    return np.stack([(lab == c).sum(axis=1) for c in range(C)], axis=1)


#: Emphasis (docs/python-api.md, "Emphasising a class"): the grids the coverage is averaged over.
EMPHASIS_GRIDS = (1, 2, 4)
#: More / fewer like these (docs/python-api.md): Rocchio's weights of the query photo, the liked and the unliked.
ROCCHIO = (1.0, 0.75, 1.0)


def coverage(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """cov (N,) of maps x (N, n, n) against the query's map q (n, n): over each grid of g x g cells (pixel (r, c) in
    cell (floor(g r / n), floor(g c / n))), sum over the cells of min(x's sum there, q's sum there), divided by q's
    sum; the mean over the grids."""
    N, n = x.shape[0], x.shape[1]
    out = np.zeros(N)
    for g in EMPHASIS_GRIDS:
        cell = np.arange(n) * g // n
        for a in range(g):
            for b in range(g):
                sel = np.ix_(cell == a, cell == b)
                xs = x[(slice(None),) + sel].sum(axis=(1, 2)) if sel[0].size and sel[1].size else np.zeros(N)
                qs = q[sel].sum() if sel[0].size and sel[1].size else 0.0
                out += np.minimum(xs, qs)
    return out / (q.sum() * len(EMPHASIS_GRIDS))


def emphasis_parts(kind: str, probs, labels, maps: np.ndarray, weights: dict, index=None) -> np.ndarray:
    """float64 (N, C): each emphasised class's term w S (1 - cov) for database maps (N, C, D) as the index holds
    them, S = sum of ||q_c||^2 over the classes the query compares (under ``index``'s ranking), 0 elsewhere."""
    N, C, D = maps.shape
    n = int(round(D**0.5))
    power = 0.0 if index is None else ranking_params(index)[0]
    if power and probs is not None:
        probs = reweighted(np.asarray(probs).reshape(C, D), index.class_prior, power, 0)
    cls, q = query_vectors(kind, probs, labels, C, D)
    S = (q[cls] ** 2).sum()
    out = np.zeros((N, C))
    for c, w in weights.items():
        cov = coverage(maps[:, c].reshape(N, n, n).astype(np.float64), q[c].reshape(n, n))
        out[:, c] = w * S * (1.0 - cov)
    return out


def unweighted(maps: np.ndarray, index) -> np.ndarray:
    """Maps (N, C, D) as the index holds them (reweighted under a class prior) back to probabilities: divided by the
    class weights prior^-a, renormalized per pixel (a pixel without mass: uniform)."""
    m = np.asarray(maps, np.float64)
    power = ranking_params(index)[0]
    if power:
        m = m * (np.asarray(index.class_prior, np.float64) ** power)[None, :, None]
    s = m.sum(axis=1, keepdims=True)
    return np.where(s > 0, m / np.where(s > 0, s, 1), 1.0 / m.shape[1])


def rocchio(probs, liked: np.ndarray, unliked: np.ndarray) -> np.ndarray:
    """The query maps (C, D) moved toward the liked maps' mean and away from the unliked ones' (N, C, D each), from
    the photo's ``probs`` (C, D) or None: max(0, a p + b L - c U) renormalized per pixel; a pixel left with nothing
    keeps a p + b L."""
    a, b, c = ROCCHIO
    keep = np.zeros(liked.shape[1:] if len(liked) else unliked.shape[1:])
    if probs is not None:
        keep = keep + a * np.asarray(probs, np.float64)
    if len(liked):
        keep = keep + b * liked.mean(axis=0)
    moved = np.maximum(keep - c * unliked.mean(axis=0), 0.0) if len(unliked) else keep
    s = moved.sum(axis=0, keepdims=True)
    moved = np.where(s <= 1e-12, keep, moved)
    return moved / moved.sum(axis=0, keepdims=True)
