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


def _lloyd_every_iteration(x: torch.Tensor, cents: torch.Tensor, niter: int) -> torch.Tensor:
    """Lloyd's k-means of one class's rows as the trainer runs it (nearest centroid, the first on ties; means; empty
    clusters re-seeded with the rows farthest from their centroids), every one of ``niter`` iterations, with no
    early stop."""
    k = len(cents)
    for _ in range(niter):
        d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ cents.T) + (cents * cents).sum(1)[None, :]
        best, idx = d.min(dim=1)
        sums = torch.zeros_like(cents).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k)
        empty = (counts == 0).nonzero().flatten()
        cents = sums / counts.clamp_min(1).to(x.dtype)[:, None]
        if len(empty):
            far = torch.argsort(best.clamp_min(0), descending=True, stable=True)[: len(empty)]
            cents[empty] = x[far]
    return cents


@pytest.mark.parametrize("duplicates", [False, True])
def test_kmeans_stops_early_with_the_centroids_of_every_iteration(monkeypatch, duplicates):
    """The trainer's k-means (several classes in one batch) stops once an iteration changes no assignment (and
    leaves no cluster empty): its centroids are those of Lloyd's algorithm run for every one of ``niter``
    iterations (up to the float rounding of its batched products), for any ``niter``, before convergence or long
    past it."""
    import segsearch.engine.codebook as cb

    probs = synthetic_probs(60, 3, 8, seed=4)
    xs = [torch.from_numpy(np.ascontiguousarray(probs[:, c].reshape(60, -1))) for c in (1, 2)]
    if duplicates:  # 6 distinct rows for 8 clusters: some stay empty, re-seeded at every iteration
        xs = [torch.cat([x[:6]] * 10) for x in xs]
    k = 8
    perms = [torch.randperm(60, generator=torch.Generator().manual_seed(5 + c))[:k] for c in (0, 1)]
    products = []
    bmm = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda *a: products.append(1) or bmm(*a))
    for niter in (1, 3, 60, 120):
        want = [_lloyd_every_iteration(x, x[p].clone(), niter) for x, p in zip(xs, perms)]
        products.clear()
        got = cb._kmeans_batched([x.numpy() for x in xs], k, niter, [p.numpy() for p in perms], "cpu")
        for g in (0, 1):
            np.testing.assert_allclose(got[g], want[g].numpy(), rtol=0, atol=1e-5)
        iterations = len(products) // 2  # k + 1 <= 32: two batched products an iteration
        if niter == 120:  # it stopped early, except where clusters stay empty (re-seeded by their distances)
            assert iterations == niter if duplicates else iterations < niter
