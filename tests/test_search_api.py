"""Search behaviour: batches, subsets, k edge cases, ids, incremental add, from_codebook, SIMD levels."""

import numpy as np
import pytest

import segsearch
from conftest import random_probs, random_sketch
from reference import adc_maps, distances, exact_maps, topk
from segsearch import Index, Query


@pytest.fixture(scope="module")
def small():
    probs = random_probs(120, 5, 8, seed=3)
    index = Index(5, 8, 16)
    index.train(probs, niter=5)
    index.add(probs)
    return probs, index


def test_batch_equals_single_queries(small):
    probs, index = small
    qs = [
        Query.image(probs[0]),
        Query.sketch(random_sketch(5, 8, 1)),
        Query.image_and_sketch(probs[5], random_sketch(5, 8, 2)),
    ]
    batch = index.search(qs, k=7)
    assert isinstance(batch, list) and len(batch) == 3
    for q, r in zip(qs, batch):
        one = index.search(q, k=7)
        np.testing.assert_array_equal(r.ids, one.ids)
        np.testing.assert_array_equal(r.distances, one.distances)
    assert index.search([], k=3) == []


@pytest.mark.parametrize("exact", [False, True])
def test_subset_mask_and_ids(exact):
    probs = random_probs(150, 4, 8, seed=4)
    index = Index(4, 8, 8, keep_exact=True)
    index.train(probs, niter=3)
    index.add(probs)
    q = Query.image(probs[10])
    full = index.search(q, k=150, exact=exact, rerank=0)
    d = dict(zip(full.ids.tolist(), full.distances.tolist()))
    mask = np.zeros(150, bool)
    mask[::3] = True
    r = index.search(q, k=10, subset=mask, exact=exact, rerank=0)
    assert all(i % 3 == 0 for i in r.ids)
    expect = sorted((d[i], i) for i in range(0, 150, 3))[:10]
    assert [i for _, i in expect] == r.ids.tolist()
    ids = [7, 3, 99, 140, 3]
    r = index.search(q, k=100, subset=ids, exact=exact, rerank=0)
    assert sorted(r.ids.tolist()) == [3, 7, 99, 140]
    assert np.all(np.diff(r.distances) >= 0)
    np.testing.assert_allclose(r.distances, [d[i] for i in r.ids])
    assert len(index.search(q, k=5, subset=np.zeros(150, bool), exact=exact, rerank=0)) == 0
    with pytest.raises(ValueError, match="not in the index"):
        index.search(q, subset=[1000], exact=exact, rerank=0)
    with pytest.raises(ValueError, match="shape"):
        index.search(q, subset=np.ones(10, bool), exact=exact, rerank=0)


def test_k_edge_cases(small):
    probs, index = small
    q = Query.image(probs[1])
    assert len(index.search(q, k=1)) == 1
    everything = index.search(q, k=10_000)
    assert len(everything) == len(index)
    assert sorted(everything.ids.tolist()) == list(range(len(index)))
    assert np.all(np.diff(everything.distances) >= 0)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="k must"):
            index.search(q, k=bad)


def test_ties_are_ordered_by_insertion():
    probs = random_probs(10, 3, 4, seed=0)
    index = Index(3, 4, 4)
    index.train(probs, niter=2)
    index.add(np.repeat(probs[:1], 6, axis=0))
    r = index.search(Query.image(probs[0]), k=6)
    assert r.ids.tolist() == list(range(6))


def test_string_and_int_ids_and_incremental_add():
    probs = random_probs(60, 4, 8, seed=5)
    index = Index(4, 8, 8)
    index.train(probs, niter=3)
    index.add(probs[:30], ids=[f"img{i}.jpg" for i in range(30)])
    index.add(probs[30:], ids=[f"img{i}.jpg" for i in range(30, 60)])
    assert len(index) == 60
    r = index.search(Query.image(probs[42]), k=3, eps=0)
    assert r.ids[0] == "img42.jpg"
    r = index.search(Query.image(probs[42]), k=60, subset=["img42.jpg", "img1.jpg"])
    assert set(r.ids.tolist()) == {"img42.jpg", "img1.jpg"}
    with pytest.raises(ValueError, match="already in the index"):
        index.add(probs[:1], ids=["img3.jpg"])
    with pytest.raises(ValueError, match="string ids"):
        index.add(probs[:1])
    with pytest.raises(ValueError, match="string ids"):
        index.add(probs[:1], ids=[5])

    ints = Index(4, 8, 8)
    ints.train(probs, niter=3)
    ints.add(probs[:10], ids=np.arange(100, 110))
    ints.add(probs[10:12])  # continues after the largest id
    assert ints.ids.tolist() == list(range(100, 112))
    with pytest.raises(ValueError, match="unique"):
        ints.add(probs[:2], ids=[1, 1])
    with pytest.raises(ValueError, match="2 ids for 3"):
        ints.add(probs[:3], ids=[1, 2])


