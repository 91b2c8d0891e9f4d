"""segsearch engine benchmarks (pytest-benchmark): end-to-end search, LUT, scan, sketch time vs classes
drawn (the paper's Fig. 5), eps, the exact baseline and K = 4..256 at Table 1's sizes, N = 10^4..10^7
scaling, N = 10M, and faiss's IndexPQ on the same codebook and codes, on synthetic data; Sec. 4.3, Fig. 5
and Table 1 again on real-derived data (``test_real_*``: augmented CamVid network maps, bench/data.py).
Marker ``large``: the paper-scale
index (N = 82,783) and N = 10^7. Timings are reported, never asserted; results (same top-10 as faiss, codes adopted
without a copy) are. Command and selection: bench/README.md.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import data
from data import CLASSES, KINDS, KS_TABLE1, N_BIG, N_EXACT, N_SCALING, TOPK, K
from segsearch import Query, _core

try:
    import faiss
except ImportError:  # the faiss benchmarks skip
    faiss = None

THREADS = (1, 2)
DRAWN = (1, 2, 5, 10, 20, 40, "all")  # classes drawn in Fig. 5; "all" = C
_PREFIX = {"K": "K", "C": "C", "threads": "t", "N": "N", "drawn": "drawn", "eps": "eps"}
large = pytest.mark.large
needs_faiss = pytest.mark.skipif(faiss is None, reason="faiss is not installed: pip install faiss-cpu")


def grid(**axes):
    """``parametrize`` over the product of the axes, with ids such as ``C60-image-t1``."""

    def label(name, v):
        text = "default" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
        return _PREFIX.get(name, "") + text

    params = [
        pytest.param(*vals, id="-".join(label(n, v) for n, v in zip(axes, vals)))
        for vals in itertools.product(*axes.values())
    ]
    return pytest.mark.parametrize(list(axes), params)


# ---------------------------------------------------------------------------------------------- engine
@large
@grid(C=CLASSES, kind=KINDS, threads=THREADS)
def test_search(measure, benchmark, C, kind, threads):
    """End to end: ``index.search(q, k=10)`` (LUT, scan, ids) at the paper's N, synthetic data."""
    index = data.pq_index(C)
    benchmark.extra_info.update(code_stats(index))
    measure(
        ("search", C, kind, threads), f"{kind} query C={C}", index.search, data.query(C, kind), k=TOPK, threads=threads
    )


@large
@grid(C=CLASSES, kind=KINDS)
def test_lut(measure, C, kind):
    """LUT building alone (default eps)."""
    measure(("lut", C, kind), f"LUT C={C}", data.pq_index(C).lookup_table, data.query(C, kind))


@large
@grid(C=CLASSES, threads=THREADS)
def test_scan(measure, benchmark, C, threads):
    """The scan alone with a prebuilt image-query LUT; reports GB of codes per second."""
    index = data.pq_index(C)
    lut, classes = index.lookup_table(data.query(C, "image"))
    codes = index.codes.T  # the (C, N) storage the scan reads
    median = measure(
        ("scan", C, threads),
        f"scan C={C}",
        _core.scan_pq,
        codes,
        index.default_codes,
        lut[None],
        [classes],
        TOPK,
        threads=threads,
    )
    if median:
        benchmark.extra_info.update(gb_per_s=codes.nbytes / median / 1e9, codes_bytes=codes.nbytes)


SCANS = {"float": "0", "quantized": "1", "auto": ""}  # SEGSEARCH_QUANTIZED_SCAN for each


@large
@pytest.mark.parametrize("scan", list(SCANS))
def test_uniform_codes(measure, benchmark, monkeypatch, scan):
    """Image query, C = 60, 1 thread, on uniform random codes (``data.uniform_index``: no code can be skipped)
    with the float scan (SEGSEARCH_QUANTIZED_SCAN=0), the quantized scan (=1) and the automatic choice, after
    checking that each gives the float scan's top-10 exactly."""
    index, query = data.uniform_index(), data.query(60, "image")
    monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", "0")
    want = index.search(query, k=TOPK, threads=1)
    monkeypatch.setenv("SEGSEARCH_QUANTIZED_SCAN", SCANS[scan])
    before = _core.quantized_scan_stats()
    got = index.search(query, k=TOPK, threads=1)
    after = _core.quantized_scan_stats()
    assert np.array_equal(got.ids, want.ids) and np.array_equal(got.distances, want.distances)
    benchmark.extra_info.update(code_stats(index), quantized=after[0] > before[0], reranked=after[1] - before[1])
    measure(("uniform", scan), "uniform codes C=60", index.search, query, k=TOPK, threads=1)


