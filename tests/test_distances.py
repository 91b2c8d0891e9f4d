"""The core's distances against the numpy reference of the equations, for all three query kinds."""

import numpy as np
import pytest

import segsearch
from conftest import random_probs, random_sketch
from reference import adc_maps, distances, exact_maps, ranking_params, reweighted, topk
from segsearch import Query
from segsearch.evaluation.synthetic import synthetic_probs

KINDS = ["image", "sketch", "image_and_sketch"]


def make_query(kind, probs, labels):
    if kind == "image":
        return Query.image(probs)
    if kind == "sketch":
        return Query.sketch(labels)
    return Query.image_and_sketch(probs, labels)


def queries_for(probs, C, size):
    """A few queries of each kind: database photos, an unseen photo, sketches of 1..3 classes."""
    rng = np.random.default_rng(7)
    out = []
    for s in range(3):
        p = probs[int(rng.integers(len(probs)))]
        lab = random_sketch(C, size, seed=s, n_classes=s + 1, fill=0.3 + 0.2 * s)
        out.append((p, lab))
    return out


def check(kind, result, ref, k):
    """Same distances to 1e-4 relative (atol is 1e-4 of the distance scale for near-zero entries),
    and the returned ids are a valid top-k of the reference."""
    order = topk(ref, k)
    scale = max(float(np.median(np.abs(ref))), 1e-6)
    np.testing.assert_allclose(result.distances, ref[order], rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(ref[result.ids], result.distances, rtol=1e-4, atol=1e-4 * scale)
    assert np.all(np.diff(result.distances) >= 0)


@pytest.mark.parametrize("kind", KINDS)
def test_pq_distances_match_numpy_adc(built, kind):
    name, probs, index = built
    N, C = probs.shape[:2]
    size = probs.shape[-1]
    rec = adc_maps(np.asarray(index.codebook), np.asarray(index.codes))
    for p, lab in queries_for(probs, C, size):
        ref = distances(kind, p, lab, rec, index)
        res = index.search(make_query(kind, p, lab), k=N, eps=0, rerank=0)
        check(kind, res, ref, N)
        res10 = index.search(make_query(kind, p, lab), k=10, eps=0, rerank=0)
        check(kind, res10, ref, 10)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_distances_match_numpy(built, kind):
    name, probs, index = built
    N, C = probs.shape[:2]
    size = probs.shape[-1]
    maps = exact_maps(probs, index)
    for p, lab in queries_for(probs, C, size):
        ref = distances(kind, p, lab, maps, index)
        res = index.search(make_query(kind, p, lab), k=N, exact=True)
        check(kind, res, ref, N)


def test_exact_maps_are_close_to_float_maps(built):
    """The uint8 storage of keep_exact (steps of 1/255) changes distances by under 0.5%, and by far less
    than PQ does."""
    name, probs, index = built
    N, C = probs.shape[:2]
    p = probs[3]
    power = ranking_params(index)[0]
    maps = probs if not power else reweighted(probs, index.class_prior, power)
    ref = distances("image", p, None, maps.reshape(N, C, -1), index)
    d_exact = np.empty(N)
    d_pq = np.empty(N)
    res = index.search(Query.image(p), k=N, exact=True)
    d_exact[res.ids] = res.distances
    res = index.search(Query.image(p), k=N, eps=0, rerank=0)
    d_pq[res.ids] = res.distances
    err_exact = np.abs(d_exact - ref)
    assert err_exact.max() <= 5e-3 * np.abs(ref).max()
    assert err_exact.mean() <= 0.1 * np.abs(d_pq - ref).mean()


def test_exact_maps_change_each_distance_by_under_half_a_percent(built):
    """The README: "the quantization [of keep_exact's maps to bytes] changes distances by under 0.5%". Tested as
    written, each distance on its own: for every query (10 unseen photos, 10 database photos, alone and with a
    sketch drawn over them, and 10 sketches) and every photo, |exact - float maps| < 0.5% of the float maps'
    distance. Only the distance of a database photo to itself is left out (0 for L2: no relative change)."""
    name, probs, index = built
    N, C = probs.shape[:2]
    size = probs.shape[-1]
    power = ranking_params(index)[0]
    maps = (probs if not power else reweighted(probs, index.class_prior, power)).reshape(N, C, -1)
    unseen = random_probs(10, C, size, 99) if name == "random" else synthetic_probs(10, C, size, seed=99)
    worst = 0.0
    for i in range(10):
        lab = random_sketch(C, size, seed=i, n_classes=1 + i % 3, fill=0.3 + 0.05 * i)
        for p, own in ((unseen[i], None), (probs[20 * i], 20 * i)):
            for kind, q in (
                ("image", Query.image(p)),
                ("image_and_sketch", Query.image_and_sketch(p, lab)),
                ("sketch", Query.sketch(lab)),
            ):
                ref = distances(kind, p, lab, maps, index)
                res = index.search(q, k=N, exact=True)
                d = np.empty(N)
                d[res.ids] = res.distances
                keep = np.ones(N, bool)
                if own is not None and kind == "image":
                    keep[own] = False
                assert (ref[keep] > 0).all()
                worst = max(worst, float((np.abs(d - ref)[keep] / ref[keep]).max()))
    assert worst < 5e-3, worst


def test_sketch_counts_only_drawn_classes(built):
    name, probs, index = built
    N, C = probs.shape[:2]
    size = probs.shape[-1]
    lab = np.full((size, size), -1)
    lab[: size // 2] = 1
    res = index.search(Query.sketch(lab), k=N, rerank=0)
    # sum over class 1 only: distance is lam ||a - q / lam||^2 of the class-1 reconstruction a (lam = 1: L2)
    rec = adc_maps(np.asarray(index.codebook), np.asarray(index.codes))[:, 1]
    q = (lab.reshape(-1) == 1).astype(np.float64)
    lam = ranking_params(index)[1]
    ref = lam * ((rec - q / lam) ** 2).sum(1)
    assert (res.distances >= 0).all()
    np.testing.assert_allclose(np.sort(ref), res.distances, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    assert sorted(res.ids.tolist()) == list(range(N))
    np.testing.assert_allclose(ref[res.ids], res.distances, rtol=1e-4, atol=1e-5 * np.abs(ref).max())  # at the ids


def test_eps_default_is_close_to_exact_lut(built):
    """The default eps cut (query pixels with p <= eps skipped) keeps most of the top-10."""
    name, probs, index = built
    agree = []
    for i in range(0, len(probs), 25):
        a = index.search(Query.image(probs[i]), k=10, eps=0).ids
        b = index.search(Query.image(probs[i]), k=10).ids
        agree.append(len(set(a) & set(b)) / 10)
    assert np.mean(agree) >= 0.9


def test_sketch_resized_nearest(built):
    name, probs, index = built
    size = probs.shape[-1]
    lab = np.full((size, size), -1)
    lab[: size // 2, : size // 2] = 2
    big = np.kron(lab, np.ones((3, 3), dtype=lab.dtype))
    a = index.search(Query.sketch(lab), k=20)
    b = index.search(Query.sketch(big), k=20)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.distances, b.distances)


def test_self_query_ranks_itself_first_exact(built):
    name, probs, index = built
    for i in (0, 17, 101):
        res = index.search(Query.image(probs[i]), k=1, exact=True)
        assert res.ids[0] == i


@pytest.mark.parametrize("size", [20, 32])
def test_block_sums_give_the_same_luts(size, simd_level):
    """Sketch LUTs read precomputed sums for whole 16-pixel runs of a row; they equal the pixel-by-pixel LUT,
    at every SIMD level (tests/test_simd_paths.py compares the levels bit for bit and checks where the sums are
    read). (size 20: a row has a 16-pixel block and a 4-pixel one.)"""
    from segsearch import _core
    from segsearch.engine.index import BLOCK_W

    C = 5
    probs = synthetic_probs(60, C, size, seed=8)
    index = segsearch.Index(C, size, 8)
    index.train(probs, niter=3)
    lab = np.full((size, size), -1, np.int32)
    lab[: size // 2] = 2  # whole rows
    lab[size // 2 :, 3 : size - 1] = 0  # partial runs
    lab[size - 3 :, :] = 4
    p = probs[0].reshape(C, -1)
    for kind, pr, lb in ((1, None, lab.reshape(-1)), (2, p, lab.reshape(-1))):
        plain, cls = _core.build_lut(_core.Codebook(index._cb, index._cnorms), kind, pr, lb, 0.0)
        fast, cls2 = _core.build_lut(
            _core.Codebook(index._cb, index._cnorms, index._block_sums, min(BLOCK_W, size)), kind, pr, lb, 0.0, 1
        )
        np.testing.assert_array_equal(cls, cls2)
        np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)
