"""The sketch tool's window: :class:`SketchApp` lays out the tools, the canvas, the class palette, the results
and the status bar, and turns mouse and key events into sketch edits and search requests.

Only the Tk main thread touches widgets; searches run in :class:`~segsearch.gui.search_worker.SearchWorker`,
whose answers the window polls. The drawing logic is :class:`segsearch.sketch_model.Sketch` (no Tk).
"""
from __future__ import annotations

import logging
import queue
import tkinter as tk
from pathlib import Path
from tkinter import filedialog, messagebox

import numpy as np
from PIL import Image, ImageTk

from ..engine.checks import check_k
from ..sketch.files import class_index, read_sketch, save_sketch
from ..sketch.model import UNSPECIFIED, Sketch, SketchView, letterbox
from ..sketch.sheet import open_photo
from .search_worker import SearchAnswer, SearchRequest, SearchWorker
from .state_file import StateFile, app_state
from .widgets import ElidedLabel, ResultCell, StatusBar, hex_colour, one_line, text_colour

__all__ = ["BRUSH", "ERASER", "FILL", "SketchApp"]

log = logging.getLogger("segsearch.gui")

SKETCH_RES = 256          # label-map resolution of the canvas
CANVAS_PX = 512           # on-screen size of the canvas
THUMB_SIZE = (112, 84)    # result thumbnails fit in this box (4:3, like most photos)
RESULT_COLUMNS = 3
BRUSH_MIN, BRUSH_MAX, BRUSH_DEFAULT = 1, 64, 8   # brush radius in sketch pixels
PHOTO_ALPHA, BLANK_ALPHA = 0.5, 1.0              # sketch opacity over a photo / on the blank canvas
BAR_RGB = (96, 96, 96)    # the bars beside a query photo whose aspect ratio is not the canvas's
POLL_MS = 30
QUERY_FRAME = "#d9480f"   # frame of the result that is the current query photo
MESSAGE_BOX_CHARS = 600   # longer error messages are cut in the message box (the status bar tooltip has them)
_CONTROL, _ALT = 0x4, 0x8  # Tk event.state bits

