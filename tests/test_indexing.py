"""``segsearch index``: a folder of real photos end to end, resuming after an interruption, ``--add``,
captions, and the one-line errors. Needs the shared model and CamVid photos (skipped without them);
the photos are copied into temporary folders, and the model is imported into a temporary file.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from segsearch import Index, Query
from segsearch.cli import main
from segsearch.engine.sharded import open_folder
from segsearch.library.build import build_index
from segsearch.library.captions import read_captions, store_captions
from segsearch.library.photos import find_photos
from segsearch.network import weights as W
from segsearch.network.segmenter import Segmenter
from segsearch.network.tflite_import import EXPECTED_TFLITE_SHA256

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "deeplabv3-mnv2-ade20k" / "model.tflite"
CAMVID = SHARED / "data" / "camvid" / "train" / "images"
_MAPS = Segmenter._maps
needs_data = pytest.mark.skipif(not MODEL.is_file() or not CAMVID.is_dir(), reason="shared model/photos not available")

#: Small and fast: 32x32 maps, 3 centroids, batches of 2, a 4-photo training sample.
OPTS = ["--size", "32", "--centroids", "3", "--batch", "2", "--sample", "4"]


def camvid(n: int) -> list[Path]:
    files = sorted(CAMVID.glob("*.jpg"))
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def make_folder(root: Path, photos: list[Path], junk: bool = True) -> list[str]:
    """Copy photos into root (the second half under sub/), plus a corrupt .jpg and a text file."""
    rels = []
    for i, p in enumerate(photos):
        rel = p.name if i < len(photos) // 2 else f"sub/{p.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, root / rel)
        rels.append(rel)
    if junk:
        (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        (root / "notes.txt").write_text("not a photo")
    return sorted(rels)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """The real model imported once into a temporary safetensors file."""
    if not MODEL.is_file():
        pytest.skip("shared model not available")
    from segsearch.network.tflite_import import import_tflite

    out = tmp_path_factory.mktemp("weights") / "deeplab.safetensors"
    import_tflite(MODEL, out)
    return out


class Counter:
    """Wraps the network pass every segmentation goes through (``Segmenter._maps``): counts the photos
    segmented; raises KeyboardInterrupt past ``limit``."""

    def __init__(self, limit: int | None = None):
        self.n, self.limit = 0, limit

    def install(self, monkeypatch) -> Counter:
        def maps(seg, x, *args, **kwargs):
            if self.limit is not None and self.n + len(x) > self.limit:
                raise KeyboardInterrupt
            out = _MAPS(seg, x, *args, **kwargs)
            self.n += len(x)
            return out

        monkeypatch.setattr(Segmenter, "_maps", maps)
        return self


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty user cache for imported weights, and no SEGSEARCH_WEIGHTS."""
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One uninterrupted run over 6 photos + a corrupt file, with the bundled network (no --weights) and an
    empty weights cache: (photos dir, index dir, rel paths, exit code, stdout, photos segmented)."""
    if not CAMVID.is_dir():
        pytest.skip("shared photos not available")
    base = tmp_path_factory.mktemp("clean")
    photos = base / "photos"
    rels = make_folder(photos, camvid(6))
    captions = base / "captions.csv"
    captions.write_text(f"path,caption\n{rels[0]},a street\n{rels[0]},cars on a road\nnot/there.jpg,x\n")
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(W, "cache_dir", lambda: base / "empty-cache")
        mp.delenv(W.ENV_VAR, raising=False)
        counter = Counter().install(mp)
        rc = main(["index", str(photos), "--out", str(base / "idx"), *OPTS, "--captions", str(captions)])
    return photos, base / "idx", rels, rc, buf.getvalue(), counter.n


@needs_data
def test_index_folder_end_to_end(clean, weights):
    photos, out, rels, rc, stdout, segmented = clean
    assert rc == 0
    assert segmented == 6  # one network pass per readable photo, the training sample's included
    # only what search needs (and the small progress database) stays
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "captions.sqlite",
        "index.segsearch",
        "photos.sqlite",
        "work",
        "work/state.sqlite",
    ]
    index = Index.load(out / "index.segsearch")
    assert len(index) == 6
    assert list(index.ids) == rels  # relative paths, '/'-separated, sorted
    assert any(r.startswith("sub/") for r in rels)
    assert index.n_centroids == 3 and index.size == 32 and index.num_classes == 151
    assert index.metadata["network"] == "deeplabv3-mnv2-ade20k"
    assert index.metadata["network_sha256"] == W.BUNDLED_SHA256 == EXPECTED_TFLITE_SHA256
    assert index.metadata["photos_dir"] == str(photos.resolve()) and index.metadata["size"] == 32
    assert index.class_names[:4] == ["others", "wall", "building", "sky"]
    # the corrupt file is reported and recorded as failed; the text file is ignored
    assert "1 photo could not be read" in stdout and "corrupt.jpg (" in stdout and str(photos) not in stdout
    db = sqlite3.connect(out / "work" / "state.sqlite")
    rows = dict(db.execute("SELECT path, status FROM photos").fetchall())
    db.close()
    assert rows.pop("corrupt.jpg") == "failed" and set(rows.values()) == {"done"} and "notes.txt" not in rows
    assert "stored 2 captions" in stdout
    db = sqlite3.connect(out / "captions.sqlite")
    assert db.execute("SELECT path, caption FROM captions").fetchall() == [
        (rels[0], "a street"),
        (rels[0], "cars on a road"),
    ]
    db.close()  # the sample maps are deleted once everything is done
    # a photo's own maps find it first
    seg = Segmenter.default(device="cpu", weights=weights)
    probs = seg.predict(photos / rels[4], size=32)
    assert index.search(Query.image(probs[0]), k=1).ids[0] == rels[4]


@needs_data
def test_search_the_real_index_from_the_command_line(clean, weights, tmp_path, tmp_cache, capsys):
    """segsearch search on the folder indexed above, with the real network for the photo query: the bundled
    one (the index records it), then an explicit --weights file of the same network."""
    photos, out, rels, rc, *_ = clean
    assert rc == 0
    capsys.readouterr()
    sheet = tmp_path / "sheet.png"
    assert main(["search", str(out), "--image", str(photos / rels[4]), "-k", "3", "--json", "--sheet", str(sheet)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["id"] == rels[4] and rows[0]["path"] == str(photos.resolve() / rels[4]) and len(rows) == 3
    assert sheet.stat().st_size > 10_000
    # photo + a road drawn over its bottom third; text ranks the captioned photo first
    assert (
        main(
            [
                "search",
                str(out),
                "--image",
                str(photos / rels[4]),
                "--draw",
                "road:0,0.66,1,1",
                "--text",
                "Cars",
                "-k",
                "6",
                "--json",
                "--weights",
                str(weights),
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert rows[0]["id"] == rels[0] and rows[0]["text_score"] == 1 and len(rows) == 6
    assert [r["text_score"] for r in rows[1:]] == [0] * 5


@needs_data
def test_rerun_of_a_finished_index_does_nothing(clean, weights, monkeypatch, capsys):
    photos, out, *_ = clean
    before = Index.load(out / "index.segsearch", mmap=False).codes.copy()
    counter = Counter().install(monkeypatch)
    assert main(["index", str(photos), "--out", str(out), "--weights", str(weights), *OPTS]) == 0
    assert counter.n == 0
    np.testing.assert_array_equal(Index.load(out / "index.segsearch").codes, before)
    # other options than the folder was started with: a one-line error, nothing touched
    assert main(["index", str(photos), "--out", str(out), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error:") and "size=32" in err and err.count("\n") == 1


@needs_data
@pytest.mark.parametrize("limit", [2, 5], ids=["during-sample", "during-encoding"])
def test_resume_after_interrupt(clean, tmp_path, tmp_cache, monkeypatch, capsys, limit):
    _, clean_out, rels, *_ = clean
    photos = tmp_path / "photos"
    assert make_folder(photos, camvid(6)) == rels
    args = ["index", str(photos), "--out", str(tmp_path / "idx"), *OPTS]
    first = Counter(limit).install(monkeypatch)
    assert main(args) == 130  # interrupted
    assert not (tmp_path / "idx" / "index.segsearch").exists()
    assert 0 < first.n <= limit
    assert (tmp_path / "idx" / "work" / "codebook.segsearch").exists() == (limit == 5)
    second = Counter().install(monkeypatch)
    capsys.readouterr()
    assert main(args) == 0
    assert "indexed 6 photos (6 new," in capsys.readouterr().out  # the resume wrote all six into the folder
    assert first.n + second.n == 6  # no readable photo was segmented twice
    got, want = Index.load(tmp_path / "idx" / "index.segsearch"), Index.load(clean_out / "index.segsearch")
    assert list(got.ids) == list(want.ids)
    np.testing.assert_array_equal(got.codes, want.codes)
    np.testing.assert_array_equal(got.codebook, want.codebook)


@needs_data
def test_add_photos_and_clamp_k(weights, tmp_path, monkeypatch, capsys):
    photos, out = tmp_path / "photos", tmp_path / "idx"
    five = camvid(5)
    make_folder(photos, five[:3], junk=False)
    base = ["index", str(photos), "--out", str(out), "--weights", str(weights), "--size", "32", "--batch", "2"]
    assert main(base + ["--centroids", "8"]) == 0
    assert "lowered to 3" in capsys.readouterr().out  # K > readable sample photos: clamped, with a note
    first = Index.load(out / "index.segsearch", mmap=False)
    assert len(first) == 3 and first.n_centroids == 3
    for p in five[3:]:
        shutil.copyfile(p, photos / f"new_{p.name}")
    # new photos in a finished index need --add
    assert main(base) == 2
    assert "--add" in capsys.readouterr().err
    counter = Counter().install(monkeypatch)
    assert main(base + ["--add"]) == 0
    assert counter.n == 2  # only the new photos are segmented
    assert len(Index.load(out / "index.segsearch")) == 3  # --add wrote a shard, not the whole index again
    index = open_folder(out)
    assert len(index) == 5
    assert list(index.ids[:3]) == list(first.ids)
    assert sorted(index.ids[3:]) == sorted(f"new_{p.name}" for p in five[3:])
    np.testing.assert_array_equal(index.codebook, first.codebook)  # no retraining
    np.testing.assert_array_equal(index.codes[:3], first.codes)


def test_empty_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "readme.txt").write_text("no photos here")
    assert main(["index", str(tmp_path / "photos"), "--out", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error: no photos") and err.count("\n") == 1
    assert main(["index", str(tmp_path / "missing"), "--out", str(tmp_path / "idx")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_device_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    assert main(["index", str(tmp_path / "photos"), "--out", str(tmp_path / "idx"), "--device", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error: --device 'nonsense'") and err.count("\n") == 1


def test_bad_captions_file_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    (tmp_path / "caps.csv").write_text("file,text\n")
    for caps in ["caps.csv", "missing.json"]:
        assert (
            main(
                ["index", str(tmp_path / "photos"), "--out", str(tmp_path / "idx"), "--captions", str(tmp_path / caps)]
            )
            == 2
        )
        assert capsys.readouterr().err.startswith("segsearch: error:")
    assert not (tmp_path / "idx").exists()


def test_add_without_an_index_is_an_error(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    assert main(["index", str(tmp_path / "photos"), "--out", str(tmp_path / "idx"), "--add"]) == 2
    assert "--add needs an existing index" in capsys.readouterr().err


@needs_data
@pytest.mark.parametrize("where", ["--weights", "bundled"])
def test_missing_weights_is_a_one_line_error(tmp_path, monkeypatch, capsys, where):
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "empty-cache")
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    make_folder(tmp_path / "photos", camvid(1), junk=False)
    args = ["index", str(tmp_path / "photos"), "--out", str(tmp_path / "idx")]
    if where == "bundled":  # a broken install
        monkeypatch.setattr(W, "BUNDLED", tmp_path / "gone.tflite")
    else:
        args += ["--weights", str(tmp_path / "nowhere.tflite")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error:") and err.count("\n") == 1 and len(err) < 300
    assert "--weights FILE" in err and "weights='" not in err  # the CLI option, not the Python argument
    assert ("nowhere.tflite" in err) if where == "--weights" else ("reinstall segsearch" in err)


def test_find_photos_by_extension_recursively(tmp_path):
    for rel in ["b.JPG", "a.png", "sub/c.jpeg", "sub/deeper/d.webp", "e.bmp", "f.gif", "g.txt", "h.Jpg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert find_photos(tmp_path) == ["a.png", "b.JPG", "e.bmp", "h.Jpg", "sub/c.jpeg", "sub/deeper/d.webp"]


def test_captions_coco_json_and_csv(tmp_path):
    paths = ["images/000001.jpg", "images/000002.jpg", "x/a.jpg"]
    coco = {
        "images": [
            {"id": 1, "file_name": "000001.jpg"},
            {"id": 2, "file_name": "000002.jpg"},
            {"id": 3, "file_name": "missing.jpg"},
        ],
        "annotations": [
            {"image_id": 1, "caption": "A dog on grass. "},
            {"image_id": 1, "caption": "A dog."},
            {"image_id": 2, "caption": "A street."},
            {"image_id": 3, "caption": "gone"},
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco))
    pairs, unmatched = read_captions(tmp_path / "c.json", paths)
    assert pairs == [
        ("images/000001.jpg", "A dog on grass."),
        ("images/000001.jpg", "A dog."),
        ("images/000002.jpg", "A street."),
    ]
    assert unmatched == 1
    (tmp_path / "c.csv").write_text('path,caption\nx/a.jpg,"red car, parked"\nx/a.jpg,a car\nnope.jpg,?\n')
    db = tmp_path / "captions.sqlite"
    assert store_captions(tmp_path / "c.csv", db, paths, log=lambda s: None) == 2
    assert store_captions(tmp_path / "c.csv", db, paths, log=lambda s: None) == 2  # replaced, not doubled
    con = sqlite3.connect(db)
    assert con.execute("SELECT path, caption FROM captions ORDER BY rowid").fetchall() == [
        ("x/a.jpg", "red car, parked"),
        ("x/a.jpg", "a car"),
    ]
    con.close()
    (tmp_path / "bad.csv").write_text("file,text\na,b\n")
    with pytest.raises(ValueError, match="path,caption"):
        read_captions(tmp_path / "bad.csv", paths)


@pytest.mark.parametrize("sample", [40, 12])
def test_cli_pipeline_builds_what_the_python_api_builds(tmp_path, sample):
    """build_index trains with Index.train and encodes with Index.encode: from the same maps, the same seed and
    K, the folder's codebook and codes equal the API's (the sample's maps are kept as float16, so the API is
    given those)."""
    from photo_folder import make_photos, pixel_net

    names = make_photos(tmp_path / "photos", n=40)
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    report = build_index(
        tmp_path / "photos",
        tmp_path / "idx",
        segmenter=seg,
        size=8,
        n_centroids=4,
        batch=3,
        sample=sample,
        niter=4,
        seed=3,
        workers=0,
        log=lambda s: None,
    )
    got = Index.load(report.index_path)
    assert report.n_done == 40 and list(got.ids) == names and got.metadata["network"] == "PixelNet"
    assert got.metadata["network_sha256"] is None
    db = sqlite3.connect(tmp_path / "idx" / "work" / "state.sqlite")
    in_sample = [p for (p,) in db.execute("SELECT path FROM photos WHERE sampled=1 ORDER BY sample_row")]
    db.close()
    assert len(in_sample) == sample
    maps = dict(zip(names, seg.predict([tmp_path / "photos" / n for n in names], size=8)))
    api = Index(5, 8, 4, list("abcde")).train(
        np.stack([maps[p] for p in in_sample]).astype(np.float16), niter=4, seed=3
    )
    np.testing.assert_array_equal(got.codebook, api.codebook)
    want = [api.encode(maps[p][None].astype(np.float16) if p in in_sample else maps[p][None])[0] for p in names]
    np.testing.assert_array_equal(got.codes, np.stack(want))


def test_default_centroids_fit_the_folder():
    from segsearch.library.build import default_centroids

    assert [default_centroids(n) for n in (1, 40, 63, 64, 159, 200, 256, 2047, 2048, 10**7)] == [
        4,
        4,
        4,
        8,
        16,
        16,
        32,
        128,
        256,
        256,
    ]


def test_ranking_is_chosen_when_the_folder_is_made(tmp_path):
    """build_index(ranking=...) / --ranking: balanced by default, l2 on request; fixed for the folder (a resume
    or --add with another ranking is refused), recorded in the index file."""
    from photo_folder import make_photos, pixel_net

    make_photos(tmp_path / "photos", n=12)
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    opts = dict(segmenter=seg, size=8, n_centroids=4, batch=4, niter=2, workers=0, log=lambda s: None)
    default = build_index(tmp_path / "photos", tmp_path / "a", **opts)
    assert Index.load(default.index_path).ranking.name == "balanced"
    plain = build_index(tmp_path / "photos", tmp_path / "b", ranking="l2", **opts)
    assert Index.load(plain.index_path).ranking.name == "l2"
    assert Index.load(plain.index_path).class_prior is None
    make_photos(tmp_path / "photos" / "more", n=3, seed=5)
    with pytest.raises(ValueError, match="started with ranking='l2', not 'balanced'"):
        build_index(tmp_path / "photos", tmp_path / "b", ranking="balanced", add=True, **opts)
    build_index(tmp_path / "photos", tmp_path / "b", add=True, **opts)
    assert len(open_folder(tmp_path / "b")) == 15 and open_folder(tmp_path / "b").ranking.name == "l2"
    with pytest.raises(ValueError, match="unknown ranking 'cos'"):
        build_index(tmp_path / "photos", tmp_path / "c", ranking="cos", **opts)


@pytest.mark.parametrize(
    "args",
    [
        ["search", "IDX", "-k", "0"],
        ["search", "IDX", "-k", "-3"],
        ["search", "IDX", "--threads", "0"],
        ["index", "IDX"],
        ["nosuch"],
        [],
    ],
)
def test_a_bad_command_line_is_one_line(args, tmp_path, capsys):
    """argparse's errors read like every other error: one line, ``segsearch: error: ...``, exit 2, no usage block."""
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path) if a == "IDX" else a for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("segsearch: error: ") and err.count("\n") == 1, err
    assert "usage:" not in err and "--help" in err


