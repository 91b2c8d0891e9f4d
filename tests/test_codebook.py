"""k-means codebooks and encoding."""

import numpy as np
import pytest
import torch

from conftest import random_probs
from segsearch.engine.codebook import encode, train_codebook
from segsearch.evaluation.synthetic import synthetic_probs


def brute_force_codes(probs, codebook):
    N, C = probs.shape[:2]
    x = probs.reshape(N, C, -1).astype(np.float64)
    d = ((x[:, :, None, :] - codebook[None].astype(np.float64)) ** 2).sum(-1)  # N, C, K
    return d.argmin(-1), d


@pytest.mark.parametrize("maker", ["random", "realistic"])
def test_encode_is_nearest_centroid(maker):
    probs = random_probs(150, 5, 8, 0) if maker == "random" else synthetic_probs(150, 5, 8, seed=0)
    cb = train_codebook(probs, 16, niter=5, seed=0)
    codes = encode(probs, cb.transpose(0, 2, 1), batch=37)
    ref, d = brute_force_codes(probs, cb)
    # equal, or an exact tie in distance
    same = codes == ref
    picked = np.take_along_axis(d, codes[..., None].astype(np.int64), -1)[..., 0]
    best = np.take_along_axis(d, ref[..., None], -1)[..., 0]
    assert np.all(same | np.isclose(picked, best, rtol=1e-5, atol=1e-7))


def test_training_is_deterministic_and_seeded():
    probs = synthetic_probs(120, 6, 8, seed=1)
    a = train_codebook(probs, 16, niter=4, seed=3)
    b = train_codebook(probs, 16, niter=4, seed=3)
    c = train_codebook(probs, 16, niter=4, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_kmeans_reduces_quantization_error():
    probs = synthetic_probs(200, 4, 8, seed=2)
    x = probs.reshape(200, 4, -1)
    errs = []
    for niter in (0, 10):
        cb = train_codebook(probs, 16, niter=niter, seed=0)
        codes = encode(probs, cb.transpose(0, 2, 1))
        rec = cb[np.arange(4)[None], codes.astype(np.int64)]
        errs.append(((rec - x) ** 2).sum())
    assert errs[1] < errs[0]


def test_absent_rows_get_the_reserved_centroid():
    probs = synthetic_probs(100, 8, 8, seed=3)
    cb = train_codebook(probs, 8, niter=3)
    codes = encode(probs, cb.transpose(0, 2, 1))
    mass = probs.reshape(100, 8, -1).sum(-1)
    # rows with almost no probability mass are encoded as centroid 0 (the mean of the absent rows)
    assert np.all(codes[mass < 0.1] == 0)
    assert cb[:, 0].sum(-1).max() < 1.0


def test_k_larger_than_training_set():
    with pytest.raises(ValueError, match="at least 64 training images"):
        train_codebook(random_probs(10, 3, 4, 0), 64)


def test_few_distinct_rows():
    """Fewer informative rows than centroids: still valid, nearest-centroid codes."""
    probs = synthetic_probs(40, 10, 8, seed=4, present=(1, 1))
    cb = train_codebook(probs, 32, niter=2)
    codes = encode(probs, cb.transpose(0, 2, 1))
    ref, d = brute_force_codes(probs, cb)
    picked = np.take_along_axis(d, codes[..., None].astype(np.int64), -1)[..., 0]
    # float32 ||x||^2 - 2 x.a + ||a||^2 resolves distances to ~1e-6 of ||x||^2
    xn2 = (probs.reshape(40, 10, -1).astype(np.float64) ** 2).sum(-1)
    assert np.all(picked - d.min(-1) <= 1e-6 * xn2 + 1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_matches_cpu():
    probs = synthetic_probs(100, 4, 8, seed=5)
    cpu = train_codebook(probs, 8, niter=3, device="cpu")
    gpu = train_codebook(probs, 8, niter=3, device="cuda")
    np.testing.assert_allclose(cpu, gpu, atol=1e-4)
    pm = cpu.transpose(0, 2, 1)
    np.testing.assert_array_equal(encode(probs, pm, device="cpu"), encode(probs, pm, device="cuda"))
