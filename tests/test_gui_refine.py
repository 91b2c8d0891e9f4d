"""Query refinement in the sketch tool (issue 22): the date, folder and camera filters, classes left out and
emphasised, why a result is there, more / fewer like a result. The real window on Xvfb (the fixtures and
helpers of test_gui.py): each control changes the search the worker is asked for, and the results are those of
PhotoIndex.search asked directly with the same keywords; undo brings the previous refinements back.
"""

import inspect
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import test_gui
from photo_folder import CLASSES, FakeSegmenter
from segsearch.engine.emphasis import DEFAULT_WEIGHT
from segsearch.library.photo_index import PhotoIndex
from test_gui import RUNNER, WAIT, _drag, _searched, wait_for_state
from xvfb import xvfb

folder = test_gui.folder  # the fixture: a photo folder and its index


class OlderIndex(PhotoIndex):
    """A library whose search takes the filters, ``exclude`` and ``explain`` but not ``weights``, ``like`` and
    ``unlike`` (as before issue 22's items 1 and 3): the tool must not offer them."""

    def search(self, **kwargs):
        return super().search(**kwargs)

    _sig = inspect.signature(PhotoIndex.search)
    search.__signature__ = _sig.replace(
        parameters=[p for n, p in _sig.parameters.items() if n not in ("weights", "like", "unlike")]
    )


def _open(index_dir):
    return PhotoIndex.open(index_dir, segmenter=FakeSegmenter())


@pytest.fixture(scope="module")
def dated(folder, tmp_path_factory):
    """A copy of the index folder with photo metadata: photos 0-19 taken in May 2023 by a Canon, 20-39 in May
    2024 by a Pixel, photo i on day i % 28 + 1; returns (index_dir, photos_dir, names)."""
    from segsearch.library.metadata import MetadataRow, write_metadata

    index_dir, photos, names = folder
    out = tmp_path_factory.mktemp("dated") / "index"
    shutil.copytree(index_dir, out)
    rows = []
    for i, n in enumerate(names):
        year, cam = (2023, "Canon EOS 5D") if i < 20 else (2024, "Pixel 7")
        rows.append(MetadataRow(n, f"{year}-05-{i % 28 + 1:02d}T12:00:00", "exif", cam, ""))
    write_metadata(rows, out / "photos.sqlite")
    return out, photos, names


def _app(pi, k=6):
    import tkinter as tk

    from segsearch.gui import SketchApp

    root = tk.Tk()
    app = SketchApp(root, pi, k=k)
    root.update()
    return app


def _sketch_search(app, n=0):
    app.select_class("sky")
    _drag(app, [(20, 30), (480, 40)])
    _searched(app, n)


def _direct(app):
    """PhotoIndex.search asked directly with the keywords of the worker's last request (and the photo's maps)."""
    req = app.last_request
    maps = None if req.photo is None else app.pi.segment(req.photo)
    return app.pi.search(maps=maps, **req.search_kwargs())


# ---------------------------------------------------------------------------------------------- the model, no Tk
def test_refinement_model():
    from segsearch.errors import OptionError
    from segsearch.gui.refine import Refinement

    r = Refinement()
    assert not r and r.search_kwargs(CLASSES) == {} and r.chips(CLASSES) == []
    r = r.with_filters(after=" 2024-05-01 ", folder="", camera="canon")
    assert r.search_kwargs(CLASSES) == {"after": "2024-05-01", "camera": "canon"}
    with pytest.raises(OptionError, match="after must be a date like 2024-05-01"):
        r.with_filters(after="2024-13-45")
    with pytest.raises(OptionError, match="folder"):
        r.with_filters(folder="../outside")
    car, sky = CLASSES.index("car"), CLASSES.index("sky")
    r = r.excluding(car).emphasising(sky, 8).marking("a.png", "like").marking("b.png", "unlike")
    assert r.search_kwargs(CLASSES) == {
        "after": "2024-05-01",
        "camera": "canon",
        "exclude": {"car": 0.01},
        "weights": {"sky": 8.0},
        "like": ["a.png"],
        "unlike": ["b.png"],
    }
    assert [c.text for c in r.chips(CLASSES)] == [
        "after 2024-05-01",
        "camera canon",
        "no car ≥1%",
        "sky ×8",
        "liked 1",
        "unliked 1",
    ]
    # a like moves an unliked photo over; None unmarks; the chips' × removes one refinement
    r2 = r.marking("b.png", "like")
    assert (r2.like, r2.unlike, r2.mark("b.png")) == (("a.png", "b.png"), (), "like")
    assert r2.marking("a.png", None).like == ("b.png",)
    assert r.excluding(car, 0.1).exclude == ((car, 0.1),)
    assert r.without("exclude", car).exclude == () and r.without("after").after is None
    assert r.without("like").like == () and r.without("weights", sky).weights == ()


