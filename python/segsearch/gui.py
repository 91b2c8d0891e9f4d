"""``segsearch gui INDEX_DIR``: a minimal Tk sketch tool for interactive spatial-semantic search (Tk + Pillow).

Draw where classes are (on a blank canvas or over a query photo), and the search runs by itself when a stroke
ends; click a result to make it the new query photo while keeping the strokes, then draw more (the paper's
interactive loop, Sec. 3.1). Searches and photo segmentation run in a worker thread, so the window never
blocks; only the Tk main thread touches widgets.

The drawing logic lives in :mod:`segsearch.sketch_model` (no Tk). Set ``SEGSEARCH_GUI_STATE=path.json`` to have
the app write its state (drawn classes, results, query photo, widget positions) after every change, for
tests that drive the window with xdotool.
"""
from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
import tkinter as tk
from dataclasses import dataclass, field
from pathlib import Path
from tkinter import filedialog, messagebox

import numpy as np
from PIL import Image, ImageOps, ImageTk

from .sheet import open_photo
from .sketch_io import read_sketch, save_sketch
from .sketch_model import UNSPECIFIED, Sketch
from .storage import atomic_write

__all__ = ["STATE_ENV", "SketchApp", "run"]

#: Environment variable naming a JSON file the app rewrites with its state after every change.
STATE_ENV = "SEGSEARCH_GUI_STATE"
SKETCH_RES = 256          # label-map resolution of the canvas
CANVAS_PX = 512           # on-screen size of the canvas
THUMB_PX = 112            # result thumbnails
RESULT_COLUMNS = 3
BRUSH_MIN, BRUSH_MAX, BRUSH_DEFAULT = 1, 64, 8   # brush radius in sketch pixels
PHOTO_ALPHA, BLANK_ALPHA = 0.5, 1.0              # sketch opacity over a photo / on the blank canvas
POLL_MS = 30
THUMB_CACHE = 256
QUERY_FRAME = "#d9480f"   # frame of the result that is the current query photo

BRUSH, ERASER, FILL = "brush", "eraser", "fill"


def _hex(rgb) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def _text_colour(rgb) -> str:
    r, g, b = (int(v) for v in rgb)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


@dataclass
class _Request:
    seq: int
    labels: np.ndarray | None       # sketch at the index's n x n, None if nothing is drawn
    photo: str | None               # query photo file
    text: str | None
    k: int


@dataclass
class _Answer:
    seq: int
    hits: list = field(default_factory=list)
    thumbs: list = field(default_factory=list)
    search_ms: float = 0.0
    segment_ms: float | None = None
    error: str | None = None


class _Searcher:
    """One worker thread running the latest search request (older pending ones are dropped)."""

    def __init__(self, photo_index):
        self.pi = photo_index
        self.answers: queue.Queue = queue.Queue()
        self._lock = threading.Condition()
        self._request: _Request | None = None
        self._stop = False
        self._last_photo: str | None = None
        self._thumbs: dict[str, Image.Image] = {}
        self._thread = threading.Thread(target=self._loop, name="segsearch-gui-search", daemon=True)
        self._thread.start()

    def submit(self, req: _Request) -> None:
        with self._lock:
            self._request = req
            self._lock.notify()

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                req, self._request = self._request, None
            self.answers.put(self._answer(req))

    def _answer(self, req: _Request) -> _Answer:
        ans = _Answer(req.seq)
        try:
            maps = None
            if req.photo is not None:  # PhotoIndex.segment caches the maps of recent photos
                t0 = time.perf_counter()
                maps = self.pi.segment(req.photo)
                if req.photo != self._last_photo:
                    ans.segment_ms = (time.perf_counter() - t0) * 1e3
                    self._last_photo = req.photo
            t0 = time.perf_counter()
            ans.hits = self.pi.search(maps=maps, sketch=req.labels, text=req.text, k=req.k)
            ans.search_ms = (time.perf_counter() - t0) * 1e3
            ans.thumbs = [self._thumb(h.path) for h in ans.hits]
        except Exception as e:  # noqa: BLE001 -- any failure is shown in the status bar; the worker keeps running
            ans.error = " ".join(str(e).split()) or type(e).__name__
        return ans

    def _thumb(self, path) -> Image.Image | None:
        key = str(path)
        im = self._thumbs.get(key)
        if im is None:
            try:
                im = ImageOps.contain(open_photo(path, (THUMB_PX, THUMB_PX)), (THUMB_PX, THUMB_PX))
            except (OSError, ValueError, SyntaxError):
                return None
            if len(self._thumbs) >= THUMB_CACHE:
                self._thumbs.clear()
            self._thumbs[key] = im
        return im