def test_add_matches_one_shot_add():
    probs = random_probs(80, 4, 8, seed=6)
    a = Index(4, 8, 8)
    a.train(probs, niter=3)
    b = Index.from_codebook(a.codebook, np.zeros((0, 4), np.uint8), ranking=a.ranking, class_prior=a.class_prior)
    a.add(probs)
    for s in range(0, 80, 17):
        b.add(probs[s : s + 17])
    np.testing.assert_array_equal(a.codes, b.codes)
    q = Query.sketch(random_sketch(4, 8, 9))
    np.testing.assert_array_equal(a.search(q, k=80).distances, b.search(q, k=80).distances)


def test_from_codebook_matches_reference_and_views_are_read_only():
    rng = np.random.default_rng(0)
    C, K, n, N = 6, 32, 8, 500
    cb = rng.random((C, K, n, n)).astype(np.float32) / 4
    codes_cn = rng.integers(0, K, size=(C, N), dtype=np.uint8)
    index = Index.from_codebook(cb, codes_cn.T)  # adopted without copy
    assert np.shares_memory(index.codes, codes_cn)
    # the index stores one byte per value: the centroids are cb rounded to multiples of 1/255
    np.testing.assert_array_equal(index.codebook_u8, np.rint(cb * 255).astype(np.uint8))
    np.testing.assert_array_equal(index.codebook, index.codebook_u8 / np.float32(255))
    assert np.abs(index.codebook - cb).max() <= 0.5 / 255 + 1e-7
    np.testing.assert_array_equal(index.codes, codes_cn.T)
    with pytest.raises(ValueError):
        index.codes[0, 0] = 1
    with pytest.raises(ValueError):
        index.codebook[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        index.codebook_u8[0, 0, 0, 0] = 1
    probs = random_probs(1, C, n, 1)[0]
    ref = distances("image", probs, None, adc_maps(index.codebook, codes_cn.T))
    r = index.search(Query.image(probs), k=N, eps=0)
    np.testing.assert_allclose(r.distances, ref[topk(ref, N)], rtol=1e-4)
    assert sorted(r.ids.tolist()) == list(range(N))
    np.testing.assert_allclose(
        r.distances, ref[r.ids], rtol=1e-4
    )  # each photo's own distance, not just the sorted list
    copy = Index.from_codebook(cb, np.ascontiguousarray(codes_cn.T), ids=[f"x{i}" for i in range(N)])
    assert copy.search(Query.image(probs), k=1, eps=0).ids[0] == f"x{r.ids[0]}"
    with pytest.raises(ValueError, match="< n_centroids"):
        Index.from_codebook(cb, np.full((3, C), K, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Index.from_codebook(cb, codes_cn.T.astype(np.int64))
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        Index.from_codebook(cb, codes_cn[:3].T)


def test_simd_levels_agree():
    """Every SIMD level this CPU supports gives identical ids and distances."""
    levels = segsearch.supported_simd_levels()
    assert levels[0] == "scalar" and segsearch.simd_level() in levels
    rng = np.random.default_rng(1)
    C, K, n, N = 9, 256, 8, 5000
    cb = rng.random((C, K, n, n)).astype(np.float32) / 8
    # skewed codes (mostly one value per class, as real data) plus uniform ones
    codes = np.where(rng.random((N, C)) < 0.9, 3, rng.integers(0, K, (N, C))).astype(np.uint8)
    codes[:700] = rng.integers(0, K, (700, C))
    index = Index.from_codebook(cb, codes)
    probs = random_probs(2, C, n, 2)
    qs = [
        Query.image(probs[0]),
        Query.sketch(random_sketch(C, n, 3, n_classes=4)),
        Query.image_and_sketch(probs[1], random_sketch(C, n, 4)),
    ]
    mask = rng.random(N) < 0.5
    exact_probs = random_probs(300, C, n, 6)
    exact = Index(C, n, 4, keep_exact=True)
    exact.train(exact_probs, niter=1)
    exact.add(exact_probs)
    before = segsearch.simd_level()
    results = {}
    try:
        for level in levels:
            segsearch.set_simd_level(level)
            assert segsearch.simd_level() == level
            results[level] = (
                index.search(qs, k=50, eps=0)
                + index.search(qs, k=50, subset=mask)
                + exact.search(qs, k=300, exact=True)
            )
            # both scan kernels (skipping the default code, and the plain loop) on every class, and the
            # quantized scan (byte-table kernels, then float re-ranking; tests/test_quantized_scan.py)
            for dense in (np.zeros(C, np.uint8), np.ones(C, np.uint8)):
                for quantized in (False, True):
                    luts = np.random.default_rng(5).random((2, C, K)).astype(np.float32)
                    cls = [np.arange(C, dtype=np.int32), np.array([1, 4], np.int32)]
                    ids, d, _ = segsearch._core.scan_pq(
                        index.snapshot.codes, index.snapshot.defaults, luts, cls, 40, dense=dense, quantized=quantized
                    )
                    results[level] += [segsearch.SearchResult(ids[i], d[i]) for i in range(2)]
    finally:
        segsearch.set_simd_level(before)
    base = results["scalar"]
    for level, res in results.items():
        for a, b in zip(base, res):
            np.testing.assert_array_equal(a.ids, b.ids, err_msg=level)
            np.testing.assert_array_equal(a.distances, b.distances, err_msg=level)
    with pytest.raises(ValueError, match="unknown SIMD level"):
        segsearch.set_simd_level("sse9")


def test_threads_give_same_results(small):
    probs, index = small
    q = Query.image(probs[2])
    a = index.search(q, k=30, threads=1)
    b = index.search(q, k=30, threads=2)
    np.testing.assert_array_equal(a.ids, b.ids)
    with pytest.raises(ValueError, match="threads"):
        index.search(q, threads=0)


@pytest.fixture(scope="module")
def many_blocks():
    """9,000 photos keeping exact maps: the PQ scan works in blocks of 2,048 photos (never more threads than
    blocks), so this is 4 full blocks and a partial one. The photos repeat every 700: equal distances in every
    block, whose order (the smaller position first) must not depend on which thread scanned which block."""
    C, n, N = 6, 8, 9000
    base = random_probs(700, C, n, seed=21)
    probs = base[np.arange(N) % 700]
    index = Index(C, n, 16, keep_exact=True)
    index.train(base, niter=2)
    index.add(probs)
    return probs, index


@pytest.mark.parametrize("exact", [False, True])
def test_threads_give_the_same_results_over_many_blocks(many_blocks, exact, monkeypatch):
    """1 and 2 threads: identical ids and distances for every query kind, k (up to all photos), subset (none,
    a mask, ids listed in no order) and scan (float and quantized); and both are the numpy reference's ranking
    (distances at the returned ids, every candidate once, ties by position)."""
    if segsearch._core.max_threads() < 2:
        pytest.skip("this machine gives the process one CPU: 2 threads are clamped to 1, nothing to compare")
    probs, index = many_blocks
    N, C, n = len(index), index.num_classes, index.size
    assert N > 2 * 2048
    rng = np.random.default_rng(22)
    qs = [
        Query.image(probs[5]),
        Query.sketch(random_sketch(C, n, 3, n_classes=2)),
        Query.image_and_sketch(probs[9], random_sketch(C, n, 4)),
    ]
    kinds = [("image", probs[5], None), ("sketch", None, qs[1].labels), ("image_and_sketch", probs[9], qs[2].labels)]
    maps = exact_maps(probs, index) if exact else adc_maps(index.codebook, index.codes)
    refs = [distances(kind, p, lab, maps, index) for kind, p, lab in kinds]
    mask = rng.random(N) < 0.6
    listed = rng.choice(N, 5000, replace=False)
    for quantized in [None] if exact else ["0", "1"]:
        if quantized is not None:
            monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", quantized)
        before = segsearch._core.quantized_scan_stats()[0]
        for subset, cand in ((None, np.arange(N)), (mask, np.flatnonzero(mask)), (listed, np.sort(listed))):
            full = index.search(qs, k=N, exact=exact, subset=subset, threads=1, eps=0, rerank=0)
            for r, ref in zip(full, refs):
                assert sorted(r.ids.tolist()) == cand.tolist()
                np.testing.assert_allclose(r.distances, ref[r.ids], rtol=1e-4, atol=1e-4 * np.median(ref))
                ties = np.diff(r.distances) == 0
                assert ties.any() and (np.diff(r.ids)[ties] > 0).all()
            for k in (1, 10, 700, N):
                one = index.search(qs, k=k, exact=exact, subset=subset, threads=1, eps=0, rerank=0)
                two = index.search(qs, k=k, exact=exact, subset=subset, threads=2, eps=0, rerank=0)
                for a, b, f in zip(one, two, full):
                    assert a.ids.tolist() == b.ids.tolist() == f.ids.tolist()[:k], (quantized, k)
                    assert a.distances.tobytes() == b.distances.tobytes() == f.distances[:k].tobytes()
        if quantized == "1":  # the byte-table scan did run (forced on)
            assert segsearch._core.quantized_scan_stats()[0] > before


def test_empty_index_returns_no_results():
    probs = random_probs(8, 3, 4, 0)
    index = Index(3, 4, 4)
    index.train(probs, niter=1)
    assert len(index.search(Query.image(probs[0]), k=5)) == 0


def test_simd_environment_override():
    import os
    import subprocess
    import sys

    code = "import segsearch; print(segsearch.simd_level())"
    env = dict(os.environ, SEGSEARCH_SIMD="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "scalar"
    env["SEGSEARCH_SIMD"] = "mmx"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "SEGSEARCH_SIMD='mmx'" in bad.stderr and "unknown SIMD level" in bad.stderr


def test_encode_then_add_codes_equals_add(small):
    probs, index = small
    codes = index.encode(probs[:30])
    assert codes.dtype == np.uint8 and codes.shape == (30, 5)
    np.testing.assert_array_equal(codes, index.codes[:30])  # the codes add() stored for the same maps
    rebuilt = Index.from_codebook(
        index.codebook, np.zeros((0, 5), np.uint8), ranking=index.ranking, class_prior=index.class_prior
    )
    rebuilt.add_codes(codes, ids=[f"p{i}" for i in range(30)])
    q = Query.image(probs[3])
    want = index.search(q, k=30, subset=np.arange(30))
    got = rebuilt.search(q, k=30)
    np.testing.assert_array_equal(got.distances, want.distances)
    assert [int(s[1:]) for s in got.ids] == want.ids.tolist()
    with pytest.raises(ValueError, match="n_centroids=16"):
        rebuilt.add_codes(np.full((1, 5), 16, np.uint8), ids=["x"])
    with pytest.raises(ValueError, match=r"uint8 of shape \(N, 5\)"):
        rebuilt.add_codes(codes[:, :4], ids=["y"])
    with pytest.raises(ValueError, match="exact maps"):
        Index(5, 8, 16, keep_exact=True).train(probs, niter=1).add_codes(codes)


def test_train_reads_float16_and_memory_mapped_maps_like_their_float32_values(tmp_path):
    probs = random_probs(60, 4, 8, seed=5).astype(np.float16)
    path = tmp_path / "maps.f16"
    probs.tofile(path)
    mm = np.memmap(path, np.float16, "r", shape=probs.shape)
    a = Index(4, 8, 8).train(mm, niter=3, seed=1)
    b = Index(4, 8, 8).train(probs.astype(np.float32), niter=3, seed=1)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.encode(mm), b.encode(probs.astype(np.float32)))
    bad = probs.copy()
    bad[7, :, 2, 3] = 0  # one pixel's classes sum to 0: found although it is not in the first chunk read
    with pytest.raises(ValueError, match="sum to 1"):
        Index(4, 8, 8).train(bad)


def test_positions_membership_lookup_table_and_default_codes(small):
    probs, index = small
    assert 5 in index and 120 not in index and "5" not in index and [1] not in index
    np.testing.assert_array_equal(index.positions([7, 0, 7]), [7, 0, 7])
    with pytest.raises(ValueError, match="not in the index"):
        index.positions([3, 999])
    q = Query.image(probs[4])
    lut, classes = index.lookup_table(q, eps=0)
    assert lut.shape == (5, 16) and classes.tolist() == list(range(5))
    want = distances("image", probs[4], None, adc_maps(index.codebook, index.codes), index)  # PQ, by numpy
    np.testing.assert_allclose(lut[np.arange(5), index.codes.astype(np.int64)].sum(1), want, rtol=1e-4, atol=1e-4)
    d = index.default_codes
    assert d.shape == (5,) and not d.flags.writeable
    assert all(d[c] == np.bincount(index.codes[:, c], minlength=16).argmax() for c in range(5))