# --------------------------------------------------------------------------------------------------- the filters
def test_filters_window_changes_the_search_and_bad_dates_are_one_line_errors(display, dated):
    app = _app(_open(dated[0]))
    try:
        _sketch_search(app)
        unfiltered = app.hits
        app.canvas.focus_force()
        app.canvas.event_generate("<Control-f>")  # Refine > Filters
        app.master.update()
        (top,) = [w for w in app.master.winfo_children() if hasattr(w, "entries")]
        assert all(str(e.cget("state")) == "normal" for e in top.entries.values())
        # a bad date: a one-line error in the status bar, the window stays, nothing changes, no crash
        top.entries["after"].var.set("2024-13-45")
        n = app.search_count
        assert not top.apply()
        assert top.winfo_exists() and app.status.error
        assert app.error.startswith("filter not applied: after must be a date like 2024-05-01")
        assert "\n" not in app.status.shown_text and app.refinement.after is None and not app.pending
        # good filters: the worker is asked with them; the results are the library's, and pass them
        top.entries["after"].var.set("2024-01-01")
        top.entries["camera"].var.set("pixel")
        assert top.apply() and not top.winfo_exists()
        _searched(app, n)
        assert app.last_request.options == {"after": "2024-01-01", "camera": "pixel"}
        assert app.error is None and app.hits and app.hits != unfiltered
        assert app.hits == app.pi.search(
            sketch=app.sketch.labels_at(app.pi.size), k=6, explain=True, after="2024-01-01", camera="pixel"
        )
        assert all(dated[2].index(h.id) >= 20 for h in app.hits)  # the Pixel's photos of 2024
        assert [c.text for c, _ in app.refine_bar.chips] == ["after 2024-01-01", "camera pixel"]
        # a chip's × removes its filter (one undo step); Ctrl+Z brings it back, then the unfiltered search
        n = app.search_count
        app.refine_bar.chips[1][1].close_label.event_generate("<Button-1>")
        _searched(app, n)
        assert app.last_request.options == {"after": "2024-01-01"}
        n = app.search_count
        app.canvas.event_generate("<Control-z>")
        _searched(app, n)
        assert app.last_request.options == {"after": "2024-01-01", "camera": "pixel"}
        assert app.sketch.classes_drawn() == [CLASSES.index("sky")]  # the stroke stays
        n = app.search_count
        app.undo()
        _searched(app, n)
        assert app.last_request.options == {} and app.hits == unfiltered and app.refine_bar.chips == []
        app.undo()  # then the stroke
        assert app.sketch.is_empty()
    finally:
        app.close()


def test_filters_are_disabled_with_a_note_without_photo_metadata(app):
    top = app.show_filters()
    app.master.update()
    assert all(str(e.cget("state")) == "disabled" for e in top.entries.values())
    assert "no photo metadata" in top.note and "segsearch metadata" in top.note
    assert not app.set_filters(after="2024-01-01") and "segsearch metadata" in app.error  # past the window
    assert app.refinement.after is None
    top.destroy()


@pytest.fixture
def app(display, folder):
    a = _app(_open(folder[0]))
    yield a
    a.close()


