"""Photo captions in SQLite and the method's text ranking.

An index folder's ``captions.sqlite`` holds two tables (one file, written in one transaction)::

    captions(path TEXT, caption TEXT)          the captions as given, several per photo allowed
    caption_words(word TEXT, path TEXT)        each photo's distinct normalised caption words

Text ranking (the paper's "text-based retrieval"): a photo's score is the number of *distinct* query words
found among the words of its captions. Words are compared after :func:`normalize_words`: lower case,
punctuation and apostrophes dropped, and simple English plurals folded onto a common stem ("horses" and
"horse", "boxes" and "box", "skies" and "sky" match). No stop words are removed: every typed word counts.
"""
from __future__ import annotations

import csv
import json
import re
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "Captions",
    "normalize_words",
    "read_captions",
    "read_captions_checked",
    "score_text",
    "store_captions",
    "write_captions",
]

_WORD = re.compile(r"[^\W_]+")
_SIBILANT = ("s", "x", "z", "ch", "sh")


def _stem(w: str) -> str:
    """Fold a simple English plural onto the stem its singular also gets."""
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 4 and w.endswith("es") and w[:-2].endswith(_SIBILANT):
        return w[:-2]  # boxes -> box, buses -> bus, houses -> hous
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]  # horses -> horse (-> hors below), cats -> cat
    if len(w) > 3 and w.endswith("e") and w[:-1].endswith(_SIBILANT):
        w = w[:-1]  # house -> hous, horse -> hors: the same stem as their plurals
    return w


def normalize_words(text: str) -> set[str]:
    """The distinct normalised words of ``text`` (see the module docstring)."""
    return {_stem(w) for w in _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))}


def score_text(query: str | Iterable[str], captions: Iterable[str]) -> int:
    """Number of distinct query words found in ``captions`` (one photo's captions)."""
    q = normalize_words(query) if isinstance(query, str) else set().union(*map(normalize_words, query))
    have: set[str] = set()
    for c in captions:
        have |= normalize_words(c)
    return len(q & have)


class Captions:
    """The captions of an index folder, opened read-only; ``scores(text)`` ranks photos by caption words.

    Files written before the ``caption_words`` table existed are read too (their words are computed in memory).
    """

    def __init__(self, db_path: str | Path):
        self.path = Path(db_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no captions file {self.path}; index the photos with --captions FILE")
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "captions" not in tables:
            self._db.close()
            raise ValueError(f"{self.path} has no captions table; re-run segsearch index with --captions FILE")
        self._words: dict[str, set[str]] | None = None
        if "caption_words" not in tables:  # older file: index the words in memory
            self._words = {}
            for path, caption in self._db.execute("SELECT path, caption FROM captions"):
                for w in normalize_words(caption):
                    self._words.setdefault(w, set()).add(path)

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0]

    def of(self, path: str) -> list[str]:
        """The captions of one photo (its id in the index), in the order stored."""
        return [r[0] for r in self._db.execute("SELECT caption FROM captions WHERE path = ? ORDER BY rowid", (path,))]

    def scores(self, text: str) -> dict[str, int]:
        """{photo id: number of distinct query words in its captions}, for photos scoring at least 1."""
        return self.word_scores(normalize_words(text))

    def word_scores(self, words: set[str]) -> dict[str, int]:
        """:meth:`scores` for words already normalised by :func:`normalize_words` (normalising is not
        idempotent: 'horses' -> 'hors', and 'hors' -> 'hor')."""
        words = sorted(words)
        if not words:
            return {}
        if self._words is not None:
            out: dict[str, int] = {}
            for w in words:
                for p in self._words.get(w, ()):
                    out[p] = out.get(p, 0) + 1
            return out
        marks = ",".join("?" * len(words))
        rows = self._db.execute(f"SELECT path, COUNT(*) FROM caption_words WHERE word IN ({marks}) GROUP BY path",
                                words)
        return dict(rows.fetchall())


# ------------------------------------------------------------------------------------------- caption files

def read_captions(file, paths: list[str]) -> tuple[list[tuple[str, str]], int]:
    """(path, caption) pairs from a COCO captions json or a ``path,caption`` CSV, matched to the indexed
    ``paths`` (exactly, else by unique file name); returns (pairs, number of captions left unmatched)."""
    file = Path(file)
    if file.suffix.lower() == ".json":
        with open(file, encoding="utf-8") as f:
            data = json.load(f)
        try:
            names = {im["id"]: im["file_name"] for im in data["images"]}
            raw = [(names.get(a["image_id"]), a["caption"]) for a in data["annotations"]]
        except (KeyError, TypeError) as e:
            raise ValueError(f"{file} is not a COCO captions file (missing {e})") from None
    else:
        with open(file, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"path", "caption"} <= set(reader.fieldnames):
                raise ValueError(f"{file}: a captions CSV needs the header 'path,caption'")
            raw = [(r["path"], r["caption"]) for r in reader]
    exact = set(paths)
    by_name: dict[str, str | None] = {}
    for p in paths:
        name = p.rsplit("/", 1)[-1]
        by_name[name] = None if name in by_name else p  # None: ambiguous
    pairs, unmatched = [], 0
    for p, caption in raw:
        p = None if p is None else str(p).replace("\\", "/")
        target = p if p in exact else by_name.get(p.rsplit("/", 1)[-1]) if p else None
        if target is None or caption is None:
            unmatched += 1
        else:
            pairs.append((target, str(caption).strip()))
    return pairs, unmatched


def read_captions_checked(file, paths: list[str], log: Callable[[str], None]) -> list[tuple[str, str]]:
    """:func:`read_captions`, logging how many captions named photos that are not indexed."""
    pairs, unmatched = read_captions(file, paths)
    if unmatched:
        log(f"note: {unmatched} captions name photos that are not in the folder; skipped")
    return pairs


def store_captions(file, db_path: Path, paths: list[str], log: Callable[[str], None] = print) -> int:
    """Replace the captions in ``db_path`` with those of ``file``; returns how many were stored."""
    return write_captions(read_captions_checked(file, paths, log), db_path)


def write_captions(pairs: Iterable[tuple[str, str]], db_path: Path) -> int:
    """Replace the captions of ``db_path`` with ``pairs`` (path, caption), and their word table, in one
    transaction; returns how many captions were stored."""
    pairs = list(pairs)
    words = {(w, p) for p, c in pairs for w in normalize_words(c)}
    db = sqlite3.connect(str(db_path))
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS captions (path TEXT NOT NULL, caption TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS captions_path ON captions (path)")
            db.execute("CREATE TABLE IF NOT EXISTS caption_words (word TEXT NOT NULL, path TEXT NOT NULL, "
                       "PRIMARY KEY (word, path)) WITHOUT ROWID")
            db.execute("DELETE FROM captions")
            db.execute("DELETE FROM caption_words")
            db.executemany("INSERT INTO captions VALUES (?, ?)", pairs)
            db.executemany("INSERT INTO caption_words VALUES (?, ?)", sorted(words))
    finally:
        db.close()
    return len(pairs)
