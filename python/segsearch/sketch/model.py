"""The sketch behind the drawing tool: a label map with brush strokes, flood fill and undo/redo (numpy, no Tk).

A :class:`Sketch` holds an int32 label map of the canvas resolution (e.g. 256 x 256), -1 = unspecified and
0..C-1 = class, in the conventions of :meth:`segsearch.Query.sketch`. Coordinates are (x, y) = (column, row)
in label-map pixels. Every completed stroke, fill, clear or load is one entry of a bounded undo history; an
entry stores only the pixels it changed. :meth:`Sketch.start_over` (erase everything and move the owner's
:attr:`~Sketch.context`, e.g. the sketch tool's query photo and caption words, to a new value) is one entry too,
so one undo brings back the strokes and the context together; :meth:`Sketch.change_context` moves the context
alone, the strokes kept (e.g. the tool's query refinements), as one entry.

:func:`letterbox` and :class:`SketchView` place the sketch on a screen canvas: a query photo is shown with its
aspect ratio kept, and the sketch grid is stretched over the photo's area (as the network stretches a photo to
a square), so a stroke lands on the part of the photo under the pointer and never on the bars around it.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from ..engine.checks import check_count
from ..engine.query import check_labels, resize_nearest

__all__ = ["UNSPECIFIED", "Sketch", "SketchView", "letterbox"]

#: The label of pixels the user has not drawn (or has erased).
UNSPECIFIED = -1


class Sketch:
    """A label map being drawn. ``Sketch(256)`` is a blank 256 x 256 canvas; ``max_history`` bounds undo."""

    def __init__(self, height: int = 256, width: int | None = None, *, max_history: int = 100):
        width = height if width is None else width
        for name, v in (("height", height), ("width", width), ("max_history", max_history)):
            check_count(v, name)
        self._labels = np.full((int(height), int(width)), UNSPECIFIED, np.int32)
        self._undo: deque = deque(maxlen=int(max_history))
        self._redo: list = []
        self._context = None
        self._before: np.ndarray | None = None  # snapshot while a stroke is in progress
        self._stroke_cls = UNSPECIFIED
        self._stroke_radius = 0.0
        self._last_point: tuple[float, float] | None = None

    # ----------------------------------------------------------------------------------------------- state
    @property
    def shape(self) -> tuple[int, int]:
        return self._labels.shape

    @property
    def labels(self) -> np.ndarray:
        """The label map (h, w) int32, read-only view (-1 = unspecified)."""
        v = self._labels.view()
        v.flags.writeable = False
        return v

    @property
    def context(self):
        """The owner's value that undo and redo carry with the labels: None at first, set by :meth:`start_over`,
        and changed back and forth only by undoing and redoing such a step (drawing steps leave it alone)."""
        return self._context

    def is_empty(self) -> bool:
        """True when no pixel has a class."""
        return bool((self._labels < 0).all())

    def classes_drawn(self) -> list[int]:
        """The classes present in the sketch, ascending."""
        return [int(c) for c in np.unique(self._labels) if c >= 0]

    def labels_at(self, n: int) -> np.ndarray:
        """The label map resized to n x n (nearest neighbour), as the index's maps are."""
        return resize_nearest(self._labels, int(n)).copy()

    def to_rgba(self, palette: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """RGBA uint8 (h, w, 4) overlay: class colours at opacity ``alpha``, unspecified pixels transparent."""
        pal = np.asarray(palette, np.uint8)
        if pal.ndim != 2 or pal.shape[1] != 3 or len(pal) == 0:
            raise ValueError(f"palette must be uint8 (C, 3); got shape {pal.shape}")
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
        lab = self._labels
        out = np.zeros(lab.shape + (4,), np.uint8)
        drawn = lab >= 0
        out[..., :3] = pal[np.clip(lab, 0, len(pal) - 1)]
        out[..., 3] = np.where(drawn, round(float(alpha) * 255), 0)
        out[~drawn, :3] = 0
        return out

    # ---------------------------------------------------------------------------------------------- drawing
    def begin_stroke(self, cls: int, radius: float) -> None:
        """Start an interactive stroke of class ``cls`` (-1 erases) with a round brush of ``radius`` pixels."""
        self._check_cls(cls)
        r = float(radius)
        if not np.isfinite(r) or r < 0:
            raise ValueError(f"brush radius must be a finite number >= 0; got {radius!r}")
        if self._before is not None:
            self.end_stroke()
        self._before = self._labels.copy()
        self._stroke_cls = int(cls)
        self._stroke_radius = r
        self._last_point = None

    def extend_stroke(self, points: Iterable[Sequence[float]]) -> tuple[int, int, int, int] | None:
        """Continue the stroke through ``points`` [(x, y), ...]; returns the changed box (x0, y0, x1, y1),
        end exclusive, or None when nothing is inside the canvas."""
        if self._before is None:
            raise ValueError("no stroke in progress; call begin_stroke first")
        pts = _as_points(points)
        box = None
        for p in pts:
            a = self._last_point if self._last_point is not None else p
            b = _paint_segment(self._labels, a, p, self._stroke_radius, self._stroke_cls)
            box = _union(box, b)
            self._last_point = p
        return box

    def end_stroke(self) -> bool:
        """Finish the stroke: one undo entry if it changed anything. Returns whether it did."""
        if self._before is None:
            return False
        before, self._before = self._before, None
        self._last_point = None
        return self._record(before)

    @property
    def stroking(self) -> bool:
        return self._before is not None

    def stroke(self, points: Iterable[Sequence[float]], cls: int, radius: float) -> bool:
        """Draw a round brush of ``radius`` along the polyline ``points`` with class ``cls`` (one undo entry)."""
        self.begin_stroke(cls, radius)
        try:
            self.extend_stroke(points)
        finally:
            changed = self.end_stroke()
        return changed

    def erase(self, points: Iterable[Sequence[float]], radius: float) -> bool:
        """Set the pixels under the brush back to unspecified."""
        return self.stroke(points, UNSPECIFIED, radius)

    def fill(self, x: float, y: float, cls: int) -> bool:
        """Flood-fill the 4-connected region of equal label containing (x, y) with ``cls`` (one undo entry).

        Returns False (and records nothing) when (x, y) is outside the canvas or already has ``cls``.
        """
        self._check_cls(cls)
        self.end_stroke()
        h, w = self._labels.shape
        col, row = int(np.floor(x)), int(np.floor(y))
        if not (0 <= row < h and 0 <= col < w) or self._labels[row, col] == cls:
            return False
        before = self._labels.copy()
        self._labels[_region(self._labels, row, col)] = cls
        return self._record(before)

    def clear(self) -> bool:
        """Everything back to unspecified (one undo entry, if anything was drawn)."""
        self.end_stroke()
        before = self._labels.copy()
        self._labels[:] = UNSPECIFIED
        return self._record(before)

    def set_labels(self, labels) -> bool:
        """Replace the sketch with ``labels`` (e.g. a loaded sketch file), resized nearest to the canvas size;
        one undo entry."""
        lab = check_labels(labels, "sketch")
        h, w = self._labels.shape
        if lab.shape != (h, w):
            rows = np.minimum(((np.arange(h) + 0.5) * lab.shape[0] / h).astype(np.int64), lab.shape[0] - 1)
            cols = np.minimum(((np.arange(w) + 0.5) * lab.shape[1] / w).astype(np.int64), lab.shape[1] - 1)
            lab = lab[np.ix_(rows, cols)]
        self.end_stroke()
        before = self._labels.copy()
        self._labels[:] = lab
        return self._record(before)

    def start_over(self, before, after) -> None:
        """Erase everything and set :attr:`context` to ``after``, as one undo step (recorded even when nothing
        was drawn): undoing it brings back the strokes and sets :attr:`context` to ``before`` (the owner's state
        that ``after`` replaces, e.g. the query photo a newly opened one replaces)."""
        self.end_stroke()
        before_labels = self._labels.copy()
        self._labels[:] = UNSPECIFIED
        self._context = after
        self._record(before_labels, (before, after), always=True)

    def change_context(self, before, after) -> None:
        """Set :attr:`context` to ``after``, the strokes kept, as one undo step: undoing it sets :attr:`context`
        to ``before`` (the owner's state that ``after`` replaces)."""
        self.end_stroke()
        self._context = after
        self._record(self._labels.copy(), (before, after), always=True)

    # ------------------------------------------------------------------------------------------------ history
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Undo the last stroke/fill/clear/load. Returns False when there is nothing to undo."""
        return self._step(self._undo, self._redo, new=False)

    def redo(self) -> bool:
        """Redo the last undone action. Returns False when there is nothing to redo."""
        return self._step(self._redo, self._undo, new=True)

    def _step(self, source, target, *, new: bool) -> bool:
        self.end_stroke()
        if not source:
            return False
        entry = source.pop()
        idx, old_values, new_values, context = entry
        self._labels.reshape(-1)[idx] = new_values if new else old_values
        if context is not None:
            self._context = context[1] if new else context[0]
        target.append(entry)
        return True

    def _record(self, before: np.ndarray, context: tuple | None = None, *, always: bool = False) -> bool:
        """One undo entry: the changed pixels' old and new values, and ``context`` = (before, after) or None."""
        flat_b, flat_a = before.reshape(-1), self._labels.reshape(-1)
        idx = np.flatnonzero(flat_b != flat_a).astype(np.int32)
        if idx.size == 0 and not always:
            return False
        self._undo.append((idx, flat_b[idx].copy(), flat_a[idx].copy(), context))
        self._redo.clear()
        return True

    @staticmethod
    def _check_cls(value) -> None:
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < UNSPECIFIED:
            raise ValueError(f"class must be a whole number >= -1 (-1 = unspecified); got {value!r}")


def _as_points(points) -> list[tuple[float, float]]:
    a = np.asarray(list(points) if not isinstance(points, np.ndarray) else points, dtype=np.float64)
    if a.size == 0:
        return []
    if a.ndim == 1 and a.shape[0] == 2:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"points must be a sequence of (x, y) pairs; got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("points must be finite numbers")
    return [(float(x), float(y)) for x, y in a]


def _union(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _paint_segment(labels: np.ndarray, a, b, radius: float, cls: int):
    """Set every pixel whose centre (col, row) lies within ``radius`` of segment a-b to ``cls``."""
    h, w = labels.shape
    x0 = max(int(np.floor(min(a[0], b[0]) - radius)), 0)
    x1 = min(int(np.ceil(max(a[0], b[0]) + radius)) + 1, w)
    y0 = max(int(np.floor(min(a[1], b[1]) - radius)), 0)
    y1 = min(int(np.ceil(max(a[1], b[1]) + radius)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = b[0] - a[0], b[1] - a[1]
    L2 = dx * dx + dy * dy
    if L2 > 0:
        t = np.clip(((xx - a[0]) * dx + (yy - a[1]) * dy) / L2, 0.0, 1.0)
    else:
        t = 0.0
    px, py = a[0] + t * dx, a[1] + t * dy
    # A brush of radius r covers the pixels within r; radius 0 still paints the nearest pixel.
    inside = (xx - px) ** 2 + (yy - py) ** 2 <= max(radius, 0.5) ** 2
    if not inside.any():
        return None
    labels[y0:y1, x0:x1][inside] = cls
    return (x0, y0, x1, y1)


def _region(labels: np.ndarray, row: int, col: int) -> np.ndarray:
    """Boolean mask of the 4-connected region of pixels equal to labels[row, col] containing (row, col).

    Works on horizontal runs: a run joins the runs of the rows above and below that share a column.
    """
    h, w = labels.shape
    same = labels == labels[row, col]
    pad = np.zeros((h, w + 2), np.int8)
    pad[:, 1:-1] = same
    d = np.diff(pad, axis=1)
    rs, cs = np.nonzero(d == 1)  # run starts (inclusive)
    _, ce = np.nonzero(d == -1)  # run ends (exclusive); same order as starts
    starts: list[list[int]] = [[] for _ in range(h)]
    ends: list[list[int]] = [[] for _ in range(h)]
    for r, s, e in zip(rs.tolist(), cs.tolist(), ce.tolist()):
        starts[r].append(s)
        ends[r].append(e)
    mask = np.zeros((h, w), bool)
    seen: set[tuple[int, int]] = set()
    i0 = bisect.bisect_right(starts[row], col) - 1
    stack = [(row, i0)]
    seen.add((row, i0))
    while stack:
        r, i = stack.pop()
        s, e = starts[r][i], ends[r][i]
        mask[r, s:e] = True
        for nr in (r - 1, r + 1):
            if not 0 <= nr < h:
                continue
            ns, ne = starts[nr], ends[nr]
            # runs of row nr overlapping columns [s, e): start < e and end > s
            j = bisect.bisect_left(ne, s + 1)
            while j < len(ns) and ns[j] < e:
                if (nr, j) not in seen:
                    seen.add((nr, j))
                    stack.append((nr, j))
                j += 1
    return mask


def letterbox(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int, int, int]:
    """The largest rectangle of a ``width`` x ``height`` picture's aspect ratio that fits in a ``box_width`` x
    ``box_height`` box, centred: ``(x, y, w, h)`` in box pixels (w, h >= 1; the rest of the box is bars)."""
    width, height = check_count(width, "width"), check_count(height, "height")
    box_width, box_height = check_count(box_width, "box_width"), check_count(box_height, "box_height")
    if width * box_height >= height * box_width:  # wider than the box: full width, bars above and below
        w, h = box_width, max(1, min(box_height, round(box_width * height / width)))
    else:  # taller: full height, bars left and right
        w, h = max(1, min(box_width, round(box_height * width / height))), box_height
    return (box_width - w) // 2, (box_height - h) // 2, w, h


class SketchView:
    """Where a sketch grid of ``shape`` (rows, cols) is shown on a canvas: stretched over ``area`` = (x, y, w, h)
    canvas pixels (e.g. the photo's :func:`letterbox`). Converts between canvas and sketch coordinates."""

    def __init__(self, shape: tuple[int, int], area: tuple[int, int, int, int]):
        if len(shape) != 2 or len(area) != 4:
            raise ValueError(f"shape must be (rows, cols) and area (x, y, w, h); got {shape!r}, {area!r}")
        self.shape = (check_count(shape[0], "rows"), check_count(shape[1], "cols"))
        x, y = (check_count(v, n, 0) for n, v in (("x", area[0]), ("y", area[1])))
        self.area = (x, y, check_count(area[2], "area width"), check_count(area[3], "area height"))

    @property
    def scale(self) -> tuple[float, float]:
        """Canvas pixels per sketch pixel, (horizontal, vertical)."""
        return self.area[2] / self.shape[1], self.area[3] / self.shape[0]

    def to_sketch(self, cx: float, cy: float) -> tuple[float, float]:
        """Canvas (x, y) -> sketch (x, y) = (column, row); outside 0..cols / 0..rows when on the bars."""
        sx, sy = self.scale
        return (cx - self.area[0]) / sx, (cy - self.area[1]) / sy

    def to_canvas(self, x: float, y: float) -> tuple[float, float]:
        """Sketch (x, y) -> canvas (x, y)."""
        sx, sy = self.scale
        return self.area[0] + x * sx, self.area[1] + y * sy

    def contains(self, cx: float, cy: float) -> bool:
        """Whether canvas point (cx, cy) lies on the sketch (not on the bars around it)."""
        x, y, w, h = self.area
        return x <= cx < x + w and y <= cy < y + h
