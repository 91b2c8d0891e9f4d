"""The quantized scan (byte tables summed first, survivors re-ranked with the float sums) gives exactly the
float scan's top-k: the same ids and bit-identical distances, at every SIMD level this CPU has, and both
equal a numpy reference that sums in the scan's order. (Ctrl-C during a quantized scan: test_concurrency.)"""

import numpy as np
import pytest

import segsearch
from segsearch import Index, Query, _core

LEVELS = segsearch.supported_simd_levels()


@pytest.fixture
def level(simd_level):
    """Each SIMD level (conftest.py: those this CPU cannot run are skips that name them)."""
    return simd_level


def reference(codes, defaults, luts, classes, k, mask=None, ids=None):
    """Top-k (ids, distances) per query in numpy: base = the LUT's default entries summed in float64 in the
    classes' order, then the float32 deltas LUT - LUT[default] added one class at a time (codes >= K read
    +inf); ascending by (distance, position)."""
    C, N = codes.shape
    K = luts.shape[2]
    cand = np.arange(N) if ids is None else np.asarray(ids)
    if mask is not None and ids is None:
        cand = cand[np.asarray(mask)[cand] != 0]
    out = []
    for lut, cls in zip(luts, classes):
        base = 0.0
        for c in cls:
            base += float(lut[c, defaults[c]])
        d = np.full(len(cand), np.float32(base), np.float32)
        for c in cls:
            row = np.full(256, np.inf, np.float32)
            row[:K] = lut[c] - lut[c, defaults[c]]
            row[defaults[c]] = 0
            d = (d + row[codes[c, cand]]).astype(np.float32)
        order = np.lexsort((cand, d))[:k]
        out.append((cand[order], d[order]))
    return out


def scan_both(codes, defaults, luts, classes, k, expect_quantized=True, **kw):
    """scan_pq with the quantized scan off and on: asserts identical ids, distances and counts and that
    the quantized scan ran for every query (or for none, expect_quantized=False); returns the results."""
    off = _core.scan_pq(codes, defaults, luts, classes, k, quantized=False, **kw)
    before = _core.quantized_scan_stats()[0]
    on = _core.scan_pq(codes, defaults, luts, classes, k, quantized=True, **kw)
    assert _core.quantized_scan_stats()[0] - before == (len(classes) if expect_quantized else 0)
    assert_same(off, on)
    return off


def assert_same(a, b):
    """Two scan_pq results (ids, distances, counts) are identical (entries past the counts are not set)."""
    np.testing.assert_array_equal(a[2], b[2])
    for q, n in enumerate(a[2]):
        np.testing.assert_array_equal(a[0][q, :n], b[0][q, :n])
        np.testing.assert_array_equal(a[1][q, :n], b[1][q, :n])


def check(codes, defaults, luts, classes, k, mask=None, ids=None, threads=1, dense=None, expect_quantized=True):
    """Quantized == float scan == the numpy reference."""
    got_ids, got_d, counts = scan_both(
        codes, defaults, luts, classes, k, expect_quantized, mask=mask, ids=ids, threads=threads, dense=dense
    )
    for q, (rid, rd) in enumerate(reference(codes, defaults, luts, classes, k, mask, ids)):
        assert counts[q] == len(rid)
        np.testing.assert_array_equal(got_ids[q, : counts[q]], rid)
        np.testing.assert_array_equal(got_d[q, : counts[q]], rd)


def random_codes(rng, C, N, K):
    return rng.integers(0, K, (C, N), dtype=np.uint8)


def skewed_codes(rng, C, N, K, defaults, present=0.15):
    """Real-like: each class's default code for most images, a random other code where 'present'."""
    codes = np.broadcast_to(defaults[:, None], (C, N)).copy()
    hit = rng.random((C, N)) < present
    codes[hit] = rng.integers(0, K, int(hit.sum()))
    return codes


def realistic_luts(rng, nq, C, K):
    """Squared distances: a small value for the absent centroid 0, larger ones spread per class."""
    scale = rng.uniform(0.1, 50, (nq, C, 1))
    luts = (rng.random((nq, C, K)) * scale + rng.random((nq, C, 1)) * 10).astype(np.float32)
    luts[:, :, 0] *= 0.1
    return luts


