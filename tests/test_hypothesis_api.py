"""Property test of the search API against the numpy reference (tests/reference.py): random indexes (C, n, K,
N, codebook, codes, ids of each kind, the "l2" and "balanced" rankings with a class prior, sometimes through a
save and load, sometimes over 4,096 photos), queries of the three kinds, alone or in batches, subsets (bool masks
or lists of ids), k. A few hundred examples in the normal run;
``pytest -m hypothesis_long`` runs 12,000.

What must hold for every example: one result per query, min(k, candidates) hits, all from the subset, ids
distinct, distances ascending and equal to the reference's ADC distances (float32 vs float64: rtol 1e-4), ties
to the smaller position, top-k the first k of the full ranking, nothing better left out, same results on 1 or
all threads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import adc_maps, distances
from segsearch import Index, Query

KINDS = ("image", "sketch", "image_and_sketch")


@st.composite
def cases(draw):
    C = draw(st.integers(1, 5))
    n = draw(st.sampled_from([1, 2, 3, 4, 7, 8, 16, 17, 20]))
    K = draw(st.sampled_from([1, 2, 3, 4, 8, 16, 255, 256]))
    N = n_base = draw(st.integers(0, 80))
    if N and draw(st.integers(0, 4)) == 0:
        # the n_base photos repeated to over 4,096: more than two of the scan's blocks of 2,048 photos, so that
        # 1 and 2 threads differ (a thread never takes less than a block), with equal distances in every block
        N = draw(st.integers(2 * 2048 + 1, 7000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    codebook_kind = draw(st.sampled_from(["random", "probabilities", "zeros", "edges"]))
    if codebook_kind == "random":
        cb = rng.random((C, K, n, n), dtype=np.float32)
    elif codebook_kind == "probabilities":
        cb = rng.random((C, K, n, n), dtype=np.float32) + 1e-3
        cb /= cb.sum(axis=0, keepdims=True)
    elif codebook_kind == "zeros":
        cb = np.zeros((C, K, n, n), np.float32)  # every distance ties
    else:
        cb = rng.choice(np.array([0.0, 1.0, -1e-3, 1 + 1e-3, 0.5], np.float32), (C, K, n, n))
    code_kind = draw(st.sampled_from(["uniform", "skewed", "one"]))
    codes = rng.integers(0, K, (n_base, C), dtype=np.uint8)
    if code_kind == "skewed":  # mostly one code per class, as real data
        codes = np.where(rng.random((n_base, C)) < 0.85, rng.integers(0, K, C, dtype=np.uint8), codes).astype(np.uint8)
    elif code_kind == "one":
        codes[:] = rng.integers(0, K)
    if N > n_base:
        codes = codes[np.arange(N) % n_base]
    ranking = draw(st.sampled_from(["l2", "balanced"]))
    prior = None
    if ranking == "balanced":  # the class prior the query photos are reweighted with: some classes rare
        prior = (rng.random(C) ** draw(st.sampled_from([1, 4])) + 1e-3).astype(np.float32)
    id_kind = draw(st.sampled_from(["none", "int", "str"]))
    ids = None
    if id_kind == "int":
        pool = draw(st.sampled_from(["small", "huge"]))
        if pool == "small":
            ids = rng.choice(max(1000, 2 * N), N, replace=False) - 500
        else:
            ids = np.unique(rng.integers(-(2**63), 2**63 - 1, N + 10, dtype=np.int64))[:N]
            rng.shuffle(ids)
            if len(ids) < N:
                ids = np.arange(N)
    elif id_kind == "str":
        ids = [f"img/{i}-é{rng.integers(1000)}.jpg" for i in range(N)]
    queries = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(KINDS))
        probs = rng.random((C, n, n)) + (draw(st.sampled_from([1e-3, 0.0])))
        probs = (probs / probs.sum(axis=0)).astype(np.float32)
        if draw(st.booleans()):  # sparse maps: most classes near zero at a pixel
            hard = np.eye(C, dtype=np.float32)[rng.integers(0, C, (n, n))].transpose(2, 0, 1)
            probs = (0.98 * hard + 0.02 * probs).astype(np.float32)
        labels = np.where(
            rng.random((n, n)) < draw(st.sampled_from([0.1, 0.5, 1.0])), rng.integers(0, C, (n, n)), -1
        ).astype(np.int32)
        if kind == "sketch" and (labels < 0).all():
            labels[rng.integers(n), rng.integers(n)] = rng.integers(C)
        queries.append((kind, probs, labels))
    subset_kind = draw(st.sampled_from(["none", "mask", "ids", "empty"]))
    subset = None
    if subset_kind == "mask":
        subset = rng.random(N) < draw(st.sampled_from([0.1, 0.5, 0.9]))
    elif subset_kind == "ids" and N:
        pos = rng.choice(N, rng.integers(1, N + 1), replace=False)
        subset = pos
    elif subset_kind == "empty":
        subset = np.zeros(N, bool)
    k = draw(st.integers(1, N + 3))
    saved = draw(st.sampled_from([None, "mmap", "read"]))
    return dict(
        cb=cb,
        codes=codes,
        n_base=n_base,
        ranking=ranking,
        prior=prior,
        ids=ids,
        queries=queries,
        subset=subset,
        k=k,
        saved=saved,
    )


def _query(kind, probs, labels):
    return {
        "image": lambda: Query.image(probs),
        "sketch": lambda: Query.sketch(labels),
        "image_and_sketch": lambda: Query.image_and_sketch(probs, labels),
    }[kind]()


def check_case(case, folder: Path):
    cb, codes, ids = case["cb"], case["codes"], case["ids"]
    N = len(codes)
    index = Index.from_codebook(cb, codes, ids=ids, ranking=case["ranking"], class_prior=case["prior"])
    if case["saved"]:
        path = folder / "h.segsearch"
        index.save(path)
        index = Index.load(path, mmap=case["saved"] == "mmap")
    assert index.ranking.name == case["ranking"]
    all_ids = index.ids.tolist()
    if ids is not None:
        assert all_ids == list(ids if isinstance(ids, list) else ids.tolist())
    pos_subset = case["subset"]
    if pos_subset is None:
        cand, subset = np.arange(N), None
    elif pos_subset.dtype == bool:
        cand, subset = np.flatnonzero(pos_subset), pos_subset
    else:  # the positions drawn, given to search as ids
        cand = np.unique(pos_subset)
        subset = [all_ids[i] for i in pos_subset.tolist()]
        if len(subset) == N and set(subset) <= {0, 1} and not isinstance(subset[0], str):
            with pytest.raises(ValueError, match="bool mask"):  # ids 0 and 1 of 2 images: could be a mask
                index.search(_query(*case["queries"][0]), subset=subset)
            subset = None  # all the images, as the ids said
    n_base = case["n_base"]  # photo i has the codes of photo i % n_base
    maps = adc_maps(np.asarray(index.codebook), codes[:n_base])  # the index's centroids: cb rounded to 1/255 steps
    qs = [_query(*q) for q in case["queries"]]
    k = case["k"]
    got = index.search(qs, k=k, subset=subset, eps=0)
    assert isinstance(got, list) and len(got) == len(qs)
    one_thread = index.search(qs, k=k, subset=subset, eps=0, threads=1)
    full = index.search(qs, k=max(len(cand), 1), subset=subset, eps=0)
    for (kind, probs, labels), r, r1, rf in zip(case["queries"], got, one_thread, full):
        assert r.ids.tolist() == r1.ids.tolist() and r.distances.tobytes() == r1.distances.tobytes()
        assert len(r) == min(k, len(cand)) and len(rf) == len(cand)
        assert r.ids.tolist() == rf.ids.tolist()[: len(r)]  # top-k: the first k of the full ranking
        np.testing.assert_array_equal(r.distances, rf.distances[: len(r)])
        if not len(cand):
            continue
        pos = index.positions(rf.ids.tolist())
        assert sorted(pos.tolist()) == cand.tolist()  # every candidate once, nothing outside the subset
        ref = distances(kind, probs, labels, maps, index)[pos % n_base]  # under the index's ranking
        d = rf.distances.astype(np.float64)
        tol = 1e-4 * (1.0 + np.abs(ref).max())
        np.testing.assert_allclose(d, ref, rtol=1e-4, atol=tol)
        assert (np.diff(d) >= 0).all()  # ascending
        ties = np.diff(d) == 0
        assert (np.diff(pos)[ties] > 0).all()  # equal distances: the smaller position first
        # nothing better left out: every candidate after the k-th is no nearer (by the reference) than it
        if len(r) < len(cand):
            assert ref[len(r) :].min() >= ref[len(r) - 1] - 2 * tol


_SETTINGS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=400, derandomize=True, **_SETTINGS)
@given(cases())
def test_search_matches_numpy_reference(case):
    with tempfile.TemporaryDirectory() as d:
        check_case(case, Path(d))


@pytest.mark.hypothesis_long
def test_search_matches_numpy_reference_long(request):
    if "hypothesis_long" not in (request.config.getoption("-m") or ""):
        pytest.skip("12,000 examples (a few minutes) run with: pytest -m hypothesis_long")

    ran = []

    @settings(max_examples=12_000, **_SETTINGS)
    @given(cases())
    def run(case):
        ran.append(1)
        with tempfile.TemporaryDirectory() as d:
            check_case(case, Path(d))

    run()
    print(f"{len(ran)} examples")
    assert len(ran) >= 10_000
