"""Bad input gets a clear ValueError (or our own error type), never a crash."""
import numpy as np
import pytest

from segsearch import Index, NotTrainedError, Query

from conftest import random_probs


@pytest.fixture(scope="module")
def index():
    probs = random_probs(50, 4, 8, seed=2)
    ix = Index(4, 8, 8, keep_exact=False)
    ix.train(probs, niter=2)
    ix.add(probs)
    return ix


def good_probs():
    return random_probs(1, 4, 8, seed=9)[0]


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 8)), r"shape \(C, n, n\)"),
    (np.zeros((4, 8, 6)), "square"),
    (np.full((4, 8, 8), 0.25, dtype=np.complex64), "float"),
    (np.array([["a"]]), "shape|float"),
])
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
    with pytest.raises(ValueError):
        _core.build_lut(cb, nrm, 0, np.zeros((3, 15), np.float32), None, 0.0)
    with pytest.raises(ValueError):
        _core.build_lut(cb, nrm, 1, None, np.full(16, 3, np.int32), 0.0)
    with pytest.raises(ValueError):
        _core.build_lut(cb, nrm, 5, None, None, 0.0)
    with pytest.raises(ValueError):
        _core.build_lut(cb, np.zeros((3, 5), np.float32), 0, np.zeros((3, 16), np.float32), None, 0.0)
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
