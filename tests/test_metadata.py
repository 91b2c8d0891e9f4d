"""Photo metadata (issue 22): each photo's date (EXIF DateTimeOriginal, else the file time), camera and folder in
INDEX_DIR/photos.sqlite, the search filters made from them (after, before, folder, camera: API and CLI), and EXIF
as untrusted input (malformed blocks, dates and strings skipped and counted, never a crash)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo_folder import pixel_net
from segsearch import OptionError, PhotoIndex
from segsearch.cli import main
from segsearch.library.build import build_index
from segsearch.library.exif import parse_exif_date, read_facts
from segsearch.network.segmenter import Segmenter

CANON, NIKON = "Canon EOS 5D", "NIKON D750"


def exif(date: str | None = None, model=None) -> Image.Exif:
    ex = Image.Exif()
    if model is not None:
        ex[272] = model
    if date is not None:
        ex.get_ifd(0x8769)[36867] = date
    return ex


def photo(path: Path, seed: int, *, exif_block=None, mtime: dt.datetime | None = None) -> None:
    """A small photo of random colour blocks at ``path`` (PNG or JPEG by its suffix), with ``exif_block`` (an
    Image.Exif or raw bytes) and the modification time ``mtime`` (a local time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    im = Image.fromarray(blocks).resize((32, 24), Image.NEAREST)
    im.save(path, **({} if exif_block is None else {"exif": exif_block}))
    when = (mtime or dt.datetime(2015, 1, 1, 12, 0, 0)).timestamp()
    os.utime(path, (when, when))


#: Each photo: (EXIF block, file time); the date a search sees is the EXIF date when it is valid, else the file time.
PHOTOS = {
    "a.png": (exif("2021:06:01 10:00:00", CANON), dt.datetime(2010, 1, 1)),
    "b.jpg": (exif("2022:01:01 00:00:00", NIKON), dt.datetime(2010, 1, 1)),
    "c.png": (None, dt.datetime(2019, 3, 4, 5, 6, 7)),
    "trip/d.png": (exif("2023:07:01 08:30:00\0", "Canon PowerShot G7"), None),
    "trip/e.png": (None, dt.datetime(2020, 1, 1)),
    "trip/day2/f.jpg": (exif(None, "  iPhone 12  "), dt.datetime(2024, 2, 29, 23, 59, 59)),
    "trip-old/g.png": (None, dt.datetime(2018, 8, 8)),
    "bad/h.png": (b"Exif\0\0" + np.random.default_rng(3).bytes(200), dt.datetime(2011, 1, 1)),
    "bad/i.png": (exif("0000:00:00 00:00:00", CANON), dt.datetime(2012, 1, 1)),
    "bad/j.jpg": (exif("2024:13:45 99:99:99"), dt.datetime(2013, 1, 1)),
    "bad/k.png": (exif("2016:05:05 05:05:05", "X" * 100_000), None),
    # a TIFF header whose first IFD claims 65535 entries beyond the end of the block
    "bad/l.jpg": (b"Exif\0\0MM\0\x2a\0\0\0\x08\xff\xff" + b"\0" * 20, dt.datetime(2014, 1, 1)),
}
#: The date each photo gets.
DATES = {
    "a.png": dt.datetime(2021, 6, 1, 10),
    "b.jpg": dt.datetime(2022, 1, 1),
    "c.png": dt.datetime(2019, 3, 4, 5, 6, 7),
    "trip/d.png": dt.datetime(2023, 7, 1, 8, 30),
    "trip/e.png": dt.datetime(2020, 1, 1),
    "trip/day2/f.jpg": dt.datetime(2024, 2, 29, 23, 59, 59),
    "trip-old/g.png": dt.datetime(2018, 8, 8),
    "bad/h.png": dt.datetime(2011, 1, 1),
    "bad/i.png": dt.datetime(2012, 1, 1),
    "bad/j.jpg": dt.datetime(2013, 1, 1),
    "bad/k.png": dt.datetime(2016, 5, 5, 5, 5, 5),
    "bad/l.jpg": dt.datetime(2014, 1, 1),
}
CANONS = ["a.png", "bad/i.png", "trip/d.png"]
MALFORMED = {"bad/h.png", "bad/i.png", "bad/j.jpg", "bad/k.png", "bad/l.jpg"}
CAPTIONS = {"a.png": "a red car", "c.png": "a car on a road", "trip/d.png": "car by the sea", "trip/e.png": "sea"}


def make_folder(root: Path, names=None) -> Path:
    photos = root / "photos"
    for i, name in enumerate(PHOTOS if names is None else names):
        block, mtime = PHOTOS[name]
        photo(photos / name, i, exif_block=block, mtime=mtime)
    return photos


def segmenter():
    return Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)