# ------------------------------------------------------------------------------------------ leaving a class out
def test_leave_out_a_class_from_the_palette_menu(app):
    _sketch_search(app)
    plain = app.hits
    shown = app.pi.index.positions([h.id for h in plain])
    # a class that some of these results have on 1% of the photo or more
    car = next(c for c in range(1, len(CLASSES)) if app.pi.exclude_mask({c: 0.01})[shown].any())
    name = CLASSES[car]
    menu = app.palette_panel.menu_for(car)
    labels = [menu.entrycget(i, "label") for i in range(menu.index("end") + 1)]
    assert labels == [f"Draw with {name}", f"Leave out photos with {name}", f"Emphasise {name} (counts more)"]
    n = app.search_count
    menu.invoke(1)
    _searched(app, n)
    assert app.last_request.options == {"exclude": {name: 0.01}}
    assert app.error is None and app.hits == _direct(app) and app.hits != plain
    left_out = app.pi.exclude_mask({name: 0.01})
    assert not left_out[app.pi.index.positions([h.id for h in app.hits])].any()
    (chip, widget), *_ = app.refine_bar.chips
    assert chip.text == f"no {name} ≥1%" and widget.winfo_ismapped()
    # the chip's menu changes the share (a step), its × removes it (a step); undo brings each back
    chip_menu = app.refine_bar.menu_for(chip)
    n = app.search_count
    chip_menu.invoke(3)  # 10%
    _searched(app, n)
    assert app.last_request.options == {"exclude": {name: 0.1}} and app.hits == _direct(app)
    n = app.search_count
    app.refine_bar.chips[0][1].close_label.event_generate("<Button-1>")  # the chip shown now
    _searched(app, n)
    assert app.last_request.options == {} and app.hits == plain and app.refine_bar.chips == []
    app.undo()
    assert app.refinement.exclude == ((car, 0.1),)
    app.undo()
    assert app.refinement.exclude == ((car, 0.01),)
    app.redo()
    app.redo()
    assert app.refinement.exclude == ()


