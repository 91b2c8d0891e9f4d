"""Caption search with SQLite FTS5: bm25 ranking, Porter stemming, stop words in the text level, query text that
must never be read as FTS5 syntax, old captions files, and text + layout ordering against a brute force.

Uses the tiny synthetic folder of tests/photo_folder.py (no network, no shared data).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from photo_folder import CLASSES, SIZE, FakeSegmenter, make_index_folder
from segsearch import Query
from segsearch.cli import main
from segsearch.library import captions as C
from segsearch.library.captions import (
    STOP_WORDS,
    Captions,
    FTS5Unavailable,
    distinct_word_count,
    level_words,
    match_expression,
    normalize_words,
    query_words,
    write_captions,
)
from segsearch.library.photo_index import PhotoIndex

# A small COCO-like library: many photos share the common words of the query "a man riding a horse", one
# photo (of people riding horses) has its rare word. Several captions per photo, like COCO.
RIDERS = [
    "Two people riding horses along a beach.",
    "A woman on horseback by the sea.",
    "Riders on brown horses at the shore.",
]
COMMON = {
    "bike": ["A man riding a bike down the street.", "A man is riding his bicycle in a city."],
    "board": ["A man riding a skateboard on a ramp.", "A young man riding a skateboard."],
    "kitchen": ["A man standing in a kitchen.", "A man cooking at a stove."],
    "cat": ["A cat sleeping on a sofa.", "A grey cat on a couch."],
    "dog": ["A dog playing in the grass.", "A brown dog with a ball."],
    "bus": ["A red bus on a city street.", "A double decker bus."],
}


def _library(n_each: int = 6) -> list[tuple[str, str]]:
    """(path, caption) pairs: n_each photos of each COMMON kind, then the riders' photo, then a lone horse."""
    pairs = [(f"{kind}{i}.jpg", c) for kind, caps in COMMON.items() for i in range(n_each) for c in caps]
    pairs += [("riders.jpg", c) for c in RIDERS]
    pairs += [("pony.jpg", "A horse grazing in a field.")]
    return pairs


def _by_photo(pairs):
    out: dict[str, list[str]] = {}
    for p, c in pairs:
        out.setdefault(p, []).append(c)
    return out


def _ranked(scores: dict[str, float], order: list[str]) -> list[str]:
    """Photos best first, ties by ``order`` (insertion order)."""
    return sorted(scores, key=lambda p: (-scores[p], order.index(p)))


# ---------------------------------------------------------------------------------------------- bm25 ranking


def test_rare_words_outrank_common_words():
    pairs = _library()
    caps = Captions.from_pairs(pairs)
    order = list(_by_photo(pairs))
    text = "a man riding a horse"
    ranked = _ranked(caps.bm25(text), order)
    assert ranked[:2] == ["riders.jpg", "pony.jpg"]  # riding + horse, then horse alone: above a + man + riding
    # the paper's count does not put the riders first: the bike and skateboard photos match as many words
    paper = {p: distinct_word_count(text, cs) for p, cs in _by_photo(pairs).items()}
    assert paper["riders.jpg"] <= max(paper[p] for p in paper if p.startswith(("bike", "board")))
    # only photos with a non-stop query word come back: none matching only "a" (the cats, dogs and buses)
    assert set(ranked) == {p for p in order if not p.startswith(("cat", "dog", "bus"))}


def test_rare_words_outrank_common_words_through_photo_index(tmp_path):
    """The same through PhotoIndex.search and the CLI: the riders' photo is indexed late, so no tie-break helps it."""
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    pairs = _library(n_each=5)
    photos = list(_by_photo(pairs))
    assign = dict(zip(photos, names))  # riders.jpg -> the 21st photo of the index
    assert names.index(assign["riders.jpg"]) > 10
    write_captions([(assign[p], c) for p, c in pairs], index_dir / "captions.sqlite")
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    hits = pi.search(text="a man riding a horse", k=5)
    assert hits[0].id == assign["riders.jpg"] and hits[1].id == assign["pony.jpg"]
    b = [h.bm25 for h in hits]
    assert all(isinstance(x, float) and x > 0 for x in b) and b == sorted(b, reverse=True)
    assert all(math.isnan(h.distance) for h in hits)
    # text_score is the text level: riding + horse for the riders, horse for the pony
    assert hits[0].text_score == 2 and hits[1].text_score == 1
    json.dumps([h.as_dict() for h in hits])  # JSON-able, bm25 included
    assert hits[0].as_dict()["bm25"] == hits[0].bm25
    # the CLI prints rank, path, '-', level, bm25
    assert main(["search", str(index_dir), "--text", "a man riding a horse", "-k", "2"]) == 0