def build(photos: Path, out: Path, **kw):
    opts = dict(segmenter=segmenter(), size=8, n_centroids=4, batch=4, niter=2, workers=0)
    return build_index(photos, out, **{**opts, **kw})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """(index folder, photos folder, build report, log lines), indexed with captions."""
    root = tmp_path_factory.mktemp("meta")
    photos = make_folder(root)
    csv = root / "captions.csv"
    csv.write_text("path,caption\n" + "".join(f"{p},{c}\n" for p, c in CAPTIONS.items()))
    lines: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = build(photos, root / "idx", captions=csv, log=lines.append)
    # malformed EXIF is counted and named once (the report), not warned about by Pillow on every open
    assert not [w for w in caught if "EXIF" in str(w.message)], [str(w.message) for w in caught]
    return root / "idx", photos, report, lines


@pytest.fixture(scope="module")
def pi(folder):
    return PhotoIndex.open(folder[0], segmenter=segmenter())


SKETCH = np.where(np.arange(8)[:, None] < 4, 1, -1).repeat(8, axis=1)


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def every(pi, **filters) -> list[str]:
    """The ids a sketch search returns with ``filters``, asking for every photo (rerank 0: the codes' order)."""
    return ids(pi.search(sketch=SKETCH, k=len(pi), rerank=0, **filters))


def test_exif_dates_are_parsed_strictly():
    assert parse_exif_date("2024:05:01 10:20:30") == dt.datetime(2024, 5, 1, 10, 20, 30)
    assert parse_exif_date("2024:05:01 10:20:30\0 ") == dt.datetime(2024, 5, 1, 10, 20, 30)
    for bad in (
        "0000:00:00 00:00:00",
        "2024:13:45 99:99:99",
        "2023:02:29 00:00:00",
        "1066:10:14 09:00:00",
        "2024-05-01 10:20:30",
        "2024:05:01",
        "  2024:05:01 10:20:30",
        "2024:05:01 10:20:30" + "9" * 1000,
        b"2024:05:01 10:20:30",
        20240501,
        None,
    ):
        assert parse_exif_date(bad) is None, bad


def test_facts_come_from_exif_else_the_file_time(tmp_path):
    photo(tmp_path / "x.jpg", 0, exif_block=exif("2021:06:01 10:00:00", CANON), mtime=dt.datetime(2001, 2, 3))
    photo(tmp_path / "y.png", 1, mtime=dt.datetime(2001, 2, 3, 4, 5, 6))
    x, y = read_facts(tmp_path / "x.jpg"), read_facts(tmp_path / "y.png")
    assert (x.date, x.source, x.camera, x.skipped) == (dt.datetime(2021, 6, 1, 10), "exif", CANON, "")
    assert (y.date, y.source, y.camera, y.skipped) == (dt.datetime(2001, 2, 3, 4, 5, 6), "file", None, "")


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_exif_is_skipped_and_said(tmp_path, name):
    """Random bytes, impossible dates, a 100,000-character model, an IFD past the block's end: the photo keeps
    its file time (or its valid EXIF date) and the reason is named; nothing raises."""
    block, mtime = PHOTOS[name]
    photo(tmp_path / Path(name).name, 0, exif_block=block, mtime=mtime)
    f = read_facts(tmp_path / Path(name).name)
    assert f.skipped and f.date == DATES[name] and f.camera == (CANON if name == "bad/i.png" else None)
    assert f.source == ("exif" if name == "bad/k.png" else "file")


def test_indexing_records_the_metadata(folder):
    index_dir, _, report, lines = folder
    assert not report.failed and report.n_done == len(PHOTOS)  # bad EXIF does not make a photo unreadable
    m = report.metadata
    assert (m.n_added, m.n_exif, m.n_file, m.n_undated) == (len(PHOTOS), 4, len(PHOTOS) - 4, 0)
    assert sorted(p for p, _ in m.skipped) == sorted(MALFORMED)
    assert any(f"{len(MALFORMED)} photos: EXIF" in line for line in lines), lines
    with sqlite3.connect(index_dir / "photos.sqlite") as db:
        rows = {r[0]: r[1:] for r in db.execute("SELECT path, date, date_source, camera, folder FROM photos")}
    assert set(rows) == set(PHOTOS)
    assert {p: r[0] for p, r in rows.items()} == {p: d.isoformat() for p, d in DATES.items()}
    assert rows["trip/day2/f.jpg"] == ("2024-02-29T23:59:59", "file", "iPhone 12", "trip/day2")
    assert rows["b.jpg"] == ("2022-01-01T00:00:00", "exif", NIKON, "")


