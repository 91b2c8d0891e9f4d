"""Synthetic softmax maps shaped like real segmentation output, for tests and benchmarks.

Each image has a few dominant classes (2 to 5 by default, drawn from a long-tailed class frequency, like
'sky' or 'road' being far more common than 'horse'), each a smooth blob made of 1-3 Gaussians placed
around a class-specific preferred position (sky high, road low). Logits are turned into probabilities by
a softmax over all C classes, so absent classes get small but nonzero values everywhere, as a real
network's softmax does.
"""

from __future__ import annotations

import numpy as np


def class_priors(num_classes: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Per-class frequency (sums to 1, long-tailed) and preferred blob centre (C, 2) in [0, 1]^2."""
    rng = np.random.default_rng(seed)
    freq = 1.0 / (np.arange(num_classes) + 2.0) ** 0.9
    freq /= freq.sum()
    centres = rng.uniform(0.15, 0.85, size=(num_classes, 2))
    return freq, centres


def synthetic_probs(
    n_images: int,
    num_classes: int,
    size: int = 64,
    *,
    seed: int = 0,
    present: tuple[int, int] = (2, 5),
    sharpness: float = 8.0,
    absent_logit: float = -2.0,
) -> np.ndarray:
    """float32 (N, C, size, size) probability maps (per-pixel sums are 1)."""
    if num_classes < present[1]:
        present = (min(present[0], num_classes), num_classes)
    rng = np.random.default_rng(seed)
    freq, centres = class_priors(num_classes)
    N, C, n = n_images, num_classes, size
    out = np.empty((N, C, n, n), np.float32)
    yy, xx = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    for i in range(N):
        m = int(rng.integers(present[0], present[1] + 1))
        cls = rng.choice(C, size=m, replace=False, p=freq)
        logits = np.empty((m, n, n), np.float64)
        for j, c in enumerate(cls):
            field = np.zeros((n, n))
            for _ in range(int(rng.integers(1, 4))):
                cy, cx = np.clip(centres[c] + rng.normal(0, 0.2, 2), 0, 1)
                sy, sx = rng.uniform(0.08, 0.35, 2)
                field += rng.uniform(0.5, 1.0) * np.exp(-0.5 * (((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2))
            logits[j] = field + 1e-6
        # Every pixel belongs mostly to the class whose blob is strongest there, as in a real label map.
        logits = sharpness * logits / logits.max(0, keepdims=True) + rng.normal(0, 0.2, size=(m, 1, 1))
        # softmax over the m present classes and C - m absent ones sharing absent_logit
        top = np.maximum(logits.max(0), absent_logit)
        e = np.exp(logits - top)
        e_abs = np.exp(absent_logit - top)
        z = e.sum(0) + (C - m) * e_abs
        out[i] = (e_abs / z)[None]
        out[i, cls] = e / z
    return out


def synthetic_codes(
    n_images: int,
    num_classes: int,
    n_centroids: int = 256,
    *,
    seed: int = 0,
    present_fraction: float = 0.06,
    layout: str = "CN",
) -> np.ndarray:
    """uint8 codes shaped like real PQ codes: per class, code 0 (the 'absent' centroid) for most images,
    a random other code where the class is present. ``layout='CN'`` returns a C-contiguous (C, N) array,
    ``'NC'`` an (N, C) one. Made directly, for sizes whose maps would not fit in memory."""
    rng = np.random.default_rng(seed)
    freq, _ = class_priors(num_classes)
    p_present = np.clip(freq / freq.mean() * present_fraction, 0, 0.9)
    out = np.zeros((num_classes, n_images), np.uint8)
    step = 1 << 22
    for c in range(num_classes):
        for s in range(0, n_images, step):
            e = min(n_images, s + step)
            hit = rng.random(e - s) < p_present[c]
            out[c, s:e][hit] = rng.integers(1, n_centroids, int(hit.sum()), dtype=np.uint8) if n_centroids > 1 else 0
    return out if layout == "CN" else np.ascontiguousarray(out.T)