def test_cli_text_only_prints_level_and_bm25(tmp_path, capsys):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions(
        [(names[3], "Two horses"), (names[1], "a man")] + [(names[i], "a man in a kitchen") for i in (0, 2, 4, 5, 6)],
        index_dir / "captions.sqlite",
    )
    assert main(["search", str(index_dir), "--text", "a man riding a horse", "-k", "3"]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [x[1].endswith(names[3]) for x in lines] == [True, False, False] and lines[1][1].endswith(names[1])
    assert [x[2] for x in lines] == ["-"] * 3 and [x[3] for x in lines] == ["1"] * 3
    assert float(lines[0][4]) > float(lines[1][4]) > float(lines[2][4]) > 0


def _bm25_reference(query: str, docs: dict[str, list[str]], k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """Okapi bm25 as SQLite's FTS5 computes it, with one document per photo (all its captions together); words
    compared with the paper's plural folding, which equals Porter stemming for the words used here."""
    toks = {
        p: [w for c in cs for w in map(lambda t: normalize_words(t).pop(), re.findall(r"[^\W_]+", c.lower()))]
        for p, cs in docs.items()
    }
    n, avg = len(docs), sum(map(len, toks.values())) / len(docs)
    out: dict[str, float] = {}
    for w in normalize_words(query):
        df = sum(w in t for t in toks.values())
        idf = math.log((n - df + 0.5) / (df + 0.5))
        idf = idf if idf > 0 else 1e-6
        for p, t in toks.items():
            tf = t.count(w)
            if tf:
                out[p] = out.get(p, 0.0) + idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avg))
    return out


def test_bm25_scores_photos_as_documents():
    """One document per photo: a word in several captions of a photo counts more; idf counts photos."""
    docs = {
        "p0": ["red car", "a red car parked"],
        "p1": ["red bus"],
        "p2": ["blue car", "car car"],
        "p3": ["green tree", "tree"],
        "p4": ["dog on grass"],
        "p5": ["a dog", "two dogs", "dog running"],
    }
    caps = Captions.from_pairs([(p, c) for p, cs in docs.items() for c in cs])
    for text in ("red car", "dog", "tree dogs bus", "car"):
        got, ref = caps.bm25(text), _bm25_reference(text, docs)
        assert got.keys() == ref.keys(), text
        for p in ref:
            assert got[p] == pytest.approx(ref[p], rel=1e-9), (text, p)


def test_ties_in_text_only_ranking_follow_index_order(tmp_path):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    picked = [names[9], names[2], names[30], names[5]]  # captions stored in another order than the index's
    write_captions(
        [(p, "a red car") for p in picked] + [(names[7], "a red car and a red bus")], index_dir / "captions.sqlite"
    )
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    hits = pi.search(text="car", k=10)
    tied = [h for h in hits if h.id in picked]
    assert len({h.bm25 for h in tied}) == 1
    assert [h.id for h in tied] == sorted(picked, key=names.index)


# ---------------------------------------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("caption", "query"),
    [
        ("Two horses", "horse"),
        ("a horse", "HORSES"),
        ("she rides a bike", "riding"),
        ("riding a bike", "ride"),
        ("Boxes of apples", "box"),
        ("the man's hat", "man"),
        ("Café tables", "cafe"),
    ],
)
def test_stemming_case_and_diacritics(caption, query):
    caps = Captions.from_pairs([("hit.jpg", caption), ("miss.jpg", "a blue sky")])
    assert list(caps.bm25(query)) == ["hit.jpg"]
    assert caps.levels(query) == {"hit.jpg": 1}


def test_query_words_are_distinct_by_stem():
    words = query_words("Horses horse riding RIDE the a")
    assert [w.terms for w in words] == [("hors",), ("ride",), ("the",), ("a",)]
    assert [w.stop for w in words] == [False, False, True, True]
    assert [w.text for w in level_words(words)] == ["Horses", "riding"]
    assert [w.text for w in level_words(query_words("the a of"))] == ["the", "a", "of"]  # only stop words: all


