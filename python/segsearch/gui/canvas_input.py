"""The sketch tool's mouse input on its canvas: the left button draws with the current tool (a brush stroke in
the drawing class, an eraser stroke, or a flood fill), the right button erases; strokes show at once as lines on
the canvas (the app redraws the composited sketch when a stroke ends). And the dashed brush outline that follows
the pointer.
"""

from __future__ import annotations

from ..sketch.model import UNSPECIFIED
from .controls import ERASER, FILL
from .widgets import hex_colour

__all__ = ["StrokeInput"]


class StrokeInput:
    """Binds the mouse on ``app.canvas`` and turns it into edits of ``app.sketch`` (through ``app.view``, with
    ``app.tool``, ``app.current_class`` and ``app.brush``), then calls ``app.sketch_changed()`` (or
    ``app.render()`` when a stroke changed nothing). ``cursor_item``: the canvas item of the brush outline."""

    def __init__(self, app, cursor_item):
        self.app = app
        self.cursor_item = cursor_item
        self._stroking = False
        self._stroke_cls = UNSPECIFIED
        self._last_xy = None
        self._pointer = (-1000, -1000)
        canvas = app.canvas
        canvas.bind("<ButtonPress-1>", lambda e: self._press(e, erase=False))
        canvas.bind("<B1-Motion>", self._drag)
        canvas.bind("<ButtonRelease-1>", self._release)
        canvas.bind("<ButtonPress-3>", lambda e: self._press(e, erase=True))
        canvas.bind("<B3-Motion>", self._drag)
        canvas.bind("<ButtonRelease-3>", self._release)
        canvas.bind("<Motion>", self._hover)
        canvas.bind("<Leave>", lambda e: canvas.itemconfigure(cursor_item, state="hidden"))

    def _press(self, event, *, erase: bool) -> None:
        app = self.app
        app.canvas.focus_set()
        x, y = app.view.to_sketch(event.x, event.y)
        if app.tool == FILL and not erase:
            if app.sketch.fill(x, y, app.current_class):
                app.sketch_changed()
            return
        cls = UNSPECIFIED if erase or app.tool == ERASER else app.current_class
        app.sketch.begin_stroke(cls, app.brush)
        self._stroking = True
        self._stroke_cls = cls
        self._last_xy = (event.x, event.y)
        app.sketch.extend_stroke([(x, y)])
        self._draw_live(event.x, event.y, event.x, event.y, cls)

    def _drag(self, event) -> None:
        self._hover(event)
        if not self._stroking:
            return
        x0, y0 = self._last_xy
        self._last_xy = (event.x, event.y)
        self.app.sketch.extend_stroke([self.app.view.to_sketch(event.x, event.y)])
        self._draw_live(x0, y0, event.x, event.y, self._stroke_cls)

    def _release(self, event) -> None:
        if not self._stroking:
            return
        self._stroking = False
        self.app.canvas.delete("live")
        if self.app.sketch.end_stroke():
            self.app.sketch_changed()
        else:
            self.app.render()

    def _draw_live(self, x0, y0, x1, y1, cls: int) -> None:
        """Immediate feedback while dragging (the composited overlay is redrawn when the stroke ends)."""
        app = self.app
        w = max(2 * app.brush * min(app.view.scale), 1)
        colour = "#bbbbbb" if cls < 0 else hex_colour(app.palette[cls % len(app.palette)])
        app.canvas.create_line(
            x0, y0, x1, y1, width=w, fill=colour, capstyle="round", tags="live", stipple="gray50" if cls < 0 else ""
        )
        app.canvas.tag_raise(self.cursor_item)

    def _hover(self, event) -> None:
        self._pointer = (event.x, event.y)
        self.update_cursor()
        self.app.canvas.itemconfigure(self.cursor_item, state="hidden" if self.app.tool == FILL else "normal")

    def update_cursor(self) -> None:
        """The brush outline around the pointer (an ellipse when the photo is not square: the brush is round
        in the sketch, which is stretched over the photo)."""
        x, y = self._pointer
        sx, sy = self.app.view.scale
        b = self.app.brush
        self.app.canvas.coords(self.cursor_item, x - b * sx, y - b * sy, x + b * sx, y + b * sy)