def test_date_filters(pi):
    """after is inclusive, before exclusive; a date alone is its midnight; datetimes and dates work too."""
    want = lambda lo, hi: sorted(p for p, d in DATES.items() if (lo is None or d >= lo) and (hi is None or d < hi))
    cases = [
        (dt.datetime(2020, 1, 1), None),
        (None, dt.datetime(2020, 1, 1)),
        (dt.datetime(2021, 6, 1, 10), dt.datetime(2022, 1, 1)),
        (dt.datetime(2024, 2, 29), dt.datetime(2024, 3, 1)),
    ]
    for lo, hi in cases:
        got = every(pi, after=lo, before=hi)
        assert sorted(got) == want(lo, hi), (lo, hi)
    assert sorted(every(pi, after="2020-01-01", before="2022-01-01")) == ["a.png", "trip/e.png"]
    assert every(pi, after=dt.date(2024, 2, 29)) == ["trip/day2/f.jpg"]
    assert every(pi, after="2021-06-01T10:00", before="2021-06-01T10:00:01") == ["a.png"]
    assert every(pi, after="2030-01-01") == [] and every(pi, after="2022-01-01", before="2021-01-01") == []


def test_folder_and_camera_filters(pi):
    assert sorted(every(pi, folder="trip")) == ["trip/d.png", "trip/day2/f.jpg", "trip/e.png"]
    assert every(pi, folder="trip/day2/") == every(pi, folder="./trip/day2") == ["trip/day2/f.jpg"]
    assert every(pi, folder="trip-old") == ["trip-old/g.png"]
    assert every(pi, folder="tri") == [] and every(pi, folder="trip/d.png") == []
    assert sorted(every(pi, folder="")) == sorted(PHOTOS)
    assert sorted(every(pi, camera="canon")) == CANONS
    assert every(pi, camera="IPHONE") == ["trip/day2/f.jpg"] and every(pi, camera="Leica") == []
    assert every(pi, folder="trip", camera="canon", after="2023-01-01") == ["trip/d.png"]


def test_filtered_search_ranks_as_the_whole_search(pi):
    """A filter restricts the scan (the search's subset): the photos that pass keep their order and distances."""
    whole = pi.search(sketch=SKETCH, k=len(pi), rerank=0)
    part = pi.search(sketch=SKETCH, k=len(pi), rerank=0, folder="trip")
    assert [(h.id, h.distance) for h in part] == [(h.id, h.distance) for h in whole if h.id.startswith("trip/")]
    assert [h.rank for h in part] == [1, 2, 3]
    exact = pi.search(sketch=SKETCH, k=len(pi))  # re-ranked by the exact maps (rerank >= the photos)
    top = pi.search(sketch=SKETCH, k=1, camera="canon")
    assert ids(top) == [h.id for h in exact if h.id in CANONS][:1]


def test_filters_compose_with_text(pi):
    text_only = ids(pi.search(text="car", k=10))
    assert sorted(text_only) == ["a.png", "c.png", "trip/d.png"]
    assert ids(pi.search(text="car", k=10, folder="trip")) == ["trip/d.png"]
    assert sorted(ids(pi.search(text="car", k=10, before="2022-01-01"))) == ["a.png", "c.png"]
    both = pi.search(sketch=SKETCH, text="car sea", k=len(pi), folder="trip")
    assert sorted(ids(both)) == ["trip/d.png", "trip/day2/f.jpg", "trip/e.png"]
    assert [h.text_score for h in both] == [2, 1, 0] and ids(both)[:2] == ["trip/d.png", "trip/e.png"]
    assert ids(pi.search(sketch=SKETCH, text="car", k=5, camera="nikon")) == ["b.jpg"]
    assert pi.search(text="car", k=5, camera="leica") == []