def test_stop_words_are_left_out_of_the_level():
    caps = Captions.from_pairs(
        [("bike.jpg", "A man on a bike with the dog"), ("horse.jpg", "horse"), ("both.jpg", "a man and a horse")]
    )
    assert caps.levels("a man on the horse") == {"bike.jpg": 1, "horse.jpg": 1, "both.jpg": 2}
    assert {"a", "on", "the", "and", "with"} <= STOP_WORDS and not {"man", "horse", "two"} & STOP_WORDS
    # a query of only stop words: the level counts them, bm25 still ranks by them
    assert caps.levels("a the") == {"bike.jpg": 2, "both.jpg": 1}
    assert set(caps.bm25("a the")) == {"bike.jpg", "both.jpg"}


def test_stop_words_do_not_lift_the_text_and_layout_level(tmp_path):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions(
        [(names[0], "a horse on the beach"), (names[1], "a man on the street in a city"), (names[2], "the horse")],
        index_dir / "captions.sqlite",
    )
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    hits = pi.search(sketch=_sky_road(), text="the horse on a street", k=len(names))
    level = {h.id: h.text_score for h in hits}
    assert level[names[0]] == 1 and level[names[2]] == 1 and level[names[1]] == 1  # horse / horse / street
    assert level[names[5]] == 0
    # a photo that shares only stop words with the query ranks with the uncaptioned photos, by distance
    hits = pi.search(sketch=_sky_road(), text="the horse on a", k=len(names))
    level = {h.id: h.text_score for h in hits}
    assert level[names[1]] == 0 and {h.id for h in hits[:2]} == {names[0], names[2]}
    rest = [h.distance for h in hits[2:]]
    assert rest == sorted(rest)


# ---------------------------------------------------------------------------------------------- no padding, word forms

FORMS = [
    ("surfer.jpg", "A surfer rides a wave."),
    ("board.jpg", "Surfboards on the sand."),
    ("surfing.jpg", "Two men surfing."),
    ("surface.jpg", "A wooden surface with a cup on it."),
    ("carpet.jpg", "A cat on a carpet."),
    ("card.jpg", "A card on a table."),
    ("buses.jpg", "Two buses in the street."),
    ("rode.jpg", "She rode her bike there then."),
    ("wave.jpg", "A big wave."),
    ("plank.jpg", "A wooden board."),  # "board" a caption word: "surfboard" is then a compound of "surf"
]


def test_text_alone_never_pads():
    """'a cat': the cat photos only, not every photo whose captions have an 'a' (16 of 46 results padded before)."""
    caps = Captions.from_pairs(_library())
    assert set(caps.bm25("a cat")) == {f"cat{i}.jpg" for i in range(6)}
    assert set(caps.bm25("cats with a dog")) == {f"{kind}{i}.jpg" for kind in ("cat", "dog") for i in range(6)}


def test_k_beyond_the_matches_returns_only_the_matches(tmp_path):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions(
        [(names[3], "A cat on a sofa"), (names[8], "Two cats")] + [(n, "A man in a kitchen") for n in names[10:30]],
        index_dir / "captions.sqlite",
    )
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    hits = pi.search(text="a cat", k=len(names))
    assert sorted(h.id for h in hits) == sorted([names[3], names[8]])
    assert [h.text_score for h in hits] == [1, 1] and [h.rank for h in hits] == [1, 2]


def test_stop_word_only_queries_match_those_words_exactly():
    caps = Captions.from_pairs(
        [("the.jpg", "The dog"), ("then.jpg", "then there"), ("a.jpg", "a dog"), ("other.jpg", "theory of dogs")]
    )
    assert set(caps.bm25("the")) == {"the.jpg"}  # not "then", "there", "theory": stop words get no forms
    assert caps.levels("The a") == {"the.jpg": 1, "a.jpg": 1}


def test_word_forms_are_found():
    caps = Captions.from_pairs(FORMS)
    assert set(caps.bm25("surfing")) == {"surfer.jpg", "board.jpg", "surfing.jpg"}  # not the wooden surface
    assert set(caps.bm25("surfboard")) == {"board.jpg"}  # forms grow from the word typed, not back to its stem
    assert set(caps.bm25("a car")) == set()  # a 3-letter stem: "carpet" and "card" are other words
    assert set(caps.bm25("bus")) == {"buses.jpg"}  # Porter stems bus/buses apart: IRREGULAR_FORMS
    assert set(caps.bm25("man riding")) == {"surfing.jpg", "surfer.jpg", "rode.jpg"}  # men; rides and rode
    assert caps.forms("surfing") == {"surfing": ["surf", "surfboard", "surfer"]}
    without_board = Captions.from_pairs([(p, c) for p, c in FORMS if p != "plank.jpg"])
    assert without_board.forms("surfing") == {"surfing": ["surf", "surfer"]}  # "board" no word of the library
    assert caps.forms("a man") == {"man": ["man", "men"]}
    assert caps.levels("surfer man") == {"surfer.jpg": 1, "surfing.jpg": 1}  # "surfer" is no form of "surf"


