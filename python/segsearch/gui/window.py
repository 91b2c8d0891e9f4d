"""The sketch tool's window: :class:`SketchApp` lays out the tools, the canvas, the class palette, the results
and the status bar, and turns mouse and key events into sketch edits and search requests.

The window's first size fits the screen (:mod:`~segsearch.gui.fit`), and its minimum size keeps every control
on it; the canvas (square) and the results grow and shrink with the window. The sketch is kept at
:data:`SKETCH_RES` squared and drawn at whatever size the canvas has, so strokes land on the same part of the
query at any size.

Only the Tk main thread touches widgets; searches run in :class:`~segsearch.gui.search_worker.SearchWorker`,
whose answers the window polls. The drawing logic is :class:`segsearch.sketch.model.Sketch` (no Tk). The parts
of the window live in their own modules: :mod:`~segsearch.gui.controls` (the tool bar and the caption words),
:mod:`~segsearch.gui.canvas_input` (mouse strokes on the canvas), :mod:`~segsearch.gui.palette_panel` (the class
palette), :mod:`~segsearch.gui.results_panel` (the results), :mod:`~segsearch.gui.refine_bar` (the refinements'
chips), :mod:`~segsearch.gui.label_map_view` (the query photo's label map), :mod:`~segsearch.gui.filters_dialog`
(the filters window), :mod:`~segsearch.gui.menus` (the menu bar and the file dialogs),
:mod:`~segsearch.gui.shortcuts` (the keys) and :mod:`~segsearch.gui.help_window` (Help); the refinements
themselves are :class:`~segsearch.gui.refine.Refinement` (no Tk).
"""

from __future__ import annotations

import logging
import queue
import tkinter as tk
import tkinter.font as tkfont
from pathlib import Path
from tkinter import messagebox
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageTk

from ..engine.checks import check_k
from ..library.metadata import FILL_HINT
from ..sketch.files import class_index, read_sketch, save_sketch
from ..sketch.model import Sketch, SketchView, letterbox
from ..sketch.sheet import UNREADABLE, open_photo, unreadable_reason
from . import filters_dialog, help_window, menus
from .canvas_input import StrokeInput
from .controls import BRUSH, BRUSH_DEFAULT, BRUSH_MAX, BRUSH_MIN, ERASER, FILL, CaptionWords, ToolBar
from .fit import CANVAS_MIN, CANVAS_PX, RESULT_COLUMNS, canvas_side, first_size
from .label_map_view import LabelMapView
from .palette_panel import PalettePanel, best_match
from .refine import DEFAULT_SHARE, DEFAULT_WEIGHT, Refinement, explains, has_metadata, search_options
from .refine_bar import RefineBar
from .results_panel import THUMB_SIZE, ResultsPanel, answer_message
from .search_worker import SearchAnswer, SearchRequest, SearchWorker
from .shortcuts import bind_keys
from .state_file import StateFile, app_state
from .widgets import StatusBar, one_line

__all__ = ["BRUSH", "ERASER", "FILL", "QueryContext", "SketchApp"]

log = logging.getLogger("segsearch.gui")

SKETCH_RES = 256  # label-map resolution of the canvas
PHOTO_PX = 1024  # a query photo is kept at most this size (decoded near it where it can be), for a large canvas
PAD = 6  # pixels around the window's parts
PHOTO_ALPHA, BLANK_ALPHA = 0.5, 1.0  # sketch opacity over a photo / on the blank canvas
BAR_RGB = (96, 96, 96)  # the bars beside a query photo whose aspect ratio is not the canvas's
POLL_MS = 30
MESSAGE_BOX_CHARS = 600  # longer error messages are cut in the message box (the status bar tooltip has them)


class QueryContext(NamedTuple):
    """What a query is besides the strokes: the query photo (its index id when it is a result), the caption
    words and the refinements (:class:`~segsearch.gui.refine.Refinement`). Opening a photo records the old and
    the new one in the sketch's history (:meth:`~segsearch.sketch.model.Sketch.start_over`), so one undo brings
    the old query back whole; a change of the refinements is a step too
    (:meth:`~segsearch.sketch.model.Sketch.change_context`)."""

    photo_path: Path | None
    photo_id: object
    words: str
    refine: Refinement = Refinement()


