"""The sketch tool's Help windows: the keyboard shortcuts (listed from :data:`~segsearch.gui.shortcuts.SHORTCUTS`,
the table that binds them) and About (the version, the index). Small windows of their own, not modal, closed
with Escape or their Close button.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from importlib import metadata

from .shortcuts import SHORTCUTS

__all__ = ["MOUSE", "about_text", "show_about", "show_shortcuts", "version"]

#: The mouse: on the canvas (canvas_input.py), the results, the palette, the label map and the chips.
MOUSE = (
    ("Left button", "draw with the tool (brush, eraser or fill)"),
    ("Right button", "erase"),
    ("Click a result", "make it the query photo, keeping the strokes"),
    ("Right-click a result", "more / fewer like this (also L / U over it)"),
    ("Right-click a class", "draw with it, leave out photos with it, or emphasise it"),
    ("Click a class in 'What the network sees'", "emphasise it: it counts more"),
    ("Click a chip", "change its share or weight (× removes it)"),
)


def version() -> str:
    """The installed segsearch's version ("unknown" when it runs from a source tree that is not installed)."""
    try:
        return metadata.version("segsearch")
    except metadata.PackageNotFoundError:
        return "unknown"


def about_text(app) -> str:
    """What About says: the version and the index the tool searches."""
    index = getattr(app.pi, "index_dir", None)
    return (
        f"segsearch {version()}\n"
        "Spatial-semantic image search: draw where classes are, find the photos laid out so.\n\n"
        f"Index: {index if index is not None else '(opened in Python)'}\n"
        f"{len(app.pi)} photos, {len(app.classes)} classes" + (", captions" if app.pi.has_captions else "")
    )


def _window(master: tk.Misc, title: str) -> tuple[tk.Toplevel, tk.Frame]:
    """A small window over ``master`` with a Close button (and Escape); its body frame to fill."""
    top = tk.Toplevel(master)
    top.title(title)
    top.transient(master)
    body = tk.Frame(top, padx=12, pady=10)
    body.pack(side="top", fill="both", expand=True)
    close = tk.Button(top, text="Close", command=top.destroy)
    close.pack(side="bottom", pady=(0, 10))
    top.bind("<Escape>", lambda e: top.destroy())
    close.focus_set()
    return top, body


def show_shortcuts(master: tk.Misc) -> tk.Toplevel:
    """Open the list of keyboard shortcuts (and the mouse on the canvas); returns its window."""
    top, body = _window(master, "segsearch — keyboard shortcuts")
    bold = tkfont.Font(root=top, font="TkDefaultFont")
    bold.configure(weight="bold")
    top.rows = []  # (keys, action) as shown, for tests
    row = 0
    for where in dict.fromkeys(s.where for s in SHORTCUTS):
        tk.Label(body, text=where.capitalize(), font=bold, anchor="w").grid(
            row=row, column=0, columnspan=2, sticky="w", pady=(8 if row else 0, 2)
        )
        row += 1
        for s in SHORTCUTS:
            if s.where == where:
                row = _row(body, row, s.keys, s.action, top.rows)
    tk.Label(body, text="Mouse, on the canvas", font=bold, anchor="w").grid(
        row=row, column=0, columnspan=2, sticky="w", pady=(8, 2)
    )
    row += 1
    for keys, action in MOUSE:
        row = _row(body, row, keys, action, top.rows)
    return top


def _row(body: tk.Frame, row: int, keys: str, action: str, rows: list) -> int:
    tk.Label(body, text=keys, anchor="w").grid(row=row, column=0, sticky="w", padx=(8, 16))
    tk.Label(body, text=action, anchor="w", justify="left").grid(row=row, column=1, sticky="w")
    rows.append((keys, action))
    return row + 1


def show_about(app) -> tk.Toplevel:
    """Open About: the version and the index; returns its window."""
    top, body = _window(app.master, "About segsearch")
    top.text = about_text(app)
    tk.Label(body, text=top.text, justify="left", anchor="w", wraplength=420).pack(fill="both")
    return top
