"""The controls around the sketch tool's canvas: the tool column beside it (brush, eraser, fill, the brush size,
undo, redo, clear) and the caption words row below it; and the tool names and brush sizes they offer.

The controls call the app's public methods; the app keeps their variables and entries as its own attributes
(``tool_var``, ``brush_var``, ``brush_scale``, ``text_var``, ``text_entry``).
"""

from __future__ import annotations

import tkinter as tk

__all__ = ["BRUSH", "BRUSH_DEFAULT", "BRUSH_MAX", "BRUSH_MIN", "ERASER", "FILL", "CaptionWords", "ToolBar"]

BRUSH, ERASER, FILL = "brush", "eraser", "fill"
BRUSH_MIN, BRUSH_MAX, BRUSH_DEFAULT = 1, 64, 8  # brush radius in sketch pixels


class ToolBar:
    """The column beside the canvas (``frame``, for the caller to place): one button per tool (showing
    ``app.tool``), the brush size scale (showing ``app.brush``; moving it sets ``app.brush``; larger at the
    top), and Undo, Redo and Clear."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        bar = self.frame = tk.Frame(parent)
        self.tool_var = tk.StringVar(value=app.tool)
        for name, label, key in ((BRUSH, "Brush", "B"), (ERASER, "Eraser", "E"), (FILL, "Fill", "F")):
            tk.Radiobutton(
                bar,
                text=f"{label} ({key})",
                value=name,
                variable=self.tool_var,
                indicatoron=False,
                padx=6,
                command=lambda n=name: app.set_tool(n),
            ).pack(side="top", fill="x", pady=1)
        tk.Label(bar, text="Size [ ]").pack(side="top", pady=(8, 0))
        self.brush_var = tk.IntVar(value=app.brush)
        self.brush_scale = tk.Scale(
            bar,
            from_=BRUSH_MAX,
            to=BRUSH_MIN,
            orient="vertical",
            showvalue=True,
            variable=self.brush_var,
            length=110,
            command=self._brush_moved,
        )
        self.brush_scale.pack(side="top")
        for text, cmd in (("Undo", app.undo), ("Redo", app.redo), ("Clear", app.clear)):
            tk.Button(bar, text=text, command=cmd).pack(side="top", fill="x", pady=1)

    def _brush_moved(self, value) -> None:
        self.app.brush = int(float(value))
        self.app.mark_dirty()


class CaptionWords:
    """The row below the canvas (``frame``, for the caller to place): the caption words entry, which takes the
    row's width, and a Search button (``search_button``; both run ``app.request_search``); the entry is
    disabled when the index has no captions."""

    def __init__(self, parent: tk.Misc, app):
        words = self.frame = tk.Frame(parent)
        tk.Label(words, text="Caption words:").pack(side="left")
        self.text_var = tk.StringVar()
        self.text_entry = tk.Entry(words, textvariable=self.text_var, width=1)  # as wide as the row allows
        self.search_button = tk.Button(words, text="Search", command=app.request_search)
        self.search_button.pack(side="right", padx=(2, 0))
        if not app.pi.has_captions:
            self.text_entry.configure(state="disabled")
            tk.Label(words, text="(no captions)", foreground="#777777").pack(side="right")
        self.text_entry.pack(side="left", fill="x", expand=True)
        self.text_entry.bind("<Return>", lambda e: app.request_search())