def menu_bar_height(root: tk.Misc) -> int:
    """The height of ``root``'s menu bar, which Tk draws above the window's area: the height of the clone of the
    menu that Tk shows as the bar (on X11, a child of ``root`` named ``#...``); else a line of the menu font."""
    heights = [
        int(root.tk.call("winfo", "reqheight", w))
        for w in root.tk.splitlist(root.tk.call("winfo", "children", root))
        if str(w).rsplit(".", 1)[-1].startswith("#") and root.tk.call("winfo", "class", w) == "Menu"
    ]
    return max(heights) if heights else tkfont.nametofont("TkMenuFont").metrics("linespace") + 10


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
        self.board_px = CANVAS_MIN  # the canvas's side on screen
        self.view = SketchView(self.sketch.shape, (0, 0, self.board_px, self.board_px))
        self.tool = BRUSH
        self.current_class = self._default_class()
        self.brush = BRUSH_DEFAULT
        self.photo_path: Path | None = None
        self.photo_id = None  # the index id when the query photo is a result
        self._photo_src: Image.Image | None = None  # the query photo as read
        self._photo_img: Image.Image | None = None  # the photo at its size on the canvas
        self.canvas_image: Image.Image | None = None  # what the canvas shows (photo, bars, sketch)
        self.hits: list = []
        self._thumbs: list = []
        self.hovered_result: int | None = None  # the result under the pointer (L and U act on it)
        self.refinement = Refinement()
        self.refine_options = search_options(photo_index)  # the refinements the index's search takes
        self.explaining = explains(photo_index)  # results show the classes their distance is made of
        self.last_request: SearchRequest | None = None
        self.search_count = 0
        self.last_query_ms: float | None = None
        self.error: str | None = None
        self._seq = 0
        self._pending = False
        self._state_dirty = True
        self._segmented_photo: Path | None = None
        self._closed = False
        self._fit_pending = False
        self._worker = SearchWorker(photo_index, THUMB_SIZE)

        master.title(f"segsearch — {self._index_name()}")
        master.report_callback_exception = self._report_exception
        master.protocol("WM_DELETE_WINDOW", self.close)
        master.bind("<Configure>", self.mark_dirty, add="+")  # widget positions are part of the state
        self.menu_bar = menus.build_menu(self)
        self._build_widgets()
        self._size_window()
        bind_keys(self)
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
        body = self.body = tk.Frame(root)
        body.pack(side="top", fill="both", expand=True)

        # --- left: the tool column beside the canvas, the caption words below them
        left = self._left = tk.Frame(body)
        left.grid(row=0, column=0, sticky="n", padx=PAD, pady=PAD)
        bar = self.tool_bar = ToolBar(left, self)
        bar.frame.grid(row=0, column=0, sticky="n")
        self.tool_var, self.brush_var, self.brush_scale = bar.tool_var, bar.brush_var, bar.brush_scale
        side = self.board_px
        self.canvas = tk.Canvas(
            left, width=side, height=side, highlightthickness=0, borderwidth=0, background="#ffffff", cursor="crosshair"
        )
        self.canvas.grid(row=0, column=1, sticky="nw", padx=(PAD, 0))
        self._canvas_item = self.canvas.create_image(0, 0, anchor="nw")
        self._cursor_item = self.canvas.create_oval(0, 0, 0, 0, outline="#444444", dash=(2, 2), state="hidden")
        self.strokes = StrokeInput(self, self._cursor_item)
        words = self.caption_words = CaptionWords(left, self)
        words.frame.grid(row=1, column=0, columnspan=2, sticky="ew", pady=(PAD, 0))
        self.text_var, self.text_entry, self.search_button = words.text_var, words.text_entry, words.search_button

        # --- middle: class palette with a filter box; right: results, taking the width left
        p = self.palette_panel = PalettePanel(body, self)
        p.frame.grid(row=0, column=1, sticky="ns", pady=PAD)
        self.class_label, self.filter_var, self.filter_entry = p.class_label, p.filter_var, p.filter_entry
        self.palette_list = p.palette_list
        r = self.results_panel = ResultsPanel(body, self)
        r.frame.grid(row=0, column=2, sticky="nsew", padx=PAD, pady=PAD)
        self.query_label, self.results_frame, self.result_cells = r.query_label, r.results_frame, r.result_cells
        self.refine_bar = RefineBar(r.frame, self)
        self.refine_bar.frame.pack(side="top", fill="x", after=r.query_label)
        self.label_map = LabelMapView(p.frame, self)
        self.label_map.frame.pack(side="bottom", fill="x", before=p.list_frame)
        body.columnconfigure(2, weight=1)
        body.rowconfigure(0, weight=1)
        body.bind("<Configure>", self._schedule_fit, add="+")

    def _size_window(self) -> None:
        """The window's minimum size (the smallest canvas, one result column) and its first size: the canvas at
        :data:`~segsearch.gui.fit.CANVAS_PX` and all the results in :data:`~segsearch.gui.fit.RESULT_COLUMNS`
        columns, cut to fit the screen."""
        root, view = self.master, self.results_panel.view
        root.update_idletasks()
        minimum = (root.winfo_reqwidth(), root.winfo_reqheight())
        self.canvas.configure(width=CANVAS_PX, height=CANVAS_PX)
        width, height = self.results_panel.room_for(RESULT_COLUMNS)
        view.configure(width=width, height=height)
        root.update_idletasks()
        preferred = (root.winfo_reqwidth(), root.winfo_reqheight())
        self.canvas.configure(width=self.board_px, height=self.board_px)
        view.configure(width=self.results_panel.pitch, height=1)
        screen = (root.winfo_screenwidth(), root.winfo_screenheight())
        w, h = first_size(preferred, minimum, screen, menu_bar_height(root))
        root.minsize(*minimum)
        root.geometry(f"{w}x{h}")

    def _schedule_fit(self, event=None) -> None:
        if not self._fit_pending:
            self._fit_pending = True
            self.master.after_idle(self._fit_canvas)

    def _fit_canvas(self) -> None:
        """Size the canvas for the room the window gives it (:func:`~segsearch.gui.fit.canvas_side`) and redraw
        it at its new size."""
        self._fit_pending = False
        if self._closed:
            return
        self.master.update_idletasks()  # the parts' requested sizes, up to date
        body = self.body
        if body.winfo_width() <= 1:  # not laid out yet
            return
        # the width of everything but the canvas and the result columns after the first
        fixed = body.winfo_reqwidth() - self._left.winfo_reqwidth() + self.tool_bar.frame.winfo_reqwidth() + PAD
        below = 3 * PAD + self.caption_words.frame.winfo_reqheight()
        side = canvas_side(body.winfo_width() - fixed, body.winfo_height() - below, self.results_panel.pitch)
        if side != self.board_px:
            self.board_px = side
            self.canvas.configure(width=side, height=side)
            self._place_sketch()
            self.render()

    def _place_sketch(self) -> None:
        """Where the sketch lies on the canvas: over the query photo (its aspect ratio kept), or all of it."""
        side = self.board_px
        src = self._photo_src
        area = (0, 0, side, side) if src is None else letterbox(src.width, src.height, side, side)
        self.view = SketchView(self.sketch.shape, area)
        self.strokes.update_cursor()

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
        """Undo the last stroke, fill, clear, load or opened photo (which brings back the query before it: its
        photo, strokes and caption words)."""
        self._history_step(self.sketch.undo, "Nothing to undo.")

    def redo(self) -> None:
        """Redo the last undone step."""
        self._history_step(self.sketch.redo, "Nothing to redo.")

    def _history_step(self, step, nothing: str) -> None:
        context = self.sketch.context
        if not step():
            self._set_status(nothing)
            return
        if self.sketch.context is not context:  # the step opened a photo or refined: that comes and goes with it
            self._restore_query(self.sketch.context, context)
        self.sketch_changed()

    def clear(self) -> None:
        """Erase the whole sketch (one undo step)."""
        if self.sketch.clear():
            self.sketch_changed()

    def render(self) -> None:
        """Redraw the canvas: the query photo with its aspect ratio kept (bars beside it) or white, and the
        sketch stretched over the photo's area."""
        size = (self.board_px, self.board_px)
        x, y, w, h = self.view.area
        if self._photo_src is not None:
            if self._photo_img is None or self._photo_img.size != (w, h):
                self._photo_img = self._photo_src.resize((w, h), Image.BILINEAR)
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
    def open_photo(self, path) -> bool:
        """Start a new query from the photo ``path`` (File → Open photo): the strokes and the caption words are
        cleared, in one step that undo takes back. An unreadable photo is an error in the status bar (False) and
        the query stays."""
        p = Path(path)
        img = self._read_photo(p)
        if img is None:
            return False
        self.sketch.start_over(self.query_context(), QueryContext(p, None, "", self.refinement))
        self.text_var.set("")
        self._show_photo(p, None, img)
        self.sketch_changed()
        return True

    def set_photo(self, path, photo_id=None) -> None:
        """Make ``path`` the query photo, keeping the strokes and words (``photo_id``: its index id when it is
        a result); an unreadable photo is an error in the status bar and the current query photo stays."""
        p = Path(path)
        img = self._read_photo(p)
        if img is not None:
            self._show_photo(p, photo_id, img)
            self.sketch_changed()

    def remove_photo(self) -> None:
        """Search by the sketch alone again."""
        self._drop_photo()
        self.sketch_changed()

    def query_context(self) -> QueryContext:
        """The query photo, the caption words and the refinements."""
        return QueryContext(self.photo_path, self.photo_id, self.text_var.get(), self.refinement)

    def _read_photo(self, p: Path) -> Image.Image | None:
        try:
            img = open_photo(p, (PHOTO_PX, PHOTO_PX))
        except UNREADABLE as e:
            self.show_error(f"cannot open photo {p}: {unreadable_reason(e)}")
            return None
        img.thumbnail((PHOTO_PX, PHOTO_PX))  # kept while it is the query: no bigger than a large canvas needs
        return img

    def _show_photo(self, p: Path, photo_id, img: Image.Image) -> None:
        self.photo_path, self.photo_id, self._photo_src, self._photo_img = p, photo_id, img, None
        self.query_label.set_text(
            f"Query: {photo_id if photo_id is not None else p.name} + sketch", tooltip=f"Query photo: {p}"
        )
        self._place_sketch()

    def _drop_photo(self) -> None:
        self.photo_path = self.photo_id = self._photo_src = self._photo_img = None
        self.query_label.set_text("Query: sketch only")
        self.label_map.clear()
        self._place_sketch()

    def _restore_query(self, context: QueryContext | None, replaced: QueryContext | None = None) -> None:
        """Show what an undo or redo step changed, from the context it ``replaced`` to ``context``: the query
        photo and the words (a photo that can no longer be read stays out, with an error in the status bar),
        the refinements. What the step did not change stays as it is now."""
        if context is None:
            return
        replaced = replaced or QueryContext(None, None, "")
        if context.refine != replaced.refine:
            self._show_refinement(context.refine)
        if (context.photo_path, context.photo_id, context.words) == (
            replaced.photo_path,
            replaced.photo_id,
            replaced.words,
        ):
            return
        self.text_var.set(context.words)
        if context.photo_path is None:
            self._drop_photo()
        else:
            img = self._read_photo(context.photo_path)
            if img is not None:
                self._show_photo(context.photo_path, context.photo_id, img)

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
        if not drawn and self.photo_path is None and not text and not self.refinement.like:
            self._seq += 1  # drop any search still running
            self._pending = False
            self._show_hits([], [])
            self._set_status("Nothing to search for: draw a class, open a photo (Ctrl+O) or type caption words.")
            return
        self._seq += 1
        labels = self.sketch.labels_at(self.pi.size) if drawn else None
        options = {k: v for k, v in self.refinement.search_kwargs(self.classes).items() if k in self.refine_options}
        photo = None if self.photo_path is None else str(self.photo_path)
        self.last_request = SearchRequest(self._seq, labels, photo, text or None, self.k, options, self.explaining)
        self._worker.submit(self.last_request)
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
        if ans.photo_labels is not None and self._photo_src is not None:
            self.label_map.show(ans.photo_labels, self._photo_src.size)
        self._show_hits(ans.hits, ans.thumbs)
        self._set_status(answer_message(ans, [self.classes[c] for c in self.sketch.classes_drawn()]))

    def _show_hits(self, hits, thumbs) -> None:
        self.hits, self._thumbs = list(hits), list(thumbs)
        self.results_panel.show(hits, thumbs)
        self._state_dirty = True

    # ------------------------------------------------------------------------------------------ refinements
    def refine(self, new: Refinement, message: str) -> bool:
        """Make ``new`` the query's refinements (one undo step), show them and search; ``message`` goes to the
        status bar. False when nothing changed."""
        if new == self.refinement:
            return False
        before = self.query_context()
        self.sketch.change_context(before, QueryContext(before.photo_path, before.photo_id, before.words, new))
        self._show_refinement(new)
        self._set_status(message)
        self.request_search()  # its own status, if any, says more (e.g. that there is nothing to search for)
        return True

    def _show_refinement(self, r: Refinement) -> None:
        self.refinement = r
        self.refine_bar.show(r.chips(self.classes))
        self.results_panel.show(self.hits, self._thumbs, scroll=False)  # the like marks
        self._state_dirty = True

    def _refused(self, option: str, what: str) -> bool:
        """Whether the index's search lacks the keyword ``option`` (then an error says ``what`` needs it)."""
        if option in self.refine_options:
            return False
        self.show_error(f"{what} needs a segsearch library whose search takes {option}=; this one does not")
        return True

    def set_filters(self, **filters) -> bool:
        """Set the date, folder and camera filters (``after``, ``before``, ``folder``, ``camera``; None or blank
        text clears one): one undo step. A bad one is a one-line error in the status bar (False) and the filters
        stay."""
        if any(self._refused(k, "filtering") for k in filters if filters[k]):
            return False
        if any(filters.values()) and not has_metadata(self.pi):
            self.show_error(f"filter not applied: this index has no photo metadata; {FILL_HINT}")
            return False
        try:
            new = self.refinement.with_filters(**filters)
        except ValueError as e:
            self.show_error(f"filter not applied: {e}")
            return False
        self.refine(new, "Filters: " + (", ".join(f"{k} {v}" for k, v in new.filters().items()) or "none"))
        return True

    def exclude_class(self, c: int, share: float = DEFAULT_SHARE) -> bool:
        """Leave out the photos where class ``c`` covers at least ``share`` of the photo (one undo step)."""
        if self._refused("exclude", "leaving a class out"):
            return False
        name = self.classes[int(c)]
        return self.refine(self.refinement.excluding(c, share), f"Leaving out photos with {name} on {share:.1%}+")

    def emphasise_class(self, c: int, weight: float = DEFAULT_WEIGHT) -> bool:
        """Make class ``c`` count ``weight`` times more (one undo step)."""
        if self._refused("weights", "emphasising a class"):
            return False
        name = self.classes[int(c)]
        return self.refine(self.refinement.emphasising(c, weight), f"Emphasising {name} (×{weight:g})")

    def result_mark(self, hit) -> str | None:
        """ "like", "unlike" or None: how the result ``hit`` is marked."""
        return self.refinement.mark(hit.id)

    def hover_result(self, i: int | None) -> None:
        """The pointer is over result ``i`` (None: over none)."""
        self.hovered_result = i
        self._state_dirty = True

    def mark_result(self, i: int | None, mark: str | None) -> bool:
        """Like (``mark`` "like"), unlike ("unlike") or unmark (None) result ``i`` (0-based; None: the result
        under the pointer), one undo step, and search again."""
        i = self.hovered_result if i is None else i
        if i is None or not 0 <= i < len(self.hits):
            self.show_error("Point at a result to like or unlike it.")
            return False
        if self._refused("like", "more / fewer like this"):
            return False
        hit = self.hits[i]
        said = {"like": "More like", "unlike": "Fewer like", None: "No longer marked:"}[mark]
        return self.refine(self.refinement.marking(hit.id, mark), f"{said} {hit.id}")

    def like_result(self, i: int | None = None) -> bool:
        """Like result ``i`` (None: the one under the pointer); a liked one is unmarked."""
        return self._toggle(i, "like")

    def unlike_result(self, i: int | None = None) -> bool:
        """Unlike result ``i`` (None: the one under the pointer); an unliked one is unmarked."""
        return self._toggle(i, "unlike")

    def _toggle(self, i: int | None, mark: str) -> bool:
        j = self.hovered_result if i is None else i
        now = self.result_mark(self.hits[j]) if j is not None and 0 <= j < len(self.hits) else None
        return self.mark_result(j, None if now == mark else mark)

    def remove_refinement(self, kind: str, key=None) -> bool:
        """Remove a chip's refinement: a filter, a class left out or emphasised, the likes or the unlikes."""
        return self.refine(self.refinement.without(kind, key), f"Removed {kind}")

    def clear_refinements(self) -> bool:
        """Remove every refinement (one undo step)."""
        return self.refine(Refinement(), "No refinements")

    def show_filters(self) -> tk.Toplevel:
        """Refine → Filters: the window that sets the date, folder and camera filters; returns it."""
        return filters_dialog.show_filters(self)

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
            self.show_error(f"cannot save the sketch to {path}: {getattr(e, 'strerror', None) or e}")
            return False
        self._set_status(f"Saved the sketch to {path}")
        return True

    def load_sketch(self, path) -> bool:
        """Replace the sketch with a sketch PNG; False (and a status bar error) when it cannot be read."""
        try:
            image = open_photo(path, mode=None)
        except UNREADABLE as e:
            self.show_error(f"cannot open sketch {path}: {unreadable_reason(e)}")
            return False
        try:
            self.sketch.set_labels(read_sketch(image, self.palette, len(self.classes)))
        except ValueError as e:  # not a sketch of this index's classes: read_sketch says why
            self.show_error(f"cannot load sketch {path}: {e}")
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

    def show_shortcuts(self) -> tk.Toplevel:
        """Help → Keyboard shortcuts: a window listing the keys; returns it."""
        return help_window.show_shortcuts(self.master)

    def show_about(self) -> tk.Toplevel:
        """Help → About: the version and the index; returns its window."""
        return help_window.show_about(self)

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
