"""Search an index folder on Ray: its shards spread over actors that memory-map them, each batch of queries
fanned out in one round trip, the per-shard top k merged exactly.

>>> index = open_on_ray("my-index", "local")          # or PhotoIndex.open("my-index", ray="local")
>>> index.search(query, k=10)                          # the same ids and distances as open_folder("my-index")

The driver (this process) reads only the manifest and the base file (``index.segsearch``: the codebook, from
which it builds each batch's lookup tables once, :func:`~segsearch.engine.search.make_plan`). Everything per photo
stays with the actors: each opens some shards (balanced by photo count, spread over the nodes), verifies them,
and answers for them: the k nearest (:func:`~segsearch.engine.search.scan_part`, merged over its shards, with their
ids), which ids it holds and where, their codes. The driver merges the actors' lists by (distance, global
position), so a search returns bit for bit what one index over all the photos returns (ties by insertion
order), and its memory does not grow with the number of photos in the shards.

Faults: an actor whose process dies is restarted by Ray (it maps its shards again) and the call is retried;
an actor that cannot be restarted, or a shard it cannot open (moved, deleted, not on that node's path, damaged),
is an error naming the shard. The folder must be on a path every node reads (see :mod:`segsearch.distributed.cluster`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..engine.checks import check_folder, check_optional_count
from ..engine.index import Index
from ..engine.layout import INDEX_FILE
from ..engine.manifest import load_shard, read_manifest, shard_expectation
from ..engine.search import (
    PartsView,
    Searchable,
    SearchPlan,
    merge_topk,
    part_filter,
    rerank_part,
    scan_part,
    split_candidates,
)
from ..engine.sharded import BaseCodebook
from ..engine.snapshot import code_stats, positions_in
from ..errors import IndexFormatError, SegsearchError
from .cluster import actor_died_errors, cluster_resources, connect, first_line, get, kill_all

__all__ = ["RayShardedIndex", "open_on_ray"]

#: Ray restarts a dead actor this many times, and retries a call on it this many times.
MAX_RESTARTS = 3
#: Seconds to wait for the actors to open their shards (the cluster may have to start workers first).
READY_TIMEOUT_S = 600


class ShardScanner:
    """One actor's part of the folder: some of its shards, memory-mapped (``entries``: (shard number, file
    relative to the folder or None for ``index.segsearch``, photo count, global offset)). Each is checked
    against what the driver opened (``expect``: :func:`shard_expectation`, ``fp``: the codebook's sha256)."""

    def __init__(self, index_dir: str, entries: list[tuple], expect: tuple, fp: str, verify: bool):
        self.states, self.offsets, self.error = {}, {}, None
        d = Path(index_dir)
        try:
            for s, rel, count, offset in entries:
                if rel is None:
                    base = Index.load(d / INDEX_FILE, mmap=True, verify=verify)
                    if len(base) != count or shard_expectation(base) != expect or base.codebook_fingerprint() != fp:
                        raise IndexFormatError(
                            f"{d / INDEX_FILE} changed after the search opened the folder; open it again"
                        )
                    st = base.snapshot
                else:
                    st, _ = load_shard(d, rel, count, expect, fp, verify=verify)
                self.states[s], self.offsets[s] = st, offset
        except (OSError, ValueError) as e:  # kept for ready() / the calls to report (not an actor-creation error)
            self.error = e

    def _ok(self) -> None:
        if self.error is not None:
            raise self.error

    def ready(self):
        """(None, {shard: (code counts (C, K), ids are strings)}), or (the error that stopped a shard, None)."""
        if self.error is not None:
            return self.error, None
        return None, {s: (np.asarray(st.counts), isinstance(st.ids, list)) for s, st in self.states.items()}

    def scan(self, plan: SearchPlan, k: int, filters: dict, threads: int):
        """This actor's part of a search: its shards' :func:`~segsearch.engine.search.scan_part` results merged,
        as one part for :func:`~segsearch.engine.search.merge_topk`: (global positions (nq, kk), distances
        (nq, kk), counts (nq,), offset 0, per query the ids)."""
        self._ok()
        parts = []
        for s, st in self.states.items():
            m, p = filters.get(s, (None, None))
            parts.append(scan_part(st, plan, k, mask=m, positions=p, threads=threads) + (self.offsets[s],))
        return self._one_part(parts, k)

    def rerank(self, plan: SearchPlan, k: int, candidates: list, threads: int):
        """This actor's part of a re-rank: its shards' :func:`~segsearch.engine.search.rerank_part` of their share
        of the ``candidates`` (per query global positions), merged as one part (as :meth:`scan`)."""
        self._ok()
        parts = []
        for s, st in self.states.items():
            mine = split_candidates(self.offsets[s], self.offsets[s] + st.n, candidates)
            parts.append(rerank_part(st, plan, mine, k, threads=threads) + (self.offsets[s],))
        return self._one_part(parts, k)

    def _one_part(self, parts: list, k: int):
        merged = merge_topk(parts, k)
        kk = max([len(p) for p, _, _ in merged], default=0)
        pos = np.zeros((len(merged), kk), np.int64)
        dist = np.zeros((len(merged), kk), np.float32)
        for q, (p, d, _) in enumerate(merged):
            pos[q, : len(p)], dist[q, : len(d)] = p, d
        counts = np.array([len(p) for p, _, _ in merged], np.int64)
        return pos, dist, counts, 0, [self._ids(p) for p, _, _ in merged]

    def _ids(self, pos: np.ndarray) -> list:
        """The ids at global positions ``pos`` (all in this actor's shards)."""
        out = []
        for g in pos.tolist():
            s = max((s for s in self.states if self.offsets[s] <= g), key=lambda s: self.offsets[s])
            out.append(self.states[s].ids_at(np.array([g - self.offsets[s]], np.int64))[0].item())
        return out

    def positions(self, ids: list) -> dict:
        """{id: global position} for the ``ids`` this actor's shards hold."""
        self._ok()
        out = {}
        for s, st in self.states.items():
            where = st.positions()
            for i in ids:
                try:
                    if i in where:
                        out[i] = self.offsets[s] + where[i]
                except TypeError:  # an unhashable id is in no shard
                    pass
        return out

    def ids(self, s: int) -> np.ndarray:
        """Every id of shard ``s`` in insertion order."""
        self._ok()
        return self.states[s].all_ids()

    def id_parts(self, n: int) -> list[list]:
        """This actor's ids split into ``n`` lists by a stable hash of their text (for :meth:`first_repeat` on
        the actor that owns each part: the folder's ids checked for repeats without gathering them anywhere)."""
        self._ok()
        parts: list[list] = [[] for _ in range(n)]
        for st in self.states.values():
            for i in st.all_ids().tolist():
                parts[zlib.crc32(str(i).encode("utf-8", "surrogatepass")) % n].append(i)
        return parts

    @staticmethod
    def first_repeat(*parts):
        """An id found more than once in ``parts`` (lists of ids), or None."""
        seen: set = set()
        for part in parts:
            for i in part:
                if i in seen:
                    return i
                seen.add(i)
        return None

    def own_repeat(self):
        """An id this actor's shards hold more than once, or None."""
        return self.first_repeat(*self.id_parts(1))

    def code_rows(self, wanted: dict) -> dict:
        """{shard: codes uint8 (len(local positions), C)} for {shard: local positions}."""
        self._ok()
        return {s: np.ascontiguousarray(self.states[s].codes[:, pos].T) for s, pos in wanted.items()}


def _assign(counts: list[int], n_actors: int) -> list[list[int]]:
    """Shard numbers per actor, balanced by photo count (largest shard first onto the least loaded actor)."""
    load, out = [0] * n_actors, [[] for _ in range(n_actors)]
    for s in sorted(range(len(counts)), key=lambda s: (-counts[s], s)):
        a = min(range(n_actors), key=lambda a: (load[a], a))
        out[a].append(s)
        load[a] += counts[s]
    return [sorted(a) for a in out if a]


class RayShardedIndex(Searchable, BaseCodebook):
    """An index folder searched by Ray actors (:func:`open_on_ray` opens one): the same results as
    :func:`~segsearch.engine.sharded.open_folder`'s index, whose read API it has (``search``, ``len``, ``in``,
    ``positions``, ``ids``, ``code_rows``; codebook properties such as ``num_classes``, ``decode``, ``metadata``
    are the base file's, read here).

    ``actors`` holds the actor handles and ``assignment`` the shard numbers (0: ``index.segsearch``, then the
    manifest's order) each one holds; ``counts`` / ``offsets`` the photos of each shard and the global position
    of its first. A search's ``threads`` are each actor's (default: the cluster's CPUs shared among the actors).
    The actors reserve no CPU while idle, so several indexes can be open at once; ``close()`` (or a ``with``
    block) stops them, as does dropping the object.
    """

    def __init__(self, index_dir, *, actors: int | None = None, verify: bool = True):
        import ray

        d = check_folder(index_dir)
        self.index_dir = d
        # the codebook (for the lookup tables) checked here; the actor holding index.segsearch checks the rest
        self.base = Index.load(d / INDEX_FILE, mmap=True, verify="codebook" if verify else False)
        listed = read_manifest(d, self.base)
        rels = [None] + [rel for rel, _, _ in listed]
        self.counts = [len(self.base)] + [count for _, count, _ in listed]
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.paths = [d / INDEX_FILE] + [d / rel for rel in rels[1:]]
        cpus, _ = cluster_resources(ray)
        n = check_optional_count(actors, "actors") or max(1, min(len(self.counts), cpus))
        self.assignment = _assign(self.counts, n)  # at most one actor per shard
        self.threads = max(1, cpus // len(self.assignment))
        fp = self.base.codebook_fingerprint()  # computed once: read_manifest hashed it already
        expect = shard_expectation(self.base)
        remote = ray.remote(ShardScanner).options(
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS, scheduling_strategy="SPREAD"
        )
        self.actors = [
            remote.remote(
                str(d.resolve()),
                [(s, rels[s], self.counts[s], int(self.offsets[s])) for s in shards],
                expect,
                fp,
                verify,
            )
            for shards in self.assignment
        ]
        answers = self._get([a.ready.remote() for a in self.actors], timeout=READY_TIMEOUT_S, what="open their shards")
        held: dict = {}
        for err, got in answers:
            if err is not None:
                self.close()
                raise err
            held.update(got)
        kinds = {is_str for s, (_, is_str) in held.items() if self.counts[s]}
        if len(kinds) > 1:
            self.close()
            raise IndexFormatError(f"{d}: its shards mix string and integer ids")
        self.string_ids = kinds == {True}
        if verify:
            self._check_unique_ids()
        self._view = PartsView(len(self), *code_stats(np.sum([held[s][0] for s in range(len(self.counts))], axis=0)))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __repr__(self) -> str:
        return (
            f"RayShardedIndex({self.index_dir}: {len(self.counts)} shards, {len(self)} photos, "
            f"num_classes={self.num_classes}, n_centroids={self.n_centroids}, ranking={self.ranking.name!r}, "
            f"actors={len(self.actors)})"
        )

    def __enter__(self) -> RayShardedIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def shard_names(self, shards) -> str:
        return ", ".join(str(self.paths[s].relative_to(self.index_dir)) for s in shards)

    # ------------------------------------------------------------------ calls to the actors
    def _get(self, refs, *, timeout=None, what="answer"):
        """ray.get, with a dead actor (not restarted) or a time-out said as which shards are missing, and our
        own errors raised in an actor re-raised as they are."""
        import ray

        try:
            return get(ray, refs, timeout=timeout, what=what)
        except actor_died_errors(ray) as e:
            dead = [i for i, a in enumerate(self.actors) if not _alive(ray, a)] or range(len(self.actors))
            names = self.shard_names([s for i in dead for s in self.assignment[i]])
            raise SegsearchError(
                f"a Ray actor holding the shards {names} of {self.index_dir} died and was not "
                f"restarted ({first_line(e)}); those shards are missing from the search. Check "
                "the cluster (ray status) and open the index again"
            ) from None

    def _check_unique_ids(self) -> None:
        """IndexFormatError if an id is in more than one shard (each shard's own are checked as it is opened):
        every actor splits its ids by hash and each checks one part of everyone's, so no process holds them all."""
        n = len(self.actors)
        if n == 1:
            checks = [self.actors[0].own_repeat.remote()]
        else:
            parts = [a.id_parts.options(num_returns=n).remote(n) for a in self.actors]
            checks = [a.first_repeat.remote(*[parts[i][j] for i in range(n)]) for j, a in enumerate(self.actors)]
        for dup in self._get(checks, timeout=READY_TIMEOUT_S, what="check the ids"):
            if dup is not None:
                self.close()
                raise IndexFormatError(
                    f"{self.index_dir}: the id {str(dup)[:100]!r} is in more than one shard; ids must be unique"
                )

    def _all(self, method: str, *args) -> list:
        if not self.actors:
            raise SegsearchError(f"this Ray search of {self.index_dir} was closed; open the index again")
        return self._get([getattr(a, method).remote(*args) for a in self.actors])

    def position_map(self, ids) -> dict:
        """{id: global position} for those of ``ids`` in the folder (one round trip to the actors)."""
        return self._found(_hashable(list(ids)))

    def _found(self, ids: list) -> dict:
        """{id: global position} for those of ``ids`` (hashable) in the folder (one round trip)."""
        found: dict = {}
        for part in self._all("positions", ids):
            for i, g in part.items():
                found.setdefault(i, g)
        return found

    # ------------------------------------------------------------------ the read API
    def __contains__(self, id_) -> bool:
        try:
            hash(id_)
        except TypeError:
            return False
        return bool(self._found([id_]))

    def positions(self, ids) -> np.ndarray:
        """Global insertion positions int64 of ``ids``; ValueError naming an id not in the index."""
        seq = list(ids) if isinstance(ids, (list, tuple)) else np.asarray(ids).reshape(-1).tolist()
        return positions_in(self._found(_hashable(seq)), seq)

    @property
    def ids(self) -> np.ndarray:
        """All photos' ids in insertion order (gathered from the actors: a new array, int64 or str)."""
        parts = {}
        for shards, actor in zip(self.assignment, self.actors):
            for s, ids in zip(shards, self._get([actor.ids.remote(s) for s in shards])):
                parts[s] = ids
        out = np.concatenate([parts[s] for s in range(len(self.counts))])
        return out if self.string_ids else out.astype(np.int64)

    def code_rows(self, positions) -> np.ndarray:
        """The codes uint8 (len(positions), C) of the photos at global ``positions``."""
        pos = np.asarray(positions, np.int64).reshape(-1)
        if ((pos < 0) | (pos >= len(self))).any():
            raise ValueError(f"positions must be in 0..{len(self) - 1}")
        which = np.searchsorted(self.offsets, pos, side="right") - 1
        out = np.empty((len(pos), self.num_classes), np.uint8)
        refs = []
        for shards, actor in zip(self.assignment, self.actors):
            w = {s: pos[which == s] - self.offsets[s] for s in shards if (which == s).any()}
            if w:
                refs.append(actor.code_rows.remote(w))
        for got in self._get(refs):
            for s, rows in got.items():
                out[which == s] = rows
        return out

    # ------------------------------------------------------------------ search (see segsearch.engine.search)
    @property
    def _codebook_index(self) -> Index:
        return self.base

    def _search_view(self) -> PartsView:
        return self._view

    def _lookup(self, view: PartsView, ids: list) -> dict:
        return self._found(_hashable(ids))  # one round trip for all of them

    def _scan_parts(self, view: PartsView, plan: SearchPlan, k: int, mask, pos, threads: int) -> list:
        """One part per actor: each scans its shards (one call per actor for the whole batch)."""
        import ray

        if not self.actors:
            raise SegsearchError(f"this Ray search of {self.index_dir} was closed; open the index again")
        plan_ref = ray.put(plan)  # sent once to each node, not once per actor
        refs = []
        for shards, actor in zip(self.assignment, self.actors):
            filters = (
                {} if mask is None and pos is None else {s: part_filter(self.offsets, s, mask, pos) for s in shards}
            )
            refs.append(actor.scan.remote(plan_ref, k, filters, threads or self.threads))
        return self._get(refs)

    def _rerank_parts(self, view: PartsView, plan: SearchPlan, candidates: list, k: int, threads: int) -> list:
        """One part per actor, each re-ranking the candidates in its shards (a second round trip)."""
        import ray

        plan_ref, cand_ref = ray.put(plan), ray.put(candidates)
        return self._get([a.rerank.remote(plan_ref, k, cand_ref, threads or self.threads) for a in self.actors])

    def _ids_at(self, view: PartsView, pos: np.ndarray) -> np.ndarray:
        raise AssertionError("the actors return the ids with their parts")

    def close(self) -> None:
        """Stop the actors."""
        import ray

        kill_all(ray, getattr(self, "actors", []))
        self.actors = []


def _hashable(seq: list) -> list:
    """The ids worth looking up (bools and unhashable values are in no index)."""
    out = []
    for i in seq:
        try:
            hash(i)
        except TypeError:
            continue
        if not isinstance(i, (bool, np.bool_)):
            out.append(i)
    return out


def _alive(ray, actor) -> bool:
    try:
        ray.get(actor.ready.remote(), timeout=30)
        return True
    except Exception:
        return False


def open_on_ray(
    index_dir, address: str = "local", *, actors: int | None = None, verify: bool = True, **init_kwargs
) -> RayShardedIndex:
    """Open an index folder (any: with or without shards) for search on Ray at ``address`` (``"local"``,
    ``"auto"``, ``"HOST:PORT"``, ``"ray://..."``, see :mod:`segsearch.distributed.cluster`). ``actors``: how many
    (default: one per shard, at most one per CPU of the cluster). ``init_kwargs`` go to ``ray.init`` for a
    local instance (ignored when this process is connected already). ``verify``: the actors check every
    shard's checksums and contents (:meth:`Index.load`). Raises what :func:`~segsearch.engine.sharded.open_folder`
    raises for a damaged folder, and SegsearchError when the actors cannot open the shards."""
    connect(address, **init_kwargs)
    return RayShardedIndex(index_dir, actors=actors, verify=verify)
