"""What an index file (or a shard file) holds, in the container format of :mod:`segsearch.engine.storage`: the
arrays and header fields an index writes (:func:`index_file_contents`), and every check a loaded one must pass
before it is used (:func:`check_index`): a damaged, inconsistent or foreign file is an
:class:`~segsearch.errors.IndexFormatError` naming what is wrong."""

from __future__ import annotations

import math

import numpy as np

from ..errors import IndexFormatError
from .class_shares import count_dtype
from .exact_maps import BLOCK, BlockMaps, check_block_arrays
from .storage import is_int

#: Codebook values an index accepts: centroids of softmax maps are probabilities; a little slack for other tools'
#: rounding. This also keeps the squared norms (at most n*n*1.001**2) far from float32 overflow.
CODEBOOK_MIN, CODEBOOK_MAX = -1e-3, 1.0 + 1e-3

#: The arrays of an index file that hold its codebook (a shard file has none of them).
CODEBOOK_ARRAYS = ("codebook", "block_sums", "class_prior")
#: The arrays of an index file and their dtypes.
INDEX_ARRAYS = {
    "codebook": ("float32", "uint8"),
    "block_sums": ("float32", "uint16"),
    "codes": "uint8",
    "code_counts": "int64",
    "ids": "int64",
    "ids_offsets": "int64",
    "ids_utf8": "uint8",
    "exact_ptr": "int64",
    "exact_index": "uint32",
    "exact_blocks": "uint8",
    "exact_maps": "uint8",
    "exact_norms": "float32",
    "class_prior": "float32",
    "class_shares": ("uint16", "uint32"),
}


def index_file_contents(index, st, *, ids=False, shard_of: str | None = None) -> tuple[dict, dict]:
    """(header, arrays) of an index file holding ``st``'s photos (a Snapshot) with ``index``'s codebook; for a shard
    (``shard_of``: the codebook's :meth:`~Index.codebook_fingerprint`) without the codebook, which the header names
    instead, and without metadata. Shards always store their ids. ``ids``: the ids to store instead of ``st``'s."""
    ids = st.stored_ids() if ids is False else ids
    if ids is None and shard_of is not None:
        ids = np.arange(st.n, dtype=np.int64)
    ids_kind = "range" if ids is None else ("str" if isinstance(ids, list) else "int64")
    header = {
        "num_classes": index.num_classes,
        "size": index.size,
        "n_centroids": index.n_centroids,
        "count": st.n,
        "class_names": index.class_names,
        "metadata": index.metadata if shard_of is None else {},
        "keep_exact": index.keep_exact,
        "ids_kind": ids_kind,
        "ranking": index.ranking.to_json(),
        "rerank": index.rerank,
    }
    book = index.codebook_arrays() if shard_of is None else {}
    if shard_of is not None:
        header["codebook_sha256"] = shard_of
    # the order of the arrays in the file (and so its bytes) as every version since format 2 wrote them
    arrays = {k: book[k] for k in ("codebook", "block_sums") if k in book}
    arrays.update({"codes": st.codes[:, : st.n], "code_counts": st.counts})
    if "class_prior" in book:
        arrays["class_prior"] = book["class_prior"]
    if ids_kind == "int64":
        arrays["ids"] = np.asarray(ids, np.int64)
    elif ids_kind == "str":
        enc = [s.encode("utf-8") for s in ids]
        arrays["ids_offsets"] = np.cumsum([0] + [len(b) for b in enc], dtype=np.int64)
        arrays["ids_utf8"] = np.frombuffer(b"".join(enc), np.uint8)
    if index.keep_exact:
        arrays["exact_ptr"], arrays["exact_index"], arrays["exact_blocks"] = st.exact.arrays()
    if st.shares is not None:  # optional: files before it, and indexes of photos added by their codes alone, lack it
        arrays["class_shares"] = st.shares[:, : st.n]
    return header, arrays


def codebook_range(cb: np.ndarray) -> tuple[float, float]:
    """(min, max) of a codebook's values, a class at a time (NaN if it holds NaN)."""
    if cb.size == 0:
        return 0.0, 0.0
    lo, hi = math.inf, -math.inf
    for c in range(cb.shape[0]):
        m, x = float(cb[c].min()), float(cb[c].max())
        if math.isnan(m) or math.isnan(x):
            return math.nan, math.nan
        lo, hi = min(lo, m), max(hi, x)
    return lo, hi