@pytest.mark.parametrize(
    ("base", "term", "form"),
    [
        ("surf", "surfer", True),
        ("ski", "skier", True),
        ("ride", "rider", True),
        ("grass", "grassi", True),
        ("wood", "wooden", True),
        ("show", "shown", True),
        ("surf", "surfboard", True),  # "board" is a caption word
        ("hill", "hillsid", True),  # "side" is, and Porter drops its e
        ("surf", "surfac", False),
        ("plan", "plant", False),
        ("bear", "beard", False),
        ("car", "carpet", False),  # 3 letters: only -er forms
        ("man", "mani", False),
        ("tow", "town", False),
        ("surf", "surf", False),
        ("surf", "sur", False),
    ],
)
def test_derived_forms(base, term, form):
    words = {"board", "side", "pet"}
    assert C.is_derived_form(base, term, lambda *w: any(x in words for x in w)) is form


def test_irregular_forms_are_safe():
    """Every member of an IRREGULAR_FORMS group stems to one term, no stop word's and no other group's."""
    groups = [{q.terms for w in g for q in query_words(w)} for g in C.IRREGULAR_FORMS]
    assert all(len(t) == 1 for g in groups for t in g)
    stems = [t for g in groups for t in g]
    assert len(set(stems)) == len(stems)
    assert not {q.terms for w in STOP_WORDS for q in query_words(w)} & set(stems)


def test_text_and_layout_counts_word_forms(tmp_path):
    """More query words (in any form) first; then distance; a photo with only stop words ranks with no text."""
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions(
        [(names[0], "a surfer"), (names[1], "men with surfboards"), (names[2], "a wooden surface"), (names[3], "a")]
        + [(names[4], "a board")],
        index_dir / "captions.sqlite",
    )
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    hits = pi.search(sketch=_sky_road(), text="a man surfing", k=len(names))
    assert [h.id for h in hits[:2]] == [names[1], names[0]] and [h.text_score for h in hits[:3]] == [2, 1, 0]
    rest = [h.distance for h in hits[2:]]
    assert rest == sorted(rest) and {names[2], names[3]} <= {h.id for h in hits[2:]}


COCO_CAPTIONS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco-mini" / "captions_train2017.json"


@pytest.mark.skipif(not COCO_CAPTIONS.is_file(), reason="shared COCO-mini captions not available")
def test_coco_mini_captions_never_pad_and_find_forms():
    data = json.loads(COCO_CAPTIONS.read_text(encoding="utf-8"))
    names = {im["id"]: im["file_name"] for im in data["images"]}
    docs: dict[str, str] = {}
    for a in data["annotations"]:
        docs[names[a["image_id"]]] = docs.get(names[a["image_id"]], "") + a["caption"].lower() + "\n"
    caps = Captions.from_pairs([(names[a["image_id"]], a["caption"]) for a in data["annotations"]])
    for text, pattern in [
        ("a cat", r"\bcats?\b"),
        ("a man", r"\b(man|men)\b"),
        ("red bus", r"\b(reds?|bus|buses|busses)\b"),
        ("dog with a frisbee", r"\b(dogs?|frisbees?)\b"),
    ]:
        assert set(caps.bm25(text)) == {p for p, d in docs.items() if re.search(pattern, d)}, text


# ---------------------------------------------------------------------------------------------- query syntax

NASTY = [
    '"',
    '""',
    'horse"',
    '"horse',
    "horse*",
    "*",
    "NEAR(horse man)",
    "NEAR",
    "-horse",
    "horse -man",
    "text:horse",
    "path:horse",
    ":",
    "horse AND",
    "AND",
    "OR",
    "NOT horse",
    "horse OR",
    "(horse",
    "horse)",
    "^horse",
    "{horse man}",
    "horse + man",
    "'",
    "\\",
    "horse\x00man",
    "💥 horse",
    "a" * 300,
    "horse NEAR/2 man",
    "caption_fts:horse",
    "* OR 1=1; DROP TABLE captions; --",
]


