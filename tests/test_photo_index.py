"""Searching an index folder: PhotoIndex (photo, sketch, both, text, text + layout), sketch files, captions,
contact sheets, and the `segsearch search` / `segsearch classes` commands with their one-line errors.

Uses a tiny synthetic folder (tests/photo_folder.py) and a fake network, so no real network runs here.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3

import numpy as np
import pytest
from PIL import Image

from photo_folder import CLASSES, SIZE, FakeSegmenter, make_index_folder
from segsearch import Query
from segsearch.cli import main
from segsearch.library.captions import STOP_WORDS, Captions, distinct_word_count, normalize_words, write_captions
from segsearch.library.photo_index import PhotoIndex
from segsearch.sketch.files import class_index, read_sketch, save_sketch, sketch_from_boxes


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_index_folder(tmp_path_factory.mktemp("pi"))


@pytest.fixture()
def pi(folder):
    return PhotoIndex.open(folder[0], segmenter=FakeSegmenter())


def _sky_road(n=SIZE):
    lab = np.full((n, n), -1, np.int32)
    lab[: n // 3] = CLASSES.index("sky")
    lab[-n // 4 :] = CLASSES.index("road")
    return lab


# ---------------------------------------------------------------------------------------------- captions


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("horses", "horse"),
        ("Boxes", "box"),
        ("skies", "sky"),
        ("buses", "bus"),
        ("houses", "house"),
        ("glasses", "glass"),
        ("benches", "bench"),
        ("CATS!", "cat"),
        ("man's", "man"),
        ("dishes", "dish"),
    ],
)
def test_plural_case_punctuation_insensitive(a, b):
    """The paper's score's word normalisation (kept for the reproduction bench)."""
    assert normalize_words(a) == normalize_words(b)


def test_distinct_words_not_different_stems():
    assert normalize_words("glass grass bus boss") == {"glass", "grass", "bus", "boss"}
    assert distinct_word_count("dog dog dogs", ["A dog.", "Two dogs and a dog"]) == 1  # distinct query words
    assert distinct_word_count("red car street", ["A red car.", "On the Street!"]) == 3
    assert distinct_word_count("red car", ["a blue truck"]) == 0
    assert distinct_word_count("a man on the street", ["A man.", "On the Street!"]) == 5  # stop words count too


def _level(text, captions):
    """Brute-force text level for the synthetic captions (plain nouns and -s plurals, where the paper's plural
    folding and Porter stemming agree): distinct non-stop query words found in the captions."""
    return distinct_word_count([w for w in text.split() if w.lower() not in STOP_WORDS], captions)


def test_caption_levels_match_brute_force(folder, tmp_path):
    index_dir, _, names, caps = folder
    c = Captions(index_dir / "captions.sqlite")
    for text in ("car", "cars road dog", "TREES water", "zebra", "house houses boat", "the dog and a tree"):
        expect = {n: _level(text.replace(",", ""), cs) for n, cs in caps.items()}
        assert c.levels(text) == {n: s for n, s in expect.items() if s > 0}, text
        assert set(c.bm25(text)) == {n for n, s in expect.items() if s > 0}, text
    assert c.of(names[0]) == caps[names[0]]
    # a file written before the full-text index existed gives the same scores
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE captions (path TEXT NOT NULL, caption TEXT NOT NULL)")
    db.executemany("INSERT INTO captions VALUES (?, ?)", [(n, x) for n, cs in caps.items() for x in cs])
    db.commit()
    db.close()
    assert Captions(old).levels("cars road dog") == c.levels("cars road dog")
    assert Captions(old).bm25("cars road dog") == pytest.approx(c.bm25("cars road dog"), rel=1e-12)


def test_write_captions_replaces(tmp_path):
    db = tmp_path / "c.sqlite"
    write_captions([("a.jpg", "Dogs"), ("b.jpg", "a cat")], db)
    write_captions([("b.jpg", "dog")], db)
    assert Captions(db).levels("dog") == {"b.jpg": 1} and len(Captions(db)) == 1
    assert list(Captions(db).bm25("dogs")) == ["b.jpg"]


# ---------------------------------------------------------------------------------------------- search


def test_photo_query_equals_index_search(folder, pi):
    _, photos, names, _ = folder
    hits = pi.search(image=photos / names[5], k=7)
    maps = FakeSegmenter().predict([photos / names[5]], size=SIZE)[0]
    ref = pi.index.search(Query.image(maps), 7)
    assert [h.id for h in hits] == ref.ids.tolist()
    np.testing.assert_allclose([h.distance for h in hits], ref.distances, rtol=1e-6)
    assert [h.rank for h in hits] == list(range(1, 8))
    assert all(h.path == photos / h.id and h.path.is_file() and h.text_score is None for h in hits)
    # PIL image and array inputs give the same query
    im = Image.open(photos / names[5])
    assert [h.id for h in pi.search(image=im, k=7)] == ref.ids.tolist()
    assert [h.id for h in pi.search(image=np.asarray(im), k=7)] == ref.ids.tolist()


def test_sketch_and_combined_queries(folder, pi):
    _, photos, names, _ = folder
    lab = _sky_road()
    hits = pi.search(sketch=lab, k=40)
    ref = pi.index.search(Query.sketch(lab), 40)
    assert [h.id for h in hits] == ref.ids.tolist() and len(hits) == 40
    maps = FakeSegmenter().predict([photos / names[2]], size=SIZE)[0]
    both = pi.search(image=photos / names[2], sketch=lab, k=5)
    ref = pi.index.search(Query.image_and_sketch(maps, lab), 5)
    assert [h.id for h in both] == ref.ids.tolist()
    np.testing.assert_allclose([h.distance for h in both], ref.distances, rtol=1e-6)
    # an empty sketch over a photo is a plain photo query
    empty = np.full((SIZE, SIZE), -1)
    assert [h.id for h in pi.search(maps=maps, sketch=empty, k=5)] == pi.index.search(Query.image(maps), 5).ids.tolist()


def test_photo_maps_are_cached_per_file(folder, tmp_path):
    _, photos, names, _ = folder
    seg = FakeSegmenter()
    pi = PhotoIndex.open(folder[0], segmenter=seg)
    a = pi.segment(photos / names[0])
    pi.search(image=photos / names[0], sketch=_sky_road(), k=3)
    assert seg.calls == 1
    # a changed file is segmented again
    shutil.copyfile(photos / names[0], tmp_path / "q.png")
    pi.segment(tmp_path / "q.png")
    Image.open(photos / names[1]).save(tmp_path / "q.png")
    b = pi.segment(tmp_path / "q.png")
    assert seg.calls == 3 and not np.array_equal(a, b)
    np.testing.assert_array_equal(b, seg.predict([photos / names[1]], size=SIZE)[0])


def test_k_larger_than_index_returns_all_sorted(pi):
    hits = pi.search(sketch=_sky_road(), k=1000)
    d = [h.distance for h in hits]
    assert len(hits) == len(pi) and d == sorted(d)


def test_text_only_ranking(folder, pi):
    """Text alone: by bm25, best first, ties by position in the index; photos without a query word left out."""
    _, _, names, caps = folder
    text = "cars road dog"
    hits = pi.search(text=text, k=100)
    bm25 = pi.captions.bm25(text)
    expect = sorted((n for n in caps if _level(text, caps[n]) > 0), key=lambda n: (-bm25[n], names.index(n)))
    assert [h.id for h in hits] == expect
    assert all(
        math.isnan(h.distance) and h.text_score == _level(text, caps[h.id]) and h.bm25 == bm25[h.id] for h in hits
    )
    assert len({h.bm25 for h in hits}) < len(hits)  # some ties, broken by position
    assert [h.id for h in pi.search(text=text, k=3)] == expect[:3]


def test_text_and_layout_sorts_by_score_then_distance(folder, pi):
    _, _, names, caps = folder
    text, lab = "a tree by the water with a person", _sky_road()
    everything = pi.index.search(Query.sketch(lab), len(pi))
    dist = dict(zip(everything.ids.tolist(), everything.distances.tolist()))
    score = {n: _level(text, caps.get(n, [])) for n in names}
    for k in (1, 5, 17, len(names)):
        hits = pi.search(sketch=lab, text=text, k=k)
        assert len(hits) == k
        keys = [(-h.text_score, h.distance) for h in hits]
        assert keys == sorted(keys)
        assert all(h.text_score == score[h.id] and h.distance == pytest.approx(dist[h.id], rel=1e-6) for h in hits)
        # nothing left out ranks better than the last hit
        last = keys[-1]
        chosen = {h.id for h in hits}
        assert all((-score[n], dist[n]) >= last for n in names if n not in chosen)
    # photos with no captions at all still rank (score 0), after every captioned match
    all_hits = pi.search(sketch=lab, text=text, k=len(names))
    assert {h.id for h in all_hits} == set(names) and all_hits[-1].text_score == 0


def test_predicted_labels_decode_codes(folder, pi):
    _, _, names, _ = folder
    lab = pi.predicted_labels(names[3])
    pos = names.index(names[3])
    cb, codes = pi.index.codebook, pi.index.codes[pos]
    expect = np.argmax(np.stack([cb[c, codes[c]] for c in range(len(CLASSES))]), axis=0)
    np.testing.assert_array_equal(lab, expect)
    with pytest.raises(ValueError, match="not in the index"):
        pi.predicted_labels("nope.png")


# ---------------------------------------------------------------------------------------------- sketch files


def test_sketch_png_roundtrip_and_conventions(pi, tmp_path):
    lab = _sky_road(40)
    lab[20:24, :5] = 0  # class 0 too: no class colour is the black of unspecified pixels
    save_sketch(tmp_path / "s.png", lab, pi.palette)
    assert Image.open(tmp_path / "s.png").mode == "RGB"
    np.testing.assert_array_equal(read_sketch(tmp_path / "s.png", pi.palette), lab)
    # single channel: 0 = unspecified, v = class v - 1
    Image.fromarray((lab + 1).astype(np.uint8), mode="L").save(tmp_path / "l.png")
    np.testing.assert_array_equal(pi.sketch_labels(tmp_path / "l.png"), lab)
    hits_png = pi.search(sketch=tmp_path / "s.png", k=5)
    assert [h.id for h in hits_png] == [h.id for h in pi.search(sketch=lab, k=5)]


def test_sketch_file_errors(pi, tmp_path):
    Image.fromarray(np.full((8, 8), len(CLASSES) + 1, np.uint8), mode="L").save(tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"pixel value 9 .*8 classes"):
        pi.sketch_labels(tmp_path / "big.png")
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match="not class colours"):
        pi.sketch_labels(tmp_path / "odd.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read sketch"):
        pi.sketch_labels(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError):
        pi.sketch_labels(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="class 8 but the index has classes 0..7"):
        pi.sketch_labels(np.full((4, 4), 8))


def test_class_names_and_boxes():
    assert class_index("Sky", CLASSES) == 1 and class_index("3", CLASSES) == 3
    with pytest.raises(ValueError, match="did you mean 'sky'"):
        class_index("skky", CLASSES)
    lab = sketch_from_boxes([("sky", (0, 0, 1, 0.5)), ("car", (0.5, 0.5, 1, 1))], CLASSES, 8)
    assert (lab[:4] == 1).all() and (lab[4:, 4:] == 4).all() and (lab[4:, :4] == -1).all()
    with pytest.raises(ValueError, match="0 <= x0 < x1 <= 1"):
        sketch_from_boxes([("sky", (0.5, 0, 0.2, 1))], CLASSES, 8)


def test_query_errors(folder, pi, tmp_path):
    _, photos, _, _ = folder
    with pytest.raises(ValueError, match="nothing to search for"):
        pi.search()
    with pytest.raises(ValueError, match="sketch is empty"):
        pi.search(sketch=np.full((8, 8), -1))
    with pytest.raises(ValueError, match="no words"):
        pi.search(text="!!!")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pi.search(image=tmp_path / "none.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8junk")
    with pytest.raises(ValueError, match="cannot read photo"):
        PhotoIndex.open(folder[0], segmenter=_PILSegmenter()).search(image=tmp_path / "bad.jpg")
    with pytest.raises(ValueError, match="k must be"):
        pi.search(sketch=_sky_road(), k=0)
    with pytest.raises(ValueError, match="network has 3 classes but the index has 8"):
        PhotoIndex.open(folder[0], segmenter=FakeSegmenter(classes=["a", "b", "c"]))


class _PILSegmenter(FakeSegmenter):
    """Opens paths with PIL like the real network does (so decoding errors surface as PIL's)."""

    def predict(self, images, size=64, **kwargs):
        return super().predict([Image.open(p) if not isinstance(p, Image.Image) else p for p in images], size)


def test_text_needs_captions(tmp_path):
    index_dir, *_ = make_index_folder(tmp_path, captions=False)
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    with pytest.raises(ValueError, match="no captions"):
        pi.search(text="car")


# ---------------------------------------------------------------------------------------------- sheet


def test_contact_sheet(folder, pi):
    from segsearch.sketch.sheet import contact_sheet

    _, photos, names, _ = folder
    lab = _sky_road()
    hits = pi.search(image=photos / names[1], sketch=lab, text="car", k=7)
    sheet = contact_sheet(pi, hits, image=photos / names[1], sketch=lab, text="car", thumb=80)
    assert sheet.mode == "RGB" and sheet.width > 5 * 80 and sheet.height > 2 * 80
    a = np.asarray(sheet)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 50  # photos, overlays and text were drawn
    # the legend swatches are in the drawn classes' colours
    for c in (CLASSES.index("sky"), CLASSES.index("road")):
        assert (a.reshape(-1, 3) == pi.palette[c]).all(axis=1).any()
    empty = contact_sheet(pi, [], sketch=lab)
    assert empty.width > 0


def test_contact_sheet_shows_the_photos(folder, pi, tmp_path):
    """The results stay visible: by default only the decoded labels' boundaries are drawn over a photo (most of
    its pixels are the photo's), "translucent" blends the labels over all of it, "none" draws nothing; a photo
    deleted since indexing is a tile that says "missing" and is reported; long names are cut to their cell."""
    from dataclasses import replace

    from PIL import ImageDraw

    from segsearch.sketch import sheet as S

    _, photos, names, _ = folder
    hits = pi.search(sketch=_sky_road(), k=3)
    thumb, x0, y0 = 80, S.PAD + 2 * 80 + 2 * S.PAD, S.PAD + 18  # the first result's tile
    tiles = {}
    for mode in S.OVERLAYS:
        im = S.contact_sheet(pi, hits, sketch=_sky_road(), thumb=thumb, overlay=mode)
        tiles[mode] = np.asarray(im.crop((x0, y0, x0 + thumb, y0 + 40))).astype(int)
    same = {m: (np.abs(tiles[m] - tiles["none"]).sum(axis=2) == 0).mean() for m in ("outline", "translucent")}
    assert same["outline"] > 0.5 and same["translucent"] < 0.5, same
    with pytest.raises(ValueError, match="overlay must be one of"):
        S.contact_sheet(pi, hits, overlay="opaque")
    gone = tmp_path / "gone"
    shutil.copytree(photos, gone)
    (gone / hits[0].id).unlink()
    moved = [replace(h, path=gone / h.id) for h in hits]
    reported = []
    im = S.contact_sheet(pi, moved, thumb=thumb, report=lambda h, why: reported.append((h.id, why)))
    assert reported == [(hits[0].id, "missing")]
    tile = np.asarray(im.crop((x0, y0, x0 + thumb, y0 + thumb * 3 // 4)))
    assert tuple(tile[2, 2]) == (200, 200, 200) and tile.min() < 150  # grey, with the word drawn
    d = ImageDraw.Draw(im)
    font = S._font(13)
    long = "a-very-long-folder-name/and-a-long-photo-name-0123456789.jpg"
    short = S._elide(d, long, font, thumb, middle=True)
    assert d.textlength(short, font=font) <= thumb and short.startswith("a-") and short.endswith(".jpg")
    assert "…" in short and S._elide(d, "a.jpg", font, thumb) == "a.jpg"


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_search_text_json_and_sheet(folder, tmp_path, capsys):
    index_dir, photos, _, caps = folder
    out = tmp_path / "sheet.png"
    assert (
        main(
            [
                "search",
                str(index_dir),
                "--draw",
                "sky:0,0,1,0.33",
                "--draw",
                "road:0,0.75,1,1",
                "--text",
                "cars dog",
                "-k",
                "6",
                "--json",
                "--sheet",
                str(out),
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    lab = sketch_from_boxes([("sky", (0, 0, 1, 0.33)), ("road", (0, 0.75, 1, 1))], CLASSES, SIZE)
    expect = pi.search(sketch=lab, text="cars dog", k=6)
    assert [r["id"] for r in rows] == [h.id for h in expect]
    assert [r["rank"] for r in rows] == list(range(1, 7))
    assert rows[0]["path"] == str(photos / rows[0]["id"]) and rows[0]["text_score"] >= 1
    assert Image.open(out).size[0] > 0
    # plain lines: rank, path, distance (tab-separated)
    assert main(["search", str(index_dir), "--draw", "sky:0,0,1,0.33", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].split("\t")[0] == "1" and float(lines[0].split("\t")[2]) >= 0


def test_cli_sketch_file_over_boxes(folder, tmp_path, capsys):
    index_dir = folder[0]
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    lab = _sky_road(32)
    save_sketch(tmp_path / "s.png", lab, pi.palette)
    assert main(["search", str(index_dir), "--sketch", str(tmp_path / "s.png"), "-k", "4", "--json"]) == 0
    ids = [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()]
    assert ids == [h.id for h in pi.search(sketch=lab, k=4)]


def test_cli_classes(folder, capsys):
    # one numbering: the first column is the class index (as in the API and the sketch tool's palette); the
    # single-channel sketch PNG value (index + 1) has its own column
    assert main(["classes", str(folder[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["class", "png", "colour", "name"]
    assert len(lines) == 1 + len(CLASSES)
    assert lines[2].split("\t")[:2] == ["1", "2"] and lines[2].split("\t")[3] == "sky" == CLASSES[1]
    assert main(["classes", str(folder[0]), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[3])
    assert (row["class"], row["value"], row["name"]) == (3, 4, "road") and CLASSES[3] == "road"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "{missing}", "--text", "car"], "does not exist"),
        (["search", "{empty}", "--text", "car"], "has no index.segsearch"),
        (["search", "{index}"], "nothing to search for"),
        (["search", "{index}", "--image", "{missing}"], "does not exist"),
        (["search", "{index}", "--image", "{photo}"], "photo queries need that network"),
        (["search", "{index}", "--sketch", "{big}"], "pixel value 200"),
        (["search", "{index}", "--draw", "zebra:0,0,1,1"], "unknown class name 'zebra'"),
        (["search", "{index}", "--draw", "sky"], "expected CLASS:x0,y0,x1,y1"),
        (["search", "{index}", "--sketch", "{blank}"], "sketch is empty"),
        (["search", "{bogus}", "--text", "car"], "not a segsearch index"),
    ],
)
def test_cli_errors_are_one_line(folder, tmp_path, capsys, args, message):
    index_dir, photos, names, _ = folder
    (tmp_path / "empty").mkdir()
    (tmp_path / "bogus").mkdir()
    (tmp_path / "bogus" / "index.segsearch").write_bytes(b"hello")
    Image.fromarray(np.full((8, 8), 200, np.uint8), mode="L").save(tmp_path / "big.png")
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "blank.png")
    paths = {
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "index": index_dir,
        "photo": photos / names[0],
        "big": tmp_path / "big.png",
        "blank": tmp_path / "blank.png",
        "bogus": tmp_path / "bogus",
    }
    assert main([a.format(**paths) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("segsearch: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_missing_network_weights_are_not_reported_as_a_bad_photo(folder, tmp_path):
    from segsearch import Index
    from segsearch.network.weights import NETWORK, WeightsNotFoundError

    index_dir, photos, names, _ = folder
    index = Index.load(index_dir / "index.segsearch")
    index.metadata["network"] = NETWORK
    pi = PhotoIndex(index, weights=tmp_path / "nowhere.tflite")
    with pytest.raises(WeightsNotFoundError) as e:
        pi.search(image=photos / names[0])
    assert "cannot read photo" not in str(e.value)


def test_text_search_normalises_query_words_once(tmp_path):
    """'horses' stems like 'horse'; the search must not stem that stem again (Porter: 'hors' -> 'hor')."""
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions(
        [(names[0], "Two horses on a beach."), (names[1], "A house by the boxes")], index_dir / "captions.sqlite"
    )
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    for text, expect in (("horse", names[0]), ("HORSES!", names[0]), ("houses box", names[1])):
        hits = pi.search(text=text, k=5)
        assert [h.id for h in hits] == [expect], text
    assert pi.search(text="horses houses", sketch=_sky_road(), k=2)[0].text_score == 1


@pytest.mark.parametrize("given", [None, "bundled"])
def test_photo_queries_use_the_network_the_index_recorded(folder, tmp_path, monkeypatch, given):
    """An index records its network's weights (sha256): a photo query finds those weights or says to pass
    --weights; weights of another sha256 are refused."""
    from segsearch import Index
    from segsearch.network import weights as W

    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    index_dir, photos, names, _ = folder
    index = Index.load(index_dir / "index.segsearch")
    index.metadata.update(network=W.NETWORK, network_sha256="ab" * 32)
    pi = PhotoIndex(index, weights=None if given is None else W.BUNDLED)
    error = W.WeightsNotFoundError if given is None else ValueError
    with pytest.raises(error, match="--weights FILE") as e:
        pi.search(image=photos / names[0])
    assert "abababababab" in str(e.value) and "weights='" not in str(e.value)


def test_photos_option_points_the_cli_at_moved_photos(folder, tmp_path, capsys):
    """--photos DIR overrides the folder recorded at indexing time (photos moved, or a folder from someone else)."""
    index_dir, photos, names, _ = folder
    moved = tmp_path / "moved"
    shutil.copytree(photos, moved)
    args = ["search", str(index_dir), "--draw", "sky:0,0,1,0.5", "-k", "3", "--json"]
    assert main(args + ["--photos", str(moved)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["path"] == str((moved / r["id"]).resolve()) for r in rows)
    assert main(args) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert all(r["path"] == str((photos / r["id"]).resolve()) for r in rows)
