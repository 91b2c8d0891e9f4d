"""Class colours: a fixed, distinct RGB colour per class (torch-free, shared by the segmenter, sheets and GUI)."""
from __future__ import annotations

import colorsys

import numpy as np

__all__ = ["colorize", "make_palette"]


def make_palette(n: int = 151) -> np.ndarray:
    """A fixed, distinct RGB colour per class, uint8 (n, 3); class 0 ('others' in ADE20K) is dark grey.

    No class is pure black, which sketch files reserve for unspecified pixels, so every class survives a
    saved sketch.
    Hues follow the golden-ratio sequence; saturation and value cycle through three levels so that
    neighbouring hues also differ in brightness.
    """
    colors = [(64, 64, 64)]
    for i in range(1, n):
        h = (i * 0.618033988749895) % 1.0
        s = (1.0, 0.65, 0.85)[i % 3]
        v = (0.95, 0.75, 0.55)[(i // 3) % 3]
        colors.append(tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v)))
    return np.asarray(colors, dtype=np.uint8)


def colorize(labels, palette: np.ndarray, unspecified=(0, 0, 0)) -> np.ndarray:
    """RGB uint8 (h, w, 3) picture of a label map; labels < 0 (unspecified) get ``unspecified``."""
    lab = np.asarray(labels)
    out = palette[np.clip(lab, 0, len(palette) - 1)]
    out[lab < 0] = unspecified
    return out