@pytest.mark.parametrize("text", NASTY)
def test_fts_syntax_in_queries_is_plain_text(text):
    caps = Captions.from_pairs(
        [
            ("horse.jpg", "a horse"),
            ("horseback.jpg", "horseback riding"),
            ("near.jpg", "near the man and a dog"),
            ("text.jpg", "text on a sign"),
        ]
    )
    words = {w.text.lower() for w in level_words(query_words(text))}
    expect = {
        p
        for p, c in (
            ("horse.jpg", "a horse"),
            ("horseback.jpg", "horseback riding"),
            ("near.jpg", "near the man and a dog"),
            ("text.jpg", "text on a sign"),
        )
        if words & {w.lower() for w in re.findall(r"[^\W_]+", c)}
    }
    if "horse" in words:
        expect.add("horse.jpg")
    got = caps.bm25(text)  # must not raise
    assert set(got) == expect, text
    assert "horseback.jpg" not in got  # * is not an operator, and "back" is no caption word: no compound
    caps.levels(text)
    assert len(caps) == 4  # nothing was dropped


def test_match_expression_quotes_every_word():
    expr = match_expression(query_words('NEAR(horse "man") -dog OR cat*'))
    assert expr == '"NEAR" OR "horse" OR "man" OR "dog" OR "OR" OR "cat"'


def test_text_without_words_is_a_clear_error(tmp_path):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    write_captions([(names[0], "a horse")], index_dir / "captions.sqlite")
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    with pytest.raises(ValueError, match="no words to search for"):
        pi.search(text='"* - : ()')
    with pytest.raises(ValueError, match="must be a string"):
        pi.search(text=3)
    assert Captions(index_dir / "captions.sqlite").bm25('"* -') == {}


# ---------------------------------------------------------------------------------------------- files


def _old_file(path, pairs, *, with_words: bool):
    """A captions file as older versions wrote it (made by hand here, not by segsearch)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE captions (path TEXT NOT NULL, caption TEXT NOT NULL)")
    db.execute("CREATE INDEX captions_path ON captions (path)")
    db.executemany("INSERT INTO captions VALUES (?, ?)", pairs)
    if with_words:
        db.execute(
            "CREATE TABLE caption_words (word TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (word, path)) "
            "WITHOUT ROWID"
        )
        db.executemany(
            "INSERT INTO caption_words VALUES (?, ?)", sorted({(w, p) for p, c in pairs for w in normalize_words(c)})
        )
    db.commit()
    db.close()


@pytest.mark.parametrize("with_words", [True, False])
def test_old_captions_files_open_read_only(tmp_path, with_words):
    pairs = _library(n_each=3)
    old = tmp_path / "old.sqlite"
    _old_file(old, pairs, with_words=with_words)
    before = old.read_bytes()
    new = tmp_path / "new.sqlite"
    write_captions(pairs, new)
    a, b = Captions(old), Captions(new)
    assert a.legacy and not b.legacy
    for text in ("a man riding a horse", "cats", "the", "horseback sea"):
        assert a.bm25(text) == pytest.approx(b.bm25(text), rel=1e-12), text
        assert a.levels(text) == b.levels(text), text
    assert len(a) == len(pairs) and a.of("riders.jpg") == RIDERS
    a.close()
    assert old.read_bytes() == before  # opened read-only: the index was built in memory
    # writing over an old file converts it
    write_captions(pairs[:2], old)
    tables = {r[0] for r in sqlite3.connect(old).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "caption_words" not in tables and {"captions", "caption_photos", "caption_fts"} <= tables
    assert not Captions(old).legacy and len(Captions(old)) == 2


def test_old_captions_file_in_an_index_folder(tmp_path):
    index_dir, _, names, _ = make_index_folder(tmp_path, captions=False)
    _old_file(index_dir / "captions.sqlite", [(names[4], "Two horses"), (names[8], "a man")], with_words=True)
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    assert [h.id for h in pi.search(text="horse", k=5)] == [names[4]]
    assert pi.search(sketch=_sky_road(), text="horse", k=3)[0].id == names[4]


def test_write_is_one_transaction(tmp_path, monkeypatch):
    db = tmp_path / "c.sqlite"
    write_captions([("a.jpg", "a horse"), ("b.jpg", "a dog")], db)

    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(C, "_fill_fts", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_captions([("c.jpg", "a cat")], db)
    monkeypatch.undo()
    caps = Captions(db)
    assert len(caps) == 2 and list(caps.bm25("horse")) == ["a.jpg"] and caps.bm25("cat") == {}


def test_write_replaces_and_checks_pairs(tmp_path):
    db = tmp_path / "c.sqlite"
    assert write_captions([("a.jpg", "Dogs"), ("b.jpg", "a cat")], db) == 2
    assert write_captions([("b.jpg", "dog")], db) == 1
    caps = Captions(db)
    assert caps.levels("dog") == {"b.jpg": 1} and set(caps.bm25("dog cat")) == {"b.jpg"} and len(caps) == 1
    with pytest.raises(ValueError, match=r"caption 1 must be a \(path, caption\) pair of strings"):
        write_captions([("a.jpg", "x"), ("b.jpg", None)], db)
    with pytest.raises(ValueError, match="not a captions file"):
        bad = tmp_path / "bad.sqlite"
        bad.write_bytes(b"not sqlite at all" * 100)
        Captions(bad)
    with pytest.raises(ValueError, match="no captions table"):
        sqlite3.connect(tmp_path / "empty.sqlite").execute("CREATE TABLE x (y)").connection.commit()
        Captions(tmp_path / "empty.sqlite")


def test_missing_fts5_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "_FTS", "no_such_fts_module")
    monkeypatch.setattr(C, "_fts5_checked", set())
    with pytest.raises(FTS5Unavailable, match="needs SQLite's FTS5"):
        write_captions([("a.jpg", "x")], tmp_path / "c.sqlite")
    assert not (tmp_path / "c.sqlite").exists()


# ---------------------------------------------------------------------------------------------- text + layout


def _sky_road(n=SIZE):
    lab = np.full((n, n), -1, np.int32)
    lab[: n // 3] = CLASSES.index("sky")
    lab[-n // 4 :] = CLASSES.index("road")
    return lab


def _reference_levels(text: str, caps: dict[str, list[str]]) -> dict[str, int]:
    """Brute force: distinct non-stop query words in each photo's captions. The captions' words here are
    plain nouns and their -s plurals, for which the paper's plural folding and Porter stemming agree."""
    q = {normalize_words(w).pop() for w in re.findall(r"[^\W_]+", text.lower()) if w not in STOP_WORDS}
    return {p: len(q & set().union(*map(normalize_words, cs))) for p, cs in caps.items()}


