"""The PQ index: codebooks, uint8 codes, ids, optional exact maps; search for the three query kinds."""
from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass

import numpy as np

from .. import _core
from . import storage
from .checks import as_numpy
from ..errors import NotTrainedError
from .query import Query, check_probs
from .ranking import (DEFAULT_RANKING, Ranking, Reweighted, class_masses, class_prior, class_weights, get_ranking,
                      reweight)

#: Default sparsity cut for image queries: query pixels with p_c(j) <= eps are left out of the LUT's dot
#: products. ``eps=0`` is exact. See the README for what the default changes.
DEFAULT_EPS = 1e-3
#: Classes where more than this fraction of the codes differ from the most common one are scanned
#: without trying to skip (the skipping only pays for sparse classes).
DENSE_FRACTION = 0.5
#: Sketch LUTs read one precomputed sum per whole run of this many drawn pixels of a row.
BLOCK_W = 16
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class SearchResult:
    """Results of one query, nearest first: ``ids`` (the images' ids) and squared-L2 ``distances``."""

    ids: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _check_count(value, name: str, lo: int, hi: int | None = None) -> int:
    if type(value) is int and value >= lo and (hi is None or value <= hi):  # the common case, fast
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be {rng}; got {v}")
    return v


def _check_eps(eps) -> float:
    """The image-query sparsity cut: :data:`DEFAULT_EPS` for None, else a finite number >= 0."""
    eps = DEFAULT_EPS if eps is None else float(eps)
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps}")
    return eps


def _check_threads(threads) -> int:
    """A thread count: an integer >= 1, clamped to the CPUs this process may use (``_core.max_threads()``:
    more threads cannot make a search faster); None = 0, the core's default (all of them)."""
    if threads is None:
        return 0
    return min(_check_count(threads, "threads", 1), _core.max_threads())


def check_search_args(query, k, threads, eps) -> tuple[bool, list, int, int]:
    """:meth:`Index.search`'s checks: (one query given, the queries, k, threads); ValueError for bad ones."""
    single = isinstance(query, Query)
    queries = [query] if single else list(query) if isinstance(query, (list, tuple)) else None
    if queries is None or not all(isinstance(q, Query) for q in queries):
        raise ValueError("query must be a segsearch.Query or a list of them (Query.image / sketch / image_and_sketch)")
    k = _check_count(k, "k", 1)
    n_threads = _check_threads(threads)
    _check_eps(eps)
    return single, queries, k, n_threads


