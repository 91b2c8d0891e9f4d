"""The sketch tool's keyboard shortcuts: one table (:data:`SHORTCUTS`) that binds the keys
(:func:`bind_keys`), gives the menus their accelerator labels (:func:`keys_of`) and is what Help → Keyboard
shortcuts lists, so the three never disagree. Everything here calls the app's public methods.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass

from .controls import BRUSH, ERASER, FILL

__all__ = ["ANYWHERE", "IN_TEXT", "ON_CANVAS", "SHORTCUTS", "Shortcut", "bind_keys", "keys_of", "select_all"]

ANYWHERE = "anywhere"
ON_CANVAS = "when not typing in a text box"
IN_TEXT = "in a text box"


@dataclass(frozen=True)
class Shortcut:
    """A key: its ``name`` (for :func:`keys_of`), the ``keys`` as people read them, what it does (``action``),
    its Tk event ``sequences``, the ``command`` it runs (given the app, or for :data:`IN_TEXT` keys the text
    box) and ``where`` it works: :data:`ANYWHERE`, :data:`ON_CANVAS` (single keys: not while typing in a text
    box) or :data:`IN_TEXT`."""

    name: str
    keys: str
    action: str
    sequences: tuple[str, ...]
    command: Callable
    where: str = ANYWHERE


def select_all(widget: tk.Misc) -> None:
    """Select all the text of an Entry or a Text widget, the cursor at the end."""
    if isinstance(widget, tk.Text):
        widget.tag_add("sel", "1.0", "end-1c")
        widget.mark_set("insert", "end-1c")
    else:
        widget.selection_range(0, "end")
        widget.icursor("end")


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut(
        "undo",
        "Ctrl+Z",
        "undo (a stroke, fill, clear, loaded sketch, opened photo or refinement)",
        ("<Control-z>",),
        lambda app: app.undo(),
    ),
    Shortcut("redo", "Ctrl+Y", "redo (also Ctrl+Shift+Z)", ("<Control-y>", "<Control-Z>"), lambda app: app.redo()),
    Shortcut(
        "open",
        "Ctrl+O",
        "open a query photo: a new query (undo brings the old one back)",
        ("<Control-o>",),
        lambda app: app.ask_open_photo(),
    ),
    Shortcut("load", "Ctrl+L", "load a sketch", ("<Control-l>",), lambda app: app.ask_load_sketch()),
    Shortcut("save", "Ctrl+S", "save the sketch", ("<Control-s>",), lambda app: app.ask_save_sketch()),
    Shortcut("quit", "Ctrl+Q", "quit", ("<Control-q>",), lambda app: app.close()),
    Shortcut(
        "filters",
        "Ctrl+F",
        "filters: the date, folder and camera of the photos",
        ("<Control-f>",),
        lambda app: app.show_filters(),
    ),
    Shortcut("help", "F1", "this list of keys", ("<F1>",), lambda app: app.show_shortcuts()),
    Shortcut("brush", "B", "brush", ("<Key-b>", "<Key-B>"), lambda app: app.set_tool(BRUSH), ON_CANVAS),
    Shortcut("eraser", "E", "eraser", ("<Key-e>", "<Key-E>"), lambda app: app.set_tool(ERASER), ON_CANVAS),
    Shortcut(
        "fill",
        "F",
        "flood fill (the connected region of one label)",
        ("<Key-f>", "<Key-F>"),
        lambda app: app.set_tool(FILL),
        ON_CANVAS,
    ),
    Shortcut("smaller", "[", "smaller brush", ("<Key-bracketleft>",), lambda app: app.change_brush(-1), ON_CANVAS),
    Shortcut("larger", "]", "larger brush", ("<Key-bracketright>",), lambda app: app.change_brush(+1), ON_CANVAS),
    Shortcut("clear", "Delete", "clear the sketch", ("<Delete>",), lambda app: app.clear(), ON_CANVAS),
    Shortcut(
        "like",
        "L",
        "more like the result under the pointer (again: no longer)",
        ("<Key-l>", "<Key-L>"),
        lambda app: app.like_result(),
        ON_CANVAS,
    ),
    Shortcut(
        "unlike",
        "U",
        "fewer like the result under the pointer (again: no longer)",
        ("<Key-u>", "<Key-U>"),
        lambda app: app.unlike_result(),
        ON_CANVAS,
    ),
    Shortcut("search", "Return", "search now", ("<Return>",), lambda app: app.request_search(), ON_CANVAS),
    Shortcut("select_all", "Ctrl+A", "select all the text", ("<Control-a>",), select_all, IN_TEXT),
)


def keys_of(name: str) -> str:
    """The keys of the shortcut named ``name``, as the menus show them."""
    for s in SHORTCUTS:
        if s.name == name:
            return s.keys
    raise KeyError(f"no shortcut named {name!r}")


def bind_keys(app) -> None:
    """Bind :data:`SHORTCUTS` in ``app.master``: :data:`ANYWHERE` keys on the window, :data:`ON_CANVAS` keys on
    the window unless a text box has the focus, :data:`IN_TEXT` keys on every Entry and Text widget."""
    root = app.master
    for s in SHORTCUTS:
        for seq in s.sequences:
            if s.where == IN_TEXT:
                for cls in ("Entry", "Text"):  # instead of Tk's own (Ctrl+A: to the start of the line)
                    root.bind_class(cls, seq, lambda e, s=s: (s.command(e.widget), "break")[1])
            elif s.where == ON_CANVAS:
                root.bind(seq, lambda e, s=s: None if isinstance(e.widget, (tk.Entry, tk.Text)) else s.command(app))
            else:
                root.bind(seq, lambda e, s=s: (s.command(app), "break")[1])