BRUSH, ERASER, FILL = "brush", "eraser", "fill"


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
        self.photo_id = None                 # the index id when the query photo is a result
        self._photo_img: Image.Image | None = None   # the photo at its size on the canvas
        self.canvas_image: Image.Image | None = None  # what the canvas shows (photo, bars, sketch)
        self.hits: list = []
        self.search_count = 0
        self.last_query_ms: float | None = None
        self.error: str | None = None
        self.visible_classes: list[int] = []
        self._filter_stale = False           # the filter holds a picked class's text: typing replaces it
        self._seq = 0
        self._pending = False
        self._state_dirty = True
        self._stroking = False
        self._stroke_cls = UNSPECIFIED
        self._last_xy = None
        self._pointer = (-1000, -1000)
        self._segmented_photo: Path | None = None
        self._closed = False
        self._worker = SearchWorker(photo_index, THUMB_SIZE)

        master.title(f"segsearch — {self._index_name()}")
        master.report_callback_exception = self._report_exception
        master.protocol("WM_DELETE_WINDOW", self.close)
        master.bind("<Configure>", self._mark_dirty, add="+")  # widget positions are part of the state
        self._build_menu()
        self._build_widgets()
        self._bind_keys()
        self._fill_palette()
        self._select_class(self.current_class)
        self.render()
        self._set_status(f"{len(photo_index)} photos, {len(self.classes)} classes. Pick a class and draw; "
                         "the search runs when a stroke ends.")
        self._after_id = master.after(POLL_MS, self._poll)

    # ------------------------------------------------------------------------------------------------ layout
    def _index_name(self) -> str:
        d = getattr(self.pi, "index_dir", None)
        return str(d) if d is not None else "index"

    def _default_class(self) -> int:
        # the first class that is not the catch-all 'others'
        return 1 if len(self.classes) > 1 and self.classes[0].lower() == "others" else 0

    def _build_menu(self) -> None:
        m = tk.Menu(self.master)
        f = tk.Menu(m, tearoff=False)
        f.add_command(label="Open photo…", accelerator="Ctrl+O", command=self.ask_open_photo)
        f.add_command(label="Remove photo", command=self.remove_photo)
        f.add_separator()
        f.add_command(label="Load sketch…", accelerator="Ctrl+L", command=self.ask_load_sketch)
        f.add_command(label="Save sketch…", accelerator="Ctrl+S", command=self.ask_save_sketch)
        f.add_separator()
        f.add_command(label="Quit", accelerator="Ctrl+Q", command=self.close)
        m.add_cascade(label="File", menu=f)
        e = tk.Menu(m, tearoff=False)
        e.add_command(label="Undo", accelerator="Ctrl+Z", command=self.undo)
        e.add_command(label="Redo", accelerator="Ctrl+Y", command=self.redo)
        e.add_command(label="Clear sketch", accelerator="Delete", command=self.clear)
        m.add_cascade(label="Edit", menu=e)
        t = tk.Menu(m, tearoff=False)
        t.add_command(label="Brush", accelerator="B", command=lambda: self.set_tool(BRUSH))
        t.add_command(label="Eraser", accelerator="E", command=lambda: self.set_tool(ERASER))
        t.add_command(label="Fill", accelerator="F", command=lambda: self.set_tool(FILL))
        t.add_command(label="Smaller brush", accelerator="[", command=lambda: self.change_brush(-1))
        t.add_command(label="Larger brush", accelerator="]", command=lambda: self.change_brush(+1))
        t.add_separator()
        t.add_command(label="Search now", accelerator="Return", command=self.request_search)
        m.add_cascade(label="Tools", menu=t)
        self.master.config(menu=m)

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
        bar = tk.Frame(left)
        bar.pack(side="top", fill="x")
        self.tool_var = tk.StringVar(value=self.tool)
        for name, label, key in ((BRUSH, "Brush", "B"), (ERASER, "Eraser", "E"), (FILL, "Fill", "F")):
            tk.Radiobutton(bar, text=f"{label} ({key})", value=name, variable=self.tool_var, indicatoron=False,
                           padx=6, command=lambda n=name: self.set_tool(n)).pack(side="left")
        tk.Label(bar, text="  Size [ ]").pack(side="left")
        self.brush_var = tk.IntVar(value=self.brush)
        self.brush_scale = tk.Scale(bar, from_=BRUSH_MIN, to=BRUSH_MAX, orient="horizontal", showvalue=True,
                                    variable=self.brush_var, length=110, command=self._brush_moved)
        self.brush_scale.pack(side="left")
        for text, cmd in (("Undo", self.undo), ("Redo", self.redo), ("Clear", self.clear)):
            tk.Button(bar, text=text, command=cmd).pack(side="left", padx=1)

        self.canvas = tk.Canvas(left, width=CANVAS_PX, height=CANVAS_PX, highlightthickness=1,
                                highlightbackground="#888888", background="#ffffff", cursor="crosshair")
        self.canvas.pack(side="top", pady=4)
        self._canvas_item = self.canvas.create_image(0, 0, anchor="nw")
        self._cursor_item = self.canvas.create_oval(0, 0, 0, 0, outline="#444444", dash=(2, 2), state="hidden")
        self.canvas.bind("<ButtonPress-1>", lambda e: self._press(e, erase=False))
        self.canvas.bind("<B1-Motion>", self._drag)
        self.canvas.bind("<ButtonRelease-1>", self._release)
        self.canvas.bind("<ButtonPress-3>", lambda e: self._press(e, erase=True))
        self.canvas.bind("<B3-Motion>", self._drag)
        self.canvas.bind("<ButtonRelease-3>", self._release)
        self.canvas.bind("<Motion>", self._hover)
        self.canvas.bind("<Leave>", lambda e: self.canvas.itemconfigure(self._cursor_item, state="hidden"))

        words = tk.Frame(left)
        words.pack(side="top", fill="x")
        tk.Label(words, text="Caption words:").pack(side="left")
        self.text_var = tk.StringVar()
        self.text_entry = tk.Entry(words, textvariable=self.text_var, width=34)
        self.text_entry.pack(side="left", fill="x", expand=True)
        self.text_entry.bind("<Return>", lambda e: self.request_search())
        tk.Button(words, text="Search", command=self.request_search).pack(side="left", padx=2)
        if not self.pi.has_captions:
            self.text_entry.configure(state="disabled")
            tk.Label(words, text="(no captions)", foreground="#777777").pack(side="left")

        # --- middle: class palette with a filter box
        mid = tk.Frame(body)
        mid.pack(side="left", fill="y", padx=4, pady=6)
        self.class_label = ElidedLabel(mid, width=22, anchor="center", relief="groove", pady=4)
        self.class_label.pack(side="top", fill="x")
        tk.Label(mid, text="Filter classes:", anchor="w").pack(side="top", fill="x", pady=(6, 0))
        self.filter_var = tk.StringVar()
        self.filter_entry = tk.Entry(mid, textvariable=self.filter_var, width=22, exportselection=False)
        self.filter_entry.pack(side="top", fill="x")
        self.filter_var.trace_add("write", lambda *a: self._fill_palette())
        self.filter_entry.bind("<Key>", self._filter_key)
        self.filter_entry.bind("<Return>", self._filter_return)
        self.filter_entry.bind("<KP_Enter>", self._filter_return)
        self.filter_entry.bind("<Escape>", self._filter_escape)
        self.filter_entry.bind("<FocusIn>", self._filter_focus, add="+")
        lf = tk.Frame(mid)
        lf.pack(side="top", fill="both", expand=True, pady=4)
        self.palette_list = tk.Listbox(lf, width=22, height=28, exportselection=False, activestyle="none",
                                       selectmode="browse")
        sb = tk.Scrollbar(lf, orient="vertical", command=self.palette_list.yview)
        self.palette_list.configure(yscrollcommand=sb.set)
        self.palette_list.pack(side="left", fill="both", expand=True)
        sb.pack(side="left", fill="y")
        self.palette_list.bind("<<ListboxSelect>>", self._palette_clicked)

        # --- right: results
        right = tk.Frame(body)
        right.pack(side="left", fill="both", expand=True, padx=6, pady=6)
        self.query_label = ElidedLabel(right, text="Query: sketch only", elide="middle")
        self.query_label.pack(side="top", fill="x")
        self.results_frame = tk.Frame(right)
        self.results_frame.pack(side="top", fill="both", expand=True)
        self.result_cells: list[ResultCell] = []
        for i in range(self.k):
            cell = ResultCell(self.results_frame, thumb_size=THUMB_SIZE, query_colour=QUERY_FRAME)
            cell.grid(row=i // RESULT_COLUMNS, column=i % RESULT_COLUMNS, padx=3, pady=3, sticky="n")
            cell.bind("<Button-1>", lambda e, i=i: self.use_result(i), add="+")
            self.result_cells.append(cell)

    def _bind_keys(self) -> None:
        r = self.master
        for seq, fn in (("<Control-z>", self.undo), ("<Control-y>", self.redo), ("<Control-Z>", self.redo),
                        ("<Control-s>", self.ask_save_sketch), ("<Control-o>", self.ask_open_photo),
                        ("<Control-l>", self.ask_load_sketch), ("<Control-q>", self.close)):
            r.bind(seq, lambda e, fn=fn: (fn(), "break")[1])
        # plain keys act on the sketch unless the user is typing in an entry
        for seq, fn in (("<Key-e>", lambda: self.set_tool(ERASER)), ("<Key-f>", lambda: self.set_tool(FILL)),
                        ("<Key-b>", lambda: self.set_tool(BRUSH)), ("<Key-E>", lambda: self.set_tool(ERASER)),
                        ("<Key-F>", lambda: self.set_tool(FILL)), ("<Key-B>", lambda: self.set_tool(BRUSH)),
                        ("<Key-bracketleft>", lambda: self.change_brush(-1)),
                        ("<Key-bracketright>", lambda: self.change_brush(+1)), ("<Delete>", self.clear),
                        ("<Return>", self.request_search)):
            r.bind(seq, lambda e, fn=fn: None if isinstance(e.widget, tk.Entry) else fn())

    # ---------------------------------------------------------------------------------------------- palette
    def _fill_palette(self) -> None:
        needle = self.filter_var.get().strip().lower()
        self.visible_classes = [i for i, n in enumerate(self.classes) if needle in n.lower()]
        lb = self.palette_list
        lb.delete(0, "end")
        for row, c in enumerate(self.visible_classes):
            lb.insert("end", f" {c:3d}  {self.classes[c]}")  # the class index, as in `segsearch classes`
            rgb = self.palette[c % len(self.palette)]
            lb.itemconfigure(row, background=hex_colour(rgb), foreground=text_colour(rgb),
                             selectbackground=hex_colour(rgb), selectforeground=text_colour(rgb))
        if self.current_class in self.visible_classes:
            row = self.visible_classes.index(self.current_class)
            lb.selection_set(row)
            lb.see(row)
        self._state_dirty = True

    def best_match(self, text: str) -> int | None:
        """The class the filter text ``text`` picks: a class named exactly so, else the first whose name starts
        with it, else the first containing it (case-insensitive); None when no class name contains it."""
        needle = text.strip().lower()
        names = [n.lower() for n in self.classes]
        for test in (lambda n: n == needle, lambda n: n.startswith(needle), lambda n: needle in n):
            for c, n in enumerate(names):
                if test(n):
                    return c
        return None

    def _picked_from_filter(self) -> None:
        """After a class is picked, the filter's text is selected and the next typing replaces it."""
        self._filter_stale = bool(self.filter_var.get())
        if self._filter_stale:
            self.filter_entry.selection_range(0, "end")
            self.filter_entry.icursor("end")

    def _palette_clicked(self, event=None) -> None:
        sel = self.palette_list.curselection()
        if sel and sel[0] < len(self.visible_classes):
            self._select_class(self.visible_classes[sel[0]])
            self._picked_from_filter()

    def _filter_key(self, event):
        # A widget binding, run before the Entry's own: after a pick, a typed character starts a new filter.
        if not self._filter_stale or event.state & (_CONTROL | _ALT):
            return None
        if event.char and event.char.isprintable():
            self._filter_stale = False
            self.filter_var.set("")
        elif event.keysym in ("BackSpace", "Delete", "Left", "Right", "Home", "End"):
            self._filter_stale = False  # the user edits the old text
        return None

    def _filter_focus(self, event=None) -> None:
        if self._filter_stale:  # after the click's own handling (which clears the selection), select the text
            self.filter_entry.after_idle(self._picked_from_filter)

    def _filter_return(self, event=None):
        text = self.filter_var.get().strip()
        if not text:
            self.canvas.focus_set()
            return "break"
        c = self.best_match(text)
        if c is None:
            self._picked_from_filter()  # typing replaces the text that matched nothing
            self._show_error(f"No class matches \u201c{text}\u201d; still drawing {self.classes[self.current_class]}."
                             " Type another name (Escape clears the filter).")
            return "break"
        self._select_class(c)
        self._picked_from_filter()
        self.canvas.focus_set()
        return "break"

    def _filter_escape(self, event=None):
        self._filter_stale = False
        self.filter_var.set("")
        self.canvas.focus_set()
        return "break"

    def _select_class(self, c: int) -> None:
        self.current_class = int(c)
        rgb = self.palette[c % len(self.palette)]
        self.class_label.configure(background=hex_colour(rgb), foreground=text_colour(rgb))
        self.class_label.set_text(f"{c} {self.classes[c]}")
        lb = self.palette_list
        lb.selection_clear(0, "end")
        if c in self.visible_classes:
            row = self.visible_classes.index(c)
            lb.selection_set(row)
            lb.see(row)
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
        self._update_cursor()
        self._state_dirty = True

    def _brush_moved(self, value) -> None:
        self.brush = int(float(value))
        self._state_dirty = True

    # ---------------------------------------------------------------------------------------------- drawing
    def _press(self, event, *, erase: bool) -> None:
        self.canvas.focus_set()
        x, y = self.view.to_sketch(event.x, event.y)
        if self.tool == FILL and not erase:
            if self.sketch.fill(x, y, self.current_class):
                self.sketch_changed()
            return
        cls = UNSPECIFIED if erase or self.tool == ERASER else self.current_class
        self.sketch.begin_stroke(cls, self.brush)
        self._stroking = True
        self._stroke_cls = cls
        self._last_xy = (event.x, event.y)
        self.sketch.extend_stroke([(x, y)])
        self._draw_live(event.x, event.y, event.x, event.y, cls)

    def _drag(self, event) -> None:
        self._hover(event)
        if not self._stroking:
            return
        x0, y0 = self._last_xy
        self._last_xy = (event.x, event.y)
        self.sketch.extend_stroke([self.view.to_sketch(event.x, event.y)])
        self._draw_live(x0, y0, event.x, event.y, self._stroke_cls)

    def _release(self, event) -> None:
        if not self._stroking:
            return
        self._stroking = False
        self.canvas.delete("live")
        if self.sketch.end_stroke():
            self.sketch_changed()
        else:
            self.render()

    def _draw_live(self, x0, y0, x1, y1, cls: int) -> None:
        """Immediate feedback while dragging (the composited overlay is redrawn when the stroke ends)."""
        w = max(2 * self.brush * min(self.view.scale), 1)
        colour = "#bbbbbb" if cls < 0 else hex_colour(self.palette[cls % len(self.palette)])
        self.canvas.create_line(x0, y0, x1, y1, width=w, fill=colour, capstyle="round", tags="live",
                                stipple="gray50" if cls < 0 else "")
        self.canvas.tag_raise(self._cursor_item)

    def _hover(self, event) -> None:
        self._pointer = (event.x, event.y)
        self._update_cursor()
        self.canvas.itemconfigure(self._cursor_item, state="hidden" if self.tool == FILL else "normal")

    def _update_cursor(self) -> None:
        """The brush outline around the pointer (an ellipse when the photo is not square: the brush is round
        in the sketch, which is stretched over the photo)."""
        x, y = self._pointer
        sx, sy = self.view.scale
        self.canvas.coords(self._cursor_item, x - self.brush * sx, y - self.brush * sy,
                           x + self.brush * sx, y + self.brush * sy)

    def _mark_dirty(self, event=None) -> None:
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
        over.paste(Image.fromarray(self.sketch.to_rgba(self.palette, alpha), "RGBA").resize((w, h), Image.NEAREST),
                   (x, y))
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
            self._show_error(f"photo {p} does not exist")
            return
        except (OSError, ValueError, SyntaxError) as e:
            self._show_error(f"cannot read photo {p}: {e}")
            return
        self.photo_path, self.photo_id, self._photo_img = p, photo_id, img
        self.view = SketchView(self.sketch.shape, area)
        self.query_label.set_text(f"Query: {photo_id if photo_id is not None else p.name} + sketch",
                                  tooltip=f"Query photo: {p}")
        self._update_cursor()
        self.sketch_changed()

    def remove_photo(self) -> None:
        """Search by the sketch alone again."""
        self.photo_path = self.photo_id = self._photo_img = None
        self.view = SketchView(self.sketch.shape, (0, 0, CANVAS_PX, CANVAS_PX))
        self.query_label.set_text("Query: sketch only")
        self._update_cursor()
        self.sketch_changed()

    def is_query(self, hit) -> bool:
        """Whether a result is the current query photo."""
        return self.photo_id is not None and hit.id == self.photo_id

    def use_result(self, i: int) -> None:
        """Make result ``i`` (0-based) the query photo, keeping the strokes."""
        if 0 <= i < len(self.hits):
            hit = self.hits[i]
            if hit.path is None:  # a refused id (outside the photos folder, not a regular file): never opened
                self._show_error(f"result {hit.rank} is not shown: {hit.note}")
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
            self._seq += 1          # drop any search still running
            self._pending = False
            self._show_hits([], [])
            self._set_status("Nothing to search for: draw a class, open a photo (Ctrl+O) or type caption words.")
            return
        self._seq += 1
        labels = self.sketch.labels_at(self.pi.size) if drawn else None
        self._worker.submit(SearchRequest(self._seq, labels,
                                          None if self.photo_path is None else str(self.photo_path),
                                          text or None, self.k))
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
            self._show_error(ans.error)
            return
        self.error = None
        self.last_query_ms = ans.search_ms
        self._show_hits(ans.hits, ans.thumbs)
        msg = f"{len(ans.hits)} results, query {ans.search_ms:.1f} ms"
        if ans.segment_ms is not None:
            msg += f" (photo segmented in {ans.segment_ms:.0f} ms)"
        drawn = [self.classes[c] for c in self.sketch.classes_drawn()]
        if drawn:
            msg += " — drawn: " + ", ".join(drawn)
        refused = sum(h.path is None for h in ans.hits)
        if refused:
            msg += f" — {refused} not shown (their ids lead outside the photos folder or to no regular file)"
        self._set_status(msg)

    def _show_hits(self, hits, thumbs) -> None:
        self.hits = list(hits)
        for i, cell in enumerate(self.result_cells):
            if i < len(hits):
                cell.show(hits[i], thumbs[i], is_query=self.is_query(hits[i]))
                if hits[i].path is None:  # the grey "not shown" tile: say why in its tooltip
                    cell.tooltip.text = f"{hits[i].rank}. {str(hits[i].id)!a} not shown: {hits[i].note}"
            else:
                cell.clear()
        self._state_dirty = True

    # ----------------------------------------------------------------------------------------------- files
    def ask_open_photo(self) -> None:
        """File dialog: pick a query photo."""
        path = filedialog.askopenfilename(parent=self.master, title="Open a query photo", filetypes=[
            ("Photos", "*.jpg *.jpeg *.png *.webp *.bmp *.JPG *.JPEG *.PNG"), ("All files", "*")])
        if path:
            self.set_photo(path)

    def ask_save_sketch(self) -> None:
        """File dialog: save the sketch as a PNG."""
        path = filedialog.asksaveasfilename(parent=self.master, title="Save the sketch", defaultextension=".png",
                                            filetypes=[("PNG", "*.png")])
        if path:
            self.save_sketch(path)

    def ask_load_sketch(self) -> None:
        """File dialog: load a sketch PNG."""
        path = filedialog.askopenfilename(parent=self.master, title="Load a sketch",
                                          filetypes=[("PNG", "*.png"), ("All files", "*")])
        if path:
            self.load_sketch(path)

    def save_sketch(self, path) -> bool:
        """Save the sketch as an RGB PNG in the index's palette; False (and a status bar error) on failure."""
        try:
            save_sketch(path, self.sketch.labels, self.palette)
        except (OSError, ValueError) as e:
            self._show_error(f"cannot save the sketch to {path}: {e}")
            return False
        self._set_status(f"Saved the sketch to {path}")
        return True

    def load_sketch(self, path) -> bool:
        """Replace the sketch with a sketch PNG; False (and a status bar error) when it cannot be read."""
        try:
            lab = read_sketch(path, self.palette, len(self.classes))
            self.sketch.set_labels(lab)
        except (OSError, ValueError) as e:
            self._show_error(str(e))
            return False
        self.sketch_changed()
        return True

    # --------------------------------------------------------------------------------------- status, state
    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.show(text, error=error)
        self._state_dirty = True

    def _show_error(self, text: str) -> None:
        self.error = one_line(text)
        self._set_status(text, error=True)

    def _report_exception(self, exc, val, tb) -> None:
        # Tk callback errors go to the status bar (and a message box), never a traceback on stderr; the
        # traceback is logged at DEBUG level.
        log.debug("error in a Tk callback", exc_info=(exc, val, tb))
        msg = one_line(val) or exc.__name__
        self._show_error(f"{exc.__name__}: {msg}")
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
