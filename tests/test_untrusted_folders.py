"""An index folder from someone else is untrusted input: its ids may name files outside the photos folder
(``../``, absolute paths, symlinks out of it) or things that are not photos (a FIFO, whose opening would wait
forever, a folder). Such hits are kept but never opened: ``Hit.path`` is None and ``Hit.note`` says why, in
``PhotoIndex.search``, the contact sheet, the CLI (``-`` and a note on stderr) and the sketch tool (a grey
"not shown" tile). Indexing stores only relative paths of regular files inside the photos folder. The recorded
photos folder and ``captions.sqlite`` are checked too.

Everything that could block on the FIFO runs with a timeout (a thread or a child process), so a regression
fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segsearch
from photo_folder import CLASSES, SIZE, FakeSegmenter, make_photos
from segsearch.library.photo_index import PhotoIndex

TIMEOUT = 60
N_GOOD = 12


def within(seconds: float, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a daemon thread; fails the test if it has not returned after ``seconds``."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 -- re-raised below
            out["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s (blocked opening a FIFO?)")
    if "error" in out:
        raise out["error"]
    return out["value"]


def _bad_ids(root: Path) -> dict[str, str]:
    """{id: a word its note must contain} for every kind of refused id."""
    secret = root / "secret" / "private.png"
    return {
        "../secret/private.png": "outside",
        "sub/../../secret/private.png": "outside",
        str(secret): "absolute",
        "/etc/passwd": "absolute",
        "link-out.png": "outside",  # a symlink in the photos folder to the secret photo
        "pipe.png": "FIFO",
        "folder.png": "folder",
        "": "empty",
    }


@pytest.fixture(scope="module")
def evil(tmp_path_factory):
    """A malicious index folder: 12 real photos plus the bad ids, all with real maps (so every one of them is
    a search result), saved as INDEX_DIR/index.segsearch with metadata photos_dir. Returns (index_dir, photos,
    good ids, bad ids {id: note word}, secret photo)."""
    root = tmp_path_factory.mktemp("evil")
    photos, index_dir = root / "photos", root / "index"
    good = make_photos(photos, n=N_GOOD)
    (root / "secret").mkdir()
    secret = root / "secret" / "private.png"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(secret)
    os.symlink(secret, photos / "link-out.png")
    os.symlink("photo000.png", photos / "link-in.png")  # a link inside the folder is fine
    os.mkfifo(photos / "pipe.png")
    (photos / "folder.png").mkdir()
    bad = _bad_ids(root)
    seg = FakeSegmenter()
    maps = seg.predict([photos / n for n in good], size=SIZE)
    index = segsearch.Index(
        len(CLASSES), SIZE, 8, class_names=CLASSES, metadata={"photos_dir": str(photos), "network": "fake"}
    )
    index.train(maps, niter=3)
    index.add(maps, ids=good)
    index.add(maps[[0]], ids=["link-in.png"])
    index.add(maps[np.arange(len(bad)) % N_GOOD], ids=list(bad))
    index_dir.mkdir()
    index.save(index_dir / "index.segsearch")
    return index_dir, photos, good, bad, secret


def _sky(n=SIZE):
    lab = np.full((n, n), -1, np.int32)
    lab[: n // 2] = CLASSES.index("sky")
    return lab


def _all_hits(pi):
    return within(TIMEOUT, pi.search, sketch=_sky(), k=len(pi))


def test_search_hits_of_refused_ids_have_no_path_and_a_note(evil):
    index_dir, photos, good, bad, secret = evil
    pi = PhotoIndex.open(index_dir)
    hits = _all_hits(pi)
    by_id = {h.id: h for h in hits}
    assert set(by_id) == set(good) | set(bad) | {"link-in.png"}
    for id_, word in bad.items():
        h = by_id[id_]
        assert h.path is None and word in h.note, (id_, h)
        assert within(TIMEOUT, pi.path, id_) is None
        assert h.as_dict()["path"] is None and h.as_dict()["note"] == h.note
    for id_ in good:
        assert by_id[id_].path == photos.resolve() / id_ and by_id[id_].note is None
    assert by_id["link-in.png"].path == photos.resolve() / "photo000.png"  # resolved, inside: allowed
    assert json.dumps([h.as_dict() for h in hits])


def test_contact_sheet_never_opens_a_refused_id(evil, monkeypatch):
    from segsearch.sketch import sheet

    index_dir, photos, good, bad, secret = evil
    pi = PhotoIndex.open(index_dir)
    hits = _all_hits(pi)
    opened = []
    real = sheet.open_photo
    monkeypatch.setattr(sheet, "open_photo", lambda path, *a, **k: opened.append(Path(path)) or real(path, *a, **k))
    im = within(TIMEOUT, sheet.contact_sheet, pi, hits, sketch=_sky(), columns=5)
    assert sorted(opened) == sorted(h.path for h in hits if h.path is not None)
    assert all(p.resolve().parent == photos.resolve() and p.is_file() for p in opened)
    # each refused hit is a grey "not shown" tile: grey corner, darker text in the middle
    thumb, pad, line = 200, sheet.PAD, 18
    gx = pad + 2 * thumb + 2 * pad
    for i, h in enumerate(hits):
        if h.path is None:
            x, y = gx + (i % 5) * (thumb + pad), pad + line + (i // 5) * (thumb + 2 * line + pad)
            tile = np.asarray(im.crop((x, y, x + thumb, y + thumb * 3 // 4)))
            assert tuple(tile[2, 2]) == (200, 200, 200) and tile.min() < 150, (h.id, i)


def test_cli_shows_refused_ids_as_skipped_with_a_note(evil, tmp_path):
    """In a child process with a timeout: the FIFO id must not block, neither the output nor the sheet."""
    index_dir, photos, good, bad, secret = evil
    n = N_GOOD + 1 + len(bad)
    cmd = [sys.executable, "-m", "segsearch.cli", "search", str(index_dir), "--draw", "sky:0,0,1,0.5", "-k", str(n)]
    p = subprocess.run(cmd + ["--sheet", str(tmp_path / "sheet.png")], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert len(rows) == n
    refused = {int(r[0]) for r in rows if r[1] == "-"}
    assert len(refused) == len(bad)
    assert all(Path(r[1]).resolve().parent == photos.resolve() for r in rows if r[1] != "-")
    notes = [line for line in p.stderr.splitlines() if line.startswith("segsearch: note: result ")]
    assert len(notes) == len(bad) and {int(line.split()[3]) for line in notes} == refused
    for id_, word in bad.items():
        assert any(f"(id {id_!a}): " in line and word in line for line in notes), id_
    assert Image.open(tmp_path / "sheet.png").size[0] > 400
    p = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    objs = [json.loads(line) for line in p.stdout.splitlines()]
    assert {o["id"]: o["note"] for o in objs if o["path"] is None}.keys() == bad.keys()
    assert all(o["note"] is None for o in objs if o["path"] is not None)


def test_gui_worker_gives_not_shown_tiles_and_opens_nothing_refused(evil, monkeypatch):
    pytest.importorskip("tkinter")
    import segsearch.gui.search_worker as sw

    index_dir, photos, good, bad, secret = evil
    pi = PhotoIndex.open(index_dir)
    opened = []
    real = sw.open_photo
    monkeypatch.setattr(sw, "open_photo", lambda path, *a, **k: opened.append(Path(path)) or real(path, *a, **k))
    worker = sw.SearchWorker(pi, (112, 84))
    try:
        ans = within(TIMEOUT, worker.answer, sw.SearchRequest(1, _sky(), None, None, len(pi)))
    finally:
        worker.stop()
    assert ans.error is None and len(ans.hits) == len(pi)
    not_shown = worker.thumbnails.not_shown()
    for h, im in zip(ans.hits, ans.thumbs):
        if h.path is None:
            assert im is not_shown
        else:
            assert im is not None and im is not not_shown
    assert sorted(set(opened)) == sorted({h.path for h in ans.hits if h.path is not None})
    px = np.asarray(not_shown)
    assert tuple(px[1, 1]) == (200, 200, 200) and px.min() < 150  # grey, with the words


def test_open_photo_refuses_a_fifo_without_waiting(evil):
    from segsearch.sketch.sheet import open_photo

    photos = evil[1]
    with pytest.raises(ValueError, match="not a regular file"):
        within(TIMEOUT, open_photo, photos / "pipe.png")
    with pytest.raises(ValueError, match="not a regular file"):
        within(TIMEOUT, open_photo, photos / "folder.png")


# ------------------------------------------------------------------------------------- the sketch tool window
# the private Xvfb display fixture `display` (skips without Xvfb) is in conftest.py

#: Run in a child process: Tk keeps its display connection for the life of the process, so a window opened here
#: on this module's Xvfb would end the test process when another module's Xvfb is gone.
WINDOW_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
import tkinter as tk
import numpy as np
from photo_folder import CLASSES, SIZE, FakeSegmenter
from segsearch.gui import SketchApp
from segsearch.library.photo_index import PhotoIndex

pi = PhotoIndex.open(sys.argv[1], segmenter=FakeSegmenter())
root = tk.Tk()
app = SketchApp(root, pi, k=len(pi))
lab = np.full((SIZE, SIZE), -1, np.int32)
lab[: SIZE // 2] = CLASSES.index("sky")
app.sketch.set_labels(lab)
app.sketch_changed()
deadline = time.monotonic() + 30
while (app.search_count == 0 or app.pending) and time.monotonic() < deadline:
    root.update()
    time.sleep(0.01)
refused = [i for i, h in enumerate(app.hits) if h.path is None]
out = {"searched": app.search_count, "error": app.error, "status": app.status.full_text,
       "refused": [[app.hits[i].note, app.result_cells[i].tooltip.text] for i in refused]}
app.use_result(refused[0])
out["after_refused"] = [app.error, None if app.photo_path is None else str(app.photo_path)]
ok = next(i for i, h in enumerate(app.hits) if h.path is not None)
app.use_result(ok)
out["after_ok"] = [str(app.photo_path), str(app.hits[ok].path)]
app.close()
print(json.dumps(out))
"""


