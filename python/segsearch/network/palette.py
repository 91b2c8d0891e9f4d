"""Class colours: a fixed, distinct RGB colour per class (torch-free, shared by the segmenter, sheets and GUI), and
label maps as PNGs in those colours (sketch files, :func:`read_sketch` / :func:`save_sketch`).

Two sketch file conventions are read (any size; the search resizes to the index's n x n, nearest neighbour):

* single-channel PNG (mode L, I;16 or I): pixel value 0 = unspecified, value v >= 1 = class v - 1 of the
  index's class list (``segsearch classes INDEX_DIR`` prints the values);
* RGB(A) PNG in the index's palette, as the sketch tool saves it: black (and transparent) = unspecified,
  each class colour = that class. Colours outside the palette are an error (draw without anti-aliasing).

In memory a sketch is an int32 label map with -1 = unspecified and 0..C-1 = class.
"""

from __future__ import annotations

import colorsys
import os

import numpy as np

__all__ = ["colorize", "make_palette", "read_sketch", "save_sketch"]


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


def read_sketch(file, palette: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Label map int32 (h, w) of a sketch PNG (path or PIL image); -1 = unspecified."""
    from PIL import Image

    C = len(palette) if num_classes is None else num_classes
    name = str(file) if isinstance(file, (str, os.PathLike)) else "the sketch"
    if isinstance(file, Image.Image):
        im = file
    else:
        try:
            im = Image.open(file)
            im.load()
        except FileNotFoundError:
            raise FileNotFoundError(f"sketch file {file} does not exist") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read sketch {file}: {e}; give a PNG label map") from None
    if im.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
        v = np.asarray(im, dtype=np.int64)
        top = int(v.max()) if v.size else 0
        if top > C:
            raise ValueError(
                f"{name} has pixel value {top} (class {top - 1}) but the index has {C} classes "
                f"(values 1..{C}; 0 = unspecified); see 'segsearch classes INDEX_DIR'"
            )
        return (v - 1).astype(np.int32)
    if im.mode not in ("RGB", "RGBA", "P", "LA", "PA"):
        raise ValueError(f"{name} has image mode {im.mode}; save it as RGB or single-channel (L) PNG")
    rgba = np.asarray(im.convert("RGBA"))
    key = _rgb_key(rgba[..., :3])
    unspecified = (key == 0) | (rgba[..., 3] == 0)
    pal_key = _rgb_key(np.asarray(palette, np.uint8)[:C])
    order = np.argsort(pal_key, kind="stable")
    pos = np.clip(np.searchsorted(pal_key[order], key), 0, C - 1)
    found = pal_key[order][pos] == key
    bad = ~found & ~unspecified
    if bad.any():
        colours, counts = np.unique(key[bad], return_counts=True)
        c = int(colours[np.argmax(counts)])
        raise ValueError(
            f"{name} has {int(bad.sum())} pixels in colours that are not class colours of this index, e.g. "
            f"#{c:06x} ({int(counts.max())} pixels); draw with the palette colours and no anti-aliasing "
            "('segsearch classes INDEX_DIR' lists them) or save a single-channel label PNG"
        )
    labels = order[pos].astype(np.int32)
    labels[unspecified] = -1
    return labels


def save_sketch(path, labels, palette: np.ndarray) -> None:
    """Write a label map (-1 = unspecified) as an RGB PNG in ``palette``, black = unspecified (atomically)."""
    from PIL import Image

    from ..engine.storage import atomic_write

    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"a sketch is a 2-D label map; got shape {lab.shape}")
    with atomic_write(path) as f:
        Image.fromarray(colorize(lab, np.asarray(palette, np.uint8))).save(f, format="PNG")


def _rgb_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