def codebook_in_range(cb: np.ndarray) -> tuple[bool, float, float]:
    """Whether every value is finite and in [CODEBOOK_MIN, CODEBOOK_MAX] (the bounds as float32), with the
    values' (min, max)."""
    lo, hi = codebook_range(cb)
    return bool(lo >= float(np.float32(CODEBOOK_MIN)) and hi <= float(np.float32(CODEBOOK_MAX))), lo, hi


def check_index(
    path, header: dict, arrays: dict[str, np.ndarray], *, verify: bool = True, block_w: int = 16, shard: bool = False
) -> dict:
    """Check what :func:`load` read as an index (see ``Index.save``): every header field's type and range, the
    set of arrays, their dtypes and shapes; with ``verify`` also what the arrays must satisfy together (the
    codebook's values are probabilities, its row-run sums match it, codes < K, code counts match the codes, ids
    unique). Returns the fields (num_classes, size, n_centroids, count, class_names, metadata, keep_exact,
    ids: None for positions, an int64 array, or a list of str, ranking: a Ranking, class_prior: float32 (C,) or
    None, exact: the exact maps as :class:`~segsearch.engine.exact_maps.BlockMaps` or None, rerank: the default
    number of candidates a search re-ranks). Raises IndexFormatError naming what is wrong.

    ``shard=True``: a shard file of a sharded index folder (see :mod:`segsearch.engine.manifest`), which holds no
    codebook (no ``codebook``, ``block_sums`` or ``class_prior`` arrays: its codes use the folder's base file's)."""

    def damaged(msg: str) -> IndexFormatError:
        return IndexFormatError(f"{path} is damaged: {msg}")

    def count_field(name: str, lo: int, hi: int | None = None) -> int:
        v = header.get(name)
        if not is_int(v) or v < lo or (hi is not None and v > hi):
            rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
            raise damaged(f"header field '{name}' is {str(v)[:100]!r}; expected an integer {rng}")
        return v

    C = count_field("num_classes", 1)
    n = count_field("size", 1, 1024)
    K = count_field("n_centroids", 1, 256)
    N = count_field("count", 0)
    names = header.get("class_names")
    if not isinstance(names, list) or len(names) != C or not all(isinstance(s, str) for s in names):
        raise damaged(f"header field 'class_names' must be a list of {C} strings")
    metadata = header.get("metadata")
    if not isinstance(metadata, dict):
        raise damaged(f"header field 'metadata' is a {type(metadata).__name__}; expected an object")
    keep_exact = header.get("keep_exact")
    if not isinstance(keep_exact, bool):
        raise damaged(f"header field 'keep_exact' is {str(keep_exact)[:100]!r}; expected true or false")
    from .ranking import ranking_from_json  # (ranking imports nothing from here)

    try:  # files of format 1 were all ranked by plain L2
        ranking = ranking_from_json(header.get("ranking", {"name": "l2", "prior_power": 0.0, "photo_weight": 1.0}))
    except ValueError as e:
        raise damaged(f"header field 'ranking' is {str(header.get('ranking'))[:100]!r}: {e}") from None
    rerank = header.get("rerank", 0)  # files before format 4: no re-ranking
    if not is_int(rerank) or rerank < 0:
        raise damaged(f"header field 'rerank' is {str(rerank)[:100]!r}; expected an integer >= 0")
    kind = header.get("ids_kind")
    if kind not in ("range", "int64", "str"):
        raise damaged(f"header field 'ids_kind' is {str(kind)[:100]!r}; expected 'range', 'int64' or 'str'")

    D = n * n
    w = min(block_w, n)
    nb = -(-n // w)
    expect: dict[str, tuple | None] = {"codes": (C, N), "code_counts": (C, K)}
    if not shard:
        expect["codebook"] = (C, D, K)
    if "block_sums" in arrays and not shard:  # files of format 1 saved before the row-run sums were stored lack them
        expect["block_sums"] = (C, n * nb, K)
    if kind == "int64":
        expect["ids"] = (N,)
    elif kind == "str":
        expect.update(ids_offsets=(N + 1,), ids_utf8=None)
    dense_exact = keep_exact and "exact_maps" in arrays  # files before format 4
    if dense_exact:
        expect.update(exact_maps=(N, C, D), exact_norms=(N, C))
    elif keep_exact:
        M = arrays["exact_index"].shape[0] if "exact_index" in arrays else 0
        expect.update(exact_ptr=(N + 1,), exact_index=None, exact_blocks=(M, BLOCK))
    if ranking.uses_prior and not shard:
        expect["class_prior"] = (C,)
    if "class_shares" in arrays:  # optional (see segsearch.engine.class_shares)
        expect["class_shares"] = (C, N)
    for name in arrays:
        if name not in expect:
            raise damaged(f"unexpected array '{name[:100]}' (ids_kind={kind!r}, keep_exact={keep_exact})")
    for name, shape in expect.items():
        if name not in arrays:
            raise damaged(f"array '{name}' is missing (ids_kind={kind!r}, keep_exact={keep_exact})")
        a = arrays[name]
        want = INDEX_ARRAYS[name]
        if name == "block_sums":  # follows the codebook's: float32 with float32, uint16 with uint8
            want = "uint16" if arrays["codebook"].dtype.name == "uint8" else "float32"
        if name == "class_shares":  # pixel counts: uint16 up to 65535 pixels a map
            want = count_dtype(D).name
        if a.dtype.name not in ((want,) if isinstance(want, str) else want):
            raise damaged(f"array '{name}' has dtype {a.dtype.name}; expected {' or '.join(np.atleast_1d(want))}")
        if (a.ndim != 1) if shape is None else (a.shape != shape):
            want = "1-D" if shape is None else str(shape)
            raise damaged(
                f"array '{name}' has shape {a.shape}; expected {want} for num_classes={C}, size={n}, "
                f"n_centroids={K}, count={N}"
            )

    if rerank and not keep_exact:
        raise damaged(f"header field 'rerank' is {rerank} but the index keeps no exact maps to re-rank with")
    if keep_exact and not dense_exact:  # two reads, always: the block offsets must end at the number of blocks
        ptr = arrays["exact_ptr"]
        if ptr[0] != 0 or ptr[N] != arrays["exact_index"].shape[0]:
            raise damaged("exact_ptr must start at 0 and end at the number of blocks")
    prior = None
    if ranking.uses_prior and not shard:  # small: always checked (weights from it go into every query)
        prior = np.array(arrays["class_prior"])
        if not np.isfinite(prior).all() or (prior <= 0).any():
            raise damaged("class_prior must be finite and > 0")
    counts = arrays["code_counts"]
    if counts.size and (counts.min() < 0 or (counts.sum(axis=1) != N).any()):
        raise damaged(f"code_counts must be >= 0 and sum to count={N} for each class")
    ids = None
    if kind == "int64":
        ids = np.array(arrays["ids"])
    elif kind == "str":
        off, raw = arrays["ids_offsets"], arrays["ids_utf8"]
        if off[0] != 0 or off[-1] != raw.size or (N and (np.diff(off) < 0).any()):
            raise damaged("ids_offsets must start at 0, never decrease and end at the length of ids_utf8")
        raw, bounds = raw.tobytes(), off.tolist()
        try:
            ids = [raw[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(N)]
        except UnicodeDecodeError:
            raise damaged("the string ids are not valid UTF-8") from None
    if verify == "codebook" and not shard:
        _check_codebook(arrays, damaged, C=C, n=n, K=K, w=w, nb=nb)
    elif verify:
        _check_contents(arrays, ids, damaged, C=C, n=n, K=K, N=N, w=w, nb=nb, shard=shard)
    exact = None
    if keep_exact:
        if verify is True and not dense_exact:
            bad = check_block_arrays(
                arrays["exact_ptr"], arrays["exact_index"], arrays["exact_blocks"], n=N, num_classes=C, dim=D
            )
            if bad:
                raise damaged(bad)
        exact = exact_from_file(arrays, N, C, D)
    return {
        "num_classes": C,
        "size": n,
        "n_centroids": K,
        "count": N,
        "class_names": names,
        "metadata": metadata,
        "keep_exact": keep_exact,
        "ids": ids,
        "ranking": ranking,
        "class_prior": prior,
        "exact": exact,
        "rerank": rerank,
    }


def exact_from_file(arrays: dict, N: int, C: int, D: int) -> BlockMaps:
    """The exact maps of a file as block maps: its arrays as they are (memory-mapped if they were loaded so), or
    for a file before format 4 its dense maps converted (read a few photos at a time)."""
    if "exact_maps" in arrays:
        return BlockMaps.from_maps(arrays["exact_maps"])
    return BlockMaps(arrays["exact_ptr"], arrays["exact_index"], arrays["exact_blocks"], N)


def _check_contents(arrays, ids, damaged, *, C, n, K, N, w, nb, shard=False) -> None:
    """The checks that read every array (``verify=True``); a shard has no codebook to check."""
    if not shard:
        _check_codebook(arrays, damaged, C=C, n=n, K=K, w=w, nb=nb)
    _check_codes_and_ids(arrays, ids, damaged, C=C, n=n, K=K, N=N)


def _check_codebook(arrays, damaged, *, C, n, K, w, nb) -> None:
    """The codebook's values are probabilities and its row-run sums match it."""
    cb = arrays["codebook"]
    ok, lo, hi = codebook_in_range(cb) if cb.dtype != np.uint8 else (True, 0.0, 1.0)  # any byte is a probability
    if not ok:
        raise damaged(
            f"codebook values must be finite probabilities in [{CODEBOOK_MIN}, {CODEBOOK_MAX}]; "
            f"found values in [{lo:.6g}, {hi:.6g}]"
        )
    bs = arrays.get("block_sums")
    if bs is not None:
        for c in range(C):
            grid = cb[c].reshape(n, n, K)
            got = bs[c].reshape(n, nb, K)
            for b in range(nb):
                if cb.dtype == np.uint8:  # integer sums: exact
                    ok = np.array_equal(got[:, b], grid[:, b * w : (b + 1) * w].sum(axis=1, dtype=np.uint16))
                else:
                    ref = grid[:, b * w : (b + 1) * w].sum(axis=1)
                    ok = (np.abs(got[:, b] - ref) <= 1e-4 + 1e-5 * np.abs(ref)).all()
                if not ok:
                    raise damaged(
                        f"block_sums disagree with the codebook (class {c}): they must be its sums "
                        f"over runs of {w} pixels of a row"
                    )


def _check_codes_and_ids(arrays, ids, damaged, *, C, n, K, N) -> None:
    """Codes < K matching their counts, exact norms in range, each photo's class shares summing to its pixels, ids
    unique."""
    from .. import _core  # the C++ core counts the codes at memory speed (numpy's bincount: 0.5 GB/s)

    codes, counts = arrays["codes"], arrays["code_counts"]
    seen = _core.code_counts(codes)
    for c in range(C):
        if seen[c, K:].any():
            raise damaged(
                f"codes must be < n_centroids={K}; class {c} has code {K + int(np.flatnonzero(seen[c, K:])[0])}"
            )
        if not np.array_equal(seen[c, :K], counts[c]):
            raise damaged(f"code_counts disagree with the codes (class {c})")
    if "exact_norms" in arrays and arrays["exact_norms"].size:
        en = arrays["exact_norms"]
        lo, hi = float(en.min()), float(en.max())
        if not (lo >= 0 and hi <= n * n * 1.001):
            raise damaged(
                f"exact_norms must be squared norms of maps in [0, 1], in [0, {n * n}]; found [{lo:.6g}, {hi:.6g}]"
            )
    if "class_shares" in arrays and N:
        total = np.asarray(arrays["class_shares"]).sum(axis=0, dtype=np.int64)
        if (total != n * n).any():
            i = int(np.flatnonzero(total != n * n)[0])
            raise damaged(f"class_shares of photo {i} add up to {int(total[i])} pixels, not n * n = {n * n}")
    if isinstance(ids, list):
        if len(set(ids)) != N:
            seen_ids: set = set()
            dup = next(i for i in ids if i in seen_ids or seen_ids.add(i))
            raise damaged(f"the id {dup[:100]!r} occurs more than once; ids must be unique")
    elif ids is not None and N > 1:
        s = np.sort(ids)
        rep = s[1:][s[1:] == s[:-1]]
        if rep.size:
            raise damaged(f"the id {int(rep[0])} occurs more than once; ids must be unique")
