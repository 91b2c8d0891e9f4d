"""Search an index folder on Ray: its shards spread over actors that memory-map them, each batch of queries
fanned out in one round trip, the per-shard top k merged exactly.

>>> index = open_on_ray("my-index", "local")          # or PhotoIndex.open("my-index", ray="local")
>>> index.search(query, k=10)                          # the same ids and distances as open_folder("my-index")

The driver (this process) opens the folder itself, memory-mapped, for what is cheap: the manifest, the ids
and the codebook, from which it builds each batch's lookup tables once (:meth:`ShardedIndex.plan`). The codes
are scanned only by the actors: each holds some shards (balanced by photo count, spread over the nodes),
finds their k nearest with :func:`~segsearch.shards.scan_shard` and merges them; the driver merges the
actors' lists with :func:`~segsearch.shards.merge_topk`, by (distance, global position), so the result is
bit for bit that of one index over all the photos (ties by insertion order).

Faults: an actor whose process dies is restarted by Ray (it maps its shards again) and the call is retried;
an actor that cannot be restarted, or a shard it cannot open (moved, deleted, not on that node's path, damaged),
is an error naming the shard. The folder must be on a path every node reads (see :mod:`segsearch.ray_cluster`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import IndexFormatError, SegsearchError
from .index import Index
from .index_folder import INDEX_FILE
from .ray_cluster import actor_died_errors, cluster_resources, connect
from .shards import (SearchPlan, ShardedIndex, _load_shard, codebook_fingerprint, merge_topk, open_folder,
                     scan_shard, shard_expectation)

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
                    if len(base) != count or shard_expectation(base) != expect or codebook_fingerprint(base) != fp:
                        raise IndexFormatError(f"{d / INDEX_FILE} changed after the search opened the folder; open "
                                               "it again")
                    st = base._state
                else:
                    st, _ = _load_shard(d, rel, count, expect, fp, True, verify)
                self.states[s], self.offsets[s] = st, offset
        except (OSError, ValueError) as e:  # kept for ready() / scan() to report (not a Ray actor-creation error)
            self.error = e

    def ready(self):
        """None when every shard is open, else the error that stopped one (an IndexFormatError naming it)."""
        return self.error

    def scan(self, plan: SearchPlan, k: int, filters: dict, threads: int):
        """This actor's k nearest for each query: (global positions int64 (nq, kk), distances float32, counts)."""
        if self.error is not None:
            raise self.error
        parts, offsets = [], []
        for s, st in self.states.items():
            m, p = filters.get(s, (None, None))
            parts.append(scan_shard(st, plan, k, mask=m, positions=p, threads=threads))
            offsets.append(self.offsets[s])
        return _pack(merge_topk(parts, offsets, k), plan.n_queries)


def _pack(merged, n_queries: int):
    """merge_topk's [(positions, distances)] per query as scan_shard's (positions, distances, counts) arrays."""
    kk = max((len(p) for p, _ in merged), default=0)
    pos = np.zeros((n_queries, kk), np.int64)
    dist = np.zeros((n_queries, kk), np.float32)
    counts = np.zeros(n_queries, np.int64)
    for q, (p, d) in enumerate(merged):
        pos[q, : len(p)], dist[q, : len(p)], counts[q] = p, d, len(p)
    return pos, dist, counts


def _assign(counts: list[int], n_actors: int) -> list[list[int]]:
    """Shard numbers per actor, balanced by photo count (largest shard first onto the least loaded actor)."""
    load, out = [0] * n_actors, [[] for _ in range(n_actors)]
    for s in sorted(range(len(counts)), key=lambda s: (-counts[s], s)):
        a = min(range(n_actors), key=lambda a: (load[a], a))
        out[a].append(s)
        load[a] += counts[s]
    return [sorted(a) for a in out if a]


