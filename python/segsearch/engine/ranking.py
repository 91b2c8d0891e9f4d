"""Rankings: how an index compares a query with a photo's maps.

``"l2"`` is the paper's distance, the squared L2 distance between the maps, summed over the classes that count.

``"balanced"`` (the default) corrects two things that make plain L2 favour some photos whatever the query (*hub
photos*, see docs/rankings.md):

- **class prior**: the classes a network predicts everywhere ("wall", "sky", ...) weigh on every distance. Each
  photo's maps are divided by the database's class prior (the mean map of the training sample) to the power
  ``prior_power`` and renormalized per pixel, p'_c(j) = w_c p_c(j) / sum_c' w_c' p_c'(j), w_c = prior_c^-a
  (a logit adjustment). The index's maps are reweighted when they are encoded, a query photo's when it is
  searched, with the same weights; a drawn pixel (one-hot) is unchanged.
- **photo weight**: per class the ranking is that of ||q_c||^2 - 2 q_c.x_c + lam ||x_c||^2, with lam =
  ``photo_weight`` < 1: a photo's own mass counts less, so a photo is not near every query just for being
  unsure. The distance reported is lam ||x_c - q_c / lam||^2, the same plus ||q_c||^2 (1/lam - 1), a constant
  per query: a squared distance, >= 0 (to the query scaled by 1/lam).

Sketch queries still count only the drawn classes, and drawn pixels still override the photo in photo + sketch
queries. Both corrections cost the scan nothing (C weights applied when maps are encoded and once per query
photo; lam scales the centroid norms in the lookup table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import as_float32

#: Smallest class prior used (a class the sample never shows would get an infinite weight otherwise).
PRIOR_FLOOR = 1e-6


@dataclass(frozen=True)
class Ranking:
    """A ranking's parameters: ``prior_power`` a (0 = no class-prior correction) and ``photo_weight`` lam in
    (0, 1] (1 = squared L2)."""

    name: str
    prior_power: float
    photo_weight: float

    @property
    def uses_prior(self) -> bool:
        return self.prior_power != 0.0

    def to_json(self) -> dict:
        return {"name": self.name, "prior_power": self.prior_power, "photo_weight": self.photo_weight}


#: The rankings by name. "balanced": measured with bench/hubness.py (a = 0.25 and lam = 0.5 were picked on
#: CamVid and on COCO-MINI alike); "l2": the paper's.
RANKINGS = {"balanced": Ranking("balanced", 0.25, 0.5), "l2": Ranking("l2", 0.0, 1.0)}
DEFAULT_RANKING = "balanced"


def get_ranking(ranking) -> Ranking:
    """A :class:`Ranking` from its name ("balanced", "l2") or itself (checked)."""
    if isinstance(ranking, str):
        if ranking not in RANKINGS:
            raise ValueError(f"unknown ranking {ranking!r}; use one of: {', '.join(RANKINGS)}")
        return RANKINGS[ranking]
    if not isinstance(ranking, Ranking):
        raise ValueError(f"ranking must be one of {', '.join(map(repr, RANKINGS))} or a Ranking; got {ranking!r}")
    a, lam = ranking.prior_power, ranking.photo_weight
    if not (isinstance(a, (int, float)) and 0.0 <= a <= 4.0):
        raise ValueError(f"Ranking.prior_power must be a number in 0..4; got {a!r}")
    if not (isinstance(lam, (int, float)) and 0.0 < lam <= 1.0):
        raise ValueError(f"Ranking.photo_weight must be a number in (0, 1]; got {lam!r}")
    return Ranking(str(ranking.name), float(a), float(lam))


def ranking_from_json(obj) -> Ranking:
    """The ranking an index file records (ValueError if malformed)."""
    if not isinstance(obj, dict) or set(obj) != {"name", "prior_power", "photo_weight"}:
        raise ValueError("must be an object with name, prior_power and photo_weight")
    if not isinstance(obj["name"], str) or any(isinstance(obj[k], bool) for k in ("prior_power", "photo_weight")):
        raise ValueError("name must be a string and the parameters numbers")
    return get_ranking(Ranking(obj["name"], obj["prior_power"], obj["photo_weight"]))


def class_masses(maps, *, chunk: int = 256) -> np.ndarray:
    """Each class map's mass (its sum over the pixels), float32 (N, C), of maps (N, C, n, n) read ``chunk``
    images at a time (memory-mapped float16 maps are never copied whole)."""
    out = np.empty(maps.shape[:2], np.float32)
    for s in range(0, len(maps), chunk):
        out[s : s + chunk] = as_float32(maps[s : s + chunk]).sum(axis=(2, 3), dtype=np.float64)
    return out


def class_prior(maps=None, *, masses: np.ndarray | None = None, pixels: int | None = None) -> np.ndarray:
    """The class prior float32 (C,): the mean of maps (N, C, n, n) over images and pixels (from their
    :func:`class_masses` if given, with ``pixels`` = n * n), at least :data:`PRIOR_FLOOR`."""
    if masses is None:
        masses, pixels = class_masses(maps), maps.shape[2] * maps.shape[3]
    total = masses.sum(axis=0, dtype=np.float64)
    return np.maximum(total / max(1, len(masses) * pixels), PRIOR_FLOOR).astype(np.float32)


def class_weights(prior: np.ndarray, power: float) -> np.ndarray:
    """w_c = prior_c^-power, float32 (C,), scaled so that the largest is 1 (the reweighting ignores the scale)."""
    w = np.power(np.maximum(prior.astype(np.float64), PRIOR_FLOOR), -power)
    return (w / w.max()).astype(np.float32)


def _inverse_pixel_sums(maps, weights: np.ndarray, chunk: int = 256) -> np.ndarray:
    """1 / sum_c w_c p_c(j), float32 (N, n, n) (0 where a pixel has no mass). Summed class by class in order, so
    the result does not depend on memory layout or alignment: the same maps always give the same codes."""
    inv = np.empty((len(maps),) + tuple(maps.shape[2:]), np.float32)
    for s in range(0, len(maps), chunk):
        part = as_float32(maps[s : s + chunk])
        z = np.zeros((len(part),) + part.shape[2:], np.float32)
        for c, w in enumerate(weights.tolist()):
            z += np.float32(w) * part[:, c]
        np.divide(np.float32(1.0), z, out=inv[s : s + chunk], where=z > 0)
        inv[s : s + chunk][z <= 0] = 0.0
    return inv


def reweight(maps, weights: np.ndarray) -> np.ndarray:
    """Maps (N, C, n, n) reweighted per pixel, w_c p_c / sum_c' w_c' p_c': a new float32 array (0 where a pixel
    has no mass); the same values as :class:`Reweighted` gives."""
    inv = _inverse_pixel_sums(maps, weights)
    y = np.multiply(as_float32(maps), weights[None, :, None, None], dtype=np.float32)
    y *= inv[:, None]
    return y


class Reweighted:
    """A read-only view of maps (N, C, n, n) reweighted as :func:`reweight` does, for the codebook trainer and
    encoder, which read ``view[rows, c]`` one class at a time: only the per-pixel sums (N, n, n) are held."""

    def __init__(self, maps, weights: np.ndarray):
        self.maps, self.weights = maps, weights
        self.shape = maps.shape
        self.dtype = np.dtype(np.float32)
        self._inv_z = _inverse_pixel_sums(maps, weights)

    def __len__(self) -> int:
        return self.shape[0]

    def block(self, rows: slice) -> np.ndarray:
        """All classes of ``rows``, float32 (len, C, n, n): the values ``view[rows, c]`` gives, bit for bit."""
        x = as_float32(self.maps[rows]) * self.weights[None, :, None, None]
        return x * self._inv_z[rows][:, None]

    def __getitem__(self, key):
        rows, c = key
        if not isinstance(rows, slice) or isinstance(c, slice):
            raise TypeError("Reweighted views are read as view[rows, class]")
        x = as_float32(self.maps[rows, c]) * self.weights[c]
        return x * self._inv_z[rows]
