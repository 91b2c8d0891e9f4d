"""Every SIMD path at every SIMD level, against the scalar level (bit for bit) and the numpy reference.

The lookup tables: float and byte codebooks, with and without the row-run sums (a sketch that draws whole rows
of one class, whole 16-pixel runs, a row's short last run, runs that are not whole), and a check that the row-run
path is taken exactly where a whole run is drawn. The scans: the skipping and the plain float loops, the
quantized byte-table kernels (the AVX-512 level's VBMI kernel where the CPU has VBMI) and the exact scan's dot
products, through Index.search. A level (or the VBMI kernel) this CPU cannot run is reported as a skip, naming it.
"""

from __future__ import annotations

import numpy as np
import pytest

import segsearch
from conftest import ALL_SIMD_LEVELS, cpu_has_vbmi, random_probs, random_sketch
from reference import adc_maps, distances, query_vectors
from segsearch import Index, Query, _core

SUPPORTED = segsearch.supported_simd_levels()


def at_level(level: str, fn):
    before = segsearch.simd_level()
    segsearch.set_simd_level(level)
    try:
        return fn()
    finally:
        segsearch.set_simd_level(before)


def row_sketch(C: int, n: int, seed: int) -> np.ndarray:
    """Whole rows of one class (every run of the row whole, the last one short when 16 does not divide n), one
    whole run of a row, a row's last run alone, runs that are not whole, and scattered pixels."""
    w = min(16, n)
    rng = np.random.default_rng(seed)
    lab = np.full((n, n), -1, np.int32)
    lab[:3] = 2
    lab[3, :w] = 0
    lab[4, n - (n % w or w) :] = 1
    lab[5:7, 1 : n - 1] = 3
    scattered = rng.random((n - 8, n)) < 0.3
    lab[8:][scattered] = rng.integers(0, C, int(scattered.sum()))
    return lab


def whole_runs(lab: np.ndarray, C: int) -> np.ndarray:
    """Per class, the runs (row y, pixels x .. x + w - 1, x a multiple of w = min(16, n)) drawn whole with it."""
    n = lab.shape[0]
    w = min(16, n)
    out = np.zeros(C, np.int64)
    for y in range(n):
        for x in range(0, n, w):
            run = lab[y, x : x + w]
            if run[0] >= 0 and (run == run[0]).all():
                out[run[0]] += 1
    return out


