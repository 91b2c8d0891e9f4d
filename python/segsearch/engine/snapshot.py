"""The photos of an index at one moment (:class:`Snapshot`), and the small array helpers that build them."""

from __future__ import annotations

import numbers

import numpy as np

from .checks import as_numpy

#: Classes where more than this fraction of the codes differ from the most common one are scanned
#: without trying to skip (the skipping only pays for sparse classes).
DENSE_FRACTION = 0.5
_INT64_MAX = 2**63 - 1


class Snapshot:
    """The photos of an index (or of one shard of a folder) at one moment: published whole and never changed
    afterwards, so a reader that takes it once sees all of an add or none of it (see docs/python-api.md, "Threads").

    ``codes`` (C, capacity) and int64 ``ids`` may extend past ``n``: a later add writes its images there in place,
    after every published snapshot's n, where no reader of this one looks. ``exact``: the photos' maps kept
    exactly (a :class:`~segsearch.engine.exact_maps.BlockMaps` of n photos, which grows the same way), or None.
    ``ids`` is None (the ids are the positions), an int64 array or a list of str. ``shares`` (C, capacity): per
    class the pixels of each photo whose most likely class it is (see :mod:`segsearch.engine.class_shares`; grows
    like ``codes``), or None when some photo was added without them. ``counts`` (C, K) counts each code;
    ``defaults`` / ``dense`` are :func:`code_stats` of them. The id -> position map is made on first use;
    threads that make it at once make the same dict."""

    __slots__ = ("n", "codes", "ids", "counts", "defaults", "dense", "exact", "pos", "shares")

    def __init__(self, n, codes, ids, counts, exact=None, pos=None, stats=None, shares=None):
        self.n, self.codes, self.ids, self.counts = n, codes, ids, counts
        self.defaults, self.dense = code_stats(counts) if stats is None else stats
        self.exact, self.pos, self.shares = exact, pos, shares

    @classmethod
    def from_file(cls, fields: dict, arr: dict) -> Snapshot:
        """The photos of a loaded index or shard file (``fields``: what
        :func:`~segsearch.engine.index_file.check_index` returned)."""
        return cls(
            fields["count"],
            arr["codes"],
            fields["ids"],
            np.array(arr["code_counts"]),
            fields["exact"],
            shares=arr.get("class_shares"),
        )

    @property
    def string_ids(self) -> bool:
        return isinstance(self.ids, list)

    def positions(self):
        """id -> position (a dict, or a :class:`RangeMap` when the ids are the positions)."""
        pos = self.pos
        if pos is None:
            if self.ids is None:
                pos = RangeMap(self.n)
            else:
                seq = self.ids[: self.n] if isinstance(self.ids, list) else self.ids[: self.n].tolist()
                pos = {v: i for i, v in enumerate(seq)}
            self.pos = pos
        return pos

    def ids_at(self, pos: np.ndarray) -> np.ndarray:
        """The ids of the photos at positions ``pos`` (all < n): int64, or str."""
        if self.ids is None:
            return pos.astype(np.int64)
        if isinstance(self.ids, list):
            return np.array([self.ids[i] for i in pos.tolist()], dtype=str)
        return self.ids[pos]

    def all_ids(self) -> np.ndarray:
        """Every photo's id in insertion order (a new array, or a read-only view)."""
        return self.ids_at(np.arange(self.n, dtype=np.int64))

    def stored_ids(self):
        """The ids as stored for the first n photos: None (positions), an int64 array or a list of str."""
        return self.ids if self.ids is None or isinstance(self.ids, list) else self.ids[: self.n]


def code_stats(counts: np.ndarray):
    """Per class: the most common code uint8 (C,), and 1 where other codes are common enough that the scan
    should not try to skip it (affects speed only)."""
    top = counts.max(axis=1)
    total = np.maximum(counts.sum(axis=1), 1)
    return counts.argmax(axis=1).astype(np.uint8), ((total - top) > DENSE_FRACTION * total).astype(np.uint8)


class RangeMap:
    """id -> position for implicit ids 0..n-1."""

    def __init__(self, n):
        self.n = n

    def __contains__(self, i):
        return isinstance(i, numbers.Integral) and 0 <= int(i) < self.n

    def __getitem__(self, i):
        if i not in self:
            raise KeyError(i)
        return int(i)


def positions_in(lookup, ids) -> np.ndarray:
    """Positions int64 of ``ids`` (a sequence) in ``lookup`` (id -> position); ValueError naming an id not there."""
    seq = list(ids) if isinstance(ids, (list, tuple)) else as_numpy(ids, "ids").reshape(-1).tolist()
    try:
        return np.fromiter((lookup[i] for i in seq), dtype=np.int64, count=len(seq))
    except (KeyError, TypeError) as e:
        raise ValueError(f"id {e.args[0] if e.args else '?'!r} is not in the index") from None