# ------------------------------------------------------------------------------------------ why a result is there
def test_each_result_shows_the_classes_its_distance_is_made_of(app, folder):
    from segsearch.gui.widgets import EXPLAIN_BAR_PX, elide_end

    app.set_photo(folder[1] / folder[2][3])
    _searched(app, 0)
    assert app.last_request.explain and app.error is None
    assert app.hits == _direct(app)
    for hit, cell in zip(app.hits, app.result_cells):
        parts = hit.explain
        assert parts and abs(sum(p.part for p in parts) - hit.distance) <= 1e-3 * max(hit.distance, 1)
        top2 = " ".join(f"{p.name} {p.part / sum(q.part for q in parts):.0%}" for p in parts[:2])
        assert elide_end(top2, cell.text_width, cell.font.measure) in cell.cget("text").split("\n")
        assert f"{parts[0].name}: " in cell.tooltip.text
        # the bar under the thumbnail starts with the colour of the largest part
        assert cell.image.width() == cell.thumb_size[0]
    cell = app.result_cells[0]
    rgb = cell.image._PhotoImage__photo.get(0, cell.thumb_size[1] + EXPLAIN_BAR_PX // 2)
    assert tuple(rgb) == tuple(int(v) for v in app.palette[app.hits[0].explain[0].index])


# ------------------------------------------------------------------------------------ more / fewer like these
def test_like_and_unlike_results_with_keys_and_the_menu_undoably(app):
    _sketch_search(app)
    second = app.hits[1].id
    # L over a result (the pointer on it) likes it: shown on the result, and the search runs with like=
    app.result_cells[1].event_generate("<Enter>", x=5, y=5)
    app.canvas.focus_force()
    app.master.update()
    assert app.hovered_result == 1
    n = app.search_count
    app.canvas.event_generate("<Key-l>")
    _searched(app, n)
    assert app.last_request.options == {"like": [second]}
    assert app.error is None and app.hits == _direct(app)
    ids = [h.id for h in app.hits]
    assert second in ids  # the query moved toward it: still among the results, marked there
    assert [app.result_mark(h) for h in app.hits] == ["like" if h == second else None for h in ids]
    assert "▲ liked" in app.result_cells[ids.index(second)].cget("text")
    # U from a result's menu unlikes another one
    j = next(i for i, h in enumerate(ids) if h != second)
    target = ids[j]
    menu = app.results_panel.menu_for(j)
    assert menu.entrycget(1, "label") == "Fewer like this" and menu.entrycget(1, "accelerator") == "U"
    n = app.search_count
    menu.invoke(1)
    _searched(app, n)
    assert app.last_request.options == {"like": [second], "unlike": [target]}
    assert [c.text for c, _ in app.refine_bar.chips] == ["liked 1", "unliked 1"]
    # Ctrl+Z brings the previous like set back; Ctrl+Y again
    n = app.search_count
    app.canvas.event_generate("<Control-z>")
    _searched(app, n)
    assert app.last_request.options == {"like": [second]} and app.error is None
    app.canvas.event_generate("<Control-y>")
    assert app.refinement.unlike == (target,)
    # L again on a liked result unmarks it; with nothing under the pointer, L says so
    app.like_result([h.id for h in app.hits].index(second))
    assert app.refinement.like == () and app.refinement.unlike == (target,)
    app.result_cells[0].event_generate("<Leave>")
    app.master.update()
    assert not app.like_result() and app.error == "Point at a result to like or unlike it."


def test_likes_are_refused_in_words_where_the_library_lacks_them(display, folder):
    from segsearch.gui.refine import search_options

    assert {"like", "unlike", "weights"} <= search_options(PhotoIndex)  # this library has them ...
    pi = OlderIndex.open(folder[0], segmenter=FakeSegmenter())
    assert not {"like", "unlike", "weights"} & search_options(pi)  # ... an older one does not
    app = _app(pi)
    try:
        _sketch_search(app)
        assert app.refine_options >= {"after", "exclude", "explain"}
        assert not app.like_result(0) and "like=" in app.error and app.refinement.like == ()
        assert not app.emphasise_class(CLASSES.index("sky")) and "weights=" in app.error
        bar = app.menu_bar
        (refine,) = [
            i for i in range(bar.index("end") + 1) if bar.type(i) == "cascade" and bar.entrycget(i, "label") == "Refine"
        ]
        refine_menu = app.master.nametowidget(bar.entrycget(refine, "menu"))
        states = {refine_menu.entrycget(i, "label"): str(refine_menu.entrycget(i, "state")) for i in (2, 3, 6)}
        assert set(states.values()) == {"disabled"}, states
    finally:
        app.close()


# ------------------------------------------------------------------------------------------ emphasising a class
def test_a_click_on_the_query_photos_label_map_emphasises_that_class(app, folder):
    view = app.label_map
    assert view.labels is None
    app.set_photo(folder[1] / folder[2][5])
    _searched(app, 0)
    seen = app.pi.segment(folder[1] / folder[2][5]).argmax(0)
    assert view.labels is not None and (view.labels == seen).all()
    x, y, w, h = view.area
    assert (w, h) == (160, 120)  # 4:3, like the photo
    # the cell of the map at the click
    cx, cy = x + w * 3 // 4, y + h // 4
    c = int(seen[(cy - y) * seen.shape[0] // h, (cx - x) * seen.shape[1] // w])
    n = app.search_count
    view.canvas.event_generate("<Motion>", x=cx, y=cy)
    assert view.caption.full_text == f"{c} {CLASSES[c]}: click to emphasise"
    view.canvas.event_generate("<Button-1>", x=cx, y=cy)
    _searched(app, n)
    assert app.last_request.options == {"weights": {CLASSES[c]: DEFAULT_WEIGHT}}
    assert app.error is None and app.hits == _direct(app)
    assert [ch.text for ch, _ in app.refine_bar.chips] == [f"{CLASSES[c]} ×{DEFAULT_WEIGHT:g}"]
    # the chip's menu: another weight; undo: back to ×4, then none; the photo stays the query
    chip = app.refine_bar.chips[0][0]
    app.refine_bar.menu_for(chip).invoke(4)  # ×16
    assert app.refinement.weights == ((c, 16.0),)
    app.undo()
    assert app.refinement.weights == ((c, DEFAULT_WEIGHT),)
    app.undo()
    assert app.refinement.weights == () and app.photo_path == folder[1] / folder[2][5]
    app.remove_photo()
    assert view.labels is None


# ------------------------------------------------------------------------------- the app, driven by xdotool
def test_a_bad_date_typed_in_the_filters_window_is_an_error_not_a_crash(dated, tmp_path):
    with xvfb("1280x1024") as disp:  # a display of its own: xdotool sees only this app's windows
        env = dict(os.environ, DISPLAY=disp, SEGSEARCH_GUI_STATE=str(tmp_path / "state.json"))
        _bad_date_then_a_good_one(env, dated, tmp_path / "state.json")


def _bad_date_then_a_good_one(env, dated, state_file):
    def xdo(*args) -> str:
        r = subprocess.run(["xdotool", *map(str, args)], env=env, capture_output=True, text=True, timeout=WAIT)
        assert r.returncode == 0, f"xdotool {' '.join(map(str, args))}: {r.stderr}"
        return r.stdout

    proc = subprocess.Popen(
        [sys.executable, str(RUNNER), str(dated[0])], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )

    def state(until, what):
        return wait_for_state(proc, state_file, until, what)

    try:
        s = state(lambda s: s["canvas"][2] > 100, "the window to be laid out")
        wid = xdo("search", "--sync", "--onlyvisible", "--name", "^segsearch").split()[0]
        xdo("windowfocus", wid)
        x, y = s["canvas"][0] + 40, s["canvas"][1] + 40
        xdo("mousemove", x, y, "mousedown", "1", "mousemove", x + 200, y + 10, "mouseup", "1")
        s = state(lambda s: s["search_count"] >= 1 and not s["pending"], "the stroke's results")
        xdo("key", "ctrl+f")
        dialog = xdo("search", "--sync", "--onlyvisible", "--name", "filters$").split()[0]
        xdo("windowfocus", dialog)
        xdo("type", "--delay", "20", "yesterday")
        xdo("key", "Return")
        s = state(lambda s: s["error"] is not None, "the bad date's error")
        assert s["error"].startswith("filter not applied: after must be a date") and s["refine"] == {}
        assert "\n" not in s["status_shown"]
        # fixed in place: the filter applies
        xdo("key", "ctrl+a", "BackSpace")
        xdo("type", "--delay", "20", "2024-05-03")
        xdo("key", "Return")
        n = s["search_count"]
        s = state(lambda s: s["search_count"] > n and not s["pending"], "the filtered results")
        assert s["refine"] == {"after": "2024-05-03"} and s["error"] is None and s["chips"] == ["after 2024-05-03"]
        passing = {n for i, n in enumerate(dated[2]) if i >= 20 and i % 28 + 1 >= 3}  # May 3rd 2024 or later
        assert len(passing) == 18 and s["n_results"] == 12 and {r["id"] for r in s["results"]} <= passing
        xdo("windowfocus", wid)
        xdo("key", "ctrl+q")
        assert proc.wait(WAIT) == 0
        assert "Traceback" not in proc.communicate()[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_chips_wrap_in_the_results_column(app):
    for c in range(1, len(CLASSES)):
        app.exclude_class(c)
    app.master.update()
    bar = app.refine_bar.frame
    rows = {w.winfo_y() for _, w in app.refine_bar.chips}
    assert len(rows) > 1  # wrapped
    for _, w in app.refine_bar.chips:
        assert w.winfo_x() + w.winfo_width() <= bar.winfo_width()
    assert np.all([w.winfo_ismapped() for _, w in app.refine_bar.chips])
