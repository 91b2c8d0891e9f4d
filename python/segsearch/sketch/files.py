"""Sketch files: read and write the PNG label maps people draw, and sketches from class boxes.

(:func:`read_sketch` and :func:`save_sketch` live with the palette, :mod:`segsearch.network.palette`, since
:class:`~segsearch.library.photo_index.PhotoIndex` reads sketch PNGs too; they are the same functions here.)

Two file conventions are read (any size; the search resizes to the index's n x n, nearest neighbour):

* single-channel PNG (mode L, I;16 or I): pixel value 0 = unspecified, value v >= 1 = class v - 1 of the
  index's class list (``segsearch classes INDEX_DIR`` prints the values);
* RGB(A) PNG in the index's palette, as the sketch tool saves it: black (and transparent) = unspecified,
  each class colour = that class. Colours outside the palette are an error (draw without anti-aliasing).

In memory a sketch is an int32 label map with -1 = unspecified and 0..C-1 = class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..engine.checks import class_index
from ..network.palette import read_sketch, save_sketch

__all__ = ["class_index", "draw_boxes", "read_sketch", "save_sketch", "sketch_from_boxes"]


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
            raise ValueError(
                f"box for {name!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                f"(fractions of the canvas); got {x0},{y0},{x1},{y1}"
            )
        r0, r1 = round(y0 * size), max(round(y1 * size), round(y0 * size) + 1)
        c0, c1 = round(x0 * size), max(round(x1 * size), round(x0 * size) + 1)
        lab[r0:r1, c0:c1] = c
    return lab


def draw_boxes(sketch, boxes, classes: Sequence[str], size: int) -> np.ndarray:
    """``boxes`` (as :func:`sketch_from_boxes` takes them) painted over ``sketch`` (a label map of any size, resized
    to size x size by nearest neighbour; None: an empty canvas)."""
    from ..engine.query import resize_nearest

    drawn = sketch_from_boxes(boxes, classes, size)
    return drawn if sketch is None else np.where(drawn >= 0, drawn, resize_nearest(sketch, size))
