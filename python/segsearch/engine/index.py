"""The PQ index: codebooks, uint8 codes, ids, optional exact maps; search for the three query kinds."""

from __future__ import annotations

import threading

import numpy as np

from .. import _core
from ..errors import NotTrainedError
from . import index_file, storage
from . import ranking as rk
from .checks import DEFAULT_EPS, as_float32, as_numpy, check_count, check_eps, check_threads
from .class_shares import check_shares, count_dtype, excluded, shares_from_blocks, shares_from_maps
from .codebook import check_given_codebook, decode, derived, fingerprint, to_bytes
from .emphasis import cell_ids, emphasis_of
from .exact_maps import BlockMaps, to_blocks
from .query import CHECK_CHUNK, Query, check_maps
from .search import Searchable, SearchResult
from .snapshot import Snapshot, code_counts, column_max, new_ids_for, positions_in, with_ids

__all__ = ["Index", "SearchResult", "DEFAULT_EPS", "DEFAULT_RERANK", "BLOCK_W", "empty_like", "merged"]

#: Sketch LUTs read one precomputed sum per whole run of this many drawn pixels of a row.
BLOCK_W = 16
#: Candidates a search re-ranks by the exact maps, for an index that keeps them (see docs/speed.md).
DEFAULT_RERANK = 32