@pytest.mark.parametrize("text", ["the tree and a person on water", "cars road dog", "a dog with trees"])
def test_text_and_layout_equals_brute_force(tmp_path_factory, text):
    index_dir, _, names, caps = make_index_folder(tmp_path_factory.mktemp("tl"))
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    lab = _sky_road()
    everything = pi.index.search(Query.sketch(lab), len(pi))
    dist = dict(zip(everything.ids.tolist(), everything.distances.tolist()))
    level = _reference_levels(text, caps)
    assert level == {p: pi.captions.levels(text).get(p, 0) for p in caps}
    assert len(set(level.values())) >= 3  # several levels
    ties = Counter((level.get(n, 0), dist[n]) for n in names)
    assert max(ties.values()) > 1  # equal distances within a level: the index position must break them
    ref = sorted(names, key=lambda n: (-level.get(n, 0), dist[n], names.index(n)))
    for k in (1, 3, 7, 17, 29, len(names)):
        hits = pi.search(sketch=lab, text=text, k=k)
        assert [h.id for h in hits] == ref[:k], k
        assert [h.text_score for h in hits] == [level.get(n, 0) for n in ref[:k]]
        assert [h.rank for h in hits] == list(range(1, k + 1)) and all(h.bm25 is None for h in hits)


def test_an_error_after_sqlite_rolled_back_by_itself_is_reported_as_is(tmp_path, monkeypatch):
    """Some errors (a full disk) make SQLite roll the transaction back itself: the writer must then raise that
    error, not 'cannot rollback - no transaction is active'; the file keeps its old captions."""
    import sqlite3

    import segsearch.library.captions as captions_module

    db_path = tmp_path / "captions.sqlite"
    captions_module.write_captions([("a.jpg", "a horse on a beach")], db_path)

    def fail(db, source):
        db.execute("ROLLBACK")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(captions_module, "_fill_fts", fail)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        captions_module.write_captions([("b.jpg", "a red bus")], db_path)
    monkeypatch.undo()
    assert captions_module.Captions(db_path).of("a.jpg") == ["a horse on a beach"]
