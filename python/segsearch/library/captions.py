"""Photo captions in SQLite, ranked by SQLite's full-text search (FTS5: Porter stemming, bm25).

An index folder's ``captions.sqlite`` (written by :func:`write_captions` in one transaction) holds::

    captions(path TEXT, caption TEXT)          the captions as given, several per photo allowed
    caption_photos(id INTEGER PRIMARY KEY,     one row per captioned photo, in order of its first caption
                   path TEXT UNIQUE)
    caption_fts(text)                          FTS5, tokenize='porter unicode61', contentless; row ``id`` is
                                               all the captions of photo ``id`` together

What matches: the query's words less :data:`STOP_WORDS` (all its words if every one is a stop word,
:func:`level_words`), each in any form (:meth:`Captions.word_forms`): its stem; the caption terms derived from
it (:func:`is_derived_form`: "surfer", "skier", "wooden", and compounds whose second part is itself a caption
word, "surfboard"; never a bare prefix, "surface" for "surf"); the other members of its
:data:`IRREGULAR_FORMS` group ("men", "buses", "rode"). Stop words match only as written. A photo with none
of these words is never returned by a text-only search.

Text ranking:

- **Text alone** ranks the matching photos by bm25 (:meth:`Captions.bm25`, higher is better): a query word
  weighs by how rare it is among the photos (inverse document frequency), so "horse" outweighs "man" when few
  photos show a horse, and by how often the photo's captions use it, relative to their length; each form of a
  word is a term of its own. A photo is one FTS5 document
  made of all its captions: document frequency then counts photos (the unit ranked), and a word several
  captioners used counts more than a word one of them used; scoring captions apart and summing would favour
  photos with more captions, and taking the best caption would ignore the other captions' agreement.
- **Text + layout** ranks by the *text level* (:meth:`Captions.levels`): the number of those query words found
  in the photo's captions in any form; ties are broken by the layout distance.
- Words are matched by SQLite's ``porter unicode61`` tokenizer: case, punctuation and diacritics are ignored
  and English suffixes stemmed ("horses" matches "horse", "riding" matches "rides"). Query text is split into
  words here and each word (and form) is quoted, so nothing typed (``"``, ``*``, ``-``, ``:``, ``NEAR``,
  ``AND``, ``OR``) is read as an FTS5 operator.
- The paper's score, the number of distinct query words found in a photo's captions with every word counting
  the same (stop words included), is :func:`distinct_word_count` (words compared after
  :func:`normalize_words`); the reproduction bench (``bench/quality.py``) uses it.

Files from older versions (a ``captions`` table, with or without the former ``caption_words`` table) still
open: their full-text index is built in memory when they are opened.
"""

from __future__ import annotations

import csv
import functools
import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FTS5Unavailable

__all__ = [
    "STOP_WORDS",
    "Captions",
    "FTS5Unavailable",
    "IRREGULAR_FORMS",
    "QueryWord",
    "distinct_word_count",
    "is_derived_form",
    "level_words",
    "match_expression",
    "normalize_words",
    "query_words",
    "read_captions",
    "read_captions_checked",
    "store_captions",
    "write_captions",
]

#: English function words left out of text matching (the level and bm25) unless a query has nothing else.
STOP_WORDS = frozenset(
    """
a about above after again against all am an and any are as at be been before being below between both but by
can could did do does doing down during each few for from further had has have having he her here hers him his
how i if in into is it its itself just me more most my no nor not of off on once only or other our ours out over
own s same she should so some such t than that the their theirs them then there these they this those through
to too under until up very was we were what when where which while who whom why will with would you your yours
""".split()
)

