"""The sketch tool's view of what the network sees in the query photo: its label map (each cell's most likely
class, in the palette's colours, stretched back to the photo's aspect ratio), small; the class under the pointer
is named below it, and a click on a class emphasises it (``app.emphasise_class``).
"""

from __future__ import annotations

import tkinter as tk

import numpy as np
from PIL import Image, ImageTk

from ..network.palette import colorize
from ..sketch.model import letterbox
from .widgets import ElidedLabel

__all__ = ["VIEW_SIZE", "LabelMapView"]

VIEW_SIZE = (160, 120)  # the view's box on screen
HINT = "Click a class to emphasise it"


class LabelMapView:
    """``frame`` (for the caller to place): a title, the label map in a ``VIEW_SIZE`` canvas (grey without a
    query photo) and a line naming the class under the pointer. ``app``: ``classes``, ``palette``,
    ``emphasise_class(c)``."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        self.labels: np.ndarray | None = None
        self.area = (0, 0, *VIEW_SIZE)  # where the map lies in the canvas
        f = self.frame = tk.Frame(parent)
        tk.Label(f, text="What the network sees:", anchor="w").pack(side="top", fill="x")
        w, h = VIEW_SIZE
        self.canvas = tk.Canvas(f, width=w, height=h, highlightthickness=0, borderwidth=0, background="#cccccc")
        self.canvas.pack(side="top")
        self._item = self.canvas.create_image(0, 0, anchor="nw")
        self._text = self.canvas.create_text(w // 2, h // 2, text="no query photo", fill="#555555")
        self.caption = ElidedLabel(f, foreground="#555555")
        self.caption.pack(side="top", fill="x")
        self.canvas.bind("<Motion>", self._hover)
        self.canvas.bind("<Leave>", lambda e: self._say(None))
        self.canvas.bind("<Button-1>", self._click)
        self.image: ImageTk.PhotoImage | None = None

    def show(self, labels: np.ndarray, photo_size: tuple[int, int]) -> None:
        """Show the label map ``labels`` (n x n class indices) of a photo of ``photo_size`` = (width, height)."""
        self.labels = np.asarray(labels)
        x, y, w, h = self.area = letterbox(photo_size[0], photo_size[1], *VIEW_SIZE)
        rgb = colorize(self.labels, np.asarray(self.app.palette, np.uint8))
        img = Image.fromarray(rgb, "RGB").resize((w, h), Image.NEAREST)
        self.image = ImageTk.PhotoImage(img, master=self.canvas)
        self.canvas.coords(self._item, x, y)
        self.canvas.itemconfigure(self._item, image=self.image)
        self.canvas.itemconfigure(self._text, state="hidden")
        self._say(None)

    def clear(self) -> None:
        """No query photo: a grey box."""
        self.labels, self.image = None, None
        self.canvas.itemconfigure(self._item, image="")
        self.canvas.itemconfigure(self._text, state="normal")
        self.caption.set_text("")

    def class_at(self, cx: int, cy: int) -> int | None:
        """The class shown at canvas pixel (cx, cy); None outside the map or without one."""
        if self.labels is None:
            return None
        x, y, w, h = self.area
        if not (x <= cx < x + w and y <= cy < y + h):
            return None
        n_rows, n_cols = self.labels.shape
        return int(self.labels[(cy - y) * n_rows // h, (cx - x) * n_cols // w])

    def _say(self, c: int | None) -> None:
        if c is not None:
            self.caption.set_text(f"{c} {self.app.classes[c]}: click to emphasise")
        else:
            self.caption.set_text(HINT if self.labels is not None else "")

    def _hover(self, event) -> None:
        self._say(self.class_at(event.x, event.y))

    def _click(self, event) -> None:
        c = self.class_at(event.x, event.y)
        if c is not None:
            self.app.emphasise_class(c)