def codebooks(C: int, n: int, K: int, seed: int):
    """A random byte codebook (C, n*n, K) position-major, as the index stores it, and its float twin (v / 255),
    each with its norms and its row-run sums (C, n * runs per row, K), summed here."""
    rng = np.random.default_rng(seed)
    cb8 = rng.integers(0, 256, (C, n * n, K), dtype=np.uint8)
    w = min(16, n)
    nb = -(-n // w)
    out = {}
    for name, cb, dtype, scale in (
        ("bytes", cb8, np.uint16, 1.0 / 255),
        ("float", cb8 / np.float32(255), np.float32, 1.0),
    ):
        grid = cb.reshape(C, n, n, K)
        sums = np.stack([grid[:, :, b * w : (b + 1) * w].sum(axis=2, dtype=dtype) for b in range(nb)], axis=2)
        x = cb.astype(np.float64) * (1.0 / 255 if name == "bytes" else 1.0)
        norms = np.einsum("cdk,cdk->ck", x, x).astype(np.float32)
        out[name] = (np.ascontiguousarray(cb), norms, np.ascontiguousarray(sums.reshape(C, n * nb, K)), w, scale)
    return out


def luts(cbs, kinds):
    """{(codebook, kind, variant): (lut, classes)} at the active level; variants: without row-run sums, with them,
    with every row-run sum one too large (shows where the row-run path is taken)."""
    out = {}
    for name, (cb, norms, sums, w, _) in cbs.items():
        bound = {
            "plain": _core.Codebook(cb, norms),
            "runs": _core.Codebook(cb, norms, sums, w),
            "shifted": _core.Codebook(cb, norms, sums + sums.dtype.type(1), w),
        }
        for kind, (k, probs, labels) in kinds.items():
            for variant, b in bound.items():
                out[name, kind, variant] = _core.build_lut(b, k, probs, labels, 0.0, 1)
    return out


@pytest.mark.parametrize("n, K", [(8, 16), (20, 37), (32, 256)])
def test_lookup_table_paths_at_every_level(simd_level, n, K):
    C = 5
    cbs = codebooks(C, n, K, seed=n)
    lab = row_sketch(C, n, seed=n)
    p = random_probs(1, C, n, seed=n)[0].reshape(C, -1)
    kinds = {"image": (0, p, None), "sketch": (1, None, lab.reshape(-1)), "image_and_sketch": (2, p, lab.reshape(-1))}
    got = luts(cbs, kinds)
    want = at_level("scalar", lambda: luts(cbs, kinds))
    for key, (lut, cls) in got.items():  # bit for bit the scalar level's (the rows of the classes summed)
        np.testing.assert_array_equal(cls, want[key][1], err_msg=str(key))
        np.testing.assert_array_equal(lut[cls], want[key][0][cls], err_msg=str(key))
    runs = whole_runs(lab, C)
    assert runs[2] == 3 * -(-n // min(16, n)) and runs[0] >= 1 and runs[1] >= 1 and runs[3] == 0
    for name, (cb, _norms, _, _, scale) in cbs.items():
        a = cb.astype(np.float64).transpose(0, 2, 1) * (1.0 / 255 if name == "bytes" else 1.0)  # (C, K, D)
        for kind, (_, probs, labels) in kinds.items():
            cls, q = query_vectors(kind, probs, labels, C, n * n)
            ref = (q * q).sum(1)[:, None] - 2.0 * np.einsum("cd,ckd->ck", q, a) + np.einsum("ckd,ckd->ck", a, a)
            plain, pcls = got[name, kind, "plain"]
            np.testing.assert_array_equal(pcls, cls)
            np.testing.assert_allclose(plain[cls], ref[cls], rtol=1e-5, atol=1e-4, err_msg=f"{name} {kind}")
            fast = got[name, kind, "runs"][0]
            np.testing.assert_allclose(fast[cls], plain[cls], rtol=1e-5, atol=1e-4, err_msg=f"{name} {kind}")
            # one more in every row-run sum moves the LUT by -2 (x 1/255 for bytes) per whole run drawn with c
            moved = got[name, kind, "shifted"][0] - fast
            expect = 0.0 if kind == "image" else -2.0 * scale * runs[cls].astype(np.float64)
            np.testing.assert_allclose(
                moved[cls],
                np.broadcast_to(np.reshape(expect, (-1, 1)), moved[cls].shape),
                rtol=1e-3,
                atol=1e-3,
                err_msg=f"{name} {kind}: row runs taken",
            )


@pytest.fixture(scope="module")
def row_index():
    """5,000 photos (over two scan blocks and a tail) of a random byte codebook at n = 20 (runs of 16 and 4),
    skewed codes (the skipping loop) on some classes, uniform ones (the plain loop) on others; and a small index
    keeping exact maps."""
    rng = np.random.default_rng(30)
    C, n, K, N = 6, 20, 64, 5000
    cb = (rng.random((C, K, n, n)) / 4).astype(np.float32)
    codes = rng.integers(0, K, (N, C)).astype(np.uint8)
    codes[:, :3] = np.where(rng.random((N, 3)) < 0.9, 5, codes[:, :3])
    index = Index.from_codebook(cb, codes)
    probs = random_probs(300, C, n, seed=31)
    exact = Index(C, n, 4, keep_exact=True).train(probs, niter=1).add(probs)
    return index, exact, probs


def test_search_paths_at_every_level(simd_level, row_index, monkeypatch):
    index, exact, probs = row_index
    C, n, N = index.num_classes, index.size, len(index)
    lab = row_sketch(C, n, seed=3)
    qs = [
        Query.image(probs[0]),
        Query.sketch(lab),
        Query.image_and_sketch(probs[1], lab),
        Query.sketch(random_sketch(C, n, 4, n_classes=2, fill=0.1)),
    ]
    mask = np.random.default_rng(32).random(N) < 0.5

    def run():
        out = []
        for quantized in ("0", "1"):  # the float loops, then the byte-table kernels
            monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", quantized)
            out += index.search(qs, k=40, eps=0) + index.search(qs, k=40, subset=mask, eps=0)
            out += index.search(qs, k=40, subset=np.arange(N - 1, 0, -3), eps=0)
        monkeypatch.delenv("SEGSEARCH_QUANTIZED_SCAN")
        return out + exact.search(qs, k=300, exact=True)  # dot products: dense (photos) and sparse (a sketch)

    got = run()
    want = at_level("scalar", run)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.ids.tolist() == b.ids.tolist(), (simd_level, i)
        assert a.distances.tobytes() == b.distances.tobytes(), (simd_level, i)
    maps = adc_maps(np.asarray(index.codebook), index.codes)
    for r, (kind, p, labels) in zip(
        got[:4],
        [
            ("image", probs[0], None),
            ("sketch", None, lab),
            ("image_and_sketch", probs[1], lab),
            ("sketch", None, qs[3].labels),
        ],
    ):
        ref = distances(kind, p, labels, maps, index)
        tol = 1e-4 * np.median(ref)
        np.testing.assert_allclose(r.distances, ref[r.ids], rtol=1e-4, atol=tol)
        assert np.partition(ref, 40)[40] >= ref[r.ids].max() - 2 * tol  # nothing nearer left out


def test_vbmi_byte_table_kernel():
    """The AVX-512 level sums the quantized scan's byte tables with VBMI permutes where the CPU has VBMI (else
    with the AVX2 kernel): the same sums as the scalar level (the same images re-ranked), the same results."""
    if "avx512" not in SUPPORTED:
        pytest.skip(f"no AVX-512 on this CPU (it has {', '.join(SUPPORTED)}): the VBMI byte-table kernel is untested")
    if not cpu_has_vbmi():
        pytest.skip(
            "this CPU has AVX-512 without VBMI: the avx512 level runs the AVX2 byte-table kernel, the VBMI "
            "kernel is untested"
        )
    rng = np.random.default_rng(33)
    C, N = 40, 9000 - 37  # a tail shorter than a 64-code step
    for K in (4, 16, 100, 256):
        codes = rng.integers(0, K, (C, N), dtype=np.uint8)
        luts = rng.random((2, C, K)).astype(np.float32)
        cls = [np.arange(C, dtype=np.int32), np.arange(1, C, 3, dtype=np.int32)]
        defaults = rng.integers(0, K, C).astype(np.uint8)

        def scan(level, codes=codes, defaults=defaults, luts=luts, cls=cls):
            def go():
                start = _core.quantized_scan_stats()
                r = _core.scan_pq(codes, defaults, luts, cls, 10, threads=1, quantized=True)
                return r, tuple(b - a for a, b in zip(start, _core.quantized_scan_stats()))

            return at_level(level, go)

        (ids, d, counts), stats = scan("avx512")
        (ids0, d0, counts0), stats0 = scan("scalar")
        assert stats[0] == 2 and stats == stats0, (K, stats, stats0)
        np.testing.assert_array_equal(counts, counts0)
        np.testing.assert_array_equal(ids, ids0)
        np.testing.assert_array_equal(d, d0)


def test_every_level_is_either_run_or_reported():
    """The levels this CPU runs are a prefix of scalar, avx2, avx512 (the others are skipped above, by name)."""
    assert SUPPORTED == list(ALL_SIMD_LEVELS[: len(SUPPORTED)])


@pytest.mark.parametrize("threads", [1, 2])
def test_float16_conversion_at_every_level(simd_level, threads):
    """Every float16 bit pattern (zeros, subnormals, normals, infinities, NaNs with their payloads) converts to
    the float32 numpy's cast gives, bit for bit, in any shape, strides and thread count; and ``as_float32`` (what
    training and encoding read the float16 sample through) gives numpy's values for float16, float32 and int input."""
    from segsearch.engine.checks import as_float32

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float32)
    got = _core.float16_to_float32(bits, threads)
    assert got.dtype == np.float32 and got.shape == bits.shape
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # larger than one thread's chunk, 4-D, and a strided view (one class of each photo)
    maps = random_probs(3, 200, 18, seed=5).astype(np.float16)  # most values are float16 subnormals
    assert (np.abs(maps) < np.float16(6.1e-5)).mean() > 0.1
    for a in (maps, maps[:, 7], maps[1:, ::2, 3:]):
        out = _core.float16_to_float32(a.view(np.uint16), threads)
        assert out.shape == a.shape and out.flags.c_contiguous
        np.testing.assert_array_equal(out.view(np.uint32), a.astype(np.float32).view(np.uint32))
        np.testing.assert_array_equal(as_float32(a).view(np.uint32), a.astype(np.float32).view(np.uint32))
    f32 = np.ascontiguousarray(maps.astype(np.float32))
    assert as_float32(f32) is f32
    np.testing.assert_array_equal(as_float32(np.arange(6).reshape(2, 3)), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert _core.float16_to_float32(np.zeros(0, np.uint16), threads).shape == (0,)