#: Word forms Porter stemming does not join: irregular plurals and past forms common in captions, and "bus",
#: which Porter stems apart from "buses". A query word with the stem of one member matches them all.
IRREGULAR_FORMS = (
    ("man", "men"),
    ("woman", "women"),
    ("child", "children"),
    ("person", "people"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("mouse", "mice"),
    ("goose", "geese"),
    ("knife", "knives"),
    ("leaf", "leaves"),
    ("shelf", "shelves"),
    ("wolf", "wolves"),
    ("calf", "calves"),
    ("bus", "buses", "busses"),
    ("ride", "rode", "ridden"),
    ("run", "ran"),
    ("sit", "sat"),
    ("stand", "stood"),
    ("eat", "eaten"),
    ("fly", "flies", "flew", "flown"),
    ("throw", "threw", "thrown"),
    ("hold", "held"),
    ("drive", "drove", "driven"),
    ("swim", "swam"),
    ("take", "took", "taken"),
    ("catch", "caught"),
    ("sleep", "slept"),
    ("wear", "wore", "worn"),
    ("hang", "hung"),
    ("lie", "lies", "lying", "lay", "laying", "lain"),
)

#: The FTS5 module and tokenizer (a module constant, not user input: SQL cannot take them as parameters).
_FTS = "fts5"
_TOKENIZE = "porter unicode61"
_WORD = re.compile(r"[^\W_]+")
_SIBILANT = ("s", "x", "z", "ch", "sh")


_fts5_checked: set[str] = set()


def _check_fts5() -> None:
    """Raise :class:`FTS5Unavailable` with a clear message if this SQLite cannot make the caption index."""
    if _FTS in _fts5_checked:
        return
    db = sqlite3.connect(":memory:")
    try:
        db.execute(f"CREATE VIRTUAL TABLE probe USING {_FTS}(text, tokenize='{_TOKENIZE}')")
    except sqlite3.OperationalError as e:
        raise FTS5Unavailable(
            f"caption search needs SQLite's FTS5 full-text search with the porter tokenizer, but the SQLite of "
            f"this Python ({sqlite3.sqlite_version}) cannot make it ({e}); use a Python whose sqlite3 module is "
            "built with FTS5 (the python.org, Debian/Ubuntu, Homebrew and conda builds are)"
        ) from None
    finally:
        db.close()
    _fts5_checked.add(_FTS)


# ------------------------------------------------------------------------------------------- query words


@dataclass(frozen=True)
class QueryWord:
    """One distinct word of a query: ``text`` as typed (its first spelling), ``terms`` its stemmed index
    term(s) (one for a plain word), ``stop`` whether it is a stop word."""

    text: str
    terms: tuple[str, ...]
    stop: bool

    @property
    def phrase(self) -> str:
        """The word as a quoted FTS5 string: matched literally, never read as an operator."""
        return '"' + self.text.replace('"', '""') + '"'


_local = threading.local()


def _stems(tokens: list[str]) -> list[tuple[str, ...]]:
    """The index terms SQLite's ``porter unicode61`` tokenizer makes of each token (an in-memory FTS5 table
    read back through fts5vocab, so the stems are exactly those of the caption index)."""
    db = getattr(_local, "stemmer", None)
    if db is None:
        _check_fts5()
        db = sqlite3.connect(":memory:")
        db.execute(f"CREATE VIRTUAL TABLE words USING {_FTS}(w, tokenize='{_TOKENIZE}')")
        db.execute(f"CREATE VIRTUAL TABLE terms USING {_FTS}vocab(words, instance)")
        _local.stemmer = db
    with db:
        db.execute("DELETE FROM words")
        db.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", enumerate(tokens))
        rows = db.execute('SELECT doc, term FROM terms ORDER BY doc, "offset"').fetchall()
    out: list[list[str]] = [[] for _ in tokens]
    for doc, term in rows:
        out[doc].append(term)
    return [tuple(t) for t in out]


def query_words(text: str) -> list[QueryWord]:
    """The distinct words of a query, in the order typed: split on anything but letters and digits, compared
    by their stems ("horse Horses" is one word). A stem is a stop word only if every spelling typed is."""
    if not isinstance(text, str):
        raise ValueError(f"the query text must be a string; got {type(text).__name__}")
    tokens = _WORD.findall(text)
    words: dict[tuple[str, ...], QueryWord] = {}
    for tok, terms in zip(tokens, _stems(tokens)):
        if not terms:
            continue
        stop = tok.lower() in STOP_WORDS
        if terms not in words:
            words[terms] = QueryWord(tok, terms, stop)
        elif words[terms].stop and not stop:
            words[terms] = QueryWord(words[terms].text, terms, False)
    return list(words.values())


def match_expression(words: Iterable[QueryWord]) -> str:
    """An FTS5 query matching a photo with any of ``words``: each word quoted, joined by OR ('' if none)."""
    return " OR ".join(w.phrase for w in words)


@functools.cache
def _irregular_forms() -> dict[tuple[str, ...], tuple[str, ...]]:
    """{stem: the spellings of its group in :data:`IRREGULAR_FORMS`} for every member's stem."""
    members = [w for group in IRREGULAR_FORMS for w in group]
    stems = dict(zip(members, _stems(members)))
    return {stems[w]: group for group in IRREGULAR_FORMS for w in group}


def is_derived_form(base: str, term: str, is_word: Callable[[str, str], bool]) -> bool:
    """Whether the caption term ``term`` is ``base`` (a stem, or a stem with its final e put back) with an
    English ending or a second word joined on: "er" ("surfer", "skier"), "r" after an e ("rider", "skater"),
    and for bases of 4 letters or more "i" (a -y adjective: "grassy"), "en" ("wooden"), "n" after a w
    ("shown"), or a caption word of 3 letters or more, ``is_word(rest, rest + "e")`` (Porter drops some final e's)
    ("surfboard", "horseback", "cellphone").
    Bare prefixes are not forms: "surface" is not one of "surf", nor "carpet" of "car", nor "beard" of "bear"."""
    rest = term[len(base) :]
    if not rest or not term.startswith(base) or len(base) < 3:
        return False
    if rest == "er" or (rest == "r" and base.endswith("e")):
        return True
    if len(base) < 4:
        return False
    return rest in ("i", "en") or (rest == "n" and base.endswith("w")) or (len(rest) >= 3 and is_word(rest, rest + "e"))


def level_words(words: list[QueryWord]) -> list[QueryWord]:
    """The words the text level counts: the non-stop words, or all of them if every word is a stop word."""
    content = [w for w in words if not w.stop]
    return content or list(words)


# ------------------------------------------------------------------------------------------- the paper's count


def _stem(w: str) -> str:
    """Fold a simple English plural onto the stem its singular also gets (the paper-score normalisation)."""
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
    """The distinct words of ``text`` as :func:`distinct_word_count` compares them: lower case, punctuation and
    apostrophes dropped, simple English plurals folded ("horses"/"horse", "boxes"/"box", "skies"/"sky")."""
    return {_stem(w) for w in _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))}