class RayShardedIndex(ShardedIndex):
    """A :class:`ShardedIndex` whose shards are scanned by Ray actors (:func:`open_on_ray` opens one).

    ``search`` takes :meth:`Index.search`'s arguments and returns the same ids and distances; everything else
    (ids, positions, codebook, decode) is answered by this process from its memory-mapped copy. ``actors``
    holds the actor handles and ``assignment`` the shard numbers (0: ``index.segsearch``) each one holds.
    A search's ``threads`` are each actor's (default: the cluster's CPUs shared among the actors). The actors
    reserve no CPU while idle, so several indexes can be open at once; ``close()`` (or a ``with`` block) stops
    them.
    """

    def __init__(self, union: ShardedIndex, index_dir, *, actors: int | None = None, verify: bool = True):
        ShardedIndex.__init__(self, union.base, union.shards[1:], union.paths)
        import ray

        self.index_dir = Path(index_dir)
        d = self.index_dir.resolve()
        counts = [st.n for st in self.shards]
        cpus, _ = cluster_resources(ray)
        n = actors if actors is not None else max(1, min(len(counts), cpus))
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"actors must be a whole number >= 1; got {actors!r}")
        self.assignment = _assign(counts, n)  # at most one actor per shard
        self.threads = max(1, cpus // len(self.assignment))
        rels = [None] + [str(p.relative_to(self.paths[0].parent)) for p in self.paths[1:]]
        expect, fp = shard_expectation(self.base), codebook_fingerprint(self.base)
        remote = ray.remote(ShardScanner).options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS,
                                                  scheduling_strategy="SPREAD")
        self.actors = [remote.remote(str(d), [(s, rels[s], counts[s], int(self.offsets[s])) for s in shards],
                                     expect, fp, verify) for shards in self.assignment]
        errors = self._get([a.ready.remote() for a in self.actors], timeout=READY_TIMEOUT_S,
                           what="open their shards")
        for err in errors:
            if err is not None:
                self.close()
                raise err

    def __repr__(self) -> str:
        return "Ray" + super().__repr__()[:-1] + f", actors={len(self.actors)})"

    def __enter__(self) -> "RayShardedIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def shard_names(self, shards) -> str:
        return ", ".join(str(self.paths[s].relative_to(self.paths[0].parent)) for s in shards)

    def _get(self, refs, *, timeout=None, what="answer"):
        """ray.get, with a dead actor (not restarted) or a time-out said as which shards are missing."""
        import ray

        try:
            return ray.get(refs, timeout=timeout)
        except actor_died_errors(ray) as e:
            dead = [i for i, a in enumerate(self.actors) if not _alive(ray, a)] or range(len(self.actors))
            names = self.shard_names([s for i in dead for s in self.assignment[i]])
            raise SegsearchError(f"a Ray actor holding the shards {names} of {self.index_dir} died and was not "
                                 f"restarted ({_first_line(e)}); those shards are missing from the search. Check "
                                 "the cluster (ray status) and open the index again") from None
        except ray.exceptions.GetTimeoutError:
            raise SegsearchError(f"the Ray actors did not {what} within {timeout} s; the cluster may lack "
                                 "resources (ray status)") from None
        except ray.exceptions.RayTaskError as e:  # our own exception, raised in the actor: re-raise it as is
            cause = getattr(e, "cause", None)
            raise (cause if isinstance(cause, Exception) else SegsearchError(_first_line(e))) from None

    def _scan_parts(self, plan: SearchPlan, k: int, mask, pos, threads: int):
        import ray

        if not self.actors:
            raise SegsearchError(f"this Ray search of {self.index_dir} was closed; open the index again")
        threads = threads or self.threads
        plan_ref = ray.put(plan)  # sent once to each node, not once per actor
        refs = []
        for shards, actor in zip(self.assignment, self.actors):
            filters = {} if mask is None and pos is None else {s: self.shard_filter(s, mask, pos) for s in shards}
            refs.append(actor.scan.remote(plan_ref, k, filters, threads))
        parts = self._get(refs)
        return parts, np.zeros(len(parts), np.int64)  # the actors return global positions

    def close(self) -> None:
        """Stop the actors (they also stop once this object is gone)."""
        import ray

        for a in getattr(self, "actors", []):
            try:
                ray.kill(a)
            except Exception:  # already gone
                pass
        self.actors = []


def _alive(ray, actor) -> bool:
    try:
        ray.get(actor.ready.remote(), timeout=30)
        return True
    except Exception:
        return False


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(e).__name__


def open_on_ray(index_dir, address: str = "local", *, actors: int | None = None, verify: bool = True,
                **init_kwargs) -> RayShardedIndex:
    """Open an index folder (any: with or without shards) for search on Ray at ``address`` (``"local"``,
    ``"auto"``, ``"HOST:PORT"``, ``"ray://..."``, see :mod:`segsearch.ray_cluster`). ``actors``: how many
    (default: one per shard, at most one per CPU of the cluster). ``init_kwargs`` go to ``ray.init`` for a
    local instance (ignored when this process is connected already). Raises what :func:`open_folder` raises, and
    SegsearchError when actors cannot open the shards."""
    connect(address, **init_kwargs)
    union = open_folder(index_dir, mmap=True, verify=verify)
    if not isinstance(union, ShardedIndex):
        union = ShardedIndex(union, [], [Path(index_dir) / INDEX_FILE])
    return RayShardedIndex(union, index_dir, actors=actors, verify=verify)