def grow_rows(a: np.ndarray, n: int, new: np.ndarray) -> np.ndarray:
    """``a``'s first n rows followed by ``new``: in place after n when there is room, else in a larger array."""
    need = n + len(new)
    if need > len(a) or not a.flags.writeable:
        grown = np.empty((max(need, 2 * n) if a.flags.writeable else need,) + a.shape[1:], a.dtype)
        grown[:n] = a[:n]
        a = grown
    a[n:need] = new
    return a


def column_max(codes: np.ndarray) -> int:
    """The largest code in ``codes`` (N, C), read a million rows at a time."""
    m = 0
    for s in range(0, codes.shape[0], 1 << 20):
        m = max(m, int(codes[s : s + (1 << 20)].max()))
    return m


def code_counts(codes_cn: np.ndarray, K: int) -> np.ndarray:
    """How often each code occurs per class, int64 (C, K), of codes stored (C, N)."""
    return np.stack([np.bincount(codes_cn[c], minlength=K)[:K] for c in range(codes_cn.shape[0])]).astype(np.int64)


def new_ids_for(st: Snapshot, ids, n_new: int):
    """The ids of n_new photos to add after ``st``'s, checked (unique, of the same kind, new): None (positions),
    an int64 array, or a list of str. ``ids`` as :meth:`Index.add` takes them (None: continue the positions)."""
    if ids is None:
        if st.ids is None:
            return None
        if isinstance(st.ids, list):
            raise ValueError("this index uses string ids: pass ids=[...] with one string per image")
        start = int(st.ids[: st.n].max()) + 1 if st.n else 0
        if start + n_new - 1 > _INT64_MAX:
            raise ValueError("the next ids would not fit in int64: pass ids=[...] for the new images")
        return np.arange(start, start + n_new, dtype=np.int64)
    if isinstance(ids, (str, bytes)):
        raise ValueError("ids must be a sequence with one id per image, not a single string")
    arr = as_numpy(ids, "ids") if not isinstance(ids, (list, tuple)) else None
    if arr is not None and arr.dtype.kind in "iu":
        if arr.ndim != 1:
            raise ValueError(f"ids must be 1-D; got shape {arr.shape}")
        if arr.dtype.kind == "u" and arr.size and int(arr.max()) > _INT64_MAX:
            raise ValueError(f"ids must fit in int64 (<= {_INT64_MAX}); got {int(arr.max())}")
        out = arr.astype(np.int64)
    else:
        seq = list(ids) if arr is None else arr.tolist()
        if all(isinstance(s, str) for s in seq):
            out = [str(s) for s in seq]
        elif all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in seq):
            vals = [int(s) for s in seq]
            bad = next((v for v in vals if not -_INT64_MAX - 1 <= v <= _INT64_MAX), None)
            if bad is not None:
                raise ValueError(f"ids must be integers that fit in int64 or strings; got {bad}")
            out = np.array(vals, dtype=np.int64)
        else:
            raise ValueError("ids must be all integers (that fit in int64) or all strings")
    if len(out) != n_new:
        raise ValueError(f"got {len(out)} ids for {n_new} images")
    is_str = isinstance(out, list)
    if st.n and (st.ids is None or isinstance(st.ids, np.ndarray)) == is_str:
        kind = "string" if isinstance(st.ids, list) else "integer"
        raise ValueError(f"this index uses {kind} ids; pass {kind} ids for new images too")
    if len(set(out if is_str else out.tolist())) != n_new:
        raise ValueError("ids must be unique; the batch repeats an id")
    pos = st.positions()
    dup = next((i for i in (out if is_str else out.tolist()) if i in pos), None)
    if dup is not None:
        raise ValueError(f"id {dup!r} is already in the index; ids must be unique")
    return out


def with_ids(st: Snapshot, new):
    """(ids, id -> position map or None) of st's images followed by images with ids ``new`` (from
    :func:`new_ids_for`: None for positions, an int64 array or a list of str); st is left as it is."""
    if new is None and st.ids is None:
        return None, None
    n = st.n
    if isinstance(new, list):
        ids = (st.ids if isinstance(st.ids, list) else []) + new
    else:  # int64 ids after n, in place when there is room (no published state reads after its n)
        old = np.arange(n, dtype=np.int64) if st.ids is None or isinstance(st.ids, list) else st.ids
        ids = grow_rows(old, n, new)
    pos = None  # made on first use, unless st's is there to extend
    if isinstance(st.pos, dict):
        pos = dict(st.pos)
        pos.update(zip(new if isinstance(new, list) else new.tolist(), range(n, n + len(new))))
    return ids, pos
