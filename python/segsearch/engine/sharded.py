"""Sharded index folders: one codebook, any number of shards of photos, searched as one index.

Layout (names in :mod:`segsearch.index_folder`)::

    INDEX_DIR/index.segsearch          the base shard: an ordinary index file (codebook, codes, ids, exact maps)
    INDEX_DIR/shards.json              the manifest: the further shards, in insertion order
    INDEX_DIR/shards/000001.segsearch  a shard: codes, ids (and exact maps if kept) of later photos, no codebook

A folder without ``shards.json`` (every folder made before shards existed) is the base alone. A shard file is
the index file format (:mod:`segsearch.storage`) without the codebook arrays: its header names the codebook
it was encoded with by ``codebook_sha256`` (of the base's codebook bytes and class prior), which must match,
so a shard costs only its photos' bytes however large the codebook is.

Writes (each under the folder's ``work/`` lock, the one ``segsearch index`` takes):

* :func:`add_shard` writes ``shards/NNNNNN.segsearch`` (a new number, temp file + rename), then the manifest
  listing it (temp file + rename). The manifest's rename is the commit point: a crash before it leaves an
  orphan shard file that readers never open and the next writer deletes.
* :func:`compact` writes the union as a new ``index.segsearch`` (temp file + rename: the commit point), then
  deletes the manifest and the shards. The manifest records the base's photo count: once the base has been
  replaced (by a compaction, or by an older segsearch rewriting it whole on ``--add``) it holds at least that
  count plus the shards' photos, the manifest is stale and readers ignore it, so a crash between the steps
  never shows a photo twice (any other count is an error). ``compact(max_photos=N)`` keeps the base and
  merges consecutive shards into shards of at most N photos: written under new numbers, then the manifest
  listing them in the old ones' place (the commit point), then the old shards deleted.

Everything read from a folder is untrusted: a shard the manifest names must be ``shards/NNNNNN.segsearch``
(six digits), resolve (symlinks followed) to a regular file inside the folder, hold as many photos as the
manifest says and the base's codebook, and ids must be unique over all shards; anything else is an
:class:`IndexFormatError` naming the file.

Search (:class:`ShardedIndex`) is "search each shard, merge top-k exactly": the query's lookup tables are
built once from the codebook (:meth:`ShardedIndex.plan`), :func:`scan_shard` finds one shard's k nearest
(local positions and distances) and :func:`merge_topk` keeps the k smallest (distance, global position) pairs.
The scan sums each photo's distance starting from the most common code of each class (``defaults``); the
plan carries the union's, so every shard computes bit for bit the distances one index over all the photos
computes, and ties go to the earlier photo in insertion order (base first, then the shards as listed), as in
one index. A scan needs only its shard's arrays and the plan, so shards can live in other processes.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import _core
from . import storage
from ..errors import IndexFormatError
from .index import (BLOCK_W, Index, SearchResult, _check_eps, _check_threads, _code_stats, _State, check_search_args)
from .layout import INDEX_FILE, MANIFEST_FILE, SHARDS_DIR, WORK_DIR, resolve_inside
from .query import Query

__all__ = ["ShardedIndex", "SearchPlan", "open_folder", "add_shard", "compact", "empty_like", "scan_shard",
           "merge_topk", "codebook_fingerprint"]

MANIFEST_FORMAT = "segsearch-shards"
MANIFEST_VERSION = 1
#: A manifest larger than this is refused unread (a million shards' entries take about 50 MB).
MANIFEST_MAX_BYTES = 64 << 20
_SHARD_NAME = re.compile(r"[0-9]{6}\.segsearch")
MAX_SHARD_NUMBER = 999_999


# ---------------------------------------------------------------------------------------------- the codebook

def codebook_fingerprint(index: Index) -> str:
    """sha256 (hex) of what a shard's codes mean: the codebook's bytes (dtype, shape) and the class prior."""
    index._need_trained()
    h = hashlib.sha256()
    for a in (index._cb, index._prior):
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.name}{list(a.shape)};".encode())
        flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
        for s in range(0, flat.size, 1 << 26):
            h.update(memoryview(flat[s : s + (1 << 26)]))
    return h.hexdigest()


def empty_like(base: Index) -> Index:
    """An index of no photos with ``base``'s codebook (shared, not copied), ranking, class prior, class names,
    metadata and keep_exact: ``add`` / ``add_codes`` to it the photos of a new shard (:func:`add_shard`)."""
    base._need_trained()
    out = Index(base.num_classes, base.size, base.n_centroids, base.class_names, keep_exact=base.keep_exact,
                metadata=base.metadata, ranking=base.ranking)
    out._set_prior(base._prior)
    out._share_codebook(base)
    return out


# ---------------------------------------------------------------------------------------------- searching

@dataclass(frozen=True)
class SearchPlan:
    """A batch of queries made ready for :func:`scan_shard`: the lookup tables (PQ) or the resolved queries
    (exact), the union's most common code per class (``defaults``, ``dense``) and the ranking's weights."""

    exact: bool
    n_queries: int
    luts: np.ndarray | None
    classes: list | None
    resolved: list | None
    defaults: np.ndarray
    dense: np.ndarray
    class_weights: np.ndarray | None
    photo_weight: float


def make_plan(base: Index, defaults: np.ndarray, dense: np.ndarray, queries: list[Query], *, exact: bool = False,
              eps: float | None = None, threads: int | None = None) -> SearchPlan:
    """``queries`` made ready for :func:`scan_shard` over shards whose union's most common codes are ``defaults``
    / ``dense`` (:func:`_code_stats` of the summed code counts): the lookup tables built once, from ``base``'s
    codebook, or the resolved queries for an exact search."""
    resolved = [q.resolve(base.num_classes, base.size) for q in queries]
    luts = classes = None
    if exact:
        if not base.keep_exact:
            raise ValueError("exact search needs the uncompressed maps: build the index with keep_exact=True")
    else:
        base._need_trained()
        built = [base._lut(r, _check_eps(eps), _check_threads(threads)) for r in resolved]
        if built:
            luts = built[0][0][None] if len(built) == 1 else np.stack([b[0] for b in built])
        classes = [b[1] for b in built]
    return SearchPlan(bool(exact), len(resolved), luts, classes, resolved if exact else None, defaults, dense,
                      base._weights, base.ranking.photo_weight)


def scan_shard(shard: _State, plan: SearchPlan, k: int, *, mask=None, positions=None, threads: int = 0):
    """One shard's k nearest for each query of ``plan``: (positions int64 (nq, kk), distances float32 (nq, kk),
    counts int64 (nq,)), positions local to the shard, row q's first counts[q] valid, nearest first, ties by
    position. ``mask`` (uint8, one per photo of the shard) or ``positions`` (sorted local positions) restrict it."""
    n_cand = shard.n if mask is None and positions is None else int(mask.sum()) if mask is not None else len(positions)
    if n_cand == 0 or plan.n_queries == 0:
        nq = plan.n_queries
        return np.zeros((nq, 0), np.int64), np.zeros((nq, 0), np.float32), np.zeros(nq, np.int64)
    kk = min(k, n_cand)
    if plan.exact:
        r = plan.resolved
        return _core.search_exact(shard.exact[: shard.n], shard.exact_norms[: shard.n], [q[0] for q in r],
                                  [q[1] for q in r], [q[2] for q in r], kk, mask=mask, ids=positions,
                                  threads=threads, class_weights=plan.class_weights, photo_weight=plan.photo_weight)
    return _core.scan_pq(shard.codes[:, : shard.n], plan.defaults, plan.luts, plan.classes, kk, mask=mask,
                         ids=positions, threads=threads, dense=plan.dense)


def shard_filter(offsets: np.ndarray, s: int, mask, pos):
    """Shard ``s``'s part of a search's subset (:meth:`Index._subset` over the union; shard s holds the global
    positions ``offsets[s]`` to ``offsets[s + 1]``): (mask, positions), local to the shard, each None when the
    search has no such restriction."""
    lo, hi = int(offsets[s]), int(offsets[s + 1])
    m = None if mask is None else np.ascontiguousarray(mask[lo:hi])
    p = None if pos is None else pos[(pos >= lo) & (pos < hi)] - lo
    return m, p


def merge_topk(parts, offsets, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query, the k smallest (distance, global position) pairs over the shards' :func:`scan_shard` results
    ``parts`` (shard s's positions + ``offsets[s]``): [(global positions int64, distances float32)]. Exactly
    one index's top k, as each shard's k nearest hold every photo of the union's k nearest in that shard."""
    nq = len(parts[0][2]) if parts else 0
    out = []
    for q in range(nq):
        pos = np.concatenate([p[0][q, : p[2][q]] + off for p, off in zip(parts, offsets)]).astype(np.int64)
        dist = np.concatenate([p[1][q, : p[2][q]] for p in parts]).astype(np.float32)
        order = np.lexsort((pos, dist))[:k]
        out.append((pos[order], dist[order]))
    return out


