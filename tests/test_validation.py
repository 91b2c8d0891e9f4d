"""Bad input gets a clear ValueError (or our own error type), never a crash."""

import numpy as np
import pytest

from conftest import random_probs
from segsearch import Index, NotTrainedError, Query


@pytest.fixture(scope="module")
def index():
    probs = random_probs(50, 4, 8, seed=2)
    ix = Index(4, 8, 8, keep_exact=False)
    ix.train(probs, niter=2)
    ix.add(probs)
    return ix


def good_probs():
    return random_probs(1, 4, 8, seed=9)[0]


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 8)), r"shape \(C, n, n\)"),
        (np.zeros((4, 8, 6)), "square"),
        (np.full((4, 8, 8), 0.25, dtype=np.complex64), "float"),
        (np.array([["a"]]), "shape|float"),
    ],
)
def test_query_probs_shape_and_dtype(bad, match):
    with pytest.raises(ValueError, match=match):
        Query.image(bad)


def test_query_probs_values():
    p = good_probs()
    for v in (np.nan, np.inf, -np.inf):
        q = p.copy()
        q[1, 2, 3] = v
        with pytest.raises(ValueError, match="NaN or inf"):
            Query.image(q)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Query.image(p * 2 - 0.5)
    with pytest.raises(ValueError, match="sum to 1"):
        Query.image(p * 0.9)
    with pytest.raises(ValueError, match="sum to 1"):
        Query.image(np.full((4, 8, 8), 0.1, np.float32))


def test_query_mismatch_with_index(index):
    with pytest.raises(ValueError, match="4 classes"):
        index.search(Query.image(random_probs(1, 5, 8, 0)[0]))
    with pytest.raises(ValueError, match="size=8"):
        index.search(Query.image(random_probs(1, 4, 16, 0)[0]))
    with pytest.raises(ValueError, match="classes 0..3"):
        index.search(Query.sketch(np.full((8, 8), 4)))


def test_sketch_validation():
    with pytest.raises(ValueError, match="empty"):
        Query.sketch(np.full((8, 8), -1))
    with pytest.raises(ValueError, match="-1"):
        Query.sketch(np.full((8, 8), -2))
    with pytest.raises(ValueError, match="integer"):
        Query.sketch(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="2-D"):
        Query.sketch(np.zeros((2, 8, 8), int))
    with pytest.raises(ValueError, match="empty"):
        Query.sketch(np.zeros((0, 8), int))
    with pytest.raises(ValueError, match="integer"):
        Query.image_and_sketch(good_probs(), np.zeros((8, 8), bool))


def test_sketch_that_vanishes_when_resized(index):
    lab = np.full((100, 100), -1)
    lab[1, 1] = 2  # one pixel falls between the nearest-neighbour samples
    with pytest.raises(ValueError, match="empty after resizing"):
        index.search(Query.sketch(lab))


def test_search_arguments(index):
    q = Query.image(good_probs())
    with pytest.raises(ValueError, match="Query"):
        index.search(good_probs())
    with pytest.raises(ValueError, match="Query"):
        index.search([q, "x"])
    with pytest.raises(ValueError, match="eps"):
        index.search(q, eps=-1)
    with pytest.raises(ValueError, match="eps"):
        index.search(q, eps=float("nan"))
    with pytest.raises(ValueError, match="keep_exact"):
        index.search(q, exact=True)
    with pytest.raises(TypeError):
        index.search(q, 10, True)  # options are keyword-only


