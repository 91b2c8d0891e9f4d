"""The sketch tool on a real X server (Xvfb): the app driven with xdotool in a subprocess, and widget-level
checks in-process. Skipped when Xvfb, xdotool or tkinter is missing, unless SEGSEARCH_REQUIRE_GUI=1 (CI),
which makes that a failure.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo_folder import CLASSES, FakeSegmenter, make_index_folder
from segsearch.sketch.files import read_sketch

RUNNER = Path(__file__).resolve().parent / "gui_runner.py"
WAIT = 30.0  # seconds; only a bound for a hung app, no timing is asserted


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """(index_dir, photos_dir, names): 40 synthetic photos, their index and captions."""
    index_dir, photos, names, _ = make_index_folder(tmp_path_factory.mktemp("gui"))
    return index_dir, photos, names


def _xdo(*args) -> str:
    r = subprocess.run(["xdotool", *map(str, args)], capture_output=True, text=True, timeout=WAIT, check=False)
    assert r.returncode == 0, f"xdotool {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout


def _centre(box):
    x, y, w, h = box
    return x + w // 2, y + h // 2


def _grab(disp: str, out: Path) -> Image.Image:
    from PIL import ImageGrab

    try:
        im = ImageGrab.grab(xdisplay=disp)
        im.save(out)
    except OSError:  # Pillow without XCB: ImageMagick
        subprocess.run(["import", "-display", disp, "-window", "root", str(out)], check=True, timeout=WAIT)
        im = Image.open(out)
    return im.convert("RGB")


def wait_for_state(proc, state_file: Path, until, what: str) -> dict:
    """The app's state file (see segsearch.gui.state_file) once ``until(state)`` holds; fails when the app
    ``proc`` exits, or after WAIT seconds, saying ``what`` it waited for."""
    deadline = time.monotonic() + WAIT
    s = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the app exited: {proc.communicate()[1]}"
        try:
            s = json.loads(state_file.read_text())
        except (OSError, ValueError):
            s = None
        if s is not None and until(s):
            return s
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; last state: {s}")


# ----------------------------------------------------------------------------------- the app, driven by xdotool
def test_draw_search_pick_a_result_undo_quit(display, folder, tmp_path):
    index_dir, photos, names = folder
    state_file = tmp_path / "state.json"
    env = dict(os.environ, DISPLAY=display, SEGSEARCH_GUI_STATE=str(state_file))
    proc = subprocess.Popen(
        [sys.executable, str(RUNNER), str(index_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def state(until, what):
        return wait_for_state(proc, state_file, until, what)

    try:
        wid = _xdo("search", "--sync", "--onlyvisible", "--name", "^segsearch").split()[0]
        s = state(lambda s: s["canvas"][2] > 100, "the window to be laid out")
        subprocess.run(["xdotool", "windowfocus", wid], capture_output=True, timeout=WAIT, check=False)

        # pick 'sky' with the class filter box: click it, type, Return picks the match
        x, y = _centre(s["filter_entry"])
        _xdo("mousemove", x, y, "click", "1")
        _xdo("type", "--delay", "20", "sky")
        _xdo("key", "Return")
        s = state(lambda s: s["selected_class"] == "sky" and s["visible_classes"] == ["sky"], "sky to be picked")
        # then 'road': clicking the box again and typing replaces the old text (not "skyroad")
        _xdo("mousemove", x, y, "click", "1")
        _xdo("type", "--delay", "20", "road")
        _xdo("key", "Return")
        s = state(lambda s: s["selected_class"] == "road", "road to be picked")
        assert s["filter"] == "road" and s["visible_classes"] == ["road"]

        # draw a stroke along the bottom of the canvas; the search runs when it ends
        cx, cy, cw, ch = s["canvas"]
        y0 = cy + ch - 60
        _xdo("mousemove", cx + 40, y0, "mousedown", "1")
        for i in range(1, 9):
            _xdo("mousemove", cx + 40 + i * (cw - 80) // 8, y0 + (i % 2) * 10)
        _xdo("mouseup", "1")
        s = state(lambda s: s["search_count"] >= 1 and not s["pending"], "results of the stroke")
        assert s["classes_drawn"] == ["road"]
        assert s["error"] is None
        assert s["n_results"] == 12 and len(s["result_boxes"]) == 12
        assert {r["id"] for r in s["results"]} <= set(names)
        assert "ms" in s["status"] and s["query_ms"] is not None
        assert s["query_id"] is None

        # clicking a result makes it the query photo and keeps the strokes
        target = s["results"][2]["id"]
        x, y = _centre(s["result_boxes"][2])
        _xdo("mousemove", x, y, "click", "1")
        n = s["search_count"]
        s = state(
            lambda s: s["query_id"] == target and s["search_count"] > n and not s["pending"],
            "the clicked result to become the query",
        )
        assert s["classes_drawn"] == ["road"]
        assert Path(s["query_photo"]) == photos / target
        assert s["n_results"] == 12 and s["error"] is None
        # the result that is the query photo (if it is among the results) is marked
        ranks = [r["rank"] for r in s["results"] if r["id"] == target]
        assert s["query_result"] == (ranks[0] if ranks else None)

        shot = _grab(display, tmp_path / "screen.png")
        px = np.asarray(shot)
        assert shot.size == (1280, 1024)
        assert px.std() > 10 and len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # a window, not a blank screen

        # keyboard: Ctrl+Z undoes the stroke (the photo stays the query), E picks the eraser
        _xdo("mousemove", cx + cw // 2, cy + ch // 2)
        _xdo("key", "ctrl+z")
        s = state(lambda s: s["classes_drawn"] == [] and s["can_redo"], "Ctrl+Z to undo the stroke")
        assert s["query_id"] == target
        _xdo("key", "e")
        state(lambda s: s["tool"] == "eraser", "E to pick the eraser")

        # a filter that matches no class says so in the status bar (one line) and keeps the class
        x, y = _centre(s["filter_entry"])
        _xdo("mousemove", x, y, "click", "1")
        _xdo("type", "--delay", "20", "zebra")
        _xdo("key", "Return")
        s = state(lambda s: "No class matches" in s["status"], "the no-match message")
        assert s["selected_class"] == "road" and "zebra" in s["status"] and "\n" not in s["status_shown"]
        assert s["status_bar"][2] <= s["window"][2]

        _xdo("key", "ctrl+q")
        assert proc.wait(WAIT) == 0
        _, err = proc.communicate()
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------- widget-level, in-process
@pytest.fixture
def app(display, folder):
    import tkinter as tk

    from segsearch.gui import SketchApp
    from segsearch.library.photo_index import PhotoIndex

    pi = PhotoIndex.open(folder[0], segmenter=FakeSegmenter())
    root = tk.Tk()
    a = SketchApp(root, pi, k=6)
    root.update()
    yield a
    a.close()


def _pump(app, until, what):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        app.master.update()
        if until():
            return
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def _drag(app, points, button=1):
    c = app.canvas
    x, y = points[0]
    c.event_generate(f"<ButtonPress-{button}>", x=x, y=y)
    for x, y in points[1:]:
        c.event_generate("<Motion>", x=x, y=y, state=256 << (button - 1))
    c.event_generate(f"<ButtonRelease-{button}>", x=x, y=y)
    app.master.update()


def _searched(app, n):
    _pump(app, lambda: app.search_count > n and not app._pending, "a search to finish")


def test_palette_click_and_filter_box(app):
    app.filter_var.set("o")
    app.master.update()
    assert [app.classes[c] for c in app.visible_classes] == [c for c in CLASSES if "o" in c]
    row = app.visible_classes.index(CLASSES.index("road"))
    x, y, _, h = app.palette_list.bbox(row)
    app.palette_list.event_generate("<Button-1>", x=x + 5, y=y + h // 2)
    app.palette_list.event_generate("<ButtonRelease-1>", x=x + 5, y=y + h // 2)
    app.master.update()
    assert app.current_class == CLASSES.index("road")
    assert app.class_label.cget("text") == f"{CLASSES.index('road')} road"
    app.filter_var.set("zzz")
    app.master.update()
    assert app.palette_list.size() == 0 and app.visible_classes == []
    app.filter_var.set("")
    app.master.update()
    assert app.palette_list.size() == len(CLASSES)


def test_stroke_searches_and_shortcuts_undo_redo_clear(app):
    app.select_class("sky")
    _drag(app, [(20, 30), (200, 30), (480, 40)])
    assert app.sketch.classes_drawn() == [CLASSES.index("sky")]
    assert (np.asarray(app.sketch.labels)[15, 10:100] == CLASSES.index("sky")).all()  # canvas 512 -> sketch 256
    _searched(app, 0)
    assert len(app.hits) == 6 and app.error is None
    assert "ms" in app.status.cget("text")
    assert app.result_cells[0].cget("text").startswith("1. ")

    app.canvas.focus_set()
    n = app.search_count
    app.canvas.event_generate("<Control-z>")
    assert app.sketch.is_empty()
    _pump(app, lambda: app.hits == [], "the results to clear on an empty sketch")
    assert "Nothing to search" in app.status.cget("text")
    app.canvas.event_generate("<Control-y>")
    assert app.sketch.classes_drawn() == [CLASSES.index("sky")]
    _searched(app, n)
    app.canvas.event_generate("<Delete>")
    assert app.sketch.is_empty()

    # brush size and tool keys; typed into an entry they are text, not shortcuts
    b = app.brush
    app.canvas.event_generate("<Key-bracketright>")
    assert app.brush > b
    app.canvas.event_generate("<Key-bracketleft>")
    app.canvas.event_generate("<Key-bracketleft>")
    assert app.brush < b
    app.canvas.event_generate("<Key-f>")
    assert app.tool == "fill"
    app.filter_entry.focus_force()
    app.master.update()
    app.filter_entry.event_generate("<Key-e>")
    app.master.update()
    assert app.tool == "fill" and app.filter_var.get() == "e"
    app.canvas.focus_force()
    app.master.update()
    app.canvas.event_generate("<Key-e>")
    assert app.tool == "eraser"


def test_fill_eraser_and_sketch_file_round_trip(app, tmp_path):
    road, sky = CLASSES.index("road"), CLASSES.index("sky")
    app.select_class("sky")
    _drag(app, [(0, 200), (511, 200)])  # a wall across the canvas
    app.set_tool("fill")
    app.select_class(road)
    app.canvas.event_generate("<ButtonPress-1>", x=250, y=450)
    app.canvas.event_generate("<ButtonRelease-1>", x=250, y=450)
    lab = np.asarray(app.sketch.labels)
    assert (lab[-1] == road).all() and (lab[0] == -1).all()
    assert app.sketch.classes_drawn() == [sky, road]

    app.set_tool("eraser")
    _drag(app, [(250, 450)])
    assert app.sketch.labels[225, 125] == -1

    path = tmp_path / "sketch.png"
    assert app.save_sketch(path)
    saved = np.asarray(app.sketch.labels).copy()
    assert (read_sketch(path, app.palette, len(CLASSES)) == saved).all()
    app.clear()
    assert app.load_sketch(path)
    assert (np.asarray(app.sketch.labels) == saved).all()

    # a bad file is an error in the status bar, not an exception
    bad = tmp_path / "bad.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(bad)
    assert not app.load_sketch(bad)
    assert app.error and "not class colours" in app.status.cget("text")
    assert not app.load_sketch(tmp_path / "missing.png")
    assert (np.asarray(app.sketch.labels) == saved).all()


def test_result_click_makes_it_the_query_and_text_ranks(app, folder):
    photos = folder[1]
    app.select_class("tree")
    _drag(app, [(100, 100), (300, 300)])
    _searched(app, 0)
    hit = app.hits[1]
    n = app.search_count
    app.result_cells[1].event_generate("<Button-1>", x=5, y=5)
    _searched(app, n)
    assert app.photo_id == hit.id and app.photo_path == photos / hit.id
    assert app.sketch.classes_drawn() == [CLASSES.index("tree")]  # strokes kept
    assert app.query_label.cget("text").startswith(f"Query: {hit.id}")
    assert app.error is None and len(app.hits) == 6
    # the query photo's own result, when it is listed, is framed; the others are not
    framed = [str(c.cget("relief")) == "solid" for c in app.result_cells[:6]]
    assert framed == [h.id == hit.id for h in app.hits]

    # caption words: text + layout ranking
    n = app.search_count
    app.text_var.set("car")
    app.text_entry.event_generate("<Return>")
    _searched(app, n)
    assert app.error is None and app.hits
    assert all(h.text_score is not None for h in app.hits)
    assert app.hits[0].text_score >= 1

    # a photo that cannot be read: status bar error, the query photo stays
    bad = photos.parent / "broken.jpg"
    bad.write_bytes(b"not a photo")
    app.set_photo(bad)
    assert app.error and app.photo_id == hit.id
    app.remove_photo()
    assert app.photo_path is None and app.query_label.cget("text") == "Query: sketch only"


@pytest.mark.parametrize("where", ["here", "ray"])
def test_the_sketch_tool_searches_a_sharded_folder(display, folder, tmp_path, where):
    """A folder of a base and two shards opens in the sketch tool (searched in this process, or by Ray actors as
    `segsearch gui --ray local` does) and gives the hits of the one-file folder."""
    from photo_folder import make_sharded_copy
    from segsearch.engine.sharded import ShardedIndex
    from segsearch.library.photo_index import PhotoIndex

    if where == "ray":
        ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "segsearch[ray]")')
        if ray.is_initialized():
            pytest.skip("another test module's Ray instance is running")
        ray.init(
            num_cpus=2,
            object_store_memory=100 << 20,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        sharded = PhotoIndex.open(
            make_sharded_copy(folder[0], tmp_path / "sharded"),
            segmenter=FakeSegmenter(),
            ray="local" if where == "ray" else None,
        )
        _sketch_tool_matches(sharded, folder, where)
    finally:
        if where == "ray":
            ray.shutdown()
    if where == "here":
        assert isinstance(sharded.index, ShardedIndex)


def _sketch_tool_matches(sharded, folder, where):
    import tkinter as tk

    from segsearch.gui import SketchApp
    from segsearch.library.photo_index import PhotoIndex

    whole = PhotoIndex.open(folder[0], segmenter=FakeSegmenter())
    root = tk.Tk()
    app = SketchApp(root, sharded, k=6)
    try:
        root.update()
        app.select_class("tree")
        _drag(app, [(100, 100), (300, 300)])
        _searched(app, 0)
        assert app.error is None and len(app.hits) == 6
        explain = app.explaining  # the results explained where that is cheap: not when re-ranking on Ray
        assert explain or where == "ray"
        assert app.hits == whole.search(sketch=app.sketch.labels_at(whole.size), k=6, explain=explain)
        n = app.search_count
        app.result_cells[5].event_generate("<Button-1>", x=5, y=5)  # a photo as the query, from any shard
        _searched(app, n)
        assert app.error is None and app.hits == whole.search(
            image=folder[1] / app.photo_id, sketch=app.sketch.labels_at(whole.size), k=6, explain=explain
        )
    finally:
        app.close()


# ------------------------------------------------------------------------- the user report: status, filter, numbers
def _type(widget, text):
    for ch in text:
        widget.event_generate(f"<Key-{ch}>")
    widget.update()


def _click(widget, x=5, y=5):
    widget.event_generate("<Button-1>", x=x, y=y)
    widget.event_generate("<ButtonRelease-1>", x=x, y=y)
    widget.update()


def test_status_bar_never_widens_the_window(app, tmp_path, caplog):
    root = app.master
    root.update()
    width, req = root.winfo_width(), root.winfo_reqwidth()
    long_path = tmp_path / ("a_very_long_folder_name_" * 40) / "photo.jpg"  # an error of over 1,000 characters
    with caplog.at_level("INFO", logger="segsearch.gui"):
        app.set_photo(long_path)
        root.update()
    bar = app.status
    assert app.error and len(bar.full_text) > 1000 and str(long_path) in bar.full_text
    assert (root.winfo_width(), root.winfo_reqwidth()) == (width, req)
    assert bar.winfo_width() <= width
    shown = bar.shown_text
    assert "\n" not in shown and shown.endswith("…") and shown[:-1] in bar.full_text
    assert bar.font.measure(shown) <= bar.available_width()
    # the full message: in a tooltip over the status bar, and in the log
    assert any(r.levelname == "ERROR" and str(long_path) in r.getMessage() for r in caplog.records)
    bar.event_generate("<Enter>", x=5, y=5)
    root.update()
    assert bar.tooltip.window is not None and bar.tooltip.label.cget("text") == bar.full_text
    bar.event_generate("<Leave>")
    root.update()
    assert bar.tooltip.window is None
    # a message with line breaks is one line too; a short one is shown whole, without a tooltip
    app._set_status("first line\nsecond line")
    root.update()
    assert bar.shown_text == "first line second line" and bar.tooltip.text == ""
    assert root.winfo_width() == width


def test_filter_box_replaces_its_text_after_a_pick_and_reports_no_match(app):
    sky, road = CLASSES.index("sky"), CLASSES.index("road")
    entry = app.filter_entry
    _click(entry)
    _type(entry, "road")
    entry.event_generate("<Return>")
    app.master.update()
    assert app.current_class == road and app.filter_var.get() == "road"
    assert entry.selection_present()  # the picked text is selected: typing replaces it
    # back in the box (a click clears Tk's selection), typing starts a new filter: "sky", not "roadsky"
    _click(entry)
    _type(entry, "sky")
    assert app.filter_var.get() == "sky" and app.visible_classes == [sky]
    entry.event_generate("<Return>")
    app.master.update()
    assert app.current_class == sky and app.error is None

    # a click in the palette is a pick too
    _click(entry)
    app.filter_var.set("o")
    app.master.update()
    row = app.visible_classes.index(road)
    x, y, _, h = app.palette_list.bbox(row)
    _click(app.palette_list, x + 5, y + h // 2)
    assert app.current_class == road
    _click(entry)
    _type(entry, "tree")
    assert app.filter_var.get() == "tree"

    # no match: Return says so in the status bar, the class stays, the box keeps the focus and its text goes
    # on the next key
    app.filter_var.set("")
    _type(entry, "zebra")
    entry.focus_force()
    entry.event_generate("<Return>")
    app.master.update()
    assert app.current_class == road
    assert "No class matches" in app.status.full_text and "zebra" in app.status.full_text and app.status.error
    assert "road" in app.status.full_text
    assert app.master.focus_get() is entry
    _type(entry, "sky")
    assert app.filter_var.get() == "sky"
    entry.event_generate("<Return>")
    app.master.update()
    assert app.current_class == sky
    # an exact name wins over an earlier class containing it; an empty filter picks nothing
    assert app.best_match("car") == CLASSES.index("car") and app.best_match("zz") is None
    app.filter_var.set("")
    entry.event_generate("<Return>")
    app.master.update()
    assert app.current_class == sky


def test_one_class_numbering_in_the_palette_and_segsearch_classes(app, folder, capsys):
    from segsearch.cli import main

    assert main(["classes", str(folder[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["class", "png", "colour", "name"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[3] for r in rows] == CLASSES
    app.filter_var.set("")
    app.master.update()
    for c, (index, png, colour, name) in enumerate(rows):
        assert int(index) == c and int(png) == c + 1  # class index; the PNG value is index + 1
        number, shown = app.palette_list.get(c).split(maxsplit=1)
        assert (int(number), shown) == (c, name)
        assert colour == "#{:02x}{:02x}{:02x}".format(*app.palette[c])
    app.select_class(int(rows[3][0]))
    assert app.classes[app.current_class] == rows[3][3] and app.class_label.full_text == f"3 {rows[3][3]}"


def test_query_photo_keeps_its_aspect_ratio_and_strokes_map_to_it(app, folder):
    from segsearch.gui.window import BAR_RGB

    photos, names = folder[1], folder[2]
    photo = Image.open(photos / names[0]).convert("RGB")
    assert photo.size == (64, 48)
    app.set_photo(photos / names[0])
    _searched(app, 0)
    assert app.view.area == (0, 64, 512, 384)  # 4:3 in a 512 square: grey bars above and below
    assert str(photos / names[0]) in app.query_label.tooltip.text
    assert app.view.scale == (2.0, 1.5)
    shown = np.asarray(app.canvas_image.convert("RGB")).astype(int)
    assert (shown[:64] == BAR_RGB).all() and (shown[448:] == BAR_RGB).all()
    src = np.asarray(photo).astype(int)
    for bx, by in ((0, 0), (3, 3), (1, 2)):  # the photo's 16 x 12 px blocks, not stretched
        assert np.abs(shown[64 + (6 + 12 * by) * 8, (8 + 16 * bx) * 8] - src[6 + 12 * by, 8 + 16 * bx]).max() <= 2

    # strokes map to the photo's area: canvas y = 64 + 96 is sketch row 64 (the sketch covers the photo)
    sky = CLASSES.index("sky")
    app.select_class("sky")
    app.set_brush(8)
    _drag(app, [(100, 160), (400, 160)])
    lab = np.asarray(app.sketch.labels)
    assert lab[64, 60:190].tolist() == [sky] * 130 and (lab[76:] == -1).all()
    # the bars are not part of the sketch: a fill there does nothing
    app.set_tool("fill")
    before = lab.copy()
    app.canvas.event_generate("<ButtonPress-1>", x=256, y=20)
    app.canvas.event_generate("<ButtonRelease-1>", x=256, y=20)
    assert (np.asarray(app.sketch.labels) == before).all()
    # the brush outline is round in the sketch, so an ellipse over a 4:3 photo
    app.set_tool("brush")
    app.canvas.event_generate("<Motion>", x=256, y=256)
    x0, y0, x1, y1 = app.canvas.coords(app._cursor_item)
    assert (x1 - x0, y1 - y0) == (32.0, 24.0)
    app.remove_photo()
    assert app.view.area == (0, 0, 512, 512)


def test_result_captions_show_the_whole_file_name(app, folder):
    import dataclasses

    photos = folder[1]
    app.select_class("sky")
    _drag(app, [(20, 30), (480, 40)])
    _searched(app, 0)
    short = "Seq05VD_f01080.png"
    long = "IMG_20230815_143022_HDR_panorama_stitched_final_edit_v2.jpg"
    hits = [
        dataclasses.replace(app.hits[0], id=short, path=photos / short, explain=None),
        dataclasses.replace(
            app.hits[1], id=f"2023/holiday/{long}", path=photos / "2023" / "holiday" / long, explain=None
        ),
    ]
    app._show_hits(hits, [None, None])
    app.master.update()
    first, second = app.result_cells[:2]
    for cell in (first, second):
        lines = cell.cget("text").split("\n")
        assert len(lines) <= 4 and all(cell.font.measure(x) <= cell.text_width for x in lines)
    lines = first.cget("text").split("\n")
    assert lines[0] == f"1. d={hits[0].distance:.2f}"  # rank and distance
    assert "".join(lines[1:]) == short  # the whole name, wrapped if need be
    lines = second.cget("text").split("\n")
    assert lines[0].startswith("2. d=")
    name = "".join(lines[1:])
    head, tail = name.split("…")  # too long for two lines: cut in the middle
    assert long.startswith(head) and long.endswith(tail) and len(head) >= 5 and len(tail) >= 5
    # the full path in a tooltip
    second.event_generate("<Enter>", x=5, y=5)
    app.master.update()
    assert str(hits[1].path) in second.tooltip.label.cget("text")
    second.event_generate("<Leave>")
    assert app.result_cells[2].cget("text") == "" and app.result_cells[2].tooltip.text == ""
    # the query photo's own result and the caption words matched are on a last line, also in full
    app.photo_id = short
    app._show_hits([dataclasses.replace(hits[0], text_score=2)], [None])
    lines = first.cget("text").split("\n")
    assert lines[0] == f"1. d={hits[0].distance:.2f}" and lines[-1] == "words=2  (query)"
    assert "".join(lines[1:-1]) == short


def test_text_fitting_helpers():
    from segsearch.gui.widgets import elide_end, elide_middle, wrap_lines

    def measure(s):
        return 10 * len(s)

    assert elide_end("status message", 200, measure) == "status message"
    assert elide_end("status message", 80, measure) == "status…"
    assert elide_middle("Seq05VD_f01080.png", 100, measure) == "Seq0…0.png"
    assert wrap_lines("Seq05VD_f01080.png", 100, measure) == ["Seq05VD_", "f01080.png"]
    lines = wrap_lines("abcdefghij" * 5, 100, measure, max_lines=2)
    assert len(lines) == 2 and "…" in "".join(lines) and all(measure(x) <= 100 for x in lines)
    assert wrap_lines("", 100, measure) == []
    with pytest.raises(ValueError):
        wrap_lines("x", 100, measure, max_lines=0)


# ------------------------------------------------------------------------------------------ the command, no display
def test_gui_subcommand_arguments_and_one_line_errors(folder, tmp_path):
    from segsearch.cli import build_parser

    args = build_parser().parse_args(["gui", "somewhere", "-k", "5", "--device", "cpu"])
    assert (args.index_dir, args.k, args.device, args.weights) == ("somewhere", 5, "cpu", None)
    assert args.func.__name__ == "_cmd_gui"
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    for target, words in ((tmp_path / "missing", "does not exist"), (folder[0], "display")):
        r = subprocess.run(
            [sys.executable, "-m", "segsearch.cli", "gui", str(target)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("segsearch: error:") and words in lines[0], r.stderr


# ------------------------------------------------------------ issue 19, item 4: a sketch tool that fits and resizes
def _inside(w, box):
    """Whether widget ``w`` is shown, not empty, and lies inside ``box`` = (x0, y0, x1, y1) in screen pixels."""
    x, y = w.winfo_rootx(), w.winfo_rooty()
    return (
        w.winfo_ismapped()
        and w.winfo_width() > 1
        and w.winfo_height() > 1
        and box[0] <= x
        and box[1] <= y
        and x + w.winfo_width() <= box[2]
        and y + w.winfo_height() <= box[3]
    )


def _controls(app):
    """Every control a user needs (the results: their scrolled area and the first cell)."""
    tools = app.tool_bar.frame.winfo_children()
    assert len(tools) >= 8  # three tools, the size label and scale, undo, redo, clear
    return {
        "canvas": app.canvas,
        "caption words": app.text_entry,
        "Search": app.search_button,
        "class filter": app.filter_entry,
        "palette": app.palette_list,
        "drawing class": app.class_label,
        "results": app.results_panel.view,
        "first result": app.result_cells[0],
        "status bar": app.status,
        **{f"tool {i}": w for i, w in enumerate(tools)},
    }


def _settle(app, until, what):
    _pump(app, lambda: not app._fit_pending and until(), what)


def test_the_window_fits_a_1000x600_screen(small_display, folder):
    """At 1000x600 (no window manager: the window sits at the top left, its menu bar above its area) the whole
    window is on the screen and every control is in the window, shown whole."""
    import tkinter as tk

    from segsearch.gui import SketchApp
    from segsearch.gui.window import menu_bar_height
    from segsearch.library.photo_index import PhotoIndex

    root = tk.Tk(screenName=small_display)
    app = SketchApp(root, PhotoIndex.open(folder[0], segmenter=FakeSegmenter()), k=12)
    try:
        _settle(app, lambda: root.winfo_ismapped(), "the window to be shown")
        sw, sh = root.winfo_screenwidth(), root.winfo_screenheight()
        assert (sw, sh) == (1000, 600)
        x, y, w, h = root.winfo_rootx(), root.winfo_rooty(), root.winfo_width(), root.winfo_height()
        menu = menu_bar_height(root)
        assert 10 < menu < 100 and y >= menu  # the menu bar is above the window's area, on the screen
        assert x >= 0 and x + w <= sw and y + h <= sh, (x, y, w, h)
        window = (x, y, x + w, y + h)
        outside = [name for name, c in _controls(app).items() if not _inside(c, window)]
        assert not outside, f"not shown whole in the {w}x{h} window: {outside}"
        assert app.board_px >= 300  # a canvas to draw on, not a stamp
    finally:
        app.close()


def test_canvas_and_results_grow_with_the_window_and_strokes_keep_their_place(app):
    root = app.master
    sky = CLASSES.index("sky")
    app.select_class("sky")
    app.set_brush(10)
    seen = []
    for w, h in ((800, 480), (1250, 960), (600, 300)):
        root.geometry(f"{w}x{h}")
        w, h = max(w, root.minsize()[0]), max(h, root.minsize()[1])  # never below the minimum size
        _settle(app, lambda w=w, h=h: (root.winfo_width(), root.winfo_height()) == (w, h), f"{w}x{h}")
        side = app.board_px
        view = app.results_panel.view
        seen.append((side, view.winfo_width(), view.winfo_height(), app.results_panel.columns))
        assert app.canvas.winfo_width() == side == app.canvas_image.width == app.canvas_image.height
        # a stroke across the middle of the canvas lands on the middle rows of the 256 x 256 sketch
        app.clear()
        _drag(app, [(side // 10, side // 2), (side * 9 // 10, side // 2)])
        rows, cols = np.nonzero(np.asarray(app.sketch.labels) == sky)
        assert abs(rows.mean() - 128) <= 1.5 and abs(cols.min() - 16) <= 2 and abs(cols.max() - 240) <= 2
        # and shows there
        assert tuple(app.canvas_image.getpixel((side // 2, side // 2)))[:3] == tuple(app.palette[sky])
    (small, w0, h0, c0), (large, w1, h1, c1), (smallest, *_) = seen
    assert large > small and w1 > w0 and h1 > h0 and c1 > c0  # the canvas and the results grew
    # the minimum size keeps the controls: asked for 600x300, the window stays at least that big
    assert root.winfo_width() >= root.minsize()[0] > 600 and root.winfo_height() >= root.minsize()[1] > 300
    assert smallest >= 256
    box = (root.winfo_rootx(), root.winfo_rooty(), root.winfo_rootx() + root.winfo_width(), 10**6)
    assert all(_inside(c, box) for c in _controls(app).values())


def test_a_resized_canvas_keeps_the_photo_area(app, folder):
    photos, names = folder[1], folder[2]
    app.set_photo(photos / names[0])  # 64 x 48: bars above and below
    for geometry in ("800x480", "1250x960"):
        app.master.geometry(geometry)
        _settle(app, lambda g=geometry: app.master.geometry().startswith(g), geometry)
        side = app.board_px
        x, y, w, h = app.view.area
        assert (x, w) == (0, side) and abs(h - side * 3 / 4) <= 1 and y == (side - h) // 2
        assert app.canvas_image.size == (side, side)


def test_opening_a_photo_starts_a_new_query_and_undo_brings_the_old_one_back(app, folder, monkeypatch):
    from segsearch.gui import menus

    photos, names = folder[1], folder[2]
    app.select_class("road")
    _drag(app, [(20, 400), (480, 420)])
    app.text_var.set("car")
    app.set_photo(photos / names[0])
    _searched(app, 0)
    old_labels = np.asarray(app.sketch.labels).copy()
    # File > Open photo (Ctrl+O) with the file dialog answering the second photo
    monkeypatch.setattr(menus.filedialog, "askopenfilename", lambda **kw: str(photos / names[1]))
    n = app.search_count
    app.canvas.focus_force()
    app.canvas.event_generate("<Control-o>")
    _searched(app, n)
    assert app.photo_path == photos / names[1] and app.photo_id is None
    assert app.sketch.is_empty() and app.text_var.get() == ""
    # the query is the photo alone: its own layout, not the old strokes and words
    assert app.hits == app.pi.search(image=photos / names[1], k=6, explain=True) and app.error is None

    n = app.search_count
    app.canvas.event_generate("<Control-z>")  # one undo: the old strokes, words and photo
    _searched(app, n)
    assert (np.asarray(app.sketch.labels) == old_labels).all()
    assert app.text_var.get() == "car" and app.photo_path == photos / names[0]
    assert app.query_label.full_text.startswith(f"Query: {names[0]}")
    app.redo()
    assert app.sketch.is_empty() and app.text_var.get() == "" and app.photo_path == photos / names[1]
    # a stroke's undo leaves the photo alone
    _drag(app, [tuple(map(int, app.view.to_canvas(x, 128))) for x in (20, 200)])
    assert not app.sketch.is_empty()
    app.undo()
    assert app.photo_path == photos / names[1] and app.sketch.is_empty()


def test_file_errors_are_said_in_words(app, tmp_path):
    app.select_class("sky")
    _drag(app, [(20, 30), (480, 40)])
    drawn = np.asarray(app.sketch.labels).copy()
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping: bread, milk\n")
    assert not app.open_photo(notes)
    assert app.error.endswith("notes.txt: it is not an image Pillow can read"), app.error
    assert (np.asarray(app.sketch.labels) == drawn).all() and app.photo_path is None  # the query stays
    assert not app.open_photo(tmp_path / "gone.jpg")
    assert app.error.endswith("gone.jpg: it does not exist")
    assert not app.open_photo(tmp_path)
    assert app.error.endswith(": it is not a regular file")
    assert not app.load_sketch(notes)
    assert app.error == f"cannot open sketch {notes}: it is not an image Pillow can read"
    assert not app.save_sketch(tmp_path / "no such folder" / "s.png")
    assert app.error.endswith("s.png: No such file or directory")
    # no internals: file objects, error numbers, exception names
    for bad in ("<_io", "Errno", "BufferedReader", "Error:"):
        assert bad not in app.status.full_text


def test_tooltips_never_show_what_a_result_no_longer_is(app, folder):
    photos, names = folder[1], folder[2]
    app.select_class("sky")
    _drag(app, [(20, 30), (480, 40)])
    _searched(app, 0)
    cell = app.result_cells[0]
    cell.event_generate("<Enter>", x=5, y=5)
    app.master.update()
    assert cell.tooltip.window is not None and str(app.hits[0].path) in cell.tooltip.label.cget("text")
    # new results under the pointer: the tooltip says the new result
    n = app.search_count
    app.set_photo(photos / names[7])
    _searched(app, n)
    assert cell.tooltip.window is not None
    assert cell.tooltip.label.cget("text") == cell.tooltip.text and str(app.hits[0].path) in cell.tooltip.text
    # no results: no tooltip
    app.remove_photo()
    app.clear()
    _pump(app, lambda: app.hits == [], "the results to clear")
    assert cell.tooltip.window is None
    # a tooltip goes with its widget
    cell.tooltip.text = "shown"
    cell.event_generate("<Enter>", x=5, y=5)
    tip = cell.tooltip.window
    assert tip is not None
    cell.destroy()
    app.master.update()
    assert cell.tooltip.window is None and not tip.winfo_exists()


def test_ctrl_a_selects_all_in_the_text_boxes(app):
    for entry, var in ((app.text_entry, app.text_var), (app.filter_entry, app.filter_var)):
        var.set("red car")
        entry.focus_force()
        entry.icursor(3)
        app.master.update()
        entry.event_generate("<Control-a>")
        app.master.update()
        assert entry.selection_present() and (entry.index("sel.first"), entry.index("sel.last")) == (0, 7)
        assert var.get() == "red car"


def test_help_lists_the_real_keys(app):
    import tkinter as tk

    from segsearch.gui.help_window import MOUSE, version
    from segsearch.gui.shortcuts import IN_TEXT, SHORTCUTS

    root, bar = app.master, app.menu_bar
    cascades = [i for i in range(bar.index("end") + 1) if bar.type(i) == "cascade"]
    assert [bar.entrycget(i, "label") for i in cascades] == ["File", "Edit", "Tools", "Refine", "Help"]
    help_menu = root.nametowidget(bar.entrycget(cascades[-1], "menu"))
    assert [help_menu.entrycget(i, "label") for i in range(2)] == ["Keyboard shortcuts", "About segsearch"]

    def opened(action):
        before = set(root.winfo_children())
        action()
        root.update()
        (top,) = [w for w in root.winfo_children() if isinstance(w, tk.Toplevel) and w not in before]
        return top

    top = opened(lambda: help_menu.invoke(0))
    assert top.rows == [(s.keys, s.action) for s in SHORTCUTS] + list(MOUSE)
    top.destroy()
    app.canvas.focus_force()
    top = opened(lambda: app.canvas.event_generate("<F1>"))  # F1 opens it too
    top.destroy()
    # every key listed is bound (in text boxes: on the Entry class), and the menus show the table's keys
    for s in SHORTCUTS:
        for seq in s.sequences:
            assert root.bind_class("Entry", seq) if s.where == IN_TEXT else root.bind(seq), seq
    keys = {s.keys for s in SHORTCUTS}
    for i in cascades:
        menu = root.nametowidget(bar.entrycget(i, "menu"))
        for j in range(menu.index("end") + 1):
            if menu.type(j) == "command" and menu.entrycget(j, "accelerator"):
                assert menu.entrycget(j, "accelerator") in keys
    # the docs' key table lists them all
    doc = (Path(__file__).resolve().parent.parent / "docs" / "sketch-tool.md").read_text()
    documented = {line.split("|")[1].strip() for line in doc.splitlines() if line.startswith("| ")}
    assert {s.keys for s in SHORTCUTS} <= documented

    top = opened(lambda: help_menu.invoke(1))
    assert f"segsearch {version()}" in top.text and str(app.pi.index_dir) in top.text
    assert f"{len(app.pi)} photos" in top.text and version() != "unknown"


def test_first_size_and_canvas_side():
    from segsearch.gui.fit import CANVAS_MIN, CANVAS_PX, canvas_side, first_size

    # main's window (1236 x 702 plus a 32 px menu bar) on the 1000 x 600 screen: cut to 90%
    assert first_size((1236, 702), (760, 430), (1000, 600), 32) == (900, 508)
    assert first_size((1100, 700), (760, 430), (1920, 1080), 32) == (1100, 700)  # room: as preferred
    assert first_size((1100, 700), (760, 430), (640, 480), 32) == (760, 430)  # never below the minimum
    # the canvas grows first (to 512), then the results (two more columns of 128), then both
    assert canvas_side(0, 1000, 128) == CANVAS_MIN
    assert canvas_side(400, 1000, 128) == 400
    assert canvas_side(CANVAS_PX + 200, 1000, 128) == CANVAS_PX
    assert canvas_side(CANVAS_PX + 256 + 100, 1000, 128) == CANVAS_PX + 50
    assert canvas_side(2000, 450, 128) == 450  # square: never taller than the room
    assert canvas_side(2000, 100, 128) == CANVAS_MIN
