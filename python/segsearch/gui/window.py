"""The sketch tool's window: :class:`SketchApp` lays out the tools, the canvas, the class palette, the results
and the status bar, and turns mouse and key events into sketch edits and search requests.

Only the Tk main thread touches widgets; searches run in :class:`~segsearch.gui.search_worker.SearchWorker`,
whose answers the window polls. The drawing logic is :class:`segsearch.sketch.model.Sketch` (no Tk). The parts
of the window live in their own modules: :mod:`~segsearch.gui.controls` (the tool bar and the caption words),
:mod:`~segsearch.gui.canvas_input` (mouse strokes on the canvas), :mod:`~segsearch.gui.palette_panel` (the class
palette), :mod:`~segsearch.gui.results_panel` (the results) and :mod:`~segsearch.gui.menus` (the menu bar, the
keyboard shortcuts and the file dialogs).
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
from pathlib import Path
from tkinter import messagebox

import numpy as np
from PIL import Image, ImageTk

from ..engine.checks import check_k
from ..sketch.files import class_index, read_sketch, save_sketch
from ..sketch.model import Sketch, SketchView, letterbox
from ..sketch.sheet import open_photo
from . import menus
from .canvas_input import StrokeInput
from .controls import BRUSH, BRUSH_DEFAULT, BRUSH_MAX, BRUSH_MIN, ERASER, FILL, CaptionWords, ToolBar
from .palette_panel import PalettePanel, best_match
from .results_panel import THUMB_SIZE, ResultsPanel, answer_message
from .search_worker import SearchAnswer, SearchRequest, SearchWorker
from .state_file import StateFile, app_state
from .widgets import StatusBar, one_line

__all__ = ["BRUSH", "ERASER", "FILL", "SketchApp"]

log = logging.getLogger("segsearch.gui")

SKETCH_RES = 256  # label-map resolution of the canvas
CANVAS_PX = 512  # on-screen size of the canvas
PHOTO_ALPHA, BLANK_ALPHA = 0.5, 1.0  # sketch opacity over a photo / on the blank canvas
BAR_RGB = (96, 96, 96)  # the bars beside a query photo whose aspect ratio is not the canvas's
POLL_MS = 30
MESSAGE_BOX_CHARS = 600  # longer error messages are cut in the message box (the status bar tooltip has them)


class SketchApp:
    """The sketch tool in a Tk ``master`` (a Tk root or Toplevel) over an opened :class:`PhotoIndex`.

    ``k`` results are shown; with ``state_path`` the app rewrites that JSON file with its state after every
    change (see :mod:`segsearch.gui.state_file`)."""

    def __init__(self, master: tk.Misc, photo_index, *, k: int = 12, state_path=None):
        self.master = master
        self.pi = photo_index
        self.k = check_k(k)
        self._state_file = None if state_path is None else StateFile(state_path)
        self.state_path = None if state_path is None else self._state_file.path
        self.classes: list[str] = list(photo_index.classes)
        self.palette = np.asarray(photo_index.palette, np.uint8)
        self.sketch = Sketch(SKETCH_RES)
        self.view = SketchView(self.sketch.shape, (0, 0, CANVAS_PX, CANVAS_PX))
        self.tool = BRUSH
        self.current_class = self._default_class()
        self.brush = BRUSH_DEFAULT
        self.photo_path: Path | None = None
        self.photo_id = None  # the index id when the query photo is a result
        self._photo_img: Image.Image | None = None  # the photo at its size on the canvas
        self.canvas_image: Image.Image | None = None  # what the canvas shows (photo, bars, sketch)
        self.hits: list = []
        self.search_count = 0
        self.last_query_ms: float | None = None
        self.error: str | None = None
        self._seq = 0
        self._pending = False
        self._state_dirty = True
        self._segmented_photo: Path | None = None
        self._closed = False
        self._worker = SearchWorker(photo_index, THUMB_SIZE)

        master.title(f"segsearch — {self._index_name()}")
        master.report_callback_exception = self._report_exception
        master.protocol("WM_DELETE_WINDOW", self.close)
        master.bind("<Configure>", self.mark_dirty, add="+")  # widget positions are part of the state
        menus.build_menu(self)
        self._build_widgets()
        menus.bind_keys(self)
        self.palette_panel.fill()
        self._select_class(self.current_class)
        self.render()
        self._set_status(
            f"{len(photo_index)} photos, {len(self.classes)} classes. Pick a class and draw; "
            "the search runs when a stroke ends."
        )
        self._after_id = master.after(POLL_MS, self._poll)

    # ------------------------------------------------------------------------------------------------ layout
    def _index_name(self) -> str:
        d = getattr(self.pi, "index_dir", None)
        return str(d) if d is not None else "index"

    def _default_class(self) -> int:
        # the first class that is not the catch-all 'others'
        return 1 if len(self.classes) > 1 and self.classes[0].lower() == "others" else 0

    def _build_widgets(self) -> None:
        root = self.master
        # the status bar first, so the packer keeps it when the window is small; it never asks for width
        self.status = StatusBar(root)
        self.status.pack(side="bottom", fill="x")
        body = tk.Frame(root)
        body.pack(side="top", fill="both", expand=True)

        # --- left: tools, canvas, caption words
        left = tk.Frame(body)
        left.pack(side="left", fill="y", padx=6, pady=6)
        bar = ToolBar(left, self)
        self.tool_var, self.brush_var, self.brush_scale = bar.tool_var, bar.brush_var, bar.brush_scale
        self.canvas = tk.Canvas(
            left,
            width=CANVAS_PX,
            height=CANVAS_PX,
            highlightthickness=1,
            highlightbackground="#888888",
            background="#ffffff",
            cursor="crosshair",
        )
        self.canvas.pack(side="top", pady=4)
        self._canvas_item = self.canvas.create_image(0, 0, anchor="nw")
        self._cursor_item = self.canvas.create_oval(0, 0, 0, 0, outline="#444444", dash=(2, 2), state="hidden")
        self.strokes = StrokeInput(self, self._cursor_item)
        words = CaptionWords(left, self)
        self.text_var, self.text_entry = words.text_var, words.text_entry

        # --- middle: class palette with a filter box; right: results
        p = self.palette_panel = PalettePanel(body, self)
        self.class_label, self.filter_var, self.filter_entry = p.class_label, p.filter_var, p.filter_entry
        self.palette_list = p.palette_list
        r = self.results_panel = ResultsPanel(body, self)
        self.query_label, self.results_frame, self.result_cells = r.query_label, r.results_frame, r.result_cells

    # ---------------------------------------------------------------------------------------------- palette
    @property
    def visible_classes(self) -> list[int]:
        """The classes the palette lists (those whose names contain the filter text), in its order."""
        return self.palette_panel.visible_classes

    def best_match(self, text: str) -> int | None:
        """The class the filter text ``text`` picks: a class named exactly so, else the first whose name starts
        with it, else the first containing it (case-insensitive); None when no class name contains it."""
        return best_match(text, self.classes)

    def _select_class(self, c: int) -> None:
        self.current_class = int(c)
        self.palette_panel.show_class(c)
        if self.tool == ERASER:
            self.set_tool(BRUSH)
        self._state_dirty = True

    def select_class(self, name_or_index) -> None:
        """Pick the drawing class by name or by class index (0-based: the palette's and `segsearch classes`'
        number). Raises ValueError for an unknown name or an index out of range."""
        if isinstance(name_or_index, (int, np.integer)) and not isinstance(name_or_index, bool):
            c = int(name_or_index)
        else:
            c = class_index(str(name_or_index), self.classes)
        if not 0 <= c < len(self.classes):
            raise ValueError(f"class {c} is not in 0..{len(self.classes) - 1}")
        self._select_class(c)

    # ------------------------------------------------------------------------------------------------ tools
    def set_tool(self, tool: str) -> None:
        """Pick the brush, the eraser or the flood fill ("brush", "eraser", "fill")."""
        if tool not in (BRUSH, ERASER, FILL):
            raise ValueError(f"unknown tool {tool!r}; expected one of {BRUSH!r}, {ERASER!r}, {FILL!r}")
        self.tool = tool
        self.tool_var.set(tool)
        self.canvas.configure(cursor="spraycan" if tool == FILL else "crosshair")
        self._state_dirty = True

    def change_brush(self, step: int) -> None:
        """A larger (``step`` > 0) or smaller brush, by about a quarter."""
        b = self.brush
        b = max(b + 1, round(b * 1.25)) if step > 0 else min(b - 1, round(b / 1.25))
        self.set_brush(b)

    def set_brush(self, radius: int) -> None:
        """The brush radius in sketch pixels, clamped to 1..64."""
        self.brush = int(min(max(int(radius), BRUSH_MIN), BRUSH_MAX))
        self.brush_var.set(self.brush)
        self.strokes.update_cursor()
        self._state_dirty = True

    # ---------------------------------------------------------------------------------------------- drawing
    def mark_dirty(self, event=None) -> None:
        """Have the state file rewritten at the next poll (something it records has changed)."""
        self._state_dirty = True

    def sketch_changed(self) -> None:
        """Redraw the canvas and search (call after changing :attr:`sketch` directly)."""
        self.render()
        self.request_search()

    def undo(self) -> None:
        """Undo the last stroke, fill, clear or load."""
        if self.sketch.undo():
            self.sketch_changed()
        else:
            self._set_status("Nothing to undo.")

    def redo(self) -> None:
        """Redo the last undone step."""
        if self.sketch.redo():
            self.sketch_changed()
        else:
            self._set_status("Nothing to redo.")

    def clear(self) -> None:
        """Erase the whole sketch (one undo step)."""
        if self.sketch.clear():
            self.sketch_changed()

    def render(self) -> None:
        """Redraw the canvas: the query photo with its aspect ratio kept (bars beside it) or white, and the
        sketch stretched over the photo's area."""
        size = (CANVAS_PX, CANVAS_PX)
        x, y, w, h = self.view.area
        if self._photo_img is not None:
            base, alpha = Image.new("RGBA", size, BAR_RGB + (255,)), PHOTO_ALPHA
            base.paste(self._photo_img.convert("RGBA"), (x, y))
        else:
            base, alpha = Image.new("RGBA", size, (255, 255, 255, 255)), BLANK_ALPHA
        over = Image.new("RGBA", size, (0, 0, 0, 0))
        over.paste(
            Image.fromarray(self.sketch.to_rgba(self.palette, alpha), "RGBA").resize((w, h), Image.NEAREST), (x, y)
        )
        self.canvas_image = Image.alpha_composite(base, over)
        img = ImageTk.PhotoImage(self.canvas_image, master=self.master)
        self._canvas_photo = img  # keep a reference: Tk does not
        self.canvas.itemconfigure(self._canvas_item, image=img)
        self.canvas.tag_raise(self._cursor_item)
        self._state_dirty = True

    # ---------------------------------------------------------------------------------------------- queries
    def set_photo(self, path, photo_id=None) -> None:
        """Make ``path`` the query photo (the strokes are kept); an unreadable photo is an error in the status
        bar and the current query photo stays."""
        p = Path(path)
        try:
            img = open_photo(p, (CANVAS_PX, CANVAS_PX))
            area = letterbox(img.width, img.height, CANVAS_PX, CANVAS_PX)
            img = img.resize(area[2:], Image.BILINEAR)
        except FileNotFoundError:
            self.show_error(f"photo {p} does not exist")
            return
        except (OSError, ValueError, SyntaxError) as e:
            self.show_error(f"cannot read photo {p}: {e}")
            return
        self.photo_path, self.photo_id, self._photo_img = p, photo_id, img
        self.view = SketchView(self.sketch.shape, area)
        self.query_label.set_text(
            f"Query: {photo_id if photo_id is not None else p.name} + sketch", tooltip=f"Query photo: {p}"
        )
        self.strokes.update_cursor()
        self.sketch_changed()

    def remove_photo(self) -> None:
        """Search by the sketch alone again."""
        self.photo_path = self.photo_id = self._photo_img = None
        self.view = SketchView(self.sketch.shape, (0, 0, CANVAS_PX, CANVAS_PX))
        self.query_label.set_text("Query: sketch only")
        self.strokes.update_cursor()
        self.sketch_changed()

    def is_query(self, hit) -> bool:
        """Whether a result is the current query photo."""
        return self.photo_id is not None and hit.id == self.photo_id

    def use_result(self, i: int) -> None:
        """Make result ``i`` (0-based) the query photo, keeping the strokes."""
        if 0 <= i < len(self.hits):
            hit = self.hits[i]
            if hit.path is None:  # a refused id (outside the photos folder, not a regular file): never opened
                self.show_error(f"result {hit.rank} is not shown: {hit.note}")
                return
            self.set_photo(hit.path, photo_id=hit.id)

    @property
    def pending(self) -> bool:
        """Whether a search is running whose answer is not shown yet."""
        return self._pending

    def request_search(self) -> None:
        """Search with the current sketch, query photo and caption words (in the worker thread)."""
        text = self.text_var.get().strip() if self.pi.has_captions else ""
        drawn = not self.sketch.is_empty()
        if not drawn and self.photo_path is None and not text:
            self._seq += 1  # drop any search still running
            self._pending = False
            self._show_hits([], [])
            self._set_status("Nothing to search for: draw a class, open a photo (Ctrl+O) or type caption words.")
            return
        self._seq += 1
        labels = self.sketch.labels_at(self.pi.size) if drawn else None
        self._worker.submit(
            SearchRequest(
                self._seq, labels, None if self.photo_path is None else str(self.photo_path), text or None, self.k
            )
        )
        self._pending = True
        self._state_dirty = True
        if self.photo_path is not None and self.photo_path != self._segmented_photo:
            self._segmented_photo = self.photo_path
            self._set_status(f"Segmenting {self.photo_path.name} (the first photo also loads the network)…")

    def _poll(self) -> None:
        if self._closed:
            return
        try:
            while True:
                ans = self._worker.answers.get_nowait()
                if ans.seq == self._seq:
                    self._apply(ans)
        except queue.Empty:
            pass
        finally:  # keep polling even if showing an answer failed (the error goes to the status bar)
            self._after_id = self.master.after(POLL_MS, self._poll)
        if self._state_dirty:
            self._state_dirty = False
            self.write_state()

    def _apply(self, ans: SearchAnswer) -> None:
        self._pending = False
        self.search_count += 1
        if ans.error is not None:
            self.show_error(ans.error)
            return
        self.error = None
        self.last_query_ms = ans.search_ms
        self._show_hits(ans.hits, ans.thumbs)
        self._set_status(answer_message(ans, [self.classes[c] for c in self.sketch.classes_drawn()]))

    def _show_hits(self, hits, thumbs) -> None:
        self.hits = list(hits)
        self.results_panel.show(hits, thumbs)
        self._state_dirty = True

    # ----------------------------------------------------------------------------------------------- files
    def ask_open_photo(self) -> None:
        """File dialog: pick a query photo."""
        menus.ask_open_photo(self)

    def ask_save_sketch(self) -> None:
        """File dialog: save the sketch as a PNG."""
        menus.ask_save_sketch(self)

    def ask_load_sketch(self) -> None:
        """File dialog: load a sketch PNG."""
        menus.ask_load_sketch(self)

    def save_sketch(self, path) -> bool:
        """Save the sketch as an RGB PNG in the index's palette; False (and a status bar error) on failure."""
        try:
            save_sketch(path, self.sketch.labels, self.palette)
        except (OSError, ValueError) as e:
            self.show_error(f"cannot save the sketch to {path}: {e}")
            return False
        self._set_status(f"Saved the sketch to {path}")
        return True

    def load_sketch(self, path) -> bool:
        """Replace the sketch with a sketch PNG; False (and a status bar error) when it cannot be read."""
        try:
            lab = read_sketch(path, self.palette, len(self.classes))
            self.sketch.set_labels(lab)
        except (OSError, ValueError) as e:
            self.show_error(str(e))
            return False
        self.sketch_changed()
        return True

    # --------------------------------------------------------------------------------------- status, state
    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.show(text, error=error)
        self._state_dirty = True

    def show_error(self, text: str) -> None:
        """Show ``text`` as an error in the status bar (and in :attr:`error`, on one line)."""
        self.error = one_line(text)
        self._set_status(text, error=True)

    def _report_exception(self, exc, val, tb) -> None:
        # Tk callback errors go to the status bar (and a message box), never a traceback on stderr; the
        # traceback is logged at DEBUG level.
        log.debug("error in a Tk callback", exc_info=(exc, val, tb))
        msg = one_line(val) or exc.__name__
        self.show_error(f"{exc.__name__}: {msg}")
        if self._state_file is None:
            short = msg if len(msg) <= MESSAGE_BOX_CHARS else msg[:MESSAGE_BOX_CHARS] + "…"
            messagebox.showerror("segsearch", short, parent=self.master)

    def state(self) -> dict:
        """What the app shows, for tests: drawn classes, results, query photo, and where widgets are on screen."""
        return app_state(self)

    def write_state(self) -> None:
        """Rewrite the state file, if the app has one."""
        if self._state_file is not None:
            self._state_file.write(self)

    def close(self) -> None:
        """Stop the worker and destroy the window."""
        if self._closed:
            return
        self._closed = True
        self._worker.stop()
        try:
            self.master.after_cancel(self._after_id)
            self.master.destroy()
        except tk.TclError:
            pass

    def stop_worker(self) -> None:
        """Mark the app closed and let the worker thread end (when the window is already gone)."""
        self._closed = True
        self._worker.stop()