@large
@grid(C=CLASSES, drawn=DRAWN)
def test_sketch_classes(measure, benchmark, C, drawn):
    """Sketch query time vs number of classes drawn (Fig. 5), threads=1."""
    m = C if drawn == "all" else drawn
    benchmark.extra_info.update(drawn=m, target_ms=0.1 + 0.03 * m)
    measure(
        ("sketch_drawn", C, m), f"sketch C={C}", data.pq_index(C).search, data.query(C, "sketch", m), k=TOPK, threads=1
    )


@functools.cache
def eps_agreement(C: int) -> float:
    """Mean top-10 overlap between eps=0 (exact LUT) and default-eps image queries."""
    index, queries = data.pq_index(C), list(data.image_queries(C))
    pairs = zip(index.search(queries, k=TOPK, eps=0.0), index.search(queries, k=TOPK))
    return float(np.mean([len(np.intersect1d(a.ids, b.ids)) / TOPK for a, b in pairs]))


@large
@grid(C=CLASSES, eps=(0.0, None))
def test_eps(measure, benchmark, C, eps):
    """Image query with eps=0 (dense LUT) vs the default sparsity cut, threads=1."""
    benchmark.extra_info.update(top10_agreement=eps_agreement(C), queries=data.N_QUERIES)
    measure(
        ("eps", C, "default" if eps is None else eps),
        f"image query C={C}",
        data.pq_index(C).search,
        data.query(C, "image"),
        k=TOPK,
        threads=1,
        eps=eps,
    )


@pytest.mark.exact
@grid(N=N_EXACT, kind=KINDS)
def test_exact(measure, N, kind):
    """The uncompressed baseline (``search(exact=True)``), C=60, threads=1."""
    measure(
        ("exact", N, kind),
        f"exact N={N}",
        data.exact_index(N).search,
        data.query(60, kind),
        k=TOPK,
        exact=True,
        threads=1,
    )


@pytest.mark.exact
@grid(N=N_EXACT, K=KS_TABLE1)
def test_table1(measure, benchmark, N, K):
    """Table 1: PQ image query at the exact baseline's sizes with K = 4, 16, 64 (the paper's) and 256, C=60,
    threads=1 (grouped with ``test_exact``)."""
    index = data.table1_index(N, K)
    benchmark.extra_info.update(n_images=len(index), n_centroids=K)
    measure(("table1", N, K), f"exact N={N}", index.search, data.query(60, "image"), k=TOPK, threads=1)


# ---------------------------------------------------------------------------------------------- real-derived
def real_or_skip(index):
    if index is None:
        pytest.skip("no cached CamVid network maps: run python bench/maps_cache.py (or bench/quality.py) first")
    return index


def code_stats(index) -> dict:
    """Codes per image that differ from their class's most common code (what the scan pays for)."""
    n = len(index)
    return {
        "n_images": n,
        "nondefault_codes_per_image": float((index.codes != index.default_codes[None, :]).sum() / max(n, 1)),
    }


@large
@grid(C=CLASSES, kind=KINDS, threads=THREADS)
def test_real_search(measure, benchmark, C, kind, threads):
    """``test_search`` on real-derived data: augmented CamVid network maps (``data.augmented_batch``) at the
    paper's N, queried with a held-out CamVid photo (sketch: its 5 largest classes; image + sketch: its 2
    largest drawn over it). Skips without the cached maps."""
    index = real_or_skip(data.real_pq_index(C))
    benchmark.extra_info.update(code_stats(index), data=data.real_description(C))
    measure(
        ("real_search", C, kind, threads),
        f"{kind} query C={C}",
        index.search,
        data.real_query(C, kind),
        k=TOPK,
        threads=threads,
    )