def test_index_construction_and_training_errors():
    with pytest.raises(ValueError, match="num_classes"):
        Index(0)
    with pytest.raises(ValueError, match="n_centroids"):
        Index(3, 8, 300)
    with pytest.raises(ValueError, match="n_centroids"):
        Index(3, 8, 0)
    with pytest.raises(ValueError, match="class_names"):
        Index(3, 8, 4, class_names=["a"])
    ix = Index(4, 8, 16)
    probs = random_probs(10, 4, 8, 0)
    with pytest.raises(ValueError, match="at least 16 training images"):
        ix.train(probs)
    with pytest.raises(NotTrainedError, match="train"):
        ix.add(probs)
    with pytest.raises(NotTrainedError):
        ix.search(Query.image(probs[0]))
    with pytest.raises(ValueError, match=r"\(N, 4, 8, 8\)"):
        Index(4, 8, 2).train(random_probs(10, 3, 8, 0))
    ix = Index(4, 8, 2)
    ix.train(probs, niter=1)
    ix.add(probs)
    with pytest.raises(ValueError, match="retrain"):
        ix.train(probs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ix.add(probs * 2)
    with pytest.raises(ValueError, match="sum to 1"):
        ix.add(probs * 0.5)


def test_core_rejects_bad_arrays_directly():
    """The bindings check shapes themselves: calling the core wrongly raises, never reads out of bounds."""
    from segsearch import _core

    cb = np.zeros((3, 16, 4), np.float32)
    nrm = np.zeros((3, 4), np.float32)
    bound = _core.Codebook(cb, nrm)
    with pytest.raises(ValueError):
        _core.build_lut(bound, 0, np.zeros((3, 15), np.float32), None, 0.0)
    with pytest.raises(ValueError):
        _core.build_lut(bound, 1, None, np.full(16, 3, np.int32), 0.0)
    with pytest.raises(ValueError):
        _core.build_lut(bound, 5, None, None, 0.0)
    with pytest.raises(ValueError):
        _core.Codebook(cb, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="float32 or uint8"):
        _core.Codebook(cb.astype(np.float64), nrm)
    with pytest.raises(ValueError, match="uint16"):
        _core.Codebook(np.zeros((3, 16, 4), np.uint8), nrm, np.zeros((3, 4, 4), np.float32), 4)
    with pytest.raises(ValueError, match="block sums"):
        _core.Codebook(cb, nrm, np.zeros((3, 5, 4), np.float32), 4)
    luts, classes = _core.build_luts(bound, [1], [None], [np.zeros(16, np.int32)], 0.0)
    assert luts.shape == (1, 3, 4) and len(classes) == 1
    with pytest.raises(ValueError, match="luts"):  # a 3-class plan on 2-class codes
        _core.scan_pq(np.zeros((2, 10), np.uint8), np.zeros(2, np.uint8), luts, classes, 3)
    with pytest.raises(ValueError):
        _core.build_luts(bound, [1], [None], [np.zeros(15, np.int32)], 0.0)
    codes = np.zeros((3, 10), np.uint8)
    lut = np.zeros((1, 3, 4), np.float32)
    cls = [np.arange(3, dtype=np.int32)]
    with pytest.raises(ValueError):
        _core.scan_pq(codes, np.zeros(3, np.uint8), lut, cls, 0)
    with pytest.raises(ValueError):
        _core.scan_pq(codes, np.zeros(3, np.uint8), lut, [np.array([7], np.int32)], 3)
    with pytest.raises(ValueError):
        _core.scan_pq(codes, np.zeros(3, np.uint8), lut, cls, 3, ids=np.array([10]))
    with pytest.raises(ValueError):
        _core.scan_pq(codes, np.zeros(3, np.uint8), lut, cls, 3, mask=np.ones(9, np.uint8))
    with pytest.raises(ValueError):
        _core.scan_pq(codes, np.full(3, 9, np.uint8), lut, cls, 3)
    with pytest.raises(ValueError, match="SIMD"):
        _core.set_simd_level("avx1024")


def test_codes_beyond_k_in_a_damaged_index_do_not_crash():
    """A code >= K (only possible in a damaged file) gives an infinite distance, not a bad read."""
    from segsearch import _core

    codes = np.array([[0, 1, 200, 255]], np.uint8)
    lut = np.array([[[1.0, 2.0]]], np.float32)
    ids, d, n = _core.scan_pq(codes, np.zeros(1, np.uint8), lut, [np.array([0], np.int32)], 4)
    assert ids[0].tolist()[:2] == [0, 1] and np.isinf(d[0, 2:]).all()


# ---------------------------------------------------------------------------------------------- thread counts
THREADS_SCRIPT = r"""
import sys, numpy as np
from segsearch import Index, Query, _core
rng = np.random.default_rng(0)
C, K, n, N = 4, 8, 64, 20000  # an image query has C*n*n pixels: enough that its LUT is built on threads
cb = rng.random((C, K, n, n), dtype=np.float32)
cb /= cb.sum(axis=0, keepdims=True)
index = Index.from_codebook(cb, rng.integers(0, K, (N, C), dtype=np.uint8))
p = rng.random((C, n, n), dtype=np.float32)
q = Query.image(p / p.sum(axis=0))
lab = np.zeros((n, n), np.int32)
want = index.search(q, k=7, threads=1)
for t in map(int, sys.argv[1:]):
    r = index.search(q, k=7, threads=t)
    assert (r.ids == want.ids).all() and (r.distances == want.distances).all(), t
    lut, cls = index.lookup_table(q, threads=t)
    assert np.array_equal(lut, index.lookup_table(q, threads=1)[0]), t
    if t < 2**63:  # the core itself takes any int64 count and clamps it
        cbp = np.ascontiguousarray(cb.reshape(C, K, n * n).transpose(0, 2, 1))
        nrm = np.einsum("cdk,cdk->ck", cbp, cbp).astype(np.float32)
        bound = _core.Codebook(cbp, nrm)
        got = _core.build_lut(bound, 0, q.resolve(C, n)[1], None, 0.0, t)[0]
        assert np.array_equal(got, _core.build_lut(bound, 0, q.resolve(C, n)[1], None, 0.0, 1)[0]), t
        codes = np.ascontiguousarray(index.codes.T)
        ids, d, cnt = _core.scan_pq(codes, np.zeros(C, np.uint8), lut[None], [cls], 5, threads=t)
        assert ids[0].tolist() == want.ids[:5].tolist(), t
        blocks = rng.integers(0, 256, (300, 64), dtype=np.uint8)
        ptr, bidx = np.arange(301, dtype=np.int64), (np.arange(300) % C).astype(np.uint32)
        _core.search_blocks(ptr, bidx, blocks, C, 64, [1], [None], [np.zeros(64, np.int32)], 5, threads=t)
print("ok", _core.max_threads(), _core.default_threads())
"""


@pytest.mark.parametrize(
    "counts", [["100000"], [str(2**31 - 1)], [str(2**31), str(2**62), str(2**63 - 1)], [str(2**63), str(2**100)]]
)
def test_absurd_thread_counts_are_clamped_not_a_crash(counts):
    """threads=100000 crashed build_lut (SIGSEGV) and 2**31-1 made libgomp abort allocating 481 GB: counts above
    the CPUs this process may use are clamped to them, in Index and in the core itself (run in a subprocess,
    since a crash would take the test runner with it)."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-c", THREADS_SCRIPT, *counts], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert p.stdout.startswith("ok")
    _, cap, default = p.stdout.split()
    assert 1 <= int(default) <= int(cap)


def test_thread_count_validation(index):
    from segsearch import _core

    q = Query.image(good_probs())
    for bad in (0, -1, 1.5, "2", True, np.float32(2)):
        with pytest.raises(ValueError, match="threads"):
            index.search(q, threads=bad)
        with pytest.raises(ValueError, match="threads"):
            index.lookup_table(q, threads=bad)
    assert index.search(q, threads=np.int64(2)).ids.tolist() == index.search(q, threads=1).ids.tolist()
    cb = np.zeros((3, 16, 4), np.float32)
    with pytest.raises(ValueError, match="threads"):
        _core.build_lut(
            _core.Codebook(cb, np.zeros((3, 4), np.float32)), 0, np.zeros((3, 16), np.float32), None, 0.0, -1
        )
    with pytest.raises(ValueError, match="threads"):
        _core.scan_pq(
            np.zeros((3, 10), np.uint8),
            np.zeros(3, np.uint8),
            np.zeros((1, 3, 4), np.float32),
            [np.arange(3, dtype=np.int32)],
            3,
            threads=-5,
        )
    assert 1 <= _core.default_threads() <= _core.max_threads()


def test_cli_search_with_absurd_thread_counts(tmp_path):
    """``segsearch search --threads`` goes through the same clamp (a subprocess: a crash must not kill pytest)."""
    import subprocess
    import sys

    rng = np.random.default_rng(4)
    C, K, n, N = 3, 4, 64, 10000  # a sketch of the whole 64 x 64 canvas: its LUT is built on threads
    cb = rng.random((C, K, n, n), dtype=np.float32)
    ix = Index.from_codebook(
        cb / cb.sum(axis=0),
        rng.integers(0, K, (N, C), dtype=np.uint8),
        ids=[f"p{i}.jpg" for i in range(N)],
        class_names=["sky", "road", "tree"],
    )
    ix.save(tmp_path / "index.segsearch")
    outs = []
    for t in ("1", "100000", str(2**31 - 1), str(2**64)):
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "segsearch.cli",
                "search",
                str(tmp_path),
                "--draw",
                "sky:0,0,1,1",
                "-k",
                "5",
                "--threads",
                t,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, (t, p.returncode, p.stderr[-2000:])
        outs.append(p.stdout)
    assert len(outs[0].splitlines()) == 5 and all(o == outs[0] for o in outs)


# ---------------------------------------------------------------------------------------------- inputs read wrong
def test_integer_zero_one_subset_as_long_as_the_index_is_refused():
    """A uint8 0/1 mask selecting images 5, 6, 7 was taken as the ids 0 and 1: an integer array (or list) of
    0s and 1s as long as the index is ambiguous and refused; bool masks and lists of bools are masks."""
    rng = np.random.default_rng(0)
    cb = rng.random((3, 4, 8, 8), dtype=np.float32)
    ix = Index.from_codebook(cb / cb.sum(axis=0), rng.integers(0, 4, (8, 3), dtype=np.uint8))
    q = Query.sketch(np.zeros((8, 8), int))
    m = np.zeros(8, np.uint8)
    m[5:] = 1
    for bad in (m, m.astype(np.int64), m.tolist(), tuple(m.tolist()), np.ones(8, np.int32), [0] * 8):
        with pytest.raises(ValueError, match="bool mask"):
            ix.search(q, k=10, subset=bad)
    assert sorted(ix.search(q, k=10, subset=m.astype(bool)).ids.tolist()) == [5, 6, 7]
    assert sorted(ix.search(q, k=10, subset=[bool(v) for v in m]).ids.tolist()) == [5, 6, 7]
    assert sorted(ix.search(q, k=10, subset=np.array([5, 6, 7], np.uint8)).ids.tolist()) == [5, 6, 7]
    assert sorted(ix.search(q, k=10, subset=[0, 1]).ids.tolist()) == [0, 1]  # shorter than the index: ids
    with pytest.raises(ValueError, match="mixes bools and ids"):
        ix.search(q, k=10, subset=[True, 3])
    with pytest.raises(ValueError, match=r"shape \(8,\)"):
        ix.search(q, k=10, subset=[True, False])


def test_ids_must_fit_int64_or_be_strings():
    """uint64 ids >= 2**63 wrapped to negative numbers; now a ValueError, as for Python ints that big."""
    rng = np.random.default_rng(0)
    cb = rng.random((3, 4, 8, 8), dtype=np.float32)
    cb /= cb.sum(axis=0)
    codes = rng.integers(0, 4, (3, 3), dtype=np.uint8)
    for bad in (
        np.array([1, 2, 2**63], np.uint64),
        [1, 2, 2**63],
        [1, 2, -(2**63) - 1],
        [1, 2, 2**64 + 1],
        [np.uint64(2**63), 1, 2],
    ):
        with pytest.raises(ValueError, match="int64"):
            Index.from_codebook(cb, codes, ids=bad)
    for bad in (
        [1.0, 2.0, 3.0],
        np.array([1.5, 2, 3]),
        [True, False, True],
        np.array([True, False, True]),
        [b"a", b"b", b"c"],
        [1, "a", 2],
        [None, 1, 2],
    ):
        with pytest.raises(ValueError, match="ids"):
            Index.from_codebook(cb, codes, ids=bad)
    big = np.array([2**63 - 1, 0, 2**62], np.uint64)
    assert Index.from_codebook(cb, codes, ids=big).ids.tolist() == [2**63 - 1, 0, 2**62]
    ix = Index.from_codebook(cb, codes, ids=[-(2**63), 2**63 - 1, 5])
    with pytest.raises(ValueError, match="int64"):  # the next implicit id would overflow
        ix.add_codes(codes[:1])


@pytest.mark.parametrize("scale, shift", [(1e20, 0.0), (1e10, 0.0), (1.0, 0.5), (1.0, -0.5), (2.0, 0.0)])
def test_from_codebook_refuses_values_that_are_not_probabilities(scale, shift):
    """Values near 1e20 made NaN/inf distances: codebooks are centroids of softmax maps, in [-0.001, 1.001]."""
    rng = np.random.default_rng(0)
    cb = rng.random((3, 4, 8, 8), dtype=np.float32)
    cb = (cb / cb.sum(axis=0)) * scale + shift
    with pytest.raises(ValueError, match=r"probabilities in \[-0.001, 1.001\]"):
        Index.from_codebook(cb, np.zeros((2, 3), np.uint8))
    ok = np.clip(cb, 0.0, 1.0)
    Index.from_codebook(ok, np.zeros((2, 3), np.uint8))


def test_from_codebook_with_one_class_adopts_a_proper_view():
    """numpy calls the transpose of (N, 1) codes C-contiguous with a row stride of 1; adopting it as is made
    every search fail ('codes must be a (C, N) uint8 array with contiguous rows'). Found by the hypothesis test."""
    rng = np.random.default_rng(0)
    cb = rng.random((1, 4, 8, 8), dtype=np.float32)
    codes = rng.integers(0, 4, (30, 1), dtype=np.uint8)
    ix = Index.from_codebook(cb, codes)
    r = ix.search(Query.sketch(np.zeros((8, 8), int)), k=30)
    assert sorted(r.ids.tolist()) == list(range(30))
    assert np.shares_memory(ix.codes, codes)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_maps_validated_in_chunks_are_checked_to_the_last_photo(dtype):
    """train, encode and exact_maps validate float16/float32 maps a few photos at a time (as given, not copied):
    a NaN, a value out of range or a pixel that does not sum to 1 in the last photo, past every earlier chunk, is
    still refused with the usual message."""
    from segsearch.engine.query import CHECK_CHUNK

    n = 3 * CHECK_CHUNK + 1  # the bad photo is alone in the last chunk
    good = random_probs(n, 4, 8, 1).astype(dtype)
    ix = Index(4, 8, 2).train(good, niter=1)
    for change, match in ((np.nan, "NaN or inf"), (2.0, r"\[0, 1\]"), (0.1, "sum to 1")):
        bad = good.copy()
        bad[-1, 2, 5, 3] = change
        for call in (lambda a: Index(4, 8, 2).train(a, niter=1), ix.encode, ix.exact_maps):
            with pytest.raises(ValueError, match=match):
                call(bad)
