"""The one search path of every index: plan -> per-part scan -> exact merge.

An :class:`~segsearch.engine.index.Index` is one part; a :class:`~segsearch.engine.sharded.ShardedIndex` has one
part per shard; a folder searched on Ray (:mod:`segsearch.distributed.search`) has one part per actor. All three
are :class:`Searchable`: :meth:`Searchable.search` checks the arguments, resolves the subset, builds the
:class:`SearchPlan` once (the lookup tables, from the codebook), asks :meth:`Searchable._scan_parts` for each
part's k nearest (the only step a kind of index does its own way) and merges them with :func:`merge_topk`.

The scan sums each photo's distance starting from the most common code of each class (``defaults``); the plan
carries the whole index's, so every part computes bit for bit the distances one index over all the photos
computes, and ties go to the earlier photo in insertion order, as in one index.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .. import _core
from .checks import as_numpy, check_count, check_eps, check_k, check_threads
from .emphasis import check_reads_exact_maps, emphasis_of
from .query import Query
from .snapshot import positions_in


@dataclass(frozen=True)
class SearchResult:
    """Results of one query, nearest first: ``ids`` (the images' ids) and squared-L2 ``distances``."""

    ids: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class SearchPlan:
    """A batch of queries made ready for :func:`scan_part`: the lookup tables (PQ; ``rerank``: how many of the whole
    index's nearest by PQ to re-rank by the exact maps, with :func:`rerank_part`), the resolved queries (exact search
    or re-ranking), the whole index's most common code per class (``defaults``, ``dense``) and the ranking's weights.
    Picklable: a plan is sent as it is to the processes that hold the parts."""

    exact: bool
    rerank: int
    n_queries: int
    luts: np.ndarray | None
    classes: list | None
    resolved: list | None
    defaults: np.ndarray
    dense: np.ndarray
    class_weights: np.ndarray | None
    photo_weight: float
    num_classes: int
    dim: int


@dataclass(frozen=True)
class PartsView:
    """What one search of an index in parts reads: the photos in all, and the whole's code statistics."""

    n: int
    defaults: np.ndarray
    dense: np.ndarray


@dataclass(frozen=True)
class SearchArgs:
    """:meth:`Searchable.search`'s arguments, checked: one query or a list, k, threads (0 = all), eps."""

    single: bool
    queries: list
    k: int
    threads: int
    eps: float


def check_search_args(query, k, threads, eps) -> SearchArgs:
    """The checks every search makes (ValueError for bad arguments)."""
    single = isinstance(query, Query)
    queries = [query] if single else list(query) if isinstance(query, (list, tuple)) else None
    if queries is None or not all(isinstance(q, Query) for q in queries):
        raise ValueError("query must be a segsearch.Query or a list of them (Query.image / sketch / image_and_sketch)")
    return SearchArgs(single, queries, check_k(k), check_threads(threads), check_eps(eps))


def make_plan(
    codebook,
    defaults: np.ndarray,
    dense: np.ndarray,
    queries: list[Query],
    *,
    exact: bool = False,
    rerank: int = 0,
    eps: float = 0.0,
    threads: int = 0,
    emphases: list | None = None,
) -> SearchPlan:
    """``queries`` made ready for :func:`scan_part` over parts whose whole's most common codes are ``defaults``
    / ``dense``: the lookup tables built once, from ``codebook``'s (an :class:`Index`), with the emphasis terms of
    the queries that emphasise a class (``emphases``: each query's :func:`~segsearch.engine.emphasis.emphasis_of`,
    made here if not given), and the resolved queries for an exact search or a re-rank of the whole index's
    ``rerank`` nearest by PQ."""
    resolved = [q.resolve(codebook.num_classes, codebook.size) for q in queries]
    luts = classes = None
    if (exact or rerank) and not codebook.keep_exact:
        what = "exact search" if exact else f"re-ranking (rerank={rerank})"
        raise ValueError(
            f"{what} needs the photos' exact maps, which this index does not keep: build it with keep_exact=True "
            "(segsearch index: the default), or search with rerank=0"
        )
    if exact:
        rerank = 0
    elif resolved:
        luts, classes = _core.build_luts(
            codebook.bound_codebook,
            [r[0] for r in resolved],
            [r[1] for r in resolved],
            [r[2] for r in resolved],
            eps,
            threads,
            codebook.class_weights,
            codebook.ranking.photo_weight,
        )
        if emphases is None:
            emphases = [emphasis_of(codebook, q) for q in queries]
        for lut, e in zip(luts, emphases):
            if e is not None:
                e.add_to_lut(codebook, lut)
    else:
        codebook.bound_codebook  # noqa: B018 (an untrained index says so even for an empty batch)
    return SearchPlan(
        bool(exact),
        int(rerank),
        len(resolved),
        luts,
        classes,
        resolved if exact or rerank else None,
        defaults,
        dense,
        codebook.class_weights,
        codebook.ranking.photo_weight,
        codebook.num_classes,
        codebook.dim,
    )


def scan_part(part, plan: SearchPlan, k: int, *, mask=None, positions=None, threads: int = 0):
    """One part's k nearest for each query of ``plan``: (positions int64 (nq, kk), distances float32 (nq, kk),
    counts int64 (nq,)), positions local to the part (a :class:`~segsearch.engine.snapshot.Snapshot`), row q's
    first counts[q] valid, nearest first, ties by position. ``mask`` (uint8, one per photo of the part) or
    ``positions`` (sorted local positions) restrict it."""
    # a mask is not counted (a pass over it, 10% of a sketch search): the core returns each query's valid count
    n_cand = len(positions) if positions is not None else part.n
    if n_cand == 0 or plan.n_queries == 0:
        nq = plan.n_queries
        return np.zeros((nq, 0), np.int64), np.zeros((nq, 0), np.float32), np.zeros(nq, np.int64)
    if plan.exact:
        return _core.search_blocks(
            *part.exact.arrays(), *_core_queries(plan), min(k, n_cand), mask=mask, ids=positions, threads=threads,
            **_weights(plan),
        )  # fmt: skip
    return _core.scan_pq(
        part.codes[:, : part.n],
        plan.defaults,
        plan.luts,
        plan.classes,
        min(k, n_cand),
        mask=mask,
        ids=positions,
        threads=threads,
        dense=plan.dense,
    )


def rerank_part(part, plan: SearchPlan, candidates: list, k: int, *, threads: int = 0):
    """One part's k nearest by exact distance among each query's ``candidates`` (per query the local positions,
    distinct, in this part), as :func:`scan_part` returns them."""
    nq = plan.n_queries
    R = max((len(c) for c in candidates), default=0)
    if R == 0:
        return np.zeros((nq, 0), np.int64), np.zeros((nq, 0), np.float32), np.zeros(nq, np.int64)
    cand = np.zeros((nq, R), np.int64)
    for q, c in enumerate(candidates):
        cand[q, : len(c)] = c
    counts = np.array([len(c) for c in candidates], np.int64)
    return _core.rerank_blocks(
        *part.exact.arrays(), *_core_queries(plan), cand, counts, min(k, R), threads=threads, **_weights(plan)
    )


def local_positions(pos: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Those of global positions ``pos`` in the part holding global positions lo to hi, as local positions."""
    return pos[(pos >= lo) & (pos < hi)] - lo


def split_candidates(lo: int, hi: int, candidates: list) -> list:
    """The share of each query's candidates (global positions) of the part holding global positions lo to hi,
    as local positions."""
    return [local_positions(c, lo, hi) for c in candidates]


def _core_queries(plan: SearchPlan) -> tuple:
    """(C, D, kinds, probs, labels): the plan's queries as the core's exact distances take them."""
    r = plan.resolved
    return plan.num_classes, plan.dim, [q[0] for q in r], [q[1] for q in r], [q[2] for q in r]


def _weights(plan: SearchPlan) -> dict:
    return {"class_weights": plan.class_weights, "photo_weight": plan.photo_weight}


def part_filter(offsets: np.ndarray, s: int, mask, pos):
    """Part ``s``'s share of a search's subset (:func:`resolve_subset` over the whole; part s holds the global
    positions ``offsets[s]`` to ``offsets[s + 1]``): (mask, positions), local to the part, each None when the
    search has no such restriction."""
    lo, hi = int(offsets[s]), int(offsets[s + 1])
    m = None if mask is None else np.ascontiguousarray(mask[lo:hi])
    p = None if pos is None else local_positions(pos, lo, hi)
    return m, p


def merge_topk(parts, k: int) -> list[tuple]:
    """Per query, the k smallest (distance, global position) pairs over ``parts``: each (positions (nq, kk),
    distances (nq, kk), counts (nq,), offset[, ids]), as :func:`scan_part` returns them plus the global position of
    the part's first photo (and, optionally, per query the ids at those positions). Returns per query (global
    positions int64, distances float32, ids or None). Exactly one index's top k, as each part's k nearest hold
    every photo of the whole's k nearest in that part."""
    nq = len(parts[0][2]) if parts else 0
    with_ids = bool(parts) and all(len(p) > 4 for p in parts)
    if len(parts) == 1 and not with_ids:  # one part: its list is sorted already (distance, then position)
        pos, dist, counts, offset = parts[0][:4]
        return [(pos[q, : counts[q]] + offset, dist[q, : counts[q]].copy(), None) for q in range(nq)]
    out = []
    for q in range(nq):
        pos = np.concatenate([p[0][q, : p[2][q]] + p[3] for p in parts]).astype(np.int64)
        dist = np.concatenate([p[1][q, : p[2][q]] for p in parts]).astype(np.float32)
        order = np.lexsort((pos, dist))[:k]
        ids = None
        if with_ids:
            every = [i for p in parts for i in p[4][q]]
            ids = [every[j] for j in order.tolist()]
        out.append((pos[order], dist[order], ids))
    return out


def resolve_subset(n: int, lookup, subset):
    """(mask uint8 (n,) or None, sorted positions int64 or None) of a search's ``subset`` over n photos; ``lookup``
    (called with the ids, once) gives id -> position. A bool array (or a list of bools) is a mask over the
    images in insertion order; anything else is a sequence of ids. An integer array or list of 0s and 1s as
    long as the index is refused as ambiguous: a 0/1 mask given as integers would be read as ids."""
    if subset is None:
        return None, None
    if isinstance(subset, (list, tuple)):
        seq = list(subset)
        is_bool = [isinstance(v, (bool, np.bool_)) for v in seq]
        if seq and all(is_bool):
            subset = np.asarray(seq, dtype=bool)
        elif any(is_bool):
            raise ValueError("subset mixes bools and ids: pass a bool mask with one entry per image, or ids")
    a = None if isinstance(subset, (list, tuple)) else as_numpy(subset, "subset")
    if a is not None and a.dtype == np.bool_:
        if a.shape != (n,):
            raise ValueError(f"a boolean subset mask must have shape ({n},); got {a.shape}")
        return np.ascontiguousarray(a).view(np.uint8), None  # a view: bool and uint8 are both one byte
    if n and _zeros_and_ones(subset if a is None else a, n):
        raise ValueError(
            f"subset is {n} integers, all 0 or 1: as long as the index, it reads as a mask but would be "
            "taken as ids. Pass a bool mask (e.g. np.asarray(subset, bool)) to select by position, or the ids "
            "without repeats (subset=None for all images)"
        )
    seq = list(subset) if a is None else a.reshape(-1).tolist()
    try:
        p = positions_in(lookup(seq), seq)
    except ValueError as e:
        raise ValueError(f"subset: {e}") from None
    return None, np.unique(p)


def _zeros_and_ones(seq, n: int) -> bool:
    """Whether ``seq`` (an array or a list) is n integers (not bools), each 0 or 1."""
    if isinstance(seq, np.ndarray):
        return seq.dtype.kind in "iu" and seq.shape == (n,) and bool(((seq == 0) | (seq == 1)).all())
    return len(seq) == n and all(
        isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and v in (0, 1) for v in seq
    )


class Searchable:
    """The search every kind of index shares. By default the index is one part, ``self.snapshot`` (an
    :class:`~segsearch.engine.index.Index`); an index in parts overrides:

    * ``_search_view()``: what one search reads, taken once (so concurrent adds are seen whole or not at all):
      an object with ``n`` (photos), ``defaults`` / ``dense`` (the whole's code statistics) and whatever its
      ``_scan_parts`` and ``_ids_at`` need;
    * ``_codebook_index``: the :class:`~segsearch.engine.index.Index` whose codebook builds the lookup tables;
    * ``_lookup(view, ids)``: id -> position for those ``ids`` (for subsets);
    * ``_scan_parts(view, plan, k, mask, positions, threads)``: each part's :func:`scan_part` result with its
      offset (and ids, if the part has them at hand), for :func:`merge_topk`;
    * ``_rerank_parts(view, plan, candidates, k, threads)``: the same for a re-rank (:func:`rerank_part`) of the
      candidates, per query global positions (the whole index's ``rerank`` nearest by the codes);
    * ``_ids_at(view, positions)``: the ids at global positions (for parts that returned none).
    """

    @property
    def _codebook_index(self):
        return self

    def _search_view(self):
        return self.snapshot  # one snapshot for the whole search, whatever adds meanwhile

    def _lookup(self, view, ids):
        return view.positions()

    def _scan_parts(self, view, plan: SearchPlan, k: int, mask, pos, threads: int) -> list:
        return [scan_part(view, plan, k, mask=mask, positions=pos, threads=threads) + (0,)]

    def _rerank_parts(self, view, plan: SearchPlan, candidates: list, k: int, threads: int) -> list:
        return [rerank_part(view, plan, candidates, k, threads=threads) + (0,)]

    def _ids_at(self, view, pos: np.ndarray) -> np.ndarray:
        return view.ids_at(pos)

    def position_map(self, ids) -> dict:
        """{id: position in the index} for those of ``ids`` it holds (the others are left out)."""
        held = [i for i in ids if i in self]
        return dict(zip(held, self.positions(held).tolist())) if held else {}

    def search(
        self,
        query,
        k: int = 10,
        *,
        exact: bool = False,
        rerank: int | None = None,
        subset=None,
        threads: int | None = None,
        eps: float | None = None,
    ):
        """Find the k nearest images. ``query``: a :class:`Query` or a list of them (one result per query).

        ``exact=True`` compares the query with every photo's exact maps (needs ``keep_exact=True``). Otherwise the
        PQ codes are scanned, and the ``rerank`` nearest by PQ (default: the index's :attr:`rerank`; 0: none) are
        re-ranked by the exact maps: the distances returned are then exact, and when ``rerank`` is at least the
        number of photos the results are those of ``exact=True``.
        ``subset``: a boolean mask over the images (insertion order) or a sequence of ids to restrict to (an
        integer array of 0s and 1s as long as the index is ambiguous, a ValueError: pass masks as bool).
        ``threads``: worker threads, an integer >= 1 (default: all cores); counts above the number of CPUs this
        process may use are clamped to it. ``eps``: image-query sparsity cut
        (default :data:`~segsearch.engine.checks.DEFAULT_EPS`; 0 = exact LUTs). Results are sorted by ascending
        distance; k larger than the number of candidates returns them all.
        """
        args = check_search_args(query, k, threads, eps)
        rerank = self.rerank if rerank is None else check_count(rerank, "rerank", 0)
        view = self._search_view()
        mask, pos = resolve_subset(view.n, lambda ids: self._lookup(view, ids), subset)
        emphases = [emphasis_of(self._codebook_index, q) for q in args.queries]
        emphasised = any(e is not None for e in emphases)
        if emphasised and (exact or rerank):
            check_reads_exact_maps(self)
        plan = make_plan(
            self._codebook_index,
            view.defaults,
            view.dense,
            args.queries,
            exact=exact,
            rerank=rerank,
            eps=args.eps,
            threads=args.threads,
            emphases=emphases,
        )
        if not args.queries:
            return []
        keep = args.k
        if plan.exact and emphasised:  # every photo's exact distance, then the emphasis terms (below)
            every = np.flatnonzero(mask) if mask is not None else pos if pos is not None else np.arange(view.n)
            keep = len(every)
            parts = self._rerank_parts(view, plan, [every] * plan.n_queries, keep, args.threads)
        elif plan.rerank:  # the whole index's rerank nearest by the codes, then their k nearest by the exact maps
            wide = max(args.k, plan.rerank)
            cand = [p for p, _, _ in merge_topk(self._scan_parts(view, plan, wide, mask, pos, args.threads), wide)]
            keep = wide if emphasised else args.k  # with emphasis: every candidate, for the terms (below)
            parts = self._rerank_parts(view, plan, cand, keep, args.threads)
        else:
            parts = self._scan_parts(view, plan, args.k, mask, pos, args.threads)
        merged = merge_topk(parts, keep)
        if emphasised and (plan.exact or plan.rerank):
            merged = [self._emphasised(e, p, d, ids, args.k) for e, (p, d, ids) in zip(emphases, merged)]
        out = [SearchResult(self._ids_at(view, p) if ids is None else self._ids_array(ids), d) for p, d, ids in merged]
        return out[0] if args.single else out

    def _emphasised(self, emphasis, pos: np.ndarray, dist: np.ndarray, ids, k: int) -> tuple:
        """The k nearest of exact distances ``dist`` of the photos at global positions ``pos`` (with their ``ids``
        or None) once ``emphasis``'s terms (from the exact maps; None: no emphasis) are added: (positions,
        distances float32, ids or None), by distance then position."""
        if emphasis is not None:
            total = emphasis.exact_terms(self, pos).sum(axis=0)
            dist = (dist.astype(np.float64) + total).astype(np.float32)
            order = np.lexsort((pos, dist))
            pos, dist = pos[order], dist[order]
            ids = None if ids is None else [ids[j] for j in order.tolist()]
        return pos[:k], dist[:k], None if ids is None else ids[:k]

    def _ids_array(self, ids: list) -> np.ndarray:
        return np.array(ids, dtype=str) if self.string_ids else np.array(ids, dtype=np.int64)