@pytest.mark.parametrize("C", [1, 60, 151])
@pytest.mark.parametrize("K", [4, 16, 256])
def test_random_codes(level, C, K):
    rng = np.random.default_rng(C * 1000 + K)
    N = 3000
    codes = random_codes(rng, C, N, K)
    defaults = rng.integers(0, K, C).astype(np.uint8)
    luts = realistic_luts(rng, 3, C, K)
    classes = [
        np.arange(C, dtype=np.int32),
        rng.permutation(C)[: max(1, C // 3)].astype(np.int32),
        np.array([C - 1], np.int32),
    ]
    for k in (1, 10, N + 7):
        check(codes, defaults, luts, classes, k)


@pytest.mark.parametrize("C", [1, 60, 151])
@pytest.mark.parametrize("K", [4, 16, 256])
def test_skewed_codes_with_subsets(level, C, K):
    rng = np.random.default_rng(7 + C + K)
    N = 5000
    defaults = rng.integers(0, K, C).astype(np.uint8)
    codes = skewed_codes(rng, C, N, K, defaults)
    luts = realistic_luts(rng, 2, C, K)
    classes = [np.arange(C, dtype=np.int32), np.sort(rng.permutation(C)[: max(1, C // 4)]).astype(np.int32)]
    mask = (rng.random(N) < 0.3).astype(np.uint8)
    ids = np.flatnonzero(rng.random(N) < 0.2).astype(np.int64)
    dense = (rng.random(C) < 0.5).astype(np.uint8)
    for k in (1, 10, N + 1):
        check(codes, defaults, luts, classes, k, mask=mask, dense=dense)
        check(codes, defaults, luts, classes, k, mask=mask, threads=2)
        check(codes, defaults, luts, classes, k, ids=ids)
        check(codes, defaults, luts, classes, k, threads=2)


@pytest.mark.parametrize("K", [4, 16, 256])
def test_ties_break_by_position(level, K):
    """LUT values on a coarse grid: many images share a distance, and the first positions must win."""
    rng = np.random.default_rng(K)
    C, N = 60, 6000
    codes = random_codes(rng, C, N, K)
    codes[:, 4000:4100] = codes[:, 100:200]  # exact duplicates, later in the scan
    defaults = np.zeros(C, np.uint8)
    luts = (rng.integers(0, 3, (2, C, K)) * 0.25).astype(np.float32)
    classes = [np.arange(C, dtype=np.int32), np.arange(0, C, 7, dtype=np.int32)]
    before = _core.quantized_scan_stats()
    for k in (1, 10, 500, N):
        check(codes, defaults, luts, classes, k)
        check(codes, defaults, luts, classes, k, ids=np.arange(50, N, 3, dtype=np.int64), threads=2)
    after = _core.quantized_scan_stats()
    assert after[1] > before[1] and after[2] > before[2]  # both re-ranked images and blocks summed in float


def test_float_rounding_decides_the_order(level):
    """A large base with tiny deltas: the float sums differ from the real sums by several ulps and many
    distances are a few ulps apart; the bound must still keep every image that the float scan would."""
    rng = np.random.default_rng(3)
    C, K, N = 151, 256, 4000
    codes = random_codes(rng, C, N, K)
    defaults = rng.integers(0, K, C).astype(np.uint8)
    luts = (1000.0 + rng.integers(0, 40, (2, C, K)) * 2.0**-13).astype(np.float32)
    luts[1, :, :] = (rng.random((C, K)) * 1e-3 + 1e4 * (rng.random((C, 1)) < 0.1)).astype(np.float32)
    classes = [np.arange(C, dtype=np.int32)] * 2
    for k in (1, 10, 100):
        check(codes, defaults, luts, classes, k)


def test_worst_case_quantization_error(level):
    """Image A (late) has every entry just past half a step, so each rounds up by almost half a step; image B
    (first, so it sets the heap's threshold) lies just above A. A is the top-1 only if the bound allows the
    full nc / 2 steps."""
    C, K, N = 60, 256, 3000
    lut = np.zeros((1, C, K), np.float32)
    lut[0, :, 255] = 255.0  # range 255 in every class: a step of exactly 1
    lut[0, :, 1] = 10.51  # rounds to 11
    lut[0, :, 2] = 11.0
    lut[0, :, 3] = 10.021
    codes = np.full((C, N), 255, np.uint8)
    codes[:, 0] = [2] * (C // 2) + [3] * (C // 2)  # B: 630.63
    codes[:, 2500] = 1  # A: 630.6
    ids, d, _ = scan_both(codes, np.zeros(C, np.uint8), lut, [np.arange(C, dtype=np.int32)], 1)
    assert ids[0, 0] == 2500


def test_float_rounding_error(level):
    """Deltas of 3/8 ulp of the base are lost one by one in the float sum: image A's float distance equals the
    base although its real sum is 22 ulps above, and it beats image B (base + 1 ulp, first). The bound must
    allow for the float summation's error, not only the quantization's."""
    C, K, N = 60, 256, 3000
    ulp = 2.0**-10  # of 10,000 in float32
    lut = np.zeros((1, C, K), np.float32)
    lut[0, 0, :] = 10_000.0  # the base, class 0 (all its deltas are 0)
    lut[0, 1:, 1] = 3 * ulp / 8
    lut[0, 1:, 2] = ulp
    lut[0, 1:, 255] = ulp
    codes = np.full((C, N), 255, np.uint8)
    codes[:, 0] = 0
    codes[5, 0] = 2  # B
    codes[:, 2500] = 1  # A
    ids, d, _ = scan_both(codes, np.zeros(C, np.uint8), lut, [np.arange(C, dtype=np.int32)], 1)
    assert ids[0, 0] == 2500 and d[0, 0] == 10_000.0


def test_wide_ranges_and_negative_values(level):
    """One class spans 1e6 while the others span 1e-3 (one shared step: they quantize to a few levels),
    and LUT values may be negative (the scan takes any finite floats)."""
    rng = np.random.default_rng(4)
    C, K, N = 60, 256, 4000
    codes = random_codes(rng, C, N, K)
    defaults = rng.integers(0, K, C).astype(np.uint8)
    luts = (rng.standard_normal((2, C, K)) * 1e-3).astype(np.float32)
    luts[0, 5] *= 1e9
    luts[1] -= 7.0
    check(codes, defaults, luts, [np.arange(C, dtype=np.int32)] * 2, 10)


def test_codes_beyond_k_read_infinity(level):
    """Codes >= K (a damaged index) give +inf in both scans, never an out-of-bounds read."""
    rng = np.random.default_rng(5)
    C, N = 60, 3000
    for K in (4, 16, 200):
        codes = random_codes(rng, C, N, 256)  # most codes >= K
        codes[:, :2500] %= K
        defaults = np.zeros(C, np.uint8)
        luts = realistic_luts(rng, 1, C, K)
        cls = [np.arange(C, dtype=np.int32)]
        for k in (10, N):
            check(codes, defaults, luts, cls, k)
        ids, d, n = scan_both(codes, defaults, luts, cls, N)
        assert n[0] == N and np.isinf(d[0, 2500:]).all() and np.isfinite(d[0, :2500]).all()


def test_non_finite_luts_fall_back_to_the_float_scan(level):
    rng = np.random.default_rng(6)
    C, K, N = 8, 16, 2000
    codes = random_codes(rng, C, N, K)
    defaults = np.zeros(C, np.uint8)
    luts = realistic_luts(rng, 3, C, K)
    luts[0, 2, 5] = np.inf
    luts[1, 3, 0] = np.nan  # the default entry: NaN base
    cls = [np.arange(C, dtype=np.int32)] * 3
    off = _core.scan_pq(codes, defaults, luts, cls, 10, quantized=False)
    before = _core.quantized_scan_stats()[0]
    on = _core.scan_pq(codes, defaults, luts, cls, 10, quantized=True)
    assert _core.quantized_scan_stats()[0] - before == 1  # only the finite query
    assert_same(off, on)


def test_index_search_and_environment(monkeypatch):
    """``Index.search`` (LUTs from a trained codebook, batches of the three query kinds, subsets) is identical
    with SEGSEARCH_QUANTIZED_SCAN=0 and =1; a bad value is a ValueError."""
    rng = np.random.default_rng(8)
    C, K, n, N = 12, 256, 8, 6000
    cb = rng.random((C, K, n, n)).astype(np.float32)
    cb /= cb.sum(axis=0, keepdims=True)
    index = Index.from_codebook(cb, rng.integers(0, K, (N, C), dtype=np.uint8))
    p = rng.random((C, n, n)).astype(np.float32)
    p /= p.sum(axis=0)
    lab = np.where(rng.random((n, n)) < 0.5, rng.integers(0, 3, (n, n)), -1).astype(np.int32)
    qs = [Query.image(p), Query.sketch(lab), Query.image_and_sketch(p, lab)]
    subset = rng.choice(N, 700, replace=False)
    results = {}
    for value in ("0", "1"):
        monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", value)
        before = _core.quantized_scan_stats()[0]
        results[value] = (
            index.search(qs, k=10) + index.search(qs, k=25, subset=subset) + index.search(qs, k=N + 1, eps=0)
        )
        assert (_core.quantized_scan_stats()[0] > before) == (value == "1")
    for a, b in zip(results["0"], results["1"]):
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)
    monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", "yes")
    with pytest.raises(ValueError, match="SEGSEARCH_QUANTIZED_SCAN"):
        index.search(qs[0], k=3)


def test_simd_kernels_agree_on_the_quantized_sums():
    """The byte-table kernels must compute the same sums at every level: a kernel that under-estimated them
    would still give exact results (only slower), so compare how many images each level re-ranks (one
    thread: the same blocks in the same order), and check that the sums prune."""
    rng = np.random.default_rng(10)
    C, N = 60, 20_000
    before = segsearch.simd_level()
    for K in (4, 16, 100, 256):
        codes = random_codes(rng, C, N, 256)
        if K < 256:
            codes[:, : N - 50] %= K  # and a few codes >= K
        defaults = rng.integers(0, K, C).astype(np.uint8)
        luts = realistic_luts(rng, 2, C, K)
        cls = [np.arange(C, dtype=np.int32), np.arange(3, C, 4, dtype=np.int32)]
        reranked = {}
        try:
            for lv in LEVELS:
                segsearch.set_simd_level(lv)
                start = _core.quantized_scan_stats()
                for k in (1, 10):
                    for n in (N, N - 37):  # and a tail shorter than a SIMD step
                        scan_both(codes[:, :n], defaults, luts, cls, k, threads=1)
                reranked[lv] = tuple(b - a for a, b in zip(start, _core.quantized_scan_stats()))[1:]
        finally:
            segsearch.set_simd_level(before)
        assert len(set(reranked.values())) == 1, (K, reranked)
        assert reranked["scalar"][0] < 0.1 * 8 * N, (K, reranked)


def test_automatic_choice_gives_the_same_results(level, monkeypatch):
    """Uniform codes (every class dense): the automatic choice takes the quantized scan for both queries at the
    levels with a SIMD byte-table kernel (avx2, avx512), never at the scalar level (its cost is 0: no kernel);
    either way the results are the float scan's."""
    monkeypatch.delenv("SEGSEARCH_QUANTIZED_SCAN", raising=False)  # automatic, whatever the environment says
    rng = np.random.default_rng(9)
    C, K, N = 60, 256, 70_000
    codes = random_codes(rng, C, N, K)
    defaults = np.zeros(C, np.uint8)
    luts = realistic_luts(rng, 2, C, K)
    cls = [np.arange(C, dtype=np.int32)] * 2
    before = _core.quantized_scan_stats()[0]
    auto = _core.scan_pq(codes, defaults, luts, cls, 10, dense=np.ones(C, np.uint8))
    assert _core.quantized_scan_stats()[0] - before == (0 if level == "scalar" else 2), level
    assert_same(auto, scan_both(codes, defaults, luts, cls, 10))