def distinct_word_count(query: str | Iterable[str], captions: Iterable[str]) -> int:
    """The paper's text score: how many distinct query words (after :func:`normalize_words`; every word counts,
    stop words included) are found in ``captions``, one photo's captions."""
    q = normalize_words(query) if isinstance(query, str) else set().union(*map(normalize_words, query))
    have: set[str] = set()
    for c in captions:
        have |= normalize_words(c)
    return len(q & have)


# ------------------------------------------------------------------------------------------- the index


def _create_fts(db: sqlite3.Connection, schema: str) -> None:
    """Create the photo table and the full-text index in ``schema`` ('main' or 'temp')."""
    db.execute(f"CREATE TABLE {schema}.caption_photos (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE)")
    db.execute(f"CREATE VIRTUAL TABLE {schema}.caption_fts USING {_FTS}(text, content='', tokenize='{_TOKENIZE}')")


def _create_terms(db: sqlite3.Connection, schema: str) -> None:
    """``temp.caption_terms``: the caption index's terms (stemmed words), read by :meth:`Captions.forms`."""
    db.execute(f"CREATE VIRTUAL TABLE temp.caption_terms USING {_FTS}vocab({schema}, caption_fts, row)")


def _fill_fts(db: sqlite3.Connection, source: str) -> None:
    """Index the captions of table ``source`` (``main.captions`` or an old file's): one photo row per path in
    order of its first caption, one FTS5 document per photo with all its captions, a line each."""
    db.execute(f"INSERT INTO caption_photos (path) SELECT path FROM {source} GROUP BY path ORDER BY MIN(rowid)")
    db.execute(
        f"INSERT INTO caption_fts (rowid, text) SELECT p.id, group_concat(c.caption, char(10)) "
        f"FROM caption_photos AS p JOIN {source} AS c ON c.path = p.path GROUP BY p.id"
    )


