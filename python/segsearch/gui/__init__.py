"""``segsearch gui INDEX_DIR``: a minimal Tk sketch tool for interactive spatial-semantic search (Tk + Pillow).

Draw where classes are (on a blank canvas or over a query photo), and the search runs by itself when a stroke
ends; click a result to make it the new query photo while keeping the strokes, then draw more (the paper's
interactive loop, Sec. 3.1). Searches and photo segmentation run in a worker thread, so the window never
blocks; only the Tk main thread touches widgets.

Modules: :mod:`~segsearch.gui.window` (:class:`SketchApp`, the window), and its parts
:mod:`~segsearch.gui.controls` (the tool column and the caption words row; the tool names and brush sizes),
:mod:`~segsearch.gui.canvas_input` (mouse strokes and fills on the canvas, the brush outline),
:mod:`~segsearch.gui.palette_panel` (the class palette and its filter box), :mod:`~segsearch.gui.results_panel`
(the result cells, in columns by width), :mod:`~segsearch.gui.refine` (the query's refinements: filters,
classes left out or emphasised, likes; no Tk), :mod:`~segsearch.gui.refine_bar` (their chips),
:mod:`~segsearch.gui.filters_dialog` (the filters window), :mod:`~segsearch.gui.label_map_view` (what the
network sees in the query photo), :mod:`~segsearch.gui.menus` (the menu bar and file dialogs),
:mod:`~segsearch.gui.shortcuts` (the keys: one table binds them and lists them) and
:mod:`~segsearch.gui.help_window` (Help: the keys, About); :mod:`~segsearch.gui.fit` (the window's first size
and the canvas's size), :mod:`~segsearch.gui.widgets` (tooltips, the status bar, result cells),
:mod:`~segsearch.gui.search_worker` (the search thread and thumbnails) and :mod:`~segsearch.gui.state_file`
(the test hook: set
``SEGSEARCH_GUI_STATE=path.json`` to have the app write its state after every change, for tests that drive the
window with xdotool). The drawing logic lives in :mod:`segsearch.sketch.model` (no Tk).
"""

from __future__ import annotations

import tkinter as tk

from .state_file import STATE_ENV, state_path_from_env
from .window import SketchApp

__all__ = ["STATE_ENV", "SketchApp", "run"]


def run(
    index_dir=None,
    *,
    photo_index=None,
    device=None,
    weights=None,
    k: int = 12,
    photos_dir=None,
    ray: str | None = None,
    ray_actors: int | None = None,
) -> int:
    """Open the sketch tool on ``index_dir`` (or an opened :class:`PhotoIndex`) and run until the window closes.
    ``photos_dir``: where the photos are, instead of the folder the index recorded. ``ray``: search on Ray at
    this address (see :meth:`PhotoIndex.open`).

    Raises ValueError / FileNotFoundError for a bad index folder or when no display is available.
    """
    if photo_index is None:
        if index_dir is None:
            raise ValueError("give an index folder or an opened PhotoIndex")
        from ..library.photo_index import PhotoIndex

        photo_index = PhotoIndex.open(
            index_dir, device=device, weights=weights, photos_dir=photos_dir, ray=ray, ray_actors=ray_actors
        )
    try:
        root = tk.Tk(className="segsearch")
    except tk.TclError as e:
        raise ValueError(f"cannot open a window ({e}); the sketch tool needs a display (set DISPLAY)") from None
    app = SketchApp(root, photo_index, k=k, state_path=state_path_from_env())
    try:
        root.mainloop()
    except KeyboardInterrupt:
        pass
    finally:
        app.stop_worker()
    return 0