class Index(Searchable):
    """Spatial-semantic image index: one PQ subspace per class map, K centroids, one byte per class per image.

    >>> index = Index(num_classes=C, size=64, n_centroids=256, class_names=names)
    >>> index.train(probs)            # float32 (N, C, 64, 64) softmax maps
    >>> index.add(probs, ids=paths)   # ids: int64 or str per image
    >>> index.search(Query.sketch(labels), k=10).ids

    ``keep_exact=True`` also keeps each photo's maps exactly (bytes, only the parts that are not zero: see
    :mod:`segsearch.engine.exact_maps`): a search then re-ranks the ``rerank`` nearest by PQ (default
    :data:`DEFAULT_RERANK`) by their exact distance, and ``search(exact=True)`` compares every photo exactly.
    ``metadata`` is any JSON-able dict saved with the index (e.g. the network).
    ``ranking``: ``"balanced"`` (the default: class-prior correction and photo weight 1/2, fewer hub photos) or
    ``"l2"`` (the paper's squared L2), or a :class:`~segsearch.engine.ranking.Ranking` (see that module). It is
    fixed when the index is made: ``train`` measures the class prior, and every map added is encoded with it.
    """

    def __init__(
        self,
        num_classes: int,
        size: int = 64,
        n_centroids: int = 256,
        class_names=None,
        *,
        keep_exact: bool = False,
        metadata: dict | None = None,
        ranking: str | rk.Ranking = rk.DEFAULT_RANKING,
        rerank: int | None = None,
    ):
        self.num_classes = check_count(num_classes, "num_classes", 1)
        self.size = check_count(size, "size", 1, 1024)
        self.n_centroids = check_count(n_centroids, "n_centroids", 1, 256)
        if class_names is None:
            class_names = [f"class{c}" for c in range(self.num_classes)]
        class_names = [str(s) for s in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {self.num_classes} classes")
        self.class_names = class_names
        self.metadata = dict(metadata or {})
        self.keep_exact = bool(keep_exact)
        self.rerank = self._check_rerank(rerank)
        self.ranking = rk.get_ranking(ranking)
        self._prior = None  # float32 (C,): the class prior, measured by train (rankings that use one)
        self._weights = None  # float32 (C,): the per-class weights derived from it
        C, K = self.num_classes, self.n_centroids
        self._cb = None  # uint8 (C, D, K), position-major, value v meaning v / 255 (float32 in format <= 2 files)
        self._cnorms = None  # float32 (C, K)
        # The images: one Snapshot, replaced whole by each add (see _append_locked and docs/python-api.md, "Threads").
        self._state = Snapshot(
            0,
            np.zeros((C, 0), np.uint8),
            None,
            np.zeros((C, K), np.int64),
            BlockMaps.empty() if self.keep_exact else None,
            shares=np.zeros((C, 0), count_dtype(self.size * self.size)),
        )
        self._fingerprint = None  # codebook_fingerprint(), computed once
        self._write_lock = threading.Lock()  # add, add_codes and train run one at a time

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
        return (
            f"Index(num_classes={self.num_classes}, size={self.size}, n_centroids={self.n_centroids}, "
            f"len={len(self)}, trained={self.is_trained}, keep_exact={self.keep_exact}, "
            f"ranking={self.ranking.name!r}, rerank={self.rerank})"
        )

    def _check_rerank(self, rerank) -> int:
        """The default re-rank depth: ``rerank`` checked (>= 0; > 0 needs the exact maps), None: the default."""
        if rerank is None:
            return DEFAULT_RERANK if self.keep_exact else 0
        rerank = check_count(rerank, "rerank", 0)
        if rerank and not self.keep_exact:
            raise ValueError("rerank needs the exact maps: make the index with keep_exact=True, or pass rerank=0")
        return rerank

    @property
    def class_prior(self) -> np.ndarray | None:
        """The class prior float32 (C,) the maps are reweighted with (see ``segsearch.engine.ranking``), read-only;
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
            raise ValueError(
                f"the {self.ranking.name!r} ranking needs the class prior: pass class_prior= (the "
                "index's class_prior), or ranking='l2'"
            )
        p = np.array(as_numpy(prior, "class_prior"), dtype=np.float32)
        if p.shape != (self.num_classes,) or not np.isfinite(p).all() or (p <= 0).any():
            raise ValueError(f"class_prior must be {self.num_classes} finite numbers > 0; got shape {p.shape}")
        self._prior, self._weights = p, rk.class_weights(p, self.ranking.prior_power)

    def _reweighted(self, a):
        """Maps as this index encodes them: reweighted by the class prior where the ranking uses one."""
        return a if self._weights is None else rk.reweight(a, self._weights)

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
        return decode(self._cb, codes, self.size)

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

    def _set_codebook(self, codebook_ckd: np.ndarray) -> None:
        """Store a (C, K, D) codebook position-major as bytes (float values in [0, 1] are rounded to the nearest
        multiple of 1/255: that rounded centroid is the centroid, for encoding and search alike) and precompute
        centroid norms and row-run sums."""
        if codebook_ckd.dtype != np.uint8:
            codebook_ckd = to_bytes(codebook_ckd)
        self._cb = np.ascontiguousarray(codebook_ckd.transpose(0, 2, 1))
        self._derive_from_codebook()

    def _share_codebook(self, other: Index) -> None:
        """Use ``other``'s codebook and what is derived from it (shared, not copied)."""
        self._cb, self._cnorms, self._block_sums, self._bound = (
            other._cb,
            other._cnorms,
            other._block_sums,
            other._bound,
        )
        self._fingerprint = other._fingerprint

    def _derive_from_codebook(self, block_sums=None) -> None:
        """Centroid norms and row-run sums (:func:`~segsearch.engine.codebook.derived`), bound for the core."""
        self._fingerprint = None
        self._cnorms, self._block_sums = derived(self._cb, self.size, BLOCK_W, block_sums)
        # bound once: the core checks the arrays here, not on every search
        self._bound = _core.Codebook(self._cb, self._cnorms, self._block_sums, min(BLOCK_W, self.size))

    def train(self, probs, *, niter: int = 20, seed: int = 0, device=None, progress=None) -> Index:
        """Train the per-class codebooks (k-means, torch; GPU when available) on maps (N, C, n, n), N >= K.

        ``probs`` may be float16 and memory-mapped: it is validated in chunks and read one class at a time,
        so a large training sample is never copied whole. Adds wait for it (see docs/python-api.md, "Threads").
        ``progress``: called with 1 after each class's codebook (e.g. a tqdm bar's ``update``)."""
        with self._write_lock:
            if self._state.n:
                raise ValueError(
                    f"the index already holds {self._state.n} images encoded with its codebook; build a new Index "
                    "to retrain"
                )
            a = check_maps(
                probs, self.num_classes, self.size, chunk=CHECK_CHUNK
            )  # float16 / memory-mapped maps are read one class at a time
            niter = check_count(niter, "niter", 0)
            from .codebook import train_codebook  # torch is imported only when codebooks are made

            row_mass = None
            if self.ranking.uses_prior:
                # Absent classes (centroid 0) are judged by the photo's own maps: reweighting lifts the faint
                # traces of rare classes, which would otherwise each take a code of their own and cost the scan.
                row_mass = rk.class_masses(a)
                self._set_prior(rk.class_prior(masses=row_mass, pixels=self.dim))
                a = rk.Reweighted(a, self._weights)  # read a class at a time, like the maps themselves
            cb = train_codebook(
                a, self.n_centroids, niter=niter, seed=seed, device=device, row_mass=row_mass, progress=progress
            )
            self._set_codebook(cb)
        return self

    def add(self, probs, ids=None, *, device=None) -> Index:
        """Encode maps (N, C, n, n) with the trained codebook and append them. ``ids``: int64 or str per image
        (default: positions). Works incrementally, without retraining."""
        self._need_trained()
        maps = check_maps(probs, self.num_classes, self.size)
        shares = shares_from_maps(maps)
        a = self._reweighted(maps)
        exact = self._blocks_of_reweighted(a) if self.keep_exact else None
        with self._write_lock:  # encoded with the codebook it is added under (train may not swap it between)
            self._append_locked(self._encode_reweighted(a, device), ids, exact, shares)
        return self

    def exact_maps(self, probs) -> BlockMaps:
        """The exact maps of maps (N, C, n, n) as this index keeps them (reweighted for its ranking, as bytes, in
        blocks), for :meth:`add_codes` with codes from :meth:`encode`. Nothing is added."""
        a = check_maps(probs, self.num_classes, self.size, chunk=CHECK_CHUNK)
        return self._blocks_of_reweighted(a if self._weights is None else rk.Reweighted(a, self._weights))

    def _blocks_of_reweighted(self, a) -> BlockMaps:
        C = self.num_classes
        parts = []
        for s in range(0, len(a), 64):
            rows = slice(s, s + 64)
            if hasattr(a, "block"):  # a Reweighted view: all classes at once, the same values
                u8 = to_bytes(a.block(rows).transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
            else:
                u8 = np.stack([to_bytes(as_float32(a[rows, c])) for c in range(C)], axis=1)
            parts.append(to_blocks(u8.reshape(len(u8), C, self.dim)))
        if not parts:
            return BlockMaps.empty()
        return BlockMaps.empty().appended(*(np.concatenate(x) for x in zip(*parts)))

    def encode(self, probs, *, device=None) -> np.ndarray:
        """The codes uint8 (N, C) of maps (N, C, n, n): each class map's nearest centroid. Nothing is added;
        :meth:`add_codes` appends codes made here (or by another process with the same codebook)."""
        self._need_trained()
        a = check_maps(probs, self.num_classes, self.size, chunk=CHECK_CHUNK)
        return self._encode_reweighted(a if self._weights is None else rk.Reweighted(a, self._weights), device)

    def _encode_reweighted(self, a, device) -> np.ndarray:
        """Codes of maps already reweighted for this index's ranking."""
        self._need_trained()
        from .codebook import encode  # torch is imported only when maps are encoded

        return encode(a, self._cb, device=device, norms=self._cnorms)

    def add_codes(self, codes, ids=None, *, exact: BlockMaps | None = None, shares=None) -> Index:
        """Append images by their codes uint8 (N, C) (from :meth:`encode`), with ``ids`` as in :meth:`add`; for an
        index that keeps exact maps, with their ``exact`` maps (from :meth:`exact_maps`), from which their class
        shares (:mod:`segsearch.engine.class_shares`) are counted, unless ``shares`` gives them: pixel counts (N, C)
        (:func:`~segsearch.engine.class_shares.shares_from_maps`), each photo's adding up to n * n. Photos added by
        their codes alone have none: the index then judges every photo's shares from its codes."""
        self._need_trained()
        if self.keep_exact != (exact is not None):
            raise ValueError(
                "this index keeps the exact maps: pass exact=index.exact_maps(probs) with the codes"
                if self.keep_exact
                else "this index keeps no exact maps: pass the codes alone"
            )
        cd = as_numpy(codes, "codes")
        if cd.ndim != 2 or cd.shape[1] != self.num_classes or cd.dtype != np.uint8:
            raise ValueError(f"codes must be uint8 of shape (N, {self.num_classes}); got {cd.dtype} {cd.shape}")
        if len(cd) and column_max(cd) >= self.n_centroids:
            raise ValueError(f"codes must be < n_centroids={self.n_centroids}; found {column_max(cd)}")
        if exact is not None and (not isinstance(exact, BlockMaps) or exact.n != len(cd)):
            raise ValueError(f"exact must be the BlockMaps of the {len(cd)} photos (index.exact_maps(probs))")
        if shares is not None:
            shares = check_shares(shares, len(cd), self.num_classes, self.dim)
        self._append(np.ascontiguousarray(cd), ids, exact, shares)
        return self

    def _append(self, codes: np.ndarray, ids, exact: BlockMaps | None = None, shares=None) -> None:
        """Append images: codes uint8 (N, C), ``ids`` as in :meth:`add`, their exact maps if kept, their class shares
        (N, C) (None: counted from the exact maps if given, else none)."""
        if shares is None and exact is not None:
            shares = shares_from_blocks(exact, self.num_classes, self.dim, self._weights)
        with self._write_lock:
            self._append_locked(codes, ids, exact, shares)

    def _append_locked(self, codes: np.ndarray, ids, exact: BlockMaps | None = None, shares=None) -> None:
        """:meth:`_append` with the writer lock held. Builds the new state whole from the current one (left as
        it is), then publishes it with one assignment: a reader sees all of these images or none of them, and
        an error or Ctrl-C before that leaves the index as it was."""
        st = self._state
        n_new = codes.shape[0]
        new_ids = new_ids_for(st, ids, n_new)  # checked against st: no other writer runs
        n, need = st.n, st.n + n_new
        store = st.codes
        if need > store.shape[1] or not store.flags.writeable:
            cap = max(need, 2 * n, 1024) if store.flags.writeable else need
            store = np.zeros((self.num_classes, cap), np.uint8)
            store[:, :n] = st.codes[:, :n]
        store[:, n:need] = codes.T  # after n: no published state reads there
        exact_all = st.exact.appended(*exact.parts()) if self.keep_exact else None
        shares_all = None
        if shares is not None and st.shares is not None:  # every photo's, or none
            shares_all = st.shares
            if need > shares_all.shape[1] or not shares_all.flags.writeable:
                shares_all = np.zeros((self.num_classes, store.shape[1]), st.shares.dtype)
                shares_all[:, :n] = st.shares[:, :n]
            shares_all[:, n:need] = shares.T
        all_ids, pos = with_ids(st, new_ids)
        K = self.n_centroids
        counts = st.counts + np.stack([np.bincount(codes[:, c], minlength=K)[:K] for c in range(self.num_classes)])
        self._state = Snapshot(need, store, all_ids, counts, exact_all, pos, shares=shares_all)

    # ------------------------------------------------------------------ class shares
    @property
    def has_class_shares(self) -> bool:
        """Whether every photo's class shares are stored (see :mod:`segsearch.engine.class_shares`); else
        :meth:`excluded` judges them from the codes."""
        return self._state.shares is not None

    def excluded(self, rules) -> np.ndarray:
        """bool (N,): the photos where a class of ``rules`` ([(class, share)] from
        :func:`~segsearch.engine.class_shares.check_exclude`) covers at least its share of the photo."""
        return excluded(self._state, rules, dim=self.dim, codebook=self._cb)

    def exact_photo(self, position: int) -> np.ndarray:
        """The exact maps uint8 (C, n * n) of the photo at ``position`` (an index that keeps them)."""
        st = self._state
        if st.exact is None:
            raise ValueError("this index keeps no exact maps")
        return st.exact.dense(int(position), self.num_classes, self.dim)

    def exact_cell_sums(self, positions, c: int) -> np.ndarray:
        """float64 (P, 16): the sums of class ``c``'s exact map of the photos at ``positions`` over the cells of a
        4 x 4 grid (:func:`~segsearch.engine.emphasis.cell_ids`), for emphasis (an index that keeps exact maps)."""
        st = self._state
        if st.exact is None:
            raise ValueError("this index keeps no exact maps")
        return st.exact.cell_sums(positions, c, self.dim, cell_ids(self.size))

    # ------------------------------------------------------------------ ids
    def __contains__(self, id_) -> bool:
        try:
            return id_ in self._state.positions()
        except TypeError:  # unhashable
            return False

    def positions(self, ids) -> np.ndarray:
        """Insertion positions int64 of ``ids`` (a sequence of ids); ValueError naming an id not in the index."""
        return positions_in(self._state.positions(), ids)

    @property
    def snapshot(self) -> Snapshot:
        """The photos as they are now: an immutable :class:`~segsearch.engine.snapshot.Snapshot` that later adds
        leave as it is (they publish a new one)."""
        return self._state

    @property
    def string_ids(self) -> bool:
        """Whether the ids are strings (else integers)."""
        return self._state.string_ids

    @property
    def bound_codebook(self):
        """The codebook as the core holds it (``_core.Codebook``: checked once, when it was set); NotTrainedError
        before :meth:`train`."""
        self._need_trained()
        return self._bound

    @property
    def class_weights(self) -> np.ndarray | None:
        """The per-class weights float32 (C,) query photos are reweighted with (rankings with a class prior), or
        None."""
        return self._weights

    def lookup_table(self, query: Query, *, eps: float | None = None, threads: int = 1):
        """The lookup table a PQ search sums for ``query``: (LUT float32 (C, K) with LUT[c, k] = the distance
        between the query's class-c map and centroid k under the index's ranking (the squared L2 distance for
        ``"l2"``; plus the emphasis term of an emphasised class, :mod:`~segsearch.engine.emphasis`), the classes
        int32 the scan adds up).
        ``threads``: as in :meth:`search` (an integer >= 1, clamped to the CPUs)."""
        if not isinstance(query, Query):
            raise ValueError("query must be a segsearch.Query")
        self._need_trained()
        eps, threads = check_eps(eps), check_threads(threads)
        args = (*query.resolve(self.num_classes, self.size), eps, threads, self._weights, self.ranking.photo_weight)
        lut, classes = _core.build_lut(self._bound, *args)
        emphasis = emphasis_of(self, query)
        if emphasis is not None:
            emphasis.add_to_lut(self, lut)
        return lut, classes

    def codebook_fingerprint(self) -> str:
        """sha256 (hex) of what a code means: the codebook's bytes (dtype, shape) and the class prior. A shard's
        header records its base's; computed once per index (the codebook never changes once photos are in)."""
        self._need_trained()
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self._cb, self._prior)
        return self._fingerprint

    def codebook_arrays(self) -> dict[str, np.ndarray]:
        """What an index file stores of the codebook: ``codebook`` (C, D, K) position-major, ``block_sums`` and,
        for rankings with one, ``class_prior``."""
        self._need_trained()
        out = {"codebook": self._cb, "block_sums": self._block_sums}
        if self._prior is not None:
            out["class_prior"] = self._prior
        return out

    @property
    def fixed_nbytes(self) -> int:
        """Bytes the index holds whatever its number of images: the codebook, its row-run sums and norms."""
        self._need_trained()
        return self._cb.nbytes + self._block_sums.nbytes + self._cnorms.nbytes

    @property
    def default_codes(self) -> np.ndarray:
        """Per class the most common code uint8 (C,), which the scan skips cheaply (read-only)."""
        v = self._state.defaults.view()
        v.flags.writeable = False
        return v

    # ------------------------------------------------------------------ construction from parts
    @classmethod
    def from_codebook(
        cls,
        codebook,
        codes,
        ids=None,
        *,
        class_names=None,
        metadata=None,
        ranking: str | rk.Ranking = "l2",
        class_prior=None,
    ) -> Index:
        """An index from a codebook (C, K, n, n) and codes uint8 (N, C), e.g. from another PQ tool. The codebook
        is uint8 (v meaning v / 255, as :attr:`codebook_u8`), or float with values that are finite probabilities,
        in [-0.001, 1.001] (ValueError otherwise), rounded to the nearest multiple of 1/255 (the index stores
        one byte per value; the codes are kept as given).
        ``ranking`` (default ``"l2"``, for codebooks of plain maps): a ranking with a class prior, such as
        ``"balanced"``, needs the ``class_prior`` (C,) its codebook's maps were reweighted with
        (``index.class_prior`` of the index that trained it).

        If ``codes`` is the transpose of a C-contiguous (C, N) array it is used without a copy.
        """
        cb, cd = check_given_codebook(codebook, codes)
        C, K, n = cb.shape[0], cb.shape[1], cb.shape[2]
        index = cls(C, n, K, class_names, metadata=metadata, ranking=ranking)
        index._set_prior(class_prior)
        top = column_max(cd)
        if top >= K:
            raise ValueError(f"codes must be < n_centroids={K}; found {top}")
        index._set_codebook(cb.reshape(C, K, n * n))
        if cd.T.flags.c_contiguous and ids is None:  # adopt the (C, N) storage as is
            # (a view with row stride N: numpy calls (N, 1)'s transpose contiguous, with a row stride of 1)
            codes_cn = cd.T.reshape(-1).reshape(C, cd.shape[0])
            index._state = Snapshot(cd.shape[0], codes_cn, None, code_counts(codes_cn, K))
        else:
            index._append(cd, ids)
        return index

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Save to one file, atomically (temp file then rename). No pickle; see :mod:`segsearch.engine.storage`."""
        self._need_trained()
        # one snapshot, which nothing changes: all of an add or none of it, whatever runs meanwhile
        storage.save(path, *index_file.index_file_contents(self, self._state))

    @classmethod
    def load(cls, path, mmap: bool = True, *, verify: bool | str = True) -> Index:
        """Load a saved index. ``mmap=True`` maps the codes, codebook and exact maps from the file
        (read-only pages, loaded on demand); ``add`` then copies the codes into memory first. The file is
        opened once and everything is read from that open file, so a save renaming a new version onto ``path``
        meanwhile cannot mix two versions.

        ``verify=True`` (the default) checks, before anything is used, every array against its checksum and
        what the arrays must satisfy together: codebook values finite probabilities, its row-run sums matching
        it, codes < K, code counts matching the codes, ids unique. It reads the whole file once (on a 2-core
        machine about 0.2 s more for C=151, K=256, n=64, 0.45 s more for 10 M images at C=60; see
        docs/file-format.md). ``verify=False`` skips those reads for a huge index you trust: header fields,
        shapes, dtypes and offsets are still checked, so a bad file cannot make the search read out of bounds,
        but damage in the arrays goes unnoticed and gives wrong results. ``verify="codebook"`` checks the codebook
        arrays only, for a process that builds lookup tables and scans none of the photos (a Ray driver).
        A damaged, inconsistent or foreign file raises :class:`IndexFormatError` naming what is wrong."""
        if verify not in (True, False, "codebook"):
            raise ValueError(f"verify must be True, False or 'codebook'; got {verify!r}")
        crc = set(index_file.CODEBOOK_ARRAYS) if verify == "codebook" else verify
        header, arr = storage.load(path, mmap=mmap, verify=crc)
        f = index_file.check_index(path, header, arr, verify=verify, block_w=BLOCK_W)
        index = cls(
            f["num_classes"],
            f["size"],
            f["n_centroids"],
            f["class_names"],
            keep_exact=f["keep_exact"],
            metadata=f["metadata"],
            ranking=f["ranking"],
            rerank=f["rerank"],
        )
        index._set_prior(f["class_prior"])
        index._cb = arr["codebook"]
        index._derive_from_codebook(arr.get("block_sums"))
        index._state = Snapshot.from_file(f, arr)
        return index


def empty_like(base: Index, *, keep_exact: bool | None = None) -> Index:
    """An index of no photos with ``base``'s codebook (shared, not copied), ranking, class prior, class names,
    metadata, keep_exact and rerank: add to it the photos of a new shard (:func:`segsearch.library.shards.add_shard`).
    ``keep_exact``: keep exact maps or not instead of as ``base`` does (then with the default rerank)."""
    base._need_trained()
    same = keep_exact is None or bool(keep_exact) == base.keep_exact
    out = Index(
        base.num_classes,
        base.size,
        base.n_centroids,
        base.class_names,
        keep_exact=base.keep_exact if keep_exact is None else keep_exact,
        metadata=base.metadata,
        ranking=base.ranking,
        rerank=base.rerank if same else None,
    )
    out._set_prior(base._prior)
    out._share_codebook(base)
    return out


def merged(base: Index, snapshots) -> Index:
    """An index with ``base``'s codebook holding the photos of ``snapshots`` (of shards of its folder), in order."""
    out = empty_like(base)
    for st in snapshots:
        out._append(
            st.codes[:, : st.n].T,
            st.stored_ids(),
            BlockMaps(*st.exact.arrays(), st.n) if out.keep_exact else None,
            None if st.shares is None else st.shares[:, : st.n].T,
        )
    return out