def test_a_reader_that_stops_early_is_not_an_error(tmp_path, monkeypatch):
    """`segsearch classes IDX | head -1`: once the reader has closed the pipe, segsearch stops quietly with
    SIGPIPE's status (it printed "segsearch: error: [Errno 32] Broken pipe")."""
    import os

    Index(151, 8, 4, class_names=[f"class{c}" for c in range(151)]).train(
        np.full((4, 151, 8, 8), 1 / 151, np.float32), niter=1
    ).save(tmp_path / "index.segsearch")
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first line: every write fails with EPIPE
    out, err = open(w, "w", buffering=1), io.StringIO()  # line-buffered, like a terminal's or head's pipe
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["classes", str(tmp_path)]) == 141
    assert err.getvalue() == ""


def test_new_counts_the_photos_a_run_adds(tmp_path):
    """BuildReport.n_new (the CLI's "N new"): every photo on a first run, 0 on a run that finds nothing new, and
    for --add the new readable photos (an unreadable file is reported failed, not new)."""
    from photo_folder import make_photos, pixel_net

    make_photos(tmp_path / "photos", n=12)
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    opts = dict(segmenter=seg, size=8, n_centroids=4, batch=4, niter=2, workers=0, log=lambda s: None)
    first = build_index(tmp_path / "photos", tmp_path / "idx", **opts)
    assert (first.n_done, first.n_new) == (12, 12)
    again = build_index(tmp_path / "photos", tmp_path / "idx", **opts)
    assert (again.n_done, again.n_new, again.shard_path) == (12, 0, None)
    make_photos(tmp_path / "photos" / "more", n=3, seed=5)
    (tmp_path / "photos" / "more" / "broken.jpg").write_bytes(b"not a photo")
    added = build_index(tmp_path / "photos", tmp_path / "idx", add=True, **opts)
    assert (added.n_done, added.n_new, len(added.failed)) == (15, 3, 1)
    assert build_index(tmp_path / "photos", tmp_path / "idx", add=True, **opts).n_new == 0