class Captions:
    """The captions of an index folder, opened read-only: :meth:`bm25` and :meth:`levels` score photos for a
    query, :meth:`of` gives a photo's captions. Safe to share between threads (queries are serialised).

    Files written before the full-text index existed are read too: it is then built in memory.
    """

    def __init__(self, db_path: str | Path):
        self.path: Path | None = Path(db_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no captions file {self.path}; index the photos with --captions FILE")
        _check_fts5()
        self._lock = threading.Lock()
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        try:
            self._db.execute("PRAGMA trusted_schema = OFF")  # the file may come from someone else
            tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise ValueError(
                f"{self.path} is not a captions file ({e}); re-run segsearch index with --captions FILE"
            ) from None
        if "captions" not in tables:
            self._db.close()
            raise ValueError(f"{self.path} has no captions table; re-run segsearch index with --captions FILE")
        #: True if the file predates the full-text index (then built in memory, in the connection's temp schema).
        self.legacy = not {"caption_photos", "caption_fts"} <= tables
        if self.legacy:
            with self._db:
                _create_fts(self._db, "temp")
                _fill_fts(self._db, "main.captions")
        _create_terms(self._db, "temp" if self.legacy else "main")

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Captions:
        """Captions held in memory only (for benchmarks and tests): the same tables and ranking as a file."""
        _check_fts5()
        self = cls.__new__(cls)
        self.path, self.legacy, self._lock = None, False, threading.Lock()  # path None: not a file
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        _write(self._db, _check_pairs(pairs))
        _create_terms(self._db, "main")
        return self

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Captions:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        """The number of captions."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM captions").fetchone()[0]

    def of(self, path: str) -> list[str]:
        """The captions of one photo (its id in the index), in the order stored."""
        with self._lock:
            rows = self._db.execute("SELECT caption FROM captions WHERE path = ? ORDER BY rowid", (path,))
            return [r[0] for r in rows]

    def _is_term(self, *terms: str) -> bool:
        """Whether any of ``terms`` is a term of the caption index (the caller holds the lock)."""
        sql = "SELECT 1 FROM caption_terms WHERE term = ?"
        return any(self._db.execute(sql, (t,)).fetchone() is not None for t in terms)

    def _derived(self, stem: str) -> list[str]:
        """The caption terms that are forms of ``stem`` (:func:`is_derived_form`), sorted."""
        bases = {stem, stem + "e"} if not stem.endswith("e") else {stem}
        found: set[str] = set()
        with self._lock:
            for b in bases:
                rows = self._db.execute(
                    "SELECT term FROM caption_terms WHERE term > ? AND term < ?", (b, b + "\U0010ffff")
                )
                found.update(t for (t,) in rows.fetchall() if t != stem and is_derived_form(b, t, self._is_term))
        return sorted(found)

    def word_forms(self, word: QueryWord) -> list[QueryWord]:
        """What ``word`` matches: itself, the other members of its :data:`IRREGULAR_FORMS` group, and, for a
        non-stop word, the caption terms derived from its stem (:func:`is_derived_form`); stop words match only
        themselves. A derived term is matched as it is stored, so one whose spelling Porter would stem again
        differently (e.g. "basebal") is left out."""
        out = {word.terms: word}
        group = list(_irregular_forms().get(word.terms, ()))
        for w, terms in zip(group, _stems(group)):
            out.setdefault(terms, QueryWord(w, terms, word.stop))
        if not word.stop and len(word.terms) == 1:
            derived = self._derived(word.terms[0])
            for t, terms in zip(derived, _stems(derived)):
                if terms == (t,):
                    out.setdefault(terms, QueryWord(t, terms, False))
        return list(out.values())

    def forms(self, text: str) -> dict[str, list[str]]:
        """{query word as typed: the caption terms (stemmed words) it matches, its own first} for the words a
        search for ``text`` looks for (:func:`level_words`)."""
        return {w.text: [t for f in self.word_forms(w) for t in f.terms] for w in level_words(query_words(text))}

    def _word_matches(self, text: str) -> list[str]:
        """One FTS5 expression per word a search for ``text`` looks for, matching any of its forms."""
        return [f"({match_expression(self.word_forms(w))})" for w in level_words(query_words(text))]

    def bm25(self, text: str) -> dict[str, float]:
        """{photo id: bm25 score} (higher is better, > 0) of the photos whose captions contain a word of ``text``
        in any form (:meth:`word_forms`), stop words left out unless all are stop words (:func:`level_words`);
        SQLite's bm25 (k1 = 1.2, b = 0.75, photos as documents), each form of a word weighed as a term of its
        own. Photos with none of the words are not scored: a search never pads its results with them."""
        expr = " OR ".join(self._word_matches(text))
        if not expr:
            return {}
        with self._lock:
            rows = self._db.execute(
                "SELECT p.path, -bm25(caption_fts) FROM caption_fts JOIN caption_photos AS p "
                "ON p.id = caption_fts.rowid WHERE caption_fts MATCH ?",
                (expr,),
            ).fetchall()
        return dict(rows)

    def levels(self, text: str) -> dict[str, int]:
        """{photo id: text level} for photos with level >= 1: the number of distinct query words (stop words left
        out unless all are stop words, :func:`level_words`) found in the photo's captions in any form
        (:meth:`word_forms`), the same matching as :meth:`bm25`."""
        counts: Counter[str] = Counter()
        matches = self._word_matches(text)
        with self._lock:
            for expr in matches:
                rows = self._db.execute(
                    "SELECT p.path FROM caption_fts JOIN caption_photos AS p ON p.id = caption_fts.rowid "
                    "WHERE caption_fts MATCH ?",
                    (expr,),
                )
                counts.update(r[0] for r in rows)
        return dict(counts)


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


def _check_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ValueError(f"caption {i} must be a (path, caption) pair of strings; got {pair!r}")
        out.append((pair[0], pair[1]))
    return out


def _write(db: sqlite3.Connection, pairs: list[tuple[str, str]]) -> None:
    """Replace everything in ``db`` (autocommit mode) with ``pairs``, in one transaction."""
    db.isolation_level = None  # explicit BEGIN/COMMIT: the CREATE/DROP statements join the transaction too
    db.execute("BEGIN IMMEDIATE")
    try:
        for table in ("caption_fts", "caption_photos", "caption_words"):  # caption_words: the former word table
            db.execute(f"DROP TABLE IF EXISTS main.{table}")
        db.execute("CREATE TABLE IF NOT EXISTS captions (path TEXT NOT NULL, caption TEXT NOT NULL)")
        db.execute("CREATE INDEX IF NOT EXISTS captions_path ON captions (path)")
        db.execute("DELETE FROM captions")
        db.executemany("INSERT INTO captions VALUES (?, ?)", pairs)
        _create_fts(db, "main")
        _fill_fts(db, "main.captions")
        db.execute("PRAGMA user_version = 2")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite has already rolled back after some errors (e.g. a full disk)
            db.execute("ROLLBACK")
        raise


def write_captions(pairs: Iterable[tuple[str, str]], db_path: Path) -> int:
    """Replace the captions of ``db_path`` with ``pairs`` (path, caption) and rebuild their full-text index, in
    one transaction (an older file is converted); returns how many captions were stored."""
    _check_fts5()
    pairs = _check_pairs(pairs)
    db = sqlite3.connect(str(db_path))
    try:
        _write(db, pairs)
    finally:
        db.close()
    return len(pairs)