class _UnionPositions:
    """id -> global position over the shards (each shard's own map, plus its offset)."""

    def __init__(self, shards, offsets):
        self._shards, self._offsets = shards, offsets

    def __contains__(self, i):
        return any(i in st.positions() for st in self._shards)

    def __getitem__(self, i):
        for st, off in zip(self._shards, self._offsets):
            m = st.positions()
            if i in m:
                return off + m[i]
        raise KeyError(i)


class _UnionState:
    """What ``Index._subset`` needs of a state: the number of photos and id -> position."""

    def __init__(self, n, positions):
        self.n, self._positions = n, positions

    def positions(self):
        return self._positions


class BaseCodebook:
    """For an index made of shards: the codebook's properties (``num_classes``, ``codebook``, ``decode``, ...)
    are those of ``self.base``, the folder's ``index.segsearch``."""

    _DELEGATED = frozenset({"num_classes", "size", "n_centroids", "class_names", "metadata", "keep_exact",
                            "ranking", "class_prior", "codebook", "codebook_u8", "decode", "dim", "is_trained",
                            "lookup_table", "fixed_nbytes"})

    def __getattr__(self, name):
        if name in BaseCodebook._DELEGATED:
            return getattr(self.base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ShardedIndex(BaseCodebook):
    """The union of an index folder's shards, searched as one index (:func:`open_folder` opens it).

    Read-only; the photos are in insertion order: the base's, then each shard's as the manifest lists them.
    ``search`` takes the arguments of :meth:`Index.search` and returns the same ids and distances one index
    over all the photos would; codebook properties (``num_classes``, ``codebook``, ``decode``, ...) are the
    base's. ``shards`` holds each shard's photos (an ``Index`` state: ``n``, ``codes`` (C, n), ``ids``, ...),
    ``offsets`` the global position of each shard's first photo."""

    def __init__(self, base: Index, shards: list[_State], paths: list[Path | None]):
        self.base = base
        self.shards = [base._state] + list(shards)
        self.paths = list(paths)
        self.offsets = np.concatenate([[0], np.cumsum([st.n for st in self.shards])]).astype(np.int64)
        counts = np.sum([st.counts for st in self.shards], axis=0)
        self._defaults, self._dense = _code_stats(counts)
        self._union = _UnionState(int(self.offsets[-1]), _UnionPositions(self.shards, self.offsets[:-1].tolist()))

    def __len__(self) -> int:
        return self._union.n

    def __repr__(self) -> str:
        return (f"ShardedIndex({len(self.shards)} shards, num_classes={self.num_classes}, size={self.size}, "
                f"n_centroids={self.n_centroids}, len={len(self)}, keep_exact={self.keep_exact}, "
                f"ranking={self.ranking.name!r})")

    @property
    def string_ids(self) -> bool:
        """Whether the ids are strings (else integers)."""
        return any(isinstance(st.ids, list) for st in self.shards)

    @property
    def ids(self) -> np.ndarray:
        """All photos' ids in insertion order (a new array: int64 or str)."""
        parts = [Index._ids_at(st, np.arange(st.n, dtype=np.int64)) for st in self.shards]
        return np.concatenate(parts) if self.string_ids else np.concatenate(parts).astype(np.int64)

    @property
    def codes(self) -> np.ndarray:
        """All photos' codes uint8 (N, C) in insertion order (a new array; :meth:`code_rows` for a few)."""
        return np.concatenate([st.codes[:, : st.n].T for st in self.shards])

    def code_rows(self, positions) -> np.ndarray:
        """The codes uint8 (len(positions), C) of the photos at global ``positions``."""
        pos = np.asarray(positions, np.int64).reshape(-1)
        out = np.empty((len(pos), self.num_classes), np.uint8)
        for s, sel, local in self._split_positions(pos):
            out[sel] = self.shards[s].codes[:, local].T
        return out

    def __contains__(self, id_) -> bool:
        try:
            return id_ in self._union.positions()
        except TypeError:  # unhashable
            return False

    def positions(self, ids) -> np.ndarray:
        """Global insertion positions int64 of ``ids``; ValueError naming an id not in the index."""
        return Index._positions_in(self._union, ids)

    def _split_positions(self, pos: np.ndarray):
        """(shard, selector into pos, local positions) for each shard that global positions ``pos`` fall in."""
        which = np.searchsorted(self.offsets, pos, side="right") - 1
        for s in np.unique(which).tolist():
            sel = which == s
            yield s, sel, pos[sel] - self.offsets[s]

    def _ids_at(self, pos: np.ndarray) -> np.ndarray:
        out = np.empty(len(pos), object)
        for s, sel, local in self._split_positions(pos):
            out[sel] = list(Index._ids_at(self.shards[s], local))
        if self.string_ids:
            return np.array(out.tolist(), dtype=str) if len(out) else np.zeros(0, dtype=str)
        return out.astype(np.int64)

    # ------------------------------------------------------------------ search
    def plan(self, queries: list[Query], *, exact: bool = False, eps: float | None = None,
             threads: int | None = None) -> SearchPlan:
        """The queries made ready for :func:`scan_shard` (the lookup tables built once, from the codebook)."""
        return make_plan(self.base, self._defaults, self._dense, queries, exact=exact, eps=eps, threads=threads)

    def search(self, query, k: int = 10, *, exact: bool = False, subset=None, threads: int | None = None,
               eps: float | None = None):
        """:meth:`Index.search` over all the shards: each shard's k nearest, merged by (distance, position)."""
        single, queries, k, n_threads = check_search_args(query, k, threads, eps)
        mask, pos = self.base._subset(self._union, subset)
        plan = self.plan(queries, exact=exact, eps=eps, threads=threads)
        if not queries:
            return []
        parts, offsets = self._scan_parts(plan, k, mask, pos, n_threads)
        out = [SearchResult(self._ids_at(p), d) for p, d in merge_topk(parts, offsets, k)]
        return out[0] if single else out

    def _scan_parts(self, plan: SearchPlan, k: int, mask, pos, threads: int):
        """Every shard's :func:`scan_shard` result and the global offsets of their positions (in this process;
        :class:`segsearch.ray_search.RayShardedIndex` scans on Ray actors instead)."""
        parts = []
        for s, st in enumerate(self.shards):
            m, p = shard_filter(self.offsets, s, mask, pos)
            parts.append(scan_shard(st, plan, k, mask=m, positions=p, threads=threads))
        return parts, self.offsets[:-1]


# ---------------------------------------------------------------------------------------------- reading

def _folder(index_dir) -> Path:
    d = Path(index_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"index directory {d} does not exist")
    return d


def open_folder(index_dir, *, mmap: bool = True, verify: bool = True) -> Index | ShardedIndex:
    """The index of an index folder: an :class:`Index` when it has no shards (every folder made before shards
    existed), else a :class:`ShardedIndex` of the base and the shards its manifest lists. ``mmap`` and
    ``verify`` as in :meth:`Index.load` (``verify`` also checks that ids are unique over all shards).
    A damaged manifest or shard is an :class:`IndexFormatError` naming the file."""
    d = _folder(index_dir)
    for attempt in range(2):
        base = Index.load(d / INDEX_FILE, mmap=mmap, verify=verify)
        listed = _read_manifest(d, base)
        if not listed:
            return base
        try:
            shards = [_load_shard(d, rel, count, base, fp, mmap, verify) for rel, count, fp in listed]
        except _ShardGone:
            if attempt:  # listed, still missing after reading the folder again: not a compaction under way
                raise
            continue  # a compaction may have replaced the base and deleted the shards meanwhile: read again
        union = ShardedIndex(base, [s for s, _ in shards], [d / INDEX_FILE] + [p for _, p in shards])
        if verify:
            _check_unique_ids(union, d / MANIFEST_FILE)
        return union
    raise AssertionError("unreachable")


class _ShardGone(IndexFormatError):
    pass


def _manifest_error(path: Path, msg: str) -> IndexFormatError:
    return IndexFormatError(f"{path} is damaged: {msg}")


def _read_manifest(d: Path, base: Index) -> list[tuple[str, int, str]]:
    """[(shard file, count, codebook fingerprint)] the manifest lists for this base; [] without a manifest or
    with a stale one (written for a base with another number of photos: replaced since, see the module doc)."""
    path = d / MANIFEST_FILE
    real, why = resolve_inside(d.resolve(), MANIFEST_FILE)
    if real is None:
        raise IndexFormatError(f"{path} is not a shard manifest: {why.replace('photos folder', 'index folder')}")
    try:
        with open(real, "rb") as f:
            blob = f.read(MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    if len(blob) > MANIFEST_MAX_BYTES:
        raise _manifest_error(path, f"larger than {MANIFEST_MAX_BYTES} bytes")
    try:
        m = json.loads(blob)
    except (ValueError, RecursionError) as e:
        raise _manifest_error(path, f"unreadable JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise _manifest_error(path, f"not a segsearch shard manifest (no \"format\": \"{MANIFEST_FORMAT}\")")
    version = m.get("version")
    if type(version) is not int or version < 1:
        raise _manifest_error(path, f"version {str(version)[:50]!r}; expected an integer >= 1")
    if version > MANIFEST_VERSION:
        raise IndexFormatError(f"{path} is a shard manifest of version {version}, newer than this segsearch "
                               f"understands ({MANIFEST_VERSION}); upgrade segsearch")
    b, shards = m.get("base"), m.get("shards")
    if not isinstance(b, dict) or type(b.get("count")) is not int or not isinstance(b.get("codebook_sha256"), str):
        raise _manifest_error(path, "\"base\" must be an object with an integer \"count\" and a \"codebook_sha256\"")
    if not isinstance(shards, list):
        raise _manifest_error(path, "\"shards\" must be a list")
    if b["count"] != len(base):
        total = sum(e["count"] for e in shards if isinstance(e, dict) and type(e.get("count")) is int)
        if len(base) >= b["count"] + total:  # the base was replaced after this manifest: its shards are in it
            return []
        raise _manifest_error(path, f"it was written for an {INDEX_FILE} of {b['count']} photos, but "
                                    f"{d / INDEX_FILE} holds {len(base)}")
    fp = codebook_fingerprint(base)
    if b["codebook_sha256"] != fp:
        raise _manifest_error(path, f"it was written for another codebook than {d / INDEX_FILE}'s")
    out, seen = [], set()
    for i, e in enumerate(shards):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or type(e.get("count")) is not int:
            raise _manifest_error(path, f"shard entry {i} must be an object with a \"file\" and an integer \"count\"")
        rel, count = e["file"], e["count"]
        head, _, name = rel.partition("/")
        if head != SHARDS_DIR or not _SHARD_NAME.fullmatch(name):
            raise _manifest_error(path, f"shard entry {i} names {rel[:100]!r}; shard files are "
                                        f"{SHARDS_DIR}/NNNNNN.segsearch (six digits) inside the index folder")
        if rel in seen:
            raise _manifest_error(path, f"it lists {rel} twice")
        if count < 1:
            raise _manifest_error(path, f"shard entry {i} ({rel}) has count {count}; expected >= 1")
        seen.add(rel)
        out.append((rel, count, fp))
    return out


def shard_expectation(base: Index) -> tuple:
    """What every shard's header must repeat of the base: (num_classes, size, K, class names, keep_exact, ranking);
    picklable, so a process that opens shards without the base (a Ray actor) can check them."""
    return (base.num_classes, base.size, base.n_centroids, base.class_names, base.keep_exact,
            base.ranking.to_json())


def _load_shard(d: Path, rel: str, count: int, base, fp: str, mmap: bool, verify: bool):
    """(the shard's photos as an Index state, its path), checked against the base (an Index, or its
    :func:`shard_expectation`) and the manifest."""
    manifest = d / MANIFEST_FILE
    real, why = resolve_inside(d.resolve(), rel)
    if real is None:
        raise IndexFormatError(f"{manifest} lists the shard {rel}, which is refused: "
                               f"{why.replace('photos folder', 'index folder')}")
    if not real.exists():
        raise _ShardGone(f"{manifest} lists the shard {rel}, which is missing; restore it (the folder is "
                         "incomplete without it) or delete the manifest to search the base index alone")
    header, arr = storage.load(real, mmap=mmap, verify=verify)
    path = d / rel
    if header.get("codebook_sha256") != fp:
        raise IndexFormatError(f"{path} is not a shard of this index: it was not encoded with the codebook of "
                               f"{d / INDEX_FILE}")
    f = storage.check_index(path, header, arr, verify=verify, block_w=BLOCK_W, shard=True)
    mine = base if isinstance(base, tuple) else shard_expectation(base)
    keep_exact = mine[4]
    theirs = (f["num_classes"], f["size"], f["n_centroids"], f["class_names"], f["keep_exact"], f["ranking"].to_json())
    if mine != theirs:
        raise IndexFormatError(f"{path} does not match {d / INDEX_FILE} (classes, map size, K, keep_exact or "
                               "ranking differ)")
    if f["count"] != count:
        raise IndexFormatError(f"{path} holds {f['count']} photos but {manifest} says {count}")
    if f["ids"] is None:
        raise IndexFormatError(f"{path} is damaged: a shard's ids must be stored (ids_kind 'int64' or 'str')")
    counts = np.array(arr["code_counts"])
    exact = norms = None
    if keep_exact:
        exact, norms = arr["exact_maps"], arr["exact_norms"]
    st = _State(f["count"], arr["codes"], f["ids"], counts, *_code_stats(counts), exact, norms)
    return st, path


def _check_unique_ids(union: ShardedIndex, manifest: Path) -> None:
    kinds = {isinstance(st.ids, list) for st in union.shards if st.n}
    if len(kinds) > 1:
        raise IndexFormatError(f"{manifest}: its shards mix string and integer ids")
    if kinds == {True}:  # lists of str (each shard's unique already): no fixed-width copy of them all
        seen: set = set()
        for st in union.shards:
            dup = next((i for i in st.ids if i in seen), None) if seen else None
            if dup is not None:
                raise IndexFormatError(f"{manifest}: the id {dup[:100]!r} is in more than one shard; ids must be "
                                       "unique")
            seen.update(st.ids)
        return
    s = np.sort(union.ids)
    rep = s[1:][s[1:] == s[:-1]]
    if rep.size:
        raise IndexFormatError(f"{manifest}: the id {int(rep[0])} is in more than one shard; ids must be unique")


# ---------------------------------------------------------------------------------------------- writing

def _lock(d: Path) -> int:
    from ..library.build import _lock_folder

    (d / WORK_DIR).mkdir(exist_ok=True)
    return _lock_folder(d / WORK_DIR, d)


def _unlock(fd: int) -> None:
    from ..library.build import _unlock_folder

    _unlock_folder(fd)


def add_shard(index_dir, part: Index) -> Path:
    """Append the photos of ``part`` to the index folder as a new shard; returns its path.

    ``part`` must use the folder's codebook (build it with :func:`empty_like` of the folder's base index, then
    ``add`` / ``add_codes``), with ids that are not in the folder yet (positional ids continue after the largest
    integer id). Nothing else in the folder is rewritten; the manifest's rename commits the shard."""
    d = _folder(index_dir)
    fd = _lock(d)
    try:
        return add_shard_locked(d, part)
    finally:
        _unlock(fd)


def add_shard_locked(d: Path, part: Index, *, ids_are_new: bool = False) -> Path:
    """:func:`add_shard` for a writer that holds the folder's lock (``segsearch index --add``). ``ids_are_new``:
    the caller knows that ``part``'s ids (strings) are not in the folder (the indexer's state database does), so
    only the base's header and codebook and the manifest are read, not every shard."""
    remove_unlisted(d)
    if ids_are_new:
        if not isinstance(part._state.ids, list):
            raise ValueError("ids_are_new needs string ids")
        current = base = Index.load(d / INDEX_FILE, mmap=True, verify=False)
        if len(base) and not isinstance(base._state.ids, list):
            raise ValueError("this index folder uses integer ids; give the new photos integer ids too")
    else:
        current = open_folder(d, mmap=True)
        base = current.base if isinstance(current, ShardedIndex) else current
    if not len(part):
        raise ValueError("the new shard has no photos")
    fp = codebook_fingerprint(base)
    if codebook_fingerprint(part) != fp:
        raise ValueError("the new shard's photos were not encoded with this folder's codebook: make the index "
                         "with segsearch.shards.empty_like(the folder's index)")
    if (part.keep_exact, part.ranking.to_json(), part.class_names) != (base.keep_exact, base.ranking.to_json(),
                                                                     base.class_names):
        raise ValueError("the new shard differs from the folder's index in keep_exact, ranking or class names")
    st = part._state
    ids = st.ids
    string_ids = isinstance(current, ShardedIndex) and current.string_ids or isinstance(base._state.ids, list)
    if ids is None:
        if string_ids:
            raise ValueError("this index folder uses string ids: give the new photos ids")
        have = current.ids
        ids = np.arange(st.n, dtype=np.int64) + (int(have.max()) + 1 if len(have) else 0)
    elif isinstance(ids, list) != string_ids and len(current):
        kind = "string" if string_ids else "integer"
        raise ValueError(f"this index folder uses {kind} ids; give the new photos {kind} ids too")
    ids = ids if isinstance(ids, list) else ids[: st.n]
    dup = None if ids_are_new else next((i for i in (ids if isinstance(ids, list) else ids.tolist()) if i in current),
                                        None)
    if dup is not None:
        raise ValueError(f"id {dup!r} is already in the index folder; ids must be unique")
    listed = [(rel, count) for rel, count, _ in _read_manifest(d, base)]
    number = max([int(rel[len(SHARDS_DIR) + 1 : -len(".segsearch")]) for rel, _ in listed], default=0) + 1
    if number > MAX_SHARD_NUMBER:
        raise ValueError(f"{d} has shard number {MAX_SHARD_NUMBER}: run 'segsearch compact {d}' first")
    rel = f"{SHARDS_DIR}/{number:06d}.segsearch"
    (d / SHARDS_DIR).mkdir(exist_ok=True)
    _save_shard(d / rel, part, st, ids, fp)
    _write_manifest(d, base, fp, listed + [(rel, st.n)])
    return d / rel


def _save_shard(path: Path, part: Index, st: _State, ids, fp: str) -> None:
    header = {"num_classes": part.num_classes, "size": part.size, "n_centroids": part.n_centroids, "count": st.n,
              "class_names": part.class_names, "metadata": {}, "keep_exact": part.keep_exact,
              "ids_kind": "str" if isinstance(ids, list) else "int64", "ranking": part.ranking.to_json(),
              "codebook_sha256": fp}
    arrays = {"codes": st.codes[:, : st.n], "code_counts": st.counts}
    if isinstance(ids, list):
        enc = [s.encode("utf-8") for s in ids]
        arrays["ids_offsets"] = np.cumsum([0] + [len(b) for b in enc], dtype=np.int64)
        arrays["ids_utf8"] = np.frombuffer(b"".join(enc), np.uint8)
    else:
        arrays["ids"] = np.asarray(ids, np.int64)
    if part.keep_exact:
        arrays["exact_maps"], arrays["exact_norms"] = st.exact[: st.n], st.exact_norms[: st.n]
    storage.save(path, header, arrays)


def _write_manifest(d: Path, base: Index, fp: str, shards: list[tuple[str, int]]) -> None:
    m = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
         "base": {"count": len(base), "codebook_sha256": fp},
         "shards": [{"file": rel, "count": count} for rel, count in shards]}
    with storage.atomic_write(d / MANIFEST_FILE) as f:
        f.write(json.dumps(m, indent=1).encode() + b"\n")


def last_written_ids(d: Path) -> set:
    """The ids of the folder's last written file: the last shard its manifest lists, else ``index.segsearch``
    (what a writer killed between its write and its own bookkeeping may have added). For writers holding the
    folder's lock."""
    base = Index.load(d / INDEX_FILE, mmap=True, verify=False)
    listed = _read_manifest(d, base)
    if not listed:
        st = base._state
    else:
        rel, count, fp = listed[-1]
        st, _ = _load_shard(d, rel, count, base, fp, True, True)
    return set(Index._ids_at(st, np.arange(st.n, dtype=np.int64)).tolist())


def remove_unlisted(d: Path) -> list[str]:
    """Delete what no reader uses: shard files the manifest does not list (a writer killed before its commit,
    or the shards of a compaction killed before it deleted them), a stale manifest, and temp files of killed
    saves in ``shards/``. Only our own names are touched. For writers holding the folder's lock; returns the
    names deleted."""
    removed: list[str] = []
    if not (d / INDEX_FILE).is_file():
        return removed  # shards mean nothing without their base: leave everything as it is
    base = Index.load(d / INDEX_FILE, mmap=True, verify=False)
    try:
        listed = {rel for rel, _, _ in _read_manifest(d, base)}
    except IndexFormatError:
        return removed  # a damaged manifest: leave everything for the user to look at
    mpath = d / MANIFEST_FILE
    if not listed and mpath.is_file() and not mpath.is_symlink():
        mpath.unlink()
        removed.append(MANIFEST_FILE)
    for p in sorted(d.glob(MANIFEST_FILE + ".*.tmp")):
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p.name)
    sd = d / SHARDS_DIR
    if sd.is_dir() and not sd.is_symlink():
        for p in sorted(sd.iterdir()):
            rel = f"{SHARDS_DIR}/{p.name}"
            ours = _SHARD_NAME.fullmatch(p.name) or (p.name.endswith(".tmp") and _SHARD_NAME.fullmatch(
                p.name.split(".segsearch.")[0] + ".segsearch"))
            if ours and rel not in listed and p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(rel)
        if not listed and not any(sd.iterdir()):
            sd.rmdir()
    return removed


def _merged(base: Index, states) -> Index:
    """An index with ``base``'s codebook holding the photos of ``states`` (shards' states), in order."""
    merged = empty_like(base)
    for st in states:
        merged._append(st.codes[:, : st.n].T, st.ids if st.ids is None or isinstance(st.ids, list)
                       else st.ids[: st.n], st.exact[: st.n] if merged.keep_exact else None,
                       st.exact_norms[: st.n] if merged.keep_exact else None)
    return merged


def _runs(counts: list[int], max_photos: int) -> list[list[int]]:
    """Consecutive shards grouped greedily into runs of at most ``max_photos`` photos (a larger shard alone)."""
    runs: list[list[int]] = []
    total = 0
    for i, n in enumerate(counts):
        if runs and total + n <= max_photos:
            runs[-1].append(i)
            total += n
        else:
            runs.append([i])
            total = n
    return runs


def compact(index_dir, *, max_photos: int | None = None) -> int:
    """Merge the index folder's shards; returns the number of shard files merged away (0: nothing to do).
    Searches give the same ids and distances before and after.

    By default everything goes into the base ``index.segsearch`` (see the module doc for why a crash at any
    point leaves a folder that opens with every photo once). With ``max_photos``, the base stays and only
    consecutive shards are merged, into shards of at most that many photos (a larger shard stays as it is): the
    folder keeps shards to spread over machines (:mod:`segsearch.ray_search`). The merged shards are written
    first, under new numbers, then the manifest listing them in the others' place (the commit point); the
    shards they replace are then deleted (a crash before that leaves them unlisted, deleted by the next writer)."""
    if max_photos is not None and (isinstance(max_photos, bool) or not isinstance(max_photos, int)
                                   or max_photos < 1):
        raise ValueError(f"max_photos must be a whole number >= 1; got {max_photos!r}")
    d = _folder(index_dir)
    fd = _lock(d)
    try:
        remove_unlisted(d)
        current = open_folder(d, mmap=True)
        if not isinstance(current, ShardedIndex):
            return 0
        if max_photos is None:
            _merged(current.base, current.shards).save(d / INDEX_FILE)  # the commit point: the manifest is stale
            remove_unlisted(d)
            return len(current.shards) - 1
        listed = [(rel, count) for rel, count, _ in _read_manifest(d, current.base)]
        runs = _runs([count for _, count in listed], max_photos)
        if len(runs) == len(listed):
            return 0
        fp = codebook_fingerprint(current.base)
        number = max(int(rel[len(SHARDS_DIR) + 1 : -len(".segsearch")]) for rel, _ in listed)
        if number + len(runs) > MAX_SHARD_NUMBER:
            raise ValueError(f"{d} has shard numbers up to {number}: run 'segsearch compact {d}' (without "
                             "--max-photos) first")
        out = []
        for run in runs:
            if len(run) == 1:
                out.append(listed[run[0]])
                continue
            part = _merged(current.base, [current.shards[i + 1] for i in run])
            number += 1
            rel = f"{SHARDS_DIR}/{number:06d}.segsearch"
            ids = part._state.ids
            _save_shard(d / rel, part, part._state, ids if isinstance(ids, list) else ids[: len(part)], fp)
            out.append((rel, len(part)))
        _write_manifest(d, current.base, fp, out)  # the commit point
        remove_unlisted(d)
        return len(listed) - len(out)
    finally:
        _unlock(fd)


def codes_at(index, positions) -> np.ndarray:
    """The codes uint8 (len(positions), C) of the photos at ``positions`` of an index or a sharded one (in this
    process or on Ray: anything with ``code_rows``)."""
    if hasattr(index, "code_rows"):
        return index.code_rows(positions)
    return np.asarray(index.codes[np.asarray(positions, np.int64)])
