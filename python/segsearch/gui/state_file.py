"""The sketch tool's test hook: with ``SEGSEARCH_GUI_STATE=path.json`` set, the app rewrites that file with its
state (drawn classes, results, query photo, status, where its widgets are on screen) after every change, so
tests can drive the real window with xdotool and check what it shows.
"""

from __future__ import annotations

import json
import os
import tkinter as tk
from pathlib import Path

from ..engine.storage import atomic_write

__all__ = ["STATE_ENV", "StateFile", "app_state", "state_path_from_env"]

#: Environment variable naming a JSON file the app rewrites with its state after every change.
STATE_ENV = "SEGSEARCH_GUI_STATE"


def state_path_from_env() -> Path | None:
    """The state file named by ``SEGSEARCH_GUI_STATE``, or None when it is unset or empty."""
    value = os.environ.get(STATE_ENV)
    return Path(value) if value else None


def _box(w: tk.Misc) -> list[int]:
    return [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]


def app_state(app) -> dict:
    """What a :class:`~segsearch.gui.SketchApp` shows, as JSON-able values (``refine``: the refinements as
    search keywords); boxes are [x, y, width, height] in
    screen pixels (``sketch_area`` is the part of the canvas the sketch covers: the photo, not its bars)."""
    lb = app.palette_list
    rows = []
    for row in range(len(app.visible_classes)):
        b = lb.bbox(row)
        if b:
            rows.append([lb.winfo_rootx() + b[0], lb.winfo_rooty() + b[1], b[2], b[3]])
    x, y, w, h = app.view.area
    cx, cy = app.canvas.winfo_rootx(), app.canvas.winfo_rooty()
    return {
        "classes_drawn": [app.classes[c] for c in app.sketch.classes_drawn()],
        "selected_class": app.classes[app.current_class],
        "selected_index": app.current_class,
        "tool": app.tool,
        "brush": app.brush,
        "filter": app.filter_var.get(),
        "visible_classes": [app.classes[c] for c in app.visible_classes],
        "palette_text": [app.palette_list.get(r) for r in range(app.palette_list.size())],
        "query_photo": None if app.photo_path is None else str(app.photo_path),
        "query_id": app.photo_id,
        "text": app.text_var.get(),
        "results": [h.as_dict() for h in app.hits],
        "result_captions": [str(c.cget("text")) for c in app.result_cells[: len(app.hits)]],
        "query_result": next((h.rank for h in app.hits if app.is_query(h)), None),
        "refine": app.refinement.search_kwargs(app.classes),
        "chips": [c.text for c, _ in app.refine_bar.chips],
        "result_marks": [app.result_mark(h) for h in app.hits],
        "hovered_result": app.hovered_result,
        "label_map_shown": app.label_map.labels is not None,
        "n_results": len(app.hits),
        "search_count": app.search_count,
        "pending": app.pending,
        "query_ms": app.last_query_ms,
        "status": app.status.full_text,
        "status_shown": app.status.shown_text,
        "error": app.error,
        "can_undo": app.sketch.can_undo,
        "can_redo": app.sketch.can_redo,
        "window": _box(app.master),
        "canvas": _box(app.canvas),
        "sketch_area": [cx + x, cy + y, w, h],
        "sketch_scale": list(app.view.scale),
        "result_boxes": [_box(c) for c in app.result_cells[: len(app.hits)]],
        "filter_entry": _box(app.filter_entry),
        "text_entry": _box(app.text_entry),
        "search_button": _box(app.search_button),
        "tool_bar": _box(app.tool_bar.frame),
        "palette": _box(app.palette_list),
        "results_view": _box(app.results_panel.view),
        "result_columns": app.results_panel.columns,
        "status_bar": _box(app.status),
        "screen": [app.master.winfo_screenwidth(), app.master.winfo_screenheight()],
        "palette_rows": rows,
    }


class StateFile:
    """Writes :func:`app_state` to ``path`` atomically (tests read it while the app writes)."""

    def __init__(self, path):
        self.path = Path(path)

    def write(self, app) -> None:
        """Rewrite the file; a failure to write is ignored (the hook must never disturb the app)."""
        try:
            data = json.dumps(app_state(app)).encode()
            with atomic_write(self.path) as f:
                f.write(data)
        except (OSError, tk.TclError):
            pass
