"""An index folder's photos in several shards, searched as one index: :class:`ShardedIndex`, :func:`open_folder`.

The folder's layout and what is checked of it: :mod:`segsearch.engine.manifest`. Search is the one search path of
:mod:`segsearch.engine.search` with one part per shard: the lookup tables are built once from the base's codebook,
each shard's k nearest are found and merged exactly, so the ids and distances (ties included) are those one index
over all the photos gives. Writing shards (``--add``, compaction): :mod:`segsearch.library.shards`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ShardMissingError
from .checks import check_folder
from .class_shares import excluded
from .emphasis import cell_ids
from .index import Index
from .layout import INDEX_FILE, MANIFEST_FILE
from .manifest import check_unique_ids, load_shard, read_manifest
from .search import PartsView, Searchable, SearchPlan, part_filter, rerank_part, scan_part, split_candidates
from .snapshot import Snapshot, code_stats, positions_in

__all__ = ["ShardedIndex", "BaseCodebook", "UnionPositions", "open_folder", "codes_at"]


class UnionPositions:
    """id -> global position over shards (each shard's own map, plus its offset)."""

    def __init__(self, shards: list[Snapshot], offsets: list[int]):
        self._shards, self._offsets = shards, offsets

    def __contains__(self, i):
        return any(i in st.positions() for st in self._shards)

    def __getitem__(self, i):
        for st, off in zip(self._shards, self._offsets):
            m = st.positions()
            if i in m:
                return off + m[i]
        raise KeyError(i)


class BaseCodebook:
    """For an index made of shards: the codebook's properties (``num_classes``, ``codebook``, ``decode``, ...)
    are those of ``self.base``, the folder's ``index.segsearch``."""

    _DELEGATED = frozenset(
        {
            "num_classes",
            "size",
            "n_centroids",
            "class_names",
            "metadata",
            "keep_exact",
            "rerank",
            "ranking",
            "class_prior",
            "class_weights",
            "codebook",
            "codebook_u8",
            "decode",
            "dim",
            "is_trained",
            "lookup_table",
            "fixed_nbytes",
            "codebook_fingerprint",
        }
    )

    def __getattr__(self, name):
        if name in BaseCodebook._DELEGATED:
            return getattr(self.base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class ShardedIndex(Searchable, BaseCodebook):
    """The union of an index folder's shards, searched as one index (:func:`open_folder` opens it).

    Read-only; the photos are in insertion order: the base's, then each shard's as the manifest lists them.
    ``search`` takes the arguments of :meth:`Index.search` and returns the same ids and distances one index
    over all the photos would; codebook properties (``num_classes``, ``codebook``, ``decode``, ...) are the
    base's. ``shards`` holds each shard's photos (a :class:`~segsearch.engine.snapshot.Snapshot`: ``n``,
    ``codes`` (C, n), ``ids``, ...), ``offsets`` the global position of each shard's first photo."""

    def __init__(self, base: Index, shards: list[Snapshot], paths: list[Path | None]):
        self.base = base
        self.shards = [base.snapshot] + list(shards)
        self.paths = list(paths)
        self.offsets = np.concatenate([[0], np.cumsum([st.n for st in self.shards])]).astype(np.int64)
        counts = np.sum([st.counts for st in self.shards], axis=0)
        self._view = PartsView(int(self.offsets[-1]), *code_stats(counts))
        self._positions = UnionPositions(self.shards, self.offsets[:-1].tolist())

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return (
            f"ShardedIndex({len(self.shards)} shards, num_classes={self.num_classes}, size={self.size}, "
            f"n_centroids={self.n_centroids}, len={len(self)}, keep_exact={self.keep_exact}, "
            f"ranking={self.ranking.name!r})"
        )

    @property
    def string_ids(self) -> bool:
        """Whether the ids are strings (else integers)."""
        return any(isinstance(st.ids, list) for st in self.shards)

    @property
    def ids(self) -> np.ndarray:
        """All photos' ids in insertion order (a new array: int64 or str)."""
        parts = [st.all_ids() for st in self.shards]
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

    @property
    def has_class_shares(self) -> bool:
        """Whether every shard stores its photos' class shares (see :mod:`segsearch.engine.class_shares`)."""
        return all(st.shares is not None for st in self.shards)

    def excluded(self, rules) -> np.ndarray:
        """bool (N,): as :meth:`Index.excluded <segsearch.engine.index.Index.excluded>`, each shard judged by what it
        stores."""
        cb = self.base.codebook_arrays()["codebook"]
        return np.concatenate([excluded(st, rules, dim=self.dim, codebook=cb) for st in self.shards])

    def exact_photo(self, position: int) -> np.ndarray:
        """The exact maps uint8 (C, n * n) of the photo at global ``position`` (an index that keeps them)."""
        s = int(np.searchsorted(self.offsets, position, side="right") - 1)
        return self.shards[s].exact.dense(int(position - self.offsets[s]), self.num_classes, self.dim)

    def exact_cell_sums(self, positions, c: int) -> np.ndarray:
        """float64 (P, 16): as :meth:`Index.exact_cell_sums <segsearch.engine.index.Index.exact_cell_sums>`, at
        global ``positions``."""
        pos = np.asarray(positions, np.int64).reshape(-1)
        out = np.zeros((len(pos), 16))
        cells = cell_ids(self.size)
        for s, sel, local in self._split_positions(pos):
            out[sel] = self.shards[s].exact.cell_sums(local, c, self.dim, cells)
        return out

    def __contains__(self, id_) -> bool:
        try:
            return id_ in self._positions
        except TypeError:  # unhashable
            return False

    def positions(self, ids) -> np.ndarray:
        """Global insertion positions int64 of ``ids``; ValueError naming an id not in the index."""
        return positions_in(self._positions, ids)

    def _split_positions(self, pos: np.ndarray):
        """(shard, selector into pos, local positions) for each shard that global positions ``pos`` fall in."""
        which = np.searchsorted(self.offsets, pos, side="right") - 1
        for s in np.unique(which).tolist():
            sel = which == s
            yield s, sel, pos[sel] - self.offsets[s]

    # ------------------------------------------------------------------ search (see segsearch.engine.search)
    @property
    def _codebook_index(self) -> Index:
        return self.base

    def _search_view(self) -> PartsView:
        return self._view

    def _lookup(self, view: PartsView, ids):
        return self._positions

    def _scan_parts(self, view: PartsView, plan: SearchPlan, k: int, mask, pos, threads: int) -> list:
        """Every shard's :func:`~segsearch.engine.search.scan_part` result, with its offset, in this process."""
        parts = []
        for s, st in enumerate(self.shards):
            m, p = part_filter(self.offsets, s, mask, pos)
            parts.append(scan_part(st, plan, k, mask=m, positions=p, threads=threads) + (int(self.offsets[s]),))
        return parts

    def _rerank_parts(self, view: PartsView, plan: SearchPlan, candidates: list, k: int, threads: int) -> list:
        """Every shard's :func:`~segsearch.engine.search.rerank_part` of its share of the candidates."""
        parts = []
        for s, st in enumerate(self.shards):
            mine = split_candidates(int(self.offsets[s]), int(self.offsets[s + 1]), candidates)
            parts.append(rerank_part(st, plan, mine, k, threads=threads) + (int(self.offsets[s]),))
        return parts

    def _ids_at(self, view: PartsView, pos: np.ndarray) -> np.ndarray:
        out = np.empty(len(pos), object)
        for s, sel, local in self._split_positions(pos):
            out[sel] = list(self.shards[s].ids_at(local))
        if self.string_ids:
            return np.array(out.tolist(), dtype=str) if len(out) else np.zeros(0, dtype=str)
        return out.astype(np.int64)


def open_folder(index_dir, *, mmap: bool = True, verify: bool = True) -> Index | ShardedIndex:
    """The index of an index folder: an :class:`Index` when it has no shards (every folder made before shards
    existed), else a :class:`ShardedIndex` of the base and the shards its manifest lists. ``mmap`` and
    ``verify`` as in :meth:`Index.load` (``verify`` also checks that ids are unique over all shards).
    A damaged manifest or shard is an :class:`IndexFormatError` naming the file."""
    d = check_folder(index_dir)
    for attempt in range(2):
        base = Index.load(d / INDEX_FILE, mmap=mmap, verify=verify)
        listed = read_manifest(d, base)
        if not listed:
            return base
        try:
            shards = [load_shard(d, rel, count, base, fp, mmap=mmap, verify=verify) for rel, count, fp in listed]
        except ShardMissingError:
            if attempt:  # listed, still missing after reading the folder again: not a compaction under way
                raise
            continue  # a compaction may have replaced the base and deleted the shards meanwhile: read again
        union = ShardedIndex(base, [s for s, _ in shards], [d / INDEX_FILE] + [p for _, p in shards])
        if verify:
            check_unique_ids(union.shards, d / MANIFEST_FILE)
        return union
    raise AssertionError("unreachable")


def codes_at(index, positions) -> np.ndarray:
    """The codes uint8 (len(positions), C) of the photos at ``positions`` of an index or a sharded one (in this
    process or on Ray: anything with ``code_rows``)."""
    if hasattr(index, "code_rows"):
        return index.code_rows(positions)
    return np.asarray(index.codes[np.asarray(positions, np.int64)])