@large
@grid(ranking=("l2", "balanced"), kind=KINDS)
def test_ranking_cost(measure, benchmark, ranking, kind):
    """What the default ranking ("balanced": class-prior correction, photo weight 1/2) costs a search against
    the paper's L2, C = 151, K = 256, N = the paper's, threads=1: each ranking's own codebook and codes of the
    real-derived maps (``data.ranking_index``), the held-out photo's queries (``data.real_query``)."""
    index = real_or_skip(data.ranking_index(ranking))
    benchmark.extra_info.update(code_stats(index), ranking=ranking)
    measure(
        ("ranking_cost", ranking, kind),
        f"ranking cost, {kind} query C=151",
        index.search,
        data.real_query(151, kind),
        k=TOPK,
        threads=1,
    )


@grid(ranking=("l2", "balanced"), kind=KINDS, rerank=data.RERANK_DEPTHS)
def test_rerank(measure, benchmark, ranking, kind, rerank):
    """What exact re-ranking adds to a search: ``index.search(q, k=10, rerank=R)`` for R = 0 (the PQ scan alone),
    16, 32, 64, 256, C = 151, threads=1, on ``data.rerank_index`` (N_RERANK real-derived maps kept as block maps),
    the held-out photo's queries (``data.real_query``). The cost is R times a candidate's exact distance: its
    blocks (``blocks_per_photo``) for the classes the query counts."""
    index = real_or_skip(data.rerank_index(ranking))
    exact = index.snapshot.exact
    benchmark.extra_info.update(
        code_stats(index),
        ranking=ranking,
        blocks_per_photo=exact.n_blocks / max(1, exact.n),
        exact_kb_per_photo=exact.nbytes / max(1, exact.n) / 1024,
    )
    measure(
        ("rerank", ranking, kind, rerank),
        f"re-rank, {kind} query C=151 {ranking}",
        index.search,
        data.real_query(151, kind),
        k=TOPK,
        threads=1,
        rerank=rerank,
    )


@large
@grid(C=CLASSES, drawn=DRAWN)
def test_real_sketch_classes(measure, benchmark, C, drawn):
    """``test_sketch_classes`` (Fig. 5) on real-derived data: the held-out photo's m largest classes where it
    has m classes, else full bands of the m classes with the most mass (``data.real_sketch``), threads=1."""
    index = real_or_skip(data.real_pq_index(C))
    m = C if drawn == "all" else drawn
    sketch, how = data.real_sketch(C, m)
    benchmark.extra_info.update(drawn=m, sketch=how, sketched_fraction=float((sketch >= 0).mean()))
    measure(("real_sketch_drawn", C, m), f"sketch C={C}", index.search, Query.sketch(sketch), k=TOPK, threads=1)


@pytest.mark.exact
@grid(N=N_EXACT, K=(*KS_TABLE1, "exact"))
def test_real_table1(measure, benchmark, N, K):
    """Table 1 on real-derived data: C = 60, the first N augmented maps, PQ with K = 4..256 or exact search
    (``keep_exact`` maps), an image query of a held-out photo, threads=1."""
    if data.camvid() is None:
        real_or_skip(None)
    exact = K == "exact"
    index = data.real_exact_index(N) if exact else data.real_table1_index(N, K)
    benchmark.extra_info.update(n_images=len(index), n_centroids=K)
    measure(
        ("real_table1", N, K),
        f"exact N={N}",
        index.search,
        data.real_query(60, "image"),
        k=TOPK,
        exact=exact,
        threads=1,
    )


@pytest.mark.parametrize(
    ("N", "kind"),
    [
        pytest.param(n, kind, id=f"N{n}-{kind}", marks=[large] if n >= N_BIG else [])
        for n in N_SCALING
        for kind in KINDS
    ],
)
def test_scaling(measure, benchmark, N, kind):
    """Search time vs N (10^4..10^7, scaled) for the three query kinds: synthetic codes with the C=60, K=256
    codebook, threads=1. extra_info: the index's bytes per image (codes) and its fixed bytes (codebook)."""
    index = data.scaling_index(N)
    benchmark.extra_info.update(
        n_images=len(index), code_bytes_per_image=index.num_classes, fixed_bytes=index.fixed_nbytes
    )
    measure(("scaling", N, kind), f"scaling {kind}", index.search, data.query(60, kind), k=TOPK, threads=1)


