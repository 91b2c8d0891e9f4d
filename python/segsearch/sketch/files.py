"""Sketch files: read and write the PNG label maps people draw, and sketches from class boxes.

Two file conventions are read (any size; the search resizes to the index's n x n, nearest neighbour):

* single-channel PNG (mode L, I;16 or I): pixel value 0 = unspecified, value v >= 1 = class v - 1 of the
  index's class list (``segsearch classes INDEX_DIR`` prints the values);
* RGB(A) PNG in the index's palette, as the sketch tool saves it: black (and transparent) = unspecified,
  each class colour = that class. Colours outside the palette are an error (draw without anti-aliasing).

In memory a sketch is an int32 label map with -1 = unspecified and 0..C-1 = class.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["class_index", "read_sketch", "save_sketch", "sketch_from_boxes"]


def read_sketch(file, palette: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Label map int32 (h, w) of a sketch PNG (path or PIL image); -1 = unspecified."""
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
            raise ValueError(f"{name} has pixel value {top} (class {top - 1}) but the index has {C} classes "
                             f"(values 1..{C}; 0 = unspecified); see 'segsearch classes INDEX_DIR'")
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
            "('segsearch classes INDEX_DIR' lists them) or save a single-channel label PNG")
    labels = order[pos].astype(np.int32)
    labels[unspecified] = -1
    return labels


def save_sketch(path, labels, palette: np.ndarray) -> None:
    """Write a label map (-1 = unspecified) as an RGB PNG in ``palette``, black = unspecified (atomically)."""
    from ..network.palette import colorize
    from ..engine.storage import atomic_write

    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"a sketch is a 2-D label map; got shape {lab.shape}")
    with atomic_write(path) as f:
        Image.fromarray(colorize(lab, np.asarray(palette, np.uint8))).save(f, format="PNG")


def class_index(name: str, classes: Sequence[str]) -> int:
    """Index of a class given by name (case-insensitive) or by number; ValueError naming close matches."""
    text = name.strip()
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    near = difflib.get_close_matches(text.lower(), lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(classes[lowered.index(m)]) for m in near)}?" if near else ""
    raise ValueError(f"unknown class name {name!r}{hint} ('segsearch classes INDEX_DIR' lists the classes)")


def sketch_from_boxes(boxes, classes: Sequence[str], size: int) -> np.ndarray:
    """A size x size sketch from ``[(class name, (x0, y0, x1, y1)), ...]``, boxes in fractions of the canvas
    (0,0 = top left, 1,1 = bottom right); later boxes paint over earlier ones."""
    lab = np.full((size, size), -1, np.int32)
    for name, box in boxes:
        c = class_index(name, classes)
        try:
            x0, y0, x1, y1 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ValueError(f"box for {name!r} must be four numbers x0,y0,x1,y1; got {box!r}") from None
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"box for {name!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                             f"(fractions of the canvas); got {x0},{y0},{x1},{y1}")
        r0, r1 = round(y0 * size), max(round(y1 * size), round(y0 * size) + 1)
        c0, c1 = round(x0 * size), max(round(x1 * size), round(x0 * size) + 1)
        lab[r0:r1, c0:c1] = c
    return lab


def _rgb_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