class SketchApp:
    """The sketch tool in a Tk ``master`` (a Tk root or Toplevel) over an opened :class:`PhotoIndex`."""

    def __init__(self, master: tk.Misc, photo_index, *, k: int = 12, state_path=None):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1; got {k!r}")
        self.master = master
        self.pi = photo_index
        self.k = k
        self.state_path = None if state_path is None else Path(state_path)
        self.classes: list[str] = list(photo_index.classes)
        self.palette = np.asarray(photo_index.palette, np.uint8)
        self.sketch = Sketch(SKETCH_RES)
        self.zoom = CANVAS_PX / SKETCH_RES
        self.tool = BRUSH
        self.current_class = self._default_class()
        self.brush = BRUSH_DEFAULT
        self.photo_path: Path | None = None
        self.photo_id = None                 # the index id when the query photo is a result
        self._photo_img: Image.Image | None = None
        self.hits: list = []
        self.search_count = 0
        self.last_query_ms: float | None = None
        self.error: str | None = None
        self._seq = 0
        self._pending = False
        self._state_dirty = True
        self._stroking = False
        self._last_xy = None
        self._pointer = (-1000, -1000)
        self._segmented_photo: Path | None = None
        self._visible_classes: list[int] = []
        self._tk_images: list = []
        self._closed = False
        self._searcher = _Searcher(photo_index)

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
        self.class_label = tk.Label(mid, text="", width=22, relief="groove", pady=4)
        self.class_label.pack(side="top", fill="x")
        tk.Label(mid, text="Filter classes:", anchor="w").pack(side="top", fill="x", pady=(6, 0))
        self.filter_var = tk.StringVar()
        self.filter_entry = tk.Entry(mid, textvariable=self.filter_var, width=22)
        self.filter_entry.pack(side="top", fill="x")
        self.filter_var.trace_add("write", lambda *a: self._fill_palette())
        self.filter_entry.bind("<Return>", self._filter_return)
        self.filter_entry.bind("<Escape>", lambda e: (self.filter_var.set(""), self.canvas.focus_set()))
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
        self.query_label = tk.Label(right, text="Query: sketch only", anchor="w")
        self.query_label.pack(side="top", fill="x")
        self.results_frame = tk.Frame(right)
        self.results_frame.pack(side="top", fill="both", expand=True)
        self.result_cells: list[tk.Label] = []
        for i in range(self.k):
            cell = tk.Label(self.results_frame, compound="top", width=THUMB_PX + 8, height=THUMB_PX + 34,
                            relief="flat", borderwidth=1, cursor="hand2", justify="center",
                            font=("Helvetica", 9))
            cell.grid(row=i // RESULT_COLUMNS, column=i % RESULT_COLUMNS, padx=3, pady=3, sticky="n")
            cell.bind("<Button-1>", lambda e, i=i: self.use_result(i))
            self.result_cells.append(cell)
        self._cell_bg = self.result_cells[0].cget("background") if self.result_cells else None
        self._blank_thumb = ImageTk.PhotoImage(Image.new("RGB", (THUMB_PX, THUMB_PX), "#eeeeee"), master=root)
        for cell in self.result_cells:
            cell.configure(image=self._blank_thumb, text="")

        # --- bottom: status bar
        self.status = tk.Label(root, text="", anchor="w", relief="sunken", padx=4)
        self.status.pack(side="bottom", fill="x")

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
        self._visible_classes = [i for i, n in enumerate(self.classes) if needle in n.lower()]
        lb = self.palette_list
        lb.delete(0, "end")
        for row, c in enumerate(self._visible_classes):
            lb.insert("end", f" {c:3d}  {self.classes[c]}")
            rgb = self.palette[c % len(self.palette)]
            lb.itemconfigure(row, background=_hex(rgb), foreground=_text_colour(rgb),
                             selectbackground=_hex(rgb), selectforeground=_text_colour(rgb))
        if self.current_class in self._visible_classes:
            row = self._visible_classes.index(self.current_class)
            lb.selection_set(row)
            lb.see(row)
        self._state_dirty = True

    def _palette_clicked(self, event=None) -> None:
        sel = self.palette_list.curselection()
        if sel and sel[0] < len(self._visible_classes):
            self._select_class(self._visible_classes[sel[0]])

    def _filter_return(self, event=None):
        if self._visible_classes:
            self._select_class(self._visible_classes[0])
        self.canvas.focus_set()
        return "break"

    def _select_class(self, c: int) -> None:
        self.current_class = int(c)
        rgb = self.palette[c % len(self.palette)]
        self.class_label.configure(text=f"{self.classes[c]}", background=_hex(rgb), foreground=_text_colour(rgb))
        lb = self.palette_list
        lb.selection_clear(0, "end")
        if c in self._visible_classes:
            lb.selection_set(self._visible_classes.index(c))
        if self.tool == ERASER:
            self.set_tool(BRUSH)
        self._state_dirty = True

    def select_class(self, name_or_index) -> None:
        """Pick the drawing class by name or number."""
        from .sketch_io import class_index

        c = name_or_index if isinstance(name_or_index, int) else class_index(str(name_or_index), self.classes)
        if not 0 <= c < len(self.classes):
            raise ValueError(f"class {c} is not in 0..{len(self.classes) - 1}")
        self._select_class(c)

    # ------------------------------------------------------------------------------------------------ tools
    def set_tool(self, tool: str) -> None:
        if tool not in (BRUSH, ERASER, FILL):
            raise ValueError(f"unknown tool {tool!r}")
        self.tool = tool
        self.tool_var.set(tool)
        self.canvas.configure(cursor="spraycan" if tool == FILL else "crosshair")
        self._state_dirty = True

    def change_brush(self, step: int) -> None:
        b = self.brush
        b = max(b + 1, round(b * 1.25)) if step > 0 else min(b - 1, round(b / 1.25))
        self.set_brush(b)

    def set_brush(self, radius: int) -> None:
        self.brush = int(min(max(int(radius), BRUSH_MIN), BRUSH_MAX))
        self.brush_var.set(self.brush)
        self._update_cursor()
        self._state_dirty = True

    def _brush_moved(self, value) -> None:
        self.brush = int(float(value))
        self._state_dirty = True

    # ---------------------------------------------------------------------------------------------- drawing
    def _to_sketch(self, event) -> tuple[float, float]:
        return event.x / self.zoom, event.y / self.zoom

    def _press(self, event, *, erase: bool) -> None:
        self.canvas.focus_set()
        x, y = self._to_sketch(event)
        if self.tool == FILL and not erase:
            if self.sketch.fill(x, y, self.current_class):
                self._sketch_changed()
            return
        cls = UNSPECIFIED if erase or self.tool == ERASER else self.current_class
        self.sketch.begin_stroke(cls, self.brush)
        self._stroking = True
        self._last_xy = (event.x, event.y)
        self.sketch.extend_stroke([(x, y)])
        self._draw_live(event.x, event.y, event.x, event.y, cls)

    def _drag(self, event) -> None:
        self._hover(event)
        if not self._stroking:
            return
        x0, y0 = self._last_xy
        self._last_xy = (event.x, event.y)
        self.sketch.extend_stroke([self._to_sketch(event)])
        self._draw_live(x0, y0, event.x, event.y, self.sketch._stroke_cls)

    def _release(self, event) -> None:
        if not self._stroking:
            return
        self._stroking = False
        self.canvas.delete("live")
        if self.sketch.end_stroke():
            self._sketch_changed()
        else:
            self.render()

    def _draw_live(self, x0, y0, x1, y1, cls: int) -> None:
        """Immediate feedback while dragging (the composited overlay is redrawn when the stroke ends)."""
        w = max(2 * self.brush * self.zoom, 1)
        colour = "#bbbbbb" if cls < 0 else _hex(self.palette[cls % len(self.palette)])
        self.canvas.create_line(x0, y0, x1, y1, width=w, fill=colour, capstyle="round", tags="live",
                                stipple="gray50" if cls < 0 else "")
        self.canvas.tag_raise(self._cursor_item)

    def _hover(self, event) -> None:
        self._pointer = (event.x, event.y)
        self._update_cursor()
        self.canvas.itemconfigure(self._cursor_item, state="hidden" if self.tool == FILL else "normal")

    def _update_cursor(self) -> None:
        """The brush outline around the pointer."""
        x, y = self._pointer
        r = self.brush * self.zoom
        self.canvas.coords(self._cursor_item, x - r, y - r, x + r, y + r)

    def _mark_dirty(self, event=None) -> None:
        self._state_dirty = True

    def _sketch_changed(self) -> None:
        self.render()
        self.request_search()

    def undo(self) -> None:
        if self.sketch.undo():
            self._sketch_changed()
        else:
            self._set_status("Nothing to undo.")

    def redo(self) -> None:
        if self.sketch.redo():
            self._sketch_changed()
        else:
            self._set_status("Nothing to redo.")

    def clear(self) -> None:
        if self.sketch.clear():
            self._sketch_changed()

    def render(self) -> None:
        """Redraw the canvas: the query photo (or white) with the sketch over it."""
        size = (CANVAS_PX, CANVAS_PX)
        if self._photo_img is not None:
            base, alpha = self._photo_img.convert("RGBA"), PHOTO_ALPHA
        else:
            base, alpha = Image.new("RGBA", size, (255, 255, 255, 255)), BLANK_ALPHA
        over = Image.fromarray(self.sketch.to_rgba(self.palette, alpha), "RGBA").resize(size, Image.NEAREST)
        img = ImageTk.PhotoImage(Image.alpha_composite(base, over), master=self.master)
        self._canvas_photo = img  # keep a reference: Tk does not
        self.canvas.itemconfigure(self._canvas_item, image=img)
        self.canvas.tag_raise(self._cursor_item)
        self._state_dirty = True

    # ---------------------------------------------------------------------------------------------- queries
    def set_photo(self, path, photo_id=None) -> None:
        """Make ``path`` the query photo (the strokes are kept)."""
        p = Path(path)
        try:
            img = open_photo(p, (CANVAS_PX, CANVAS_PX)).resize((CANVAS_PX, CANVAS_PX), Image.BILINEAR)
        except FileNotFoundError:
            self._show_error(f"photo {p} does not exist")
            return
        except (OSError, ValueError, SyntaxError) as e:
            self._show_error(f"cannot read photo {p}: {e}")
            return
        self.photo_path, self.photo_id, self._photo_img = p, photo_id, img
        self.query_label.configure(text=f"Query: {photo_id if photo_id is not None else p.name} + sketch")
        self._sketch_changed()

    def remove_photo(self) -> None:
        self.photo_path = self.photo_id = self._photo_img = None
        self.query_label.configure(text="Query: sketch only")
        self._sketch_changed()

    def is_query(self, hit) -> bool:
        """Whether a result is the current query photo."""
        return self.photo_id is not None and hit.id == self.photo_id

    def use_result(self, i: int) -> None:
        """Make result ``i`` (0-based) the query photo, keeping the strokes."""
        if 0 <= i < len(self.hits):
            hit = self.hits[i]
            self.set_photo(hit.path, photo_id=hit.id)

    def request_search(self) -> None:
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
        self._searcher.submit(_Request(self._seq, labels, None if self.photo_path is None else str(self.photo_path),
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
                ans = self._searcher.answers.get_nowait()
                if ans.seq == self._seq:
                    self._apply(ans)
        except queue.Empty:
            pass
        finally:  # keep polling even if showing an answer failed (the error goes to the status bar)
            self._after_id = self.master.after(POLL_MS, self._poll)
        if self._state_dirty:
            self._state_dirty = False
            self.write_state()

    def _apply(self, ans: _Answer) -> None:
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
        self._set_status(msg)

    def _show_hits(self, hits, thumbs) -> None:
        self.hits = list(hits)
        self._tk_images = []
        for i, cell in enumerate(self.result_cells):
            if i < len(hits):
                h, im = hits[i], thumbs[i]
                tkim = ImageTk.PhotoImage(im, master=self.master) if im is not None else self._blank_thumb
                self._tk_images.append(tkim)
                d = "" if math.isnan(h.distance) else f"d={h.distance:.2f}"
                t = "" if h.text_score is None else f"  words={h.text_score}"
                name = Path(str(h.id)).name
                name = name if len(name) <= 20 else name[:9] + "…" + name[-10:]
                if self.is_query(h):  # the photo the query starts from: framed and labelled
                    cell.configure(image=tkim, text=f"{h.rank}. {name}\n{d}{t}  (query)", relief="solid",
                                   borderwidth=3, background=QUERY_FRAME)
                else:
                    cell.configure(image=tkim, text=f"{h.rank}. {name}\n{d}{t}", relief="ridge",
                                   borderwidth=1, background=self._cell_bg)
            else:
                cell.configure(image=self._blank_thumb, text="", relief="flat", borderwidth=1,
                               background=self._cell_bg)
        self._state_dirty = True

    # ----------------------------------------------------------------------------------------------- files
    def ask_open_photo(self) -> None:
        path = filedialog.askopenfilename(parent=self.master, title="Open a query photo", filetypes=[
            ("Photos", "*.jpg *.jpeg *.png *.webp *.bmp *.JPG *.JPEG *.PNG"), ("All files", "*")])
        if path:
            self.set_photo(path)

    def ask_save_sketch(self) -> None:
        path = filedialog.asksaveasfilename(parent=self.master, title="Save the sketch", defaultextension=".png",
                                            filetypes=[("PNG", "*.png")])
        if path:
            self.save_sketch(path)

    def ask_load_sketch(self) -> None:
        path = filedialog.askopenfilename(parent=self.master, title="Load a sketch",
                                          filetypes=[("PNG", "*.png"), ("All files", "*")])
        if path:
            self.load_sketch(path)

    def save_sketch(self, path) -> bool:
        try:
            save_sketch(path, self.sketch.labels, self.palette)
        except (OSError, ValueError) as e:
            self._show_error(f"cannot save the sketch to {path}: {e}")
            return False
        self._set_status(f"Saved the sketch to {path}")
        return True

    def load_sketch(self, path) -> bool:
        try:
            lab = read_sketch(path, self.palette, len(self.classes))
            self.sketch.set_labels(lab)
        except (OSError, ValueError) as e:
            self._show_error(str(e))
            return False
        self._sketch_changed()
        return True

    # --------------------------------------------------------------------------------------- status, state
    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.configure(text=text, foreground="#b00000" if error else "#000000")
        self._state_dirty = True

    def _show_error(self, text: str) -> None:
        self.error = text
        self._set_status(text, error=True)

    def _report_exception(self, exc, val, tb) -> None:
        # Tk callback errors go to the status bar (and a message box), never a traceback on stderr.
        msg = " ".join(str(val).split()) or exc.__name__
        self._show_error(f"{exc.__name__}: {msg}")
        if not os.environ.get(STATE_ENV):
            messagebox.showerror("segsearch", msg, parent=self.master)

    def state(self) -> dict:
        """What the app shows, for tests: drawn classes, results, query photo, and where widgets are on screen."""
        def box(w):
            return [w.winfo_rootx(), w.winfo_rooty(), w.winfo_width(), w.winfo_height()]

        lb = self.palette_list
        rows = []
        for row in range(len(self._visible_classes)):
            b = lb.bbox(row)
            if b:
                rows.append([lb.winfo_rootx() + b[0], lb.winfo_rooty() + b[1], b[2], b[3]])
        return {
            "classes_drawn": [self.classes[c] for c in self.sketch.classes_drawn()],
            "selected_class": self.classes[self.current_class],
            "tool": self.tool, "brush": self.brush,
            "visible_classes": [self.classes[c] for c in self._visible_classes],
            "query_photo": None if self.photo_path is None else str(self.photo_path),
            "query_id": self.photo_id,
            "text": self.text_var.get(),
            "results": [h.as_dict() for h in self.hits],
            "query_result": next((h.rank for h in self.hits if self.is_query(h)), None),
            "n_results": len(self.hits),
            "search_count": self.search_count, "pending": self._pending,
            "query_ms": self.last_query_ms, "status": self.status.cget("text"), "error": self.error,
            "can_undo": self.sketch.can_undo, "can_redo": self.sketch.can_redo,
            "canvas": box(self.canvas), "canvas_scale": self.zoom,
            "result_boxes": [box(c) for c in self.result_cells[:len(self.hits)]],
            "filter_entry": box(self.filter_entry), "text_entry": box(self.text_entry),
            "palette_rows": rows,
        }

    def write_state(self) -> None:
        if self.state_path is None:
            return
        try:
            state = json.dumps(self.state()).encode()
            with atomic_write(self.state_path) as f:  # tests read it while the app writes
                f.write(state)
        except (OSError, tk.TclError):
            pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._searcher.stop()
        try:
            self.master.after_cancel(self._after_id)
            self.master.destroy()
        except tk.TclError:
            pass


def run(index_dir=None, *, photo_index=None, device=None, weights=None, k: int = 12) -> int:
    """Open the sketch tool on ``index_dir`` (or an opened :class:`PhotoIndex`) and run until the window closes.

    Raises ValueError / FileNotFoundError for a bad index folder or when no display is available.
    """
    if photo_index is None:
        if index_dir is None:
            raise ValueError("give an index folder or an opened PhotoIndex")
        from .photo_index import PhotoIndex

        photo_index = PhotoIndex.open(index_dir, device=device, weights=weights)
    try:
        root = tk.Tk(className="segsearch")
    except tk.TclError as e:
        raise ValueError(f"cannot open a window ({e}); the sketch tool needs a display (set DISPLAY)") from None
    app = SketchApp(root, photo_index, k=k, state_path=os.environ.get(STATE_ENV) or None)
    try:
        root.mainloop()
    except KeyboardInterrupt:
        pass
    finally:
        app._closed = True
        app._searcher.stop()
    return 0