class Index:
    """Spatial-semantic image index: one PQ subspace per class map, K centroids, one byte per class per image.

    >>> index = Index(num_classes=C, size=64, n_centroids=256, class_names=names)
    >>> index.train(probs)            # float32 (N, C, 64, 64) softmax maps
    >>> index.add(probs, ids=paths)   # ids: int64 or str per image
    >>> index.search(Query.sketch(labels), k=10).ids

    ``keep_exact=True`` also stores the maps (uint8-quantized, 1 byte per value) for ``search(exact=True)``,
    the uncompressed baseline. ``metadata`` is any JSON-able dict saved with the index (e.g. the network).
    ``ranking``: ``"balanced"`` (the default: class-prior correction and photo weight 1/2, fewer hub photos) or
    ``"l2"`` (the paper's squared L2), or a :class:`~segsearch.ranking.Ranking`; see ``segsearch.ranking``. It is
    fixed when the index is made: ``train`` measures the class prior, and every map added is encoded with it.
    """

    def __init__(self, num_classes: int, size: int = 64, n_centroids: int = 256, class_names=None, *,
                 keep_exact: bool = False, metadata: dict | None = None, ranking: str | Ranking = DEFAULT_RANKING):
        self.num_classes = _check_count(num_classes, "num_classes", 1)
        self.size = _check_count(size, "size", 1, 1024)
        self.n_centroids = _check_count(n_centroids, "n_centroids", 1, 256)
        if class_names is None:
            class_names = [f"class{c}" for c in range(self.num_classes)]
        class_names = [str(s) for s in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {self.num_classes} classes")
        self.class_names = class_names
        self.metadata = dict(metadata or {})
        self.keep_exact = bool(keep_exact)
        self.ranking = get_ranking(ranking)
        self._prior = None  # float32 (C,): the class prior, measured by train (rankings that use one)
        self._weights = None  # float32 (C,): the per-class weights derived from it
        C, K = self.num_classes, self.n_centroids
        self._cb = None  # uint8 (C, D, K), position-major, value v meaning v / 255 (float32 in format <= 2 files)
        self._cnorms = None  # float32 (C, K)
        # The images: one _State, replaced whole by each add (see _append and the README's "Threads").
        self._state = _State(0, np.zeros((C, 0), np.uint8), None, np.zeros((C, K), np.int64), np.zeros(C, np.uint8),
                             np.zeros(C, np.uint8), np.zeros((0, C, self.dim), np.uint8) if self.keep_exact else None,
                             np.zeros((0, C), np.float32) if self.keep_exact else None)
        self._write_lock = threading.Lock()  # add, add_codes and train run one at a time

    # The current state's fields. Setting one publishes a new state with it changed: for load and
    # from_codebook, which build an index before anyone else can see it; adds publish a whole new state.
    _n = property(lambda self: self._state.n, lambda self, v: self._set_state(n=v))
    _codes = property(lambda self: self._state.codes, lambda self, v: self._set_state(codes=v))
    _ids = property(lambda self: self._state.ids, lambda self, v: self._set_state(ids=v))
    _counts = property(lambda self: self._state.counts, lambda self, v: self._set_state(counts=v))
    _defaults = property(lambda self: self._state.defaults, lambda self, v: self._set_state(defaults=v))
    _dense = property(lambda self: self._state.dense, lambda self, v: self._set_state(dense=v))
    _exact = property(lambda self: self._state.exact, lambda self, v: self._set_state(exact=v))
    _exact_norms = property(lambda self: self._state.exact_norms, lambda self, v: self._set_state(exact_norms=v))

    def _set_state(self, **changes) -> None:
        self._state = self._state.replace(**changes)

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Pixels per class map, n*n."""
        return self.size * self.size

    @property
    def is_trained(self) -> bool:
        return self._cb is not None

    def __len__(self) -> int:
        return self._state.n

    def __repr__(self) -> str:
        return (f"Index(num_classes={self.num_classes}, size={self.size}, n_centroids={self.n_centroids}, "
                f"len={len(self)}, trained={self.is_trained}, keep_exact={self.keep_exact}, "
                f"ranking={self.ranking.name!r})")

    @property
    def class_prior(self) -> np.ndarray | None:
        """The class prior float32 (C,) the maps are reweighted with (see ``segsearch.ranking``), read-only;
        None for rankings without one."""
        if self._prior is None:
            return None
        v = self._prior.view()
        v.flags.writeable = False
        return v

    def _set_prior(self, prior) -> None:
        """Set the class prior (C,) of a ranking that uses one (checked: finite, > 0)."""
        if not self.ranking.uses_prior:
            self._prior = self._weights = None
            return
        if prior is None:
            raise ValueError(f"the {self.ranking.name!r} ranking needs the class prior: pass class_prior= (the "
                             "index's class_prior), or ranking='l2'")
        p = np.array(as_numpy(prior, "class_prior"), dtype=np.float32)
        if p.shape != (self.num_classes,) or not np.isfinite(p).all() or (p <= 0).any():
            raise ValueError(f"class_prior must be {self.num_classes} finite numbers > 0; got shape {p.shape}")
        self._prior, self._weights = p, class_weights(p, self.ranking.prior_power)

    def _reweighted(self, a):
        """Maps as this index encodes them: reweighted by the class prior where the ranking uses one."""
        return a if self._weights is None else reweight(a, self._weights)

    @property
    def codebook(self) -> np.ndarray:
        """Centroids, float32 (C, K, n, n), the values the search uses (read-only; for the compact codebook a new
        array, v / 255 of :attr:`codebook_u8`)."""
        self._need_trained()
        v = self._cb.transpose(0, 2, 1).reshape(self.num_classes, self.n_centroids, self.size, self.size)
        if v.dtype == np.uint8:
            v = v.astype(np.float32) / np.float32(255.0)
        v.flags.writeable = False
        return v

    @property
    def codebook_u8(self) -> np.ndarray | None:
        """The compact codebook uint8 (C, K, n, n), value v meaning v / 255 (read-only view); None for an index
        loaded from a format 1 or 2 file, which holds float32 centroids."""
        self._need_trained()
        if self._cb.dtype != np.uint8:
            return None
        v = self._cb.transpose(0, 2, 1).reshape(self.num_classes, self.n_centroids, self.size, self.size)
        v.flags.writeable = False
        return v

    def decode(self, codes) -> np.ndarray:
        """The maps float32 (N, C, n, n) that codes uint8 (N, C) stand for: each class's centroid (the
        reweighted maps for rankings with a class prior)."""
        self._need_trained()
        cd = as_numpy(codes, "codes")
        if cd.ndim != 2 or cd.shape[1] != self.num_classes or cd.dtype.kind not in "iu":
            raise ValueError(f"codes must be integers of shape (N, {self.num_classes}); got {cd.dtype} {cd.shape}")
        if cd.size and (cd.min() < 0 or cd.max() >= self.n_centroids):
            raise ValueError(f"codes must be in 0..{self.n_centroids - 1}")
        out = np.empty((len(cd), self.num_classes, self.dim), np.float32)
        for c in range(self.num_classes):
            out[:, c] = self._cb[c][:, cd[:, c]].T
        if self._cb.dtype == np.uint8:
            out /= np.float32(255.0)
        return out.reshape(len(cd), self.num_classes, self.size, self.size)

    @property
    def codes(self) -> np.ndarray:
        """Codes, uint8 (N, C), read-only view (stored column-major)."""
        st = self._state
        v = st.codes[:, : st.n].T
        v.flags.writeable = False
        return v

    @property
    def ids(self) -> np.ndarray:
        """The images' ids in insertion order (int64, read-only, or str)."""
        st = self._state
        if st.ids is None:
            return np.arange(st.n, dtype=np.int64)
        if isinstance(st.ids, list):
            return np.array(st.ids, dtype=str)
        v = st.ids[: st.n]
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ building
    def _need_trained(self):
        if self._cb is None:
            raise NotTrainedError("the index has no codebook yet: call index.train(probs) first")

    def _check_batch(self, probs, *, chunk: int | None = None) -> np.ndarray:
        """Validated maps (N, C, n, n). ``chunk``: validate that many images at a time and return the array as
        given (float16 or float32, possibly memory-mapped) instead of one float32 copy of the whole batch."""
        a = as_numpy(probs, "probs")
        if a.ndim != 4 or a.shape[1:] != (self.num_classes, self.size, self.size):
            raise ValueError(
                f"probs must have shape (N, {self.num_classes}, {self.size}, {self.size}) for this index; "
                f"got {a.shape}"
            )
        if chunk is None or a.dtype not in (np.float16, np.float32):
            return check_probs(a, "probs", batched=True)
        for s in range(0, len(a), chunk):
            check_probs(a[s : s + chunk], "probs", batched=True)
        return a

    def _set_codebook(self, codebook_ckd: np.ndarray) -> None:
        """Store a (C, K, D) codebook position-major as bytes (float values in [0, 1] are rounded to the nearest
        multiple of 1/255: that rounded centroid is the centroid, for encoding and search alike) and precompute
        centroid norms and row-run sums."""
        if codebook_ckd.dtype != np.uint8:
            codebook_ckd = _to_bytes(codebook_ckd)
        self._cb = np.ascontiguousarray(codebook_ckd.transpose(0, 2, 1))
        self._derive_from_codebook()

    def _share_codebook(self, other: "Index") -> None:
        """Use ``other``'s codebook and what is derived from it (shared, not copied)."""
        self._cb, self._cnorms, self._block_sums, self._bound = other._cb, other._cnorms, other._block_sums, other._bound

    def _block_sums_shape(self) -> tuple[int, int, int]:
        """(C, n * blocks per row, K) of the codebook summed over blocks of BLOCK_W pixels of a row."""
        n = self.size
        return self.num_classes, n * -(-n // min(BLOCK_W, n)), self.n_centroids

    def _derive_from_codebook(self, block_sums=None) -> None:
        """Centroid norms, and the codebook summed over blocks of BLOCK_W pixels of a row (C, n*nb, K)."""
        cb = self._cb
        bytes_ = cb.dtype == np.uint8
        norms = np.empty((self.num_classes, self.n_centroids), np.float64)
        for c in range(self.num_classes):  # a class at a time: no float64 copy of the whole codebook
            x = cb[c].astype(np.float64)
            norms[c] = np.einsum("dk,dk->k", x, x)
        self._cnorms = (norms / (255.0 * 255.0) if bytes_ else norms).astype(np.float32)
        if block_sums is None:
            C, n, K, w = self.num_classes, self.size, self.n_centroids, min(BLOCK_W, self.size)
            nb = self._block_sums_shape()[1] // n
            dtype = np.uint16 if bytes_ else np.float32  # at most 16 * 255 for bytes
            block_sums = np.zeros((C, n, nb, K), dtype)
            grid = cb.reshape(C, n, n, K)
            for b in range(nb):
                block_sums[:, :, b] = grid[:, :, b * w : (b + 1) * w].sum(axis=2, dtype=dtype)
            block_sums = block_sums.reshape(self._block_sums_shape())
        self._block_sums = block_sums
        # bound once: the core checks the arrays here, not on every search
        self._bound = _core.Codebook(cb, self._cnorms, block_sums, min(BLOCK_W, self.size))

    def train(self, probs, *, niter: int = 20, seed: int = 0, device=None) -> "Index":
        """Train the per-class codebooks (k-means, torch; GPU when available) on maps (N, C, n, n), N >= K.

        ``probs`` may be float16 and memory-mapped: it is validated in chunks and read one class at a time,
        so a large training sample is never copied whole. Adds wait for it (see the README's "Threads")."""
        with self._write_lock:
            if self._n:
                raise ValueError(
                    f"the index already holds {self._n} images encoded with its codebook; build a new Index to retrain"
                )
            a = self._check_batch(probs, chunk=256)  # float16 / memory-mapped maps are read one class at a time
            niter = _check_count(niter, "niter", 0)
            from .codebook import train_codebook  # torch is imported only when codebooks are made

            row_mass = None
            if self.ranking.uses_prior:
                # Absent classes (centroid 0) are judged by the photo's own maps: reweighting lifts the faint
                # traces of rare classes, which would otherwise each take a code of their own and cost the scan.
                row_mass = class_masses(a)
                self._set_prior(class_prior(masses=row_mass, pixels=self.dim))
                a = Reweighted(a, self._weights)  # read a class at a time, like the maps themselves
            cb = train_codebook(a, self.n_centroids, niter=niter, seed=seed, device=device, row_mass=row_mass)
            self._set_codebook(cb)
        return self

    def add(self, probs, ids=None, *, device=None) -> "Index":
        """Encode maps (N, C, n, n) with the trained codebook and append them. ``ids``: int64 or str per image
        (default: positions). Works incrementally, without retraining."""
        self._need_trained()
        a = self._reweighted(self._check_batch(probs))
        exact = norms = None
        if self.keep_exact:
            exact = _to_bytes(a.reshape(len(a), self.num_classes, self.dim))
            norms = _exact_norms(exact)
        with self._write_lock:  # encoded with the codebook it is added under (train may not swap it between)
            self._append_locked(self._encode_reweighted(a, device), ids, exact, norms)
        return self

    def encode(self, probs, *, device=None) -> np.ndarray:
        """The codes uint8 (N, C) of maps (N, C, n, n): each class map's nearest centroid. Nothing is added;
        :meth:`add_codes` appends codes made here (or by another process with the same codebook)."""
        self._need_trained()
        a = self._check_batch(probs, chunk=256)
        return self._encode_reweighted(a if self._weights is None else Reweighted(a, self._weights), device)

    def _encode_reweighted(self, a, device) -> np.ndarray:
        """Codes of maps already reweighted for this index's ranking."""
        self._need_trained()
        from .codebook import encode  # torch is imported only when maps are encoded

        return encode(a, self._cb, device=device)

    def add_codes(self, codes, ids=None) -> "Index":
        """Append images by their codes uint8 (N, C) (from :meth:`encode`), with ``ids`` as in :meth:`add`.
        Not for indexes that keep exact maps (those need the maps: use :meth:`add`)."""
        self._need_trained()
        if self.keep_exact:
            raise ValueError("this index keeps the exact maps, so images must be added with add(probs)")
        cd = as_numpy(codes, "codes")
        if cd.ndim != 2 or cd.shape[1] != self.num_classes or cd.dtype != np.uint8:
            raise ValueError(f"codes must be uint8 of shape (N, {self.num_classes}); got {cd.dtype} {cd.shape}")
        if len(cd) and _column_max(cd) >= self.n_centroids:
            raise ValueError(f"codes must be < n_centroids={self.n_centroids}; found {_column_max(cd)}")
        self._append(np.ascontiguousarray(cd), ids)
        return self

    def _append(self, codes: np.ndarray, ids, exact=None, exact_norms=None) -> None:
        """Append images: codes uint8 (N, C), ``ids`` as in :meth:`add`, the exact maps and norms if kept."""
        with self._write_lock:
            self._append_locked(codes, ids, exact, exact_norms)

    def _append_locked(self, codes: np.ndarray, ids, exact=None, exact_norms=None) -> None:
        """:meth:`_append` with the writer lock held. Builds the new state whole from the current one (left as
        it is), then publishes it with one assignment: a reader sees all of these images or none of them, and
        an error or Ctrl-C before that leaves the index as it was."""
        st = self._state
        n_new = codes.shape[0]
        new_ids = self._prepare_ids(ids, n_new)  # checked against st: no other writer runs
        n, need = st.n, st.n + n_new
        store = st.codes
        if need > store.shape[1] or not store.flags.writeable:
            cap = max(need, 2 * n, 1024) if store.flags.writeable else need
            store = np.zeros((self.num_classes, cap), np.uint8)
            store[:, :n] = st.codes[:, :n]
        store[:, n:need] = codes.T  # after n: no published state reads there
        exact_all = norms_all = None
        if self.keep_exact:
            exact_all = _grow_rows(st.exact, n, exact)
            norms_all = _grow_rows(st.exact_norms, n, exact_norms)
        all_ids, pos = self._commit_ids(st, new_ids)
        K = self.n_centroids
        counts = st.counts + np.stack([np.bincount(codes[:, c], minlength=K)[:K] for c in range(self.num_classes)])
        self._state = _State(need, store, all_ids, counts, *_code_stats(counts), exact_all, norms_all, pos)

    def _update_code_stats(self) -> None:
        """Per class: the most common code, and whether other codes are common enough that the scan
        should not try to skip the default (affects speed only)."""
        defaults, dense = _code_stats(self._state.counts)
        self._set_state(defaults=defaults, dense=dense)

    # ------------------------------------------------------------------ ids
    def _prepare_ids(self, ids, n_new: int):
        """Validate ids for n_new images; returns None (positions), an int64 array, or a list of str."""
        if ids is None:
            if self._ids is None:
                return None
            if isinstance(self._ids, list):
                raise ValueError("this index uses string ids: pass ids=[...] with one string per image")
            start = int(self._ids[: self._n].max()) + 1 if self._n else 0
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
        if self._n and (self._ids is None or isinstance(self._ids, np.ndarray)) == is_str:
            kind = "string" if isinstance(self._ids, list) else "integer"
            raise ValueError(f"this index uses {kind} ids; pass {kind} ids for new images too")
        if len(set(out if is_str else out.tolist())) != n_new:
            raise ValueError("ids must be unique; the batch repeats an id")
        pos = self._positions()
        dup = next((i for i in (out if is_str else out.tolist()) if i in pos), None)
        if dup is not None:
            raise ValueError(f"id {dup!r} is already in the index; ids must be unique")
        return out

    def _commit_ids(self, st: "_State", new):
        """(ids, id -> position map or None) of st's images followed by images with ids ``new`` (from
        _prepare_ids: None for positions, an int64 array or a list of str); st is left as it is."""
        if new is None and st.ids is None:
            return None, None
        n = st.n
        if isinstance(new, list):
            ids = (st.ids if isinstance(st.ids, list) else []) + new
        else:  # int64 ids after n, in place when there is room (no published state reads after its n)
            old = np.arange(n, dtype=np.int64) if st.ids is None or isinstance(st.ids, list) else st.ids
            ids = _grow_rows(old, n, new)
        pos = None  # made on first use, unless st's is there to extend
        if isinstance(st.pos, dict):
            pos = dict(st.pos)
            pos.update(zip(new if isinstance(new, list) else new.tolist(), range(n, n + len(new))))
        return ids, pos

    def _positions(self) -> dict:
        """id -> position of the current state's images."""
        return self._state.positions()

    def __contains__(self, id_) -> bool:
        try:
            return id_ in self._state.positions()
        except TypeError:  # unhashable
            return False

    def positions(self, ids) -> np.ndarray:
        """Insertion positions int64 of ``ids`` (a sequence of ids); ValueError naming an id not in the index."""
        return self._positions_in(self._state, ids)

    @staticmethod
    def _positions_in(st: "_State", ids) -> np.ndarray:
        """:meth:`positions` in state ``st``."""
        pos = st.positions()
        seq = list(ids) if isinstance(ids, (list, tuple)) else as_numpy(ids, "ids").reshape(-1).tolist()
        try:
            return np.fromiter((pos[i] for i in seq), dtype=np.int64, count=len(seq))
        except (KeyError, TypeError) as e:
            raise ValueError(f"id {e.args[0] if e.args else '?'!r} is not in the index") from None

    @staticmethod
    def _ids_at(st: "_State", pos: np.ndarray) -> np.ndarray:
        """The ids of state st's images at positions ``pos`` (all < st.n)."""
        if st.ids is None:
            return pos.astype(np.int64)
        if isinstance(st.ids, list):
            return np.array([st.ids[i] for i in pos.tolist()], dtype=str)
        return st.ids[pos]

    # ------------------------------------------------------------------ search
    def _subset(self, st: "_State", subset):
        """(mask uint8 (N,) or None, positions int64 or None) in state ``st`` (the one the search scans, whatever
        adds meanwhile). A bool array (or a list of bools) is a mask over the images in insertion order; anything
        else is a sequence of ids. An integer array or list of 0s and 1s as long as the index is refused as
        ambiguous: a 0/1 mask given as integers would be read as ids."""
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
            if a.shape != (st.n,):
                raise ValueError(f"a boolean subset mask must have shape ({st.n},); got {a.shape}")
            return np.ascontiguousarray(a, dtype=np.uint8), None
        if st.n and _zeros_and_ones(subset if a is None else a, st.n):
            raise ValueError(
                f"subset is {st.n} integers, all 0 or 1: as long as the index, it reads as a mask but would be "
                "taken as ids. Pass a bool mask (e.g. np.asarray(subset, bool)) to select by position, or the ids "
                "without repeats (subset=None for all images)")
        try:
            p = self._positions_in(st, list(subset) if a is None else a)
        except ValueError as e:
            raise ValueError(f"subset: {e}") from None
        return None, np.unique(p)

    def search(self, query, k: int = 10, *, exact: bool = False, subset=None, threads: int | None = None,
               eps: float | None = None):
        """Find the k nearest images. ``query``: a :class:`Query` or a list of them (one result per query).

        ``exact=True`` uses the stored uncompressed maps (needs ``keep_exact=True``); otherwise PQ distances.
        ``subset``: a boolean mask over the images (insertion order) or a sequence of ids to restrict to (an
        integer array of 0s and 1s as long as the index is ambiguous, a ValueError: pass masks as bool).
        ``threads``: worker threads, an integer >= 1 (default: all cores); counts above the number of CPUs this
        process may use are clamped to it. ``eps``: image-query sparsity cut
        (default :data:`DEFAULT_EPS`; 0 = exact LUTs). Results are sorted by ascending distance; k larger
        than the number of candidates returns them all.
        """
        single, queries, k, threads = check_search_args(query, k, threads, eps)
        eps = _check_eps(eps)
        st = self._state  # one state for the whole search, whatever adds meanwhile
        mask, pos = self._subset(st, subset)
        resolved = [q.resolve(self.num_classes, self.size) for q in queries]
        n_cand = st.n if (mask is None and pos is None) else int(mask.sum()) if mask is not None else len(pos)
        if exact:
            if not self.keep_exact:
                raise ValueError("exact search needs the uncompressed maps: build the index with keep_exact=True")
        else:
            self._need_trained()
        if not queries:
            return []
        if n_cand == 0:
            empty = SearchResult(self._ids_at(st, np.zeros(0, np.int64)), np.zeros(0, np.float32))
            return empty if single else [empty] * len(queries)
        kk = min(k, n_cand)
        if exact:
            ids, dists, counts = _core.search_exact(
                st.exact[: st.n], st.exact_norms[: st.n], [r[0] for r in resolved],
                [r[1] for r in resolved], [r[2] for r in resolved], kk, mask=mask, ids=pos, threads=threads,
                class_weights=self._weights, photo_weight=self.ranking.photo_weight)
        else:  # the LUTs and the scan in one call into the core
            ids, dists, counts = _core.search_pq(
                self._bound, st.codes[:, : st.n], st.defaults, [r[0] for r in resolved], [r[1] for r in resolved],
                [r[2] for r in resolved], kk, eps, mask=mask, ids=pos, threads=threads, dense=st.dense,
                class_weights=self._weights, photo_weight=self.ranking.photo_weight)
        out = [SearchResult(self._ids_at(st, ids[i, : counts[i]]), dists[i, : counts[i]].copy())
               for i in range(len(resolved))]
        return out[0] if single else out

    def _lut(self, resolved, eps: float, threads: int):
        kind, probs, labels = resolved
        return _core.build_lut(self._bound, kind, probs, labels, eps, threads, self._weights, self.ranking.photo_weight)

    def lookup_table(self, query: Query, *, eps: float | None = None, threads: int = 1):
        """The lookup table a PQ search sums for ``query``: (LUT float32 (C, K) with LUT[c, k] = the distance
        between the query's class-c map and centroid k under the index's ranking (the squared L2 distance for
        ``"l2"``), the classes int32 the scan adds up).
        ``threads``: as in :meth:`search` (an integer >= 1, clamped to the CPUs)."""
        if not isinstance(query, Query):
            raise ValueError("query must be a segsearch.Query")
        self._need_trained()
        return self._lut(query.resolve(self.num_classes, self.size), _check_eps(eps), _check_threads(threads))

    @property
    def fixed_nbytes(self) -> int:
        """Bytes the index holds whatever its number of images: the codebook, its row-run sums and norms."""
        self._need_trained()
        return self._cb.nbytes + self._block_sums.nbytes + self._cnorms.nbytes

    @property
    def default_codes(self) -> np.ndarray:
        """Per class the most common code uint8 (C,), which the scan skips cheaply (read-only)."""
        v = self._defaults.view()
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ construction from parts
    @classmethod
    def from_codebook(cls, codebook, codes, ids=None, *, class_names=None, metadata=None,
                      ranking: str | Ranking = "l2", class_prior=None) -> "Index":
        """An index from a codebook (C, K, n, n) and codes uint8 (N, C), e.g. from another PQ tool. The codebook
        is uint8 (v meaning v / 255, as :attr:`codebook_u8`), or float with values that are finite probabilities,
        in [-0.001, 1.001] (ValueError otherwise), rounded to the nearest multiple of 1/255 (the index stores
        one byte per value; the codes are kept as given).
        ``ranking`` (default ``"l2"``, for codebooks of plain maps): a ranking with a class prior, such as
        ``"balanced"``, needs the ``class_prior`` (C,) its codebook's maps were reweighted with
        (``index.class_prior`` of the index that trained it).

        If ``codes`` is the transpose of a C-contiguous (C, N) array it is used without a copy.
        """
        cb = as_numpy(codebook, "codebook")
        if cb.ndim != 4 or cb.shape[2] != cb.shape[3]:
            raise ValueError(f"codebook must have shape (C, K, n, n); got {cb.shape}")
        if cb.dtype.kind != "f" and cb.dtype != np.uint8:
            raise ValueError(f"codebook must be a float array (or uint8, v meaning v / 255); got dtype {cb.dtype}")
        C, K, n = cb.shape[0], cb.shape[1], cb.shape[2]
        if cb.dtype.kind == "f" and not np.isfinite(cb).all():
            raise ValueError("codebook contains NaN or inf")
        ok, lo, hi = storage.codebook_in_range(cb) if cb.dtype.kind == "f" else (True, 0, 1)
        if not ok:
            raise ValueError(
                f"codebook values must be probabilities in [{storage.CODEBOOK_MIN}, {storage.CODEBOOK_MAX}] "
                f"(centroids of softmax maps); found values in [{lo:.6g}, {hi:.6g}]: pass the centroids of the "
                "maps themselves")
        cd = as_numpy(codes, "codes")
        if cd.ndim != 2 or cd.shape[1] != C:
            raise ValueError(f"codes must have shape (N, {C}) to match the codebook; got {cd.shape}")
        if cd.dtype != np.uint8:
            raise ValueError(f"codes must be uint8; got dtype {cd.dtype}")
        index = cls(C, n, K, class_names, metadata=metadata, ranking=ranking)
        index._set_prior(class_prior)
        top = _column_max(cd)
        if top >= K:
            raise ValueError(f"codes must be < n_centroids={K}; found {top}")
        index._set_codebook(cb.reshape(C, K, n * n))
        if cd.T.flags.c_contiguous and ids is None:  # adopt the (C, N) storage as is
            # (a view with row stride N: numpy calls (N, 1)'s transpose contiguous, with a row stride of 1)
            index._codes = cd.T.reshape(-1).reshape(C, cd.shape[0])
            index._n = cd.shape[0]
            index._counts = _code_counts(cd.T, K)
            index._update_code_stats()
        else:
            index._append(cd, ids)
        return index

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Save to one file, atomically (temp file then rename). No pickle; see ``segsearch.storage``."""
        self._need_trained()
        st = self._state  # one state, which nothing changes: all of an add or none of it, whatever runs meanwhile
        ids_kind = "range" if st.ids is None else ("str" if isinstance(st.ids, list) else "int64")
        header = {"num_classes": self.num_classes, "size": self.size, "n_centroids": self.n_centroids,
                  "count": st.n, "class_names": self.class_names, "metadata": self.metadata,
                  "keep_exact": self.keep_exact, "ids_kind": ids_kind, "ranking": self.ranking.to_json()}
        arrays = {"codebook": self._cb, "block_sums": self._block_sums, "codes": st.codes[:, : st.n],
                  "code_counts": st.counts}
        if self._prior is not None:
            arrays["class_prior"] = self._prior
        if ids_kind == "int64":
            arrays["ids"] = st.ids[: st.n]
        elif ids_kind == "str":
            enc = [s.encode("utf-8") for s in st.ids]
            arrays["ids_offsets"] = np.cumsum([0] + [len(b) for b in enc], dtype=np.int64)
            arrays["ids_utf8"] = np.frombuffer(b"".join(enc), np.uint8)
        if self.keep_exact:
            arrays["exact_maps"] = st.exact[: st.n]
            arrays["exact_norms"] = st.exact_norms[: st.n]
        storage.save(path, header, arrays)

    @classmethod
    def load(cls, path, mmap: bool = True, *, verify: bool = True) -> "Index":
        """Load a saved index. ``mmap=True`` maps the codes, codebook and exact maps from the file
        (read-only pages, loaded on demand); ``add`` then copies the codes into memory first. The file is
        opened once and everything is read from that open file, so a save renaming a new version onto ``path``
        meanwhile cannot mix two versions.

        ``verify=True`` (the default) checks, before anything is used, every array against its checksum and
        what the arrays must satisfy together: codebook values finite probabilities, its row-run sums matching
        it, codes < K, code counts matching the codes, ids unique. It reads the whole file once (on a 2-core
        machine about 0.2 s more for C=151, K=256, n=64, 0.45 s more for 10 M images at C=60; see the README's
        "Index file"). ``verify=False`` skips those reads for a huge index you trust: header fields, shapes,
        dtypes and offsets are still checked, so a bad file cannot make the search read out of bounds, but
        damage in the arrays goes unnoticed and gives wrong results.
        A damaged, inconsistent or foreign file raises :class:`IndexFormatError` naming what is wrong."""
        header, arr = storage.load(path, mmap=mmap, verify=bool(verify))
        f = storage.check_index(path, header, arr, verify=bool(verify), block_w=BLOCK_W)
        index = cls(f["num_classes"], f["size"], f["n_centroids"], f["class_names"], keep_exact=f["keep_exact"],
                    metadata=f["metadata"], ranking=f["ranking"])
        index._set_prior(f["class_prior"])
        index._cb = arr["codebook"]
        index._derive_from_codebook(arr.get("block_sums"))
        index._codes = arr["codes"]
        index._n = f["count"]
        index._counts = np.array(arr["code_counts"])
        index._update_code_stats()
        index._ids = f["ids"]
        if index.keep_exact:
            index._exact, index._exact_norms = arr["exact_maps"], arr["exact_norms"]
        return index


def _zeros_and_ones(seq, n: int) -> bool:
    """Whether ``seq`` (an array or a list) is n integers (not bools), each 0 or 1."""
    if isinstance(seq, np.ndarray):
        return seq.dtype.kind in "iu" and seq.shape == (n,) and bool(((seq == 0) | (seq == 1)).all())
    return len(seq) == n and all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                                 and v in (0, 1) for v in seq)


class _State:
    """The images of an Index at one moment: published whole (``Index._state``) and never changed afterwards,
    so a reader that takes it once sees all of an add or none of it (see the README's "Threads").

    ``codes`` (C, capacity) and int64 ``ids``, ``exact``, ``exact_norms`` may extend past ``n``: a later add
    writes its images there in place, after every published state's n, where no reader of this one looks.
    ``pos`` (id -> position) is made on first use; threads that make it at once make the same dict."""

    __slots__ = ("n", "codes", "ids", "counts", "defaults", "dense", "exact", "exact_norms", "pos")

    def __init__(self, n, codes, ids, counts, defaults, dense, exact, exact_norms, pos=None):
        self.n, self.codes, self.ids, self.counts, self.defaults = n, codes, ids, counts, defaults
        self.dense, self.exact, self.exact_norms, self.pos = dense, exact, exact_norms, pos

    def replace(self, **changes) -> "_State":
        """A new state with ``changes`` (the id -> position map is made again if n or ids change)."""
        fields = {f: getattr(self, f) for f in self.__slots__}
        if "n" in changes or "ids" in changes:
            fields["pos"] = None
        fields.update(changes)
        return _State(**fields)

    def positions(self):
        """id -> position (a dict, or a _RangeMap when the ids are the positions)."""
        pos = self.pos
        if pos is None:
            if self.ids is None:
                pos = _RangeMap(self.n)
            else:
                seq = self.ids[: self.n] if isinstance(self.ids, list) else self.ids[: self.n].tolist()
                pos = {v: i for i, v in enumerate(seq)}
            self.pos = pos
        return pos


def _code_stats(counts: np.ndarray):
    """Per class: the most common code uint8 (C,), and 1 where other codes are common enough that the scan
    should not try to skip it (affects speed only)."""
    top = counts.max(axis=1)
    total = np.maximum(counts.sum(axis=1), 1)
    return counts.argmax(axis=1).astype(np.uint8), ((total - top) > DENSE_FRACTION * total).astype(np.uint8)


class _RangeMap:
    """id -> position for implicit ids 0..n-1."""

    def __init__(self, n):
        self.n = n

    def __contains__(self, i):
        return isinstance(i, numbers.Integral) and 0 <= int(i) < self.n

    def __getitem__(self, i):
        if i not in self:
            raise KeyError(i)
        return int(i)


def _exact_norms(maps_u8: np.ndarray) -> np.ndarray:
    """Squared norms (N, C) of uint8 maps (N, C, D) read as value/255."""
    out = np.empty(maps_u8.shape[:2], np.float32)
    for s in range(0, len(maps_u8), 256):
        m = maps_u8[s : s + 256].astype(np.float64) / 255.0
        out[s : s + 256] = np.einsum("ncd,ncd->nc", m, m)
    return out


def _grow_rows(a: np.ndarray, n: int, new: np.ndarray) -> np.ndarray:
    need = n + len(new)
    if need > len(a) or not a.flags.writeable:
        grown = np.empty((max(need, 2 * n) if a.flags.writeable else need,) + a.shape[1:], a.dtype)
        grown[:n] = a[:n]
        a = grown
    a[n:need] = new
    return a


def _column_max(codes: np.ndarray) -> int:
    m = 0
    for s in range(0, codes.shape[0], 1 << 20):
        m = max(m, int(codes[s : s + (1 << 20)].max()))
    return m


def _code_counts(codes_cn: np.ndarray, K: int) -> np.ndarray:
    return np.stack([np.bincount(codes_cn[c], minlength=K)[:K] for c in range(codes_cn.shape[0])]).astype(np.int64)


def _to_bytes(codebook: np.ndarray) -> np.ndarray:
    """A float codebook (C, ...) of probabilities as bytes: v = round(255 * clip(value, 0, 1)), a class at a time."""
    out = np.empty(codebook.shape, np.uint8)
    for c in range(codebook.shape[0]):
        x = np.clip(np.asarray(codebook[c], np.float32), 0.0, 1.0)
        np.rint(x * np.float32(255.0), out=x)
        out[c] = x
    return out