@large
@pytest.mark.big
@pytest.mark.parametrize(
    ("kind", "drawn", "threads"),
    [
        pytest.param("image", None, 2, id="image-t2"),
        pytest.param("image", None, 1, id="image-t1"),
        pytest.param("sketch", 1, 2, id="sketch-drawn1-t2"),
        pytest.param("sketch", 5, 2, id="sketch-drawn5-t2"),
    ],
)
def test_big(measure, benchmark, kind, drawn, threads):
    """N = 10M (scaled) synthetic codes with the C=60 codebook; extra_info has the memory figures."""
    index, memory = data.big_index()
    benchmark.extra_info.update(memory, n_images=len(index))
    measure(
        ("big", f"{kind}{drawn or ''}", threads),
        f"N={len(index)}",
        index.search,
        data.query(60, kind, drawn),
        k=TOPK,
        threads=threads,
    )


# ---------------------------------------------------------------------------------------------- faiss
def assert_same_top(ours, ids, dists):
    """Our top-k equals faiss's as a set, except for ties at the k-th distance, with the same distances."""
    np.testing.assert_allclose(ours.distances, dists, rtol=1e-4, err_msg="distances differ from faiss")
    theirs, mine = set(ids.tolist()), set(ours.ids.tolist())
    boundary = min(ours.distances[-1], dists[-1]) * (1 - 1e-4)
    odd = [d for i, d in zip(ours.ids, ours.distances) if i not in theirs]
    odd += [d for i, d in zip(ids, dists) if i not in mine]
    assert all(d >= boundary for d in odd), (
        f"top-{TOPK} differs from faiss: ours {sorted(mine)}, faiss {sorted(theirs)}"
    )


@large
@pytest.mark.faiss
@needs_faiss
@grid(C=CLASSES, threads=THREADS)
def test_faiss_search(measure, C, threads):
    """faiss ``IndexPQ.search`` of an image query, after checking its top-10 against ours (eps=0)."""
    twin, index, queries = data.faiss_twin(C), data.pq_index(C), data.image_queries(C)
    faiss.omp_set_num_threads(threads)
    x = np.stack([q.probs.reshape(-1) for q in queries])
    dists, ids = twin.search(x, TOPK)
    for ours, i, d in zip(index.search(list(queries), k=TOPK, eps=0.0), ids, dists):
        assert_same_top(ours, i, d)
    measure(("faiss", C, threads), f"image query C={C}", twin.search, x[:1], TOPK)


@large
@pytest.mark.faiss
@needs_faiss
def test_faiss_uniform(measure):
    """faiss ``IndexPQ.search`` on ``test_uniform_codes``'s codes and query, one thread, after checking its
    top-10 against ours (eps=0)."""
    twin, index, query = data.uniform_faiss_twin(), data.uniform_index(), data.query(60, "image")
    faiss.omp_set_num_threads(1)
    x = query.probs.reshape(1, -1)
    dists, ids = twin.search(x, TOPK)
    assert_same_top(index.search(query, k=TOPK, eps=0.0), ids[0], dists[0])
    measure(("faiss_uniform",), "uniform codes C=60", twin.search, x, TOPK)


@large
@pytest.mark.faiss
@needs_faiss
@grid(C=CLASSES)
def test_faiss_real(measure, C):
    """faiss ``IndexPQ.search`` on ``test_real_search``'s real-derived codes and codebook with the held-out
    photo's image query, one thread, after checking its top-10 against ours (eps=0)."""
    index = real_or_skip(data.real_pq_index(C))
    twin, query = data.real_faiss_twin(C), data.real_query(C, "image")
    faiss.omp_set_num_threads(1)
    x = query.probs.reshape(1, -1)
    dists, ids = twin.search(x, TOPK)
    assert_same_top(index.search(query, k=TOPK, eps=0.0), ids[0], dists[0])
    measure(("faiss_real", C), f"image query C={C}", twin.search, x, TOPK)


@large
@pytest.mark.faiss
@needs_faiss
@grid(C=CLASSES)
def test_faiss_lut(measure, C):
    """faiss's distance table alone (``ProductQuantizer.compute_distance_table``), one thread."""
    twin = data.faiss_twin(C)
    x = data.query(C, "image").probs.reshape(-1)
    table = np.empty(C * K, np.float32)
    faiss.omp_set_num_threads(1)
    measure(("faiss_lut", C), f"LUT C={C}", twin.pq.compute_distance_table, faiss.swig_ptr(x), faiss.swig_ptr(table))
