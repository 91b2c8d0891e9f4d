"""The sketch tool's menu bar (File, Edit, Tools, Refine, Help; the keys they show come from
:data:`~segsearch.gui.shortcuts.SHORTCUTS`), and the file dialogs that open a query photo, save the sketch and
load a sketch. Everything here calls the app's public methods.
"""

from __future__ import annotations

import tkinter as tk
from tkinter import filedialog

from .controls import BRUSH, ERASER, FILL
from .shortcuts import keys_of

__all__ = ["ask_load_sketch", "ask_open_photo", "ask_save_sketch", "build_menu"]


def build_menu(app) -> tk.Menu:
    """Give ``app.master`` the menu bar; returns it."""
    m = tk.Menu(app.master)
    f = tk.Menu(m, tearoff=False)
    f.add_command(label="Open photo…", accelerator=keys_of("open"), command=app.ask_open_photo)
    f.add_command(label="Remove photo", command=app.remove_photo)
    f.add_separator()
    f.add_command(label="Load sketch…", accelerator=keys_of("load"), command=app.ask_load_sketch)
    f.add_command(label="Save sketch…", accelerator=keys_of("save"), command=app.ask_save_sketch)
    f.add_separator()
    f.add_command(label="Quit", accelerator=keys_of("quit"), command=app.close)
    m.add_cascade(label="File", menu=f)
    e = tk.Menu(m, tearoff=False)
    e.add_command(label="Undo", accelerator=keys_of("undo"), command=app.undo)
    e.add_command(label="Redo", accelerator=keys_of("redo"), command=app.redo)
    e.add_command(label="Clear sketch", accelerator=keys_of("clear"), command=app.clear)
    m.add_cascade(label="Edit", menu=e)
    t = tk.Menu(m, tearoff=False)
    t.add_command(label="Brush", accelerator=keys_of("brush"), command=lambda: app.set_tool(BRUSH))
    t.add_command(label="Eraser", accelerator=keys_of("eraser"), command=lambda: app.set_tool(ERASER))
    t.add_command(label="Fill", accelerator=keys_of("fill"), command=lambda: app.set_tool(FILL))
    t.add_command(label="Smaller brush", accelerator=keys_of("smaller"), command=lambda: app.change_brush(-1))
    t.add_command(label="Larger brush", accelerator=keys_of("larger"), command=lambda: app.change_brush(+1))
    t.add_separator()
    t.add_command(label="Search now", accelerator=keys_of("search"), command=app.request_search)
    m.add_cascade(label="Tools", menu=t)
    m.add_cascade(label="Refine", menu=_refine_menu(m, app))
    h = tk.Menu(m, tearoff=False)
    h.add_command(label="Keyboard shortcuts", accelerator=keys_of("help"), command=app.show_shortcuts)
    h.add_command(label="About segsearch", command=app.show_about)
    m.add_cascade(label="Help", menu=h)
    app.master.config(menu=m)
    return m


def _refine_menu(m: tk.Menu, app) -> tk.Menu:
    """Refine: the filters, likes, the drawing class left out or emphasised, clearing it all; what the index's
    search does not take (``app.refine_options``) is disabled."""
    r = tk.Menu(m, tearoff=False)
    r.add_command(label="Filters (date, folder, camera)…", accelerator=keys_of("filters"), command=app.show_filters)
    r.add_separator()
    likes = "normal" if {"like", "unlike"} <= app.refine_options else "disabled"
    r.add_command(
        label="More like the result under the pointer",
        accelerator=keys_of("like"),
        command=app.like_result,
        state=likes,
    )
    r.add_command(
        label="Fewer like the result under the pointer",
        accelerator=keys_of("unlike"),
        command=app.unlike_result,
        state=likes,
    )
    r.add_separator()
    r.add_command(label="Leave out photos with the drawing class", command=lambda: app.exclude_class(app.current_class))
    r.add_command(
        label="Emphasise the drawing class",
        command=lambda: app.emphasise_class(app.current_class),
        state="normal" if "weights" in app.refine_options else "disabled",
    )
    r.add_separator()
    r.add_command(label="Clear all refinements", command=app.clear_refinements)
    return r


def ask_open_photo(app) -> None:
    """File dialog: pick a query photo, a new query (``app.open_photo``)."""
    path = filedialog.askopenfilename(
        parent=app.master,
        title="Open a query photo",
        filetypes=[("Photos", "*.jpg *.jpeg *.png *.webp *.bmp *.JPG *.JPEG *.PNG"), ("All files", "*")],
    )
    if path:
        app.open_photo(path)


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