@pytest.mark.parametrize(
    "filters",
    [
        {"after": "yesterday"},
        {"before": "2024-02-30"},
        {"after": "2024-05-01T10:00+02:00"},
        {"after": 2024},
        {"folder": "../other"},
        {"folder": "/etc"},
        {"folder": "a\0b"},
        {"camera": "  "},
        {"camera": 5},
    ],
)
def test_bad_filters_are_option_errors(pi, filters):
    with pytest.raises(OptionError) as e:
        pi.search(sketch=SKETCH, **filters)
    assert e.value.option == next(iter(filters))


def test_a_folder_without_metadata_says_how_to_add_it(folder, tmp_path, capsys):
    index_dir, photos, _, _ = folder
    old = tmp_path / "old"
    shutil.copytree(index_dir, old)
    (old / "photos.sqlite").unlink()
    pi = PhotoIndex.open(old, segmenter=segmenter())
    assert len(pi.search(sketch=SKETCH, k=3)) == 3  # no filter: searches as before
    with pytest.raises(ValueError, match="segsearch metadata"):
        pi.search(sketch=SKETCH, folder="trip")
    assert main(["search", str(old), "--draw", "b:0,0,1,0.5", "--folder", "trip"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error: ") and err.count("\n") == 1 and "segsearch metadata" in err
    assert main(["metadata", str(old)]) == 0
    out = capsys.readouterr().out
    assert f"added the metadata of {len(PHOTOS)} photos (4 dated by EXIF" in out, out
    again = PhotoIndex.open(old, segmenter=segmenter())
    assert sorted(every(again, folder="trip")) == ["trip/d.png", "trip/day2/f.jpg", "trip/e.png"]
    assert main(["metadata", str(old)]) == 0
    assert "already has" in capsys.readouterr().out


def test_add_fills_the_metadata_of_old_and_new_photos(tmp_path):
    first = [n for n in PHOTOS if not n.startswith("trip/")]
    photos = make_folder(tmp_path, first)
    build(photos, tmp_path / "idx", log=lambda s: None)
    (tmp_path / "idx" / "photos.sqlite").unlink()  # as a folder indexed before photos.sqlite existed
    make_folder(tmp_path, [n for n in PHOTOS if n.startswith("trip/")])
    report = build(photos, tmp_path / "idx", add=True, log=lambda s: None)
    assert report.n_new == 3 and report.metadata.n_added == len(PHOTOS)
    pi = PhotoIndex.open(tmp_path / "idx", segmenter=segmenter())
    assert sorted(every(pi, after="2020-01-01")) == sorted(p for p, d in DATES.items() if d.year >= 2020)
    assert build(photos, tmp_path / "idx", add=True, log=lambda s: None).metadata.n_added == 0


def test_cli_filters(folder, capsys):
    index_dir = str(folder[0])
    base = ["search", index_dir, "--draw", "b:0,0,1,0.5", "-k", "20", "--rerank", "0"]
    assert main([*base, "--folder", "trip", "--camera", "CANON", "--after", "2023-07-01"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [Path(r[1]).name for r in rows] == ["d.png"]
    assert main([*base, "--before", "2010-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert main([*base, "--after", "May 1st"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error: --after") and err.count("\n") == 1, err


def test_a_hostile_metadata_file(folder, tmp_path):
    """photos.sqlite comes with the folder: garbage is a clear error; rows not of the documented form (a date
    that is no date, a folder that is not the photo's) are left out, so those photos pass no filter."""
    index_dir = tmp_path / "idx"
    shutil.copytree(folder[0], index_dir)
    with sqlite3.connect(index_dir / "photos.sqlite") as db:
        db.execute("UPDATE photos SET date='2024-99-99T00:00:00' WHERE path='a.png'")
        db.execute("UPDATE photos SET folder='trip' WHERE path='c.png'")
    pi = PhotoIndex.open(index_dir, segmenter=segmenter())
    assert sorted(every(pi, folder="")) == sorted(set(PHOTOS) - {"a.png", "c.png"})
    (index_dir / "photos.sqlite").write_bytes(b"not a database" * 100)
    pi = PhotoIndex.open(index_dir, segmenter=segmenter())
    with pytest.raises(ValueError, match="not a segsearch metadata file"):
        pi.search(sketch=SKETCH, camera="canon")
    assert main(["metadata", str(index_dir), "--photos", str(folder[1])]) == 0  # made again
    assert sorted(every(PhotoIndex.open(index_dir, segmenter=segmenter()), camera="canon")) == CANONS