def test_window_shows_a_refused_hit_as_not_shown_and_never_opens_it(evil, display):  # noqa: F811
    index_dir, _, _, bad, _ = evil
    p = subprocess.run(
        [sys.executable, "-c", WINDOW_CHILD, str(index_dir), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.splitlines()[-1])
    assert out["searched"] and out["error"] is None
    assert len(out["refused"]) == len(bad) and f"{len(bad)} not shown" in out["status"]
    for note, tip in out["refused"]:
        assert "not shown" in tip and note in tip
    error, photo = out["after_refused"]
    assert photo is None and "is not shown" in error
    assert out["after_ok"][0] == out["after_ok"][1]


# ------------------------------------------------------------------------------------- the folder's other inputs
@pytest.mark.parametrize(
    ("recorded", "word"),
    [
        ("/", "too wide"),
        ("photos", "not an absolute path"),
        (None, "records no photos folder"),
        (12, "not an absolute path"),
    ],
)
def test_an_untrustworthy_recorded_photos_folder_refuses_every_path(evil, tmp_path, recorded, word):
    """From photos_dir="/" an id such as "etc/passwd" or "home/you/private.png" would name any file; the caller's
    photos_dir= is trusted instead."""
    index_dir, photos, good, bad, secret = evil
    index = segsearch.Index.load(index_dir / "index.segsearch", mmap=False)
    meta = dict(index.metadata)
    meta.pop("photos_dir")
    if recorded is not None:
        meta["photos_dir"] = recorded
    other = tmp_path / "index"
    other.mkdir()
    segsearch.Index.from_codebook(
        np.asarray(index.codebook),
        np.asarray(index.codes),
        ids=list(index.ids),
        class_names=index.class_names,
        metadata=meta,
    ).save(other / "index.segsearch")
    hits = _all_hits(PhotoIndex.open(other))
    assert all(h.path is None and word in h.note for h in hits)
    hits = _all_hits(PhotoIndex.open(other, photos_dir=photos))
    assert {h.id for h in hits if h.path is not None} == set(good) | {"link-in.png"}


def test_malformed_captions_are_a_clear_error_and_never_written(evil, tmp_path):
    import shutil

    from segsearch.cli import main

    index_dir = tmp_path / "index"
    shutil.copytree(evil[0], index_dir)
    db = sqlite3.connect(index_dir / "captions.sqlite")
    db.execute("CREATE TABLE captions (path TEXT, words TEXT)")  # no caption column
    db.execute("CREATE TABLE caption_photos (id INTEGER PRIMARY KEY, path TEXT)")
    db.execute("CREATE TABLE caption_fts (text TEXT)")  # not a full-text table
    db.commit()
    db.close()
    before = (index_dir / "captions.sqlite").read_bytes()
    with pytest.raises(ValueError, match="not a segsearch captions file"):
        PhotoIndex.open(index_dir)
    assert main(["search", str(index_dir), "--text", "sky"]) == 2
    assert (index_dir / "captions.sqlite").read_bytes() == before


# ------------------------------------------------------------------------------------- indexing the folder
def test_indexing_skips_links_out_of_the_folder_fifos_and_linked_folders(tmp_path):
    """`segsearch index` stores only relative paths of regular files inside the photos folder: a symlink is
    followed only when its target is inside; FIFOs (which would block the decoder) and links out are skipped
    with a note. Run in a child with a timeout (tests/test_faults.py's tiny network)."""
    from test_faults import OPTS, run

    photos = tmp_path / "photos"
    good = make_photos(photos, n=20)
    outside = tmp_path / "outside"
    make_photos(outside, n=3, seed=5)
    os.symlink(outside / "photo000.png", photos / "link-out.png")
    os.symlink(outside, photos / "linked-folder")  # not entered
    os.symlink("photo001.png", photos / "link-in.png")
    os.symlink(tmp_path / "missing.png", photos / "dangling.png")
    os.mkfifo(photos / "pipe.jpg")
    p = run("none", "index", photos, "--out", tmp_path / "idx", *OPTS)
    assert p.returncode == 0, p.stderr
    assert "note: 3 files skipped" in p.stdout
    ids = list(segsearch.Index.load(tmp_path / "idx" / "index.segsearch").ids)
    assert ids == sorted(good + ["link-in.png"])
    pi = PhotoIndex.open(tmp_path / "idx")
    assert all(h.path is not None for h in _all_hits(pi))
