"""The sketch tool's menu bar (File, Edit, Tools), its keyboard shortcuts, and the file dialogs that open a query
photo, save the sketch and load a sketch. Everything here calls the app's public methods.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import filedialog

from .controls import BRUSH, ERASER, FILL

__all__ = ["ask_load_sketch", "ask_open_photo", "ask_save_sketch", "bind_keys", "build_menu"]


def build_menu(app) -> None:
    """Give ``app.master`` the menu bar."""
    m = tk.Menu(app.master)
    f = tk.Menu(m, tearoff=False)
    f.add_command(label="Open photo…", accelerator="Ctrl+O", command=app.ask_open_photo)
    f.add_command(label="Remove photo", command=app.remove_photo)
    f.add_separator()
    f.add_command(label="Load sketch…", accelerator="Ctrl+L", command=app.ask_load_sketch)
    f.add_command(label="Save sketch…", accelerator="Ctrl+S", command=app.ask_save_sketch)
    f.add_separator()
    f.add_command(label="Quit", accelerator="Ctrl+Q", command=app.close)
    m.add_cascade(label="File", menu=f)
    e = tk.Menu(m, tearoff=False)
    e.add_command(label="Undo", accelerator="Ctrl+Z", command=app.undo)
    e.add_command(label="Redo", accelerator="Ctrl+Y", command=app.redo)
    e.add_command(label="Clear sketch", accelerator="Delete", command=app.clear)
    m.add_cascade(label="Edit", menu=e)
    t = tk.Menu(m, tearoff=False)
    t.add_command(label="Brush", accelerator="B", command=lambda: app.set_tool(BRUSH))
    t.add_command(label="Eraser", accelerator="E", command=lambda: app.set_tool(ERASER))
    t.add_command(label="Fill", accelerator="F", command=lambda: app.set_tool(FILL))
    t.add_command(label="Smaller brush", accelerator="[", command=lambda: app.change_brush(-1))
    t.add_command(label="Larger brush", accelerator="]", command=lambda: app.change_brush(+1))
    t.add_separator()
    t.add_command(label="Search now", accelerator="Return", command=app.request_search)
    m.add_cascade(label="Tools", menu=t)
    app.master.config(menu=m)


def bind_keys(app) -> None:
    """Bind the keyboard shortcuts on ``app.master``: Ctrl+key everywhere, single keys unless an entry has the
    focus."""
    r = app.master
    for seq, fn in (
        ("<Control-z>", app.undo),
        ("<Control-y>", app.redo),
        ("<Control-Z>", app.redo),
        ("<Control-s>", app.ask_save_sketch),
        ("<Control-o>", app.ask_open_photo),
        ("<Control-l>", app.ask_load_sketch),
        ("<Control-q>", app.close),
    ):
        r.bind(seq, lambda e, fn=fn: (fn(), "break")[1])
    # plain keys act on the sketch unless the user is typing in an entry
    for seq, fn in (
        ("<Key-e>", lambda: app.set_tool(ERASER)),
        ("<Key-f>", lambda: app.set_tool(FILL)),
        ("<Key-b>", lambda: app.set_tool(BRUSH)),
        ("<Key-E>", lambda: app.set_tool(ERASER)),
        ("<Key-F>", lambda: app.set_tool(FILL)),
        ("<Key-B>", lambda: app.set_tool(BRUSH)),
        ("<Key-bracketleft>", lambda: app.change_brush(-1)),
        ("<Key-bracketright>", lambda: app.change_brush(+1)),
        ("<Delete>", app.clear),
        ("<Return>", app.request_search),
    ):
        r.bind(seq, lambda e, fn=fn: None if isinstance(e.widget, tk.Entry) else fn())


def ask_open_photo(app) -> None:
    """File dialog: pick a query photo (``app.set_photo``)."""
    path = filedialog.askopenfilename(
        parent=app.master,
        title="Open a query photo",
        filetypes=[("Photos", "*.jpg *.jpeg *.png *.webp *.bmp *.JPG *.JPEG *.PNG"), ("All files", "*")],
    )
    if path:
        app.set_photo(path)


def ask_save_sketch(app) -> None:
    """File dialog: save the sketch as a PNG (``app.save_sketch``)."""
    path = filedialog.asksaveasfilename(
        parent=app.master, title="Save the sketch", defaultextension=".png", filetypes=[("PNG", "*.png")]
    )
    if path:
        app.save_sketch(path)


def ask_load_sketch(app) -> None:
    """File dialog: load a sketch PNG (``app.load_sketch``)."""
    path = filedialog.askopenfilename(
        parent=app.master, title="Load a sketch", filetypes=[("PNG", "*.png"), ("All files", "*")]
    )
    if path:
        app.load_sketch(path)