class _Terminal(io.StringIO):
    """stderr as a terminal, so tqdm draws its bars (it draws none into a pipe)."""

    def isatty(self):
        return True


def test_every_phase_has_a_bar_that_keeps_moving(tmp_path, monkeypatch):
    """Indexing shows a bar per phase (segmenting the sample, training, encoding, writing), each redrawn while its
    phase runs, so a slow step never leaves the terminal silent."""
    import time

    import segsearch.library.segmenting as segmenting
    from photo_folder import make_photos, pixel_net

    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    monkeypatch.setattr(segmenting, "TICK_S", 0.05)
    with segmenting.progress_bar(3, "waiting") as bar:
        before = term.getvalue().count("\r")
        time.sleep(0.6)  # no update: only the ticker draws
        assert term.getvalue().count("\r") >= before + 5
        bar.update(3)
    make_photos(tmp_path / "photos", n=12)
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    build_index(
        tmp_path / "photos",
        tmp_path / "idx",
        segmenter=seg,
        size=8,
        n_centroids=4,
        batch=4,
        niter=2,
        workers=0,
        sample=8,
        log=lambda s: None,
    )
    shown = term.getvalue()
    for phase in (
        "1/4 segmenting the training sample",
        "2/4 training codebooks",
        "3/4 encoding the sample",
        "3/4 segmenting and encoding",
        "4/4 writing the index folder",
    ):
        assert phase in shown, phase
