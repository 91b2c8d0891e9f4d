"""Rankings: the "balanced" default (class-prior correction, photo weight) and the paper's "l2"; saved with the
index, checked on load, chosen by the CLI. Their distances against the numpy reference are in test_distances.py
(the ``built`` fixture covers both rankings)."""

import numpy as np
import pytest

from reference import RANKING_PARAMS, ranking_params, reweighted
from segsearch import Index, IndexFormatError, Query
from segsearch.engine import storage
from segsearch.engine.ranking import RANKINGS, Ranking, class_masses, class_prior, reweight

C, N = 8, 8


def sharp_photos(k, seed):
    """Photos of two classes each (top and bottom half), confidently predicted."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        lab = np.zeros((N, N), int)
        a, b = rng.choice(C, 2, replace=False)
        lab[: N // 2], lab[N // 2 :] = a, b
        logits = rng.normal(size=(C, N, N)) * 0.5
        logits[lab, np.arange(N)[:, None], np.arange(N)[None, :]] += 4
        e = np.exp(logits)
        out.append(e / e.sum(0))
    return np.array(out, np.float32)


@pytest.mark.parametrize("exact", [False, True])
def test_a_diffuse_photo_is_a_hub_under_l2_but_not_balanced(exact):
    """A photo the network is unsure about (uniform maps) is "close to everything" by plain L2: it is in the
    top 5 of every query. The balanced ranking weighs a photo's own mass by 1/2, and it drops out."""
    db = np.concatenate([sharp_photos(60, seed=0), np.full((1, C, N, N), 1.0 / C, np.float32)])
    queries = sharp_photos(40, seed=1)
    hits = {}
    for ranking in ("l2", "balanced"):
        index = Index(C, N, 1 if exact else 16, keep_exact=exact, ranking=ranking).train(db, seed=0).add(db)
        hits[ranking] = sum(60 in index.search(Query.image(q), k=5, exact=exact, eps=0).ids for q in queries)
    assert hits["l2"] == len(queries)
    assert hits["balanced"] == 0


def test_train_measures_the_prior_and_adds_keep_it():
    db = sharp_photos(50, seed=2)
    index = Index(C, N, 8).train(db[:30], seed=0)
    want = db[:30].astype(np.float64).mean(axis=(0, 2, 3))
    np.testing.assert_allclose(index.class_prior, want, rtol=1e-5)
    assert not index.class_prior.flags.writeable
    before = np.array(index.class_prior)
    index.add(db)
    np.testing.assert_array_equal(index.class_prior, before)
    assert Index(C, N, 8, ranking="l2").train(db, seed=0).class_prior is None
    np.testing.assert_allclose(class_prior(db[:30]), want, rtol=1e-5)
    masses = class_masses(db[:30], chunk=7)
    np.testing.assert_allclose(masses, db[:30].astype(np.float64).sum(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(class_prior(masses=masses, pixels=N * N), want, rtol=1e-5)


def test_absent_classes_are_judged_by_the_photos_own_maps():
    """Reweighting lifts a rare class's faint traces; the codebook still reserves centroid 0 for the class maps
    that were absent (mass < 1 pixel) before it, so they share the default code instead of spreading over codes
    of their own (which the scan would pay for)."""
    from segsearch.engine.codebook import train_codebook

    rng = np.random.default_rng(9)
    maps = np.full((40, 2, N, N), 0.0, np.float32)
    maps[:, 0] = 1.0 - rng.uniform(0.0, 0.012, (40, N, N))  # class 1: a faint trace, mass 0.0..0.77 pixels
    maps[:, 1] = 1.0 - maps[:, 0]
    maps[:10, 1, :4] = 0.9  # ... but present in 10 photos
    maps[:10, 0, :4] = 0.1
    lifted = maps * np.array([1.0, 5.0], np.float32)[None, :, None, None]
    lifted /= lifted.sum(axis=1, keepdims=True)
    assert (lifted[10:, 1].sum(axis=(1, 2)) >= 1.0).any()  # lifted above the absent threshold
    own = train_codebook(lifted, 4, seed=0, row_mass=class_masses(maps))
    np.testing.assert_allclose(own[1, 0], lifted[10:, 1].reshape(30, -1).mean(0), rtol=1e-5)  # their mean
    lifted_mass = train_codebook(lifted, 4, seed=0)
    assert not np.allclose(lifted_mass[1, 0], own[1, 0])


def test_the_eps_cut_tests_the_photos_own_probabilities():
    """A query pixel with p <= eps is left out of the LUT whatever the class-prior weights make of it."""
    db = sharp_photos(30, seed=10)
    db[:, 5] *= 0.01  # class 5 is rare: the prior correction weighs it up
    db /= db.sum(1, keepdims=True)
    index = Index(C, N, 8).train(db, seed=0)
    q = db[4].copy()
    q[5] = 0.02  # a faint trace of the rare class everywhere
    q /= q.sum(0, keepdims=True)
    power, lam = ranking_params(index)
    w = np.asarray(index.class_prior, np.float64) ** -power
    lifted = q[5] * w[5] / np.einsum("chw,c->hw", q, w)
    assert lifted.max() > 0.03 and q[5].max() <= 0.03  # reweighting lifts it above 0.03
    full = index.lookup_table(Query.image(q), eps=0)[0]
    cut = index.lookup_table(Query.image(q), eps=0.03)[0]
    cb = np.asarray(index.codebook, np.float64).reshape(C, 8, -1)
    norms = (cb * cb).sum(-1)
    # with class 5's pixels all left out, its row is ||q_5||^2 / lam + lam ||a||^2, the dot products gone
    q5 = lifted.reshape(-1).astype(np.float64)
    np.testing.assert_allclose(cut[5], (q5 * q5).sum() / lam + lam * norms[5], rtol=1e-4)
    assert not np.allclose(full[5], cut[5], rtol=1e-4)


def test_reweight_matches_the_equation_and_keeps_one_hot_pixels():
    db = sharp_photos(5, seed=3)
    db[0, :, 0, 0] = 0.0
    db[0, 3, 0, 0] = 1.0  # a one-hot pixel stays one-hot
    prior = np.linspace(0.01, 0.3, C).astype(np.float32)
    power = RANKING_PARAMS["balanced"][0]
    from segsearch.engine.ranking import class_weights

    got = reweight(db, class_weights(prior, power))
    np.testing.assert_allclose(got, reweighted(db, prior, power), rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    assert got[0, 3, 0, 0] == 1.0


def test_the_rankings_have_the_readmes_constants():
    """The README: "balanced" (the default) divides the maps by the class prior to the power 1/4 and weighs a
    photo's own mass by 1/2; "l2" is the paper's squared L2. Written out here, not read from the package (the
    distance tests' reference, tests/reference.py, uses the same constants)."""
    assert Index(C, N, 8).ranking.name == "balanced"
    for name, (a, lam) in {"balanced": (0.25, 0.5), "l2": (0.0, 1.0)}.items():
        r = Index(C, N, 8, ranking=name).ranking
        assert (r.name, r.prior_power, r.photo_weight) == (name, a, lam)
        assert RANKINGS[name] == r and RANKING_PARAMS[name] == (a, lam)


def test_saved_ranking_round_trips(tmp_path):
    db = sharp_photos(40, seed=4)
    q = Query.image(db[3])
    for ranking in ("balanced", "l2"):
        index = Index(C, N, 8, ranking=ranking).train(db, seed=0).add(db)
        index.save(tmp_path / f"{ranking}.segsearch")
        back = Index.load(tmp_path / f"{ranking}.segsearch")
        assert back.ranking == index.ranking
        if ranking == "l2":
            assert back.class_prior is None
        else:
            np.testing.assert_array_equal(back.class_prior, index.class_prior)
        a, b = index.search(q, k=10), back.search(q, k=10)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.distances, b.distances)


def test_from_codebook_needs_the_prior_of_a_balanced_codebook():
    db = sharp_photos(40, seed=5)
    index = Index(C, N, 8).train(db, seed=0).add(db)
    with pytest.raises(ValueError, match="class_prior="):
        Index.from_codebook(index.codebook, index.codes, ranking="balanced")
    with pytest.raises(ValueError, match="finite numbers > 0"):
        Index.from_codebook(index.codebook, index.codes, ranking="balanced", class_prior=np.zeros(C))
    twin = Index.from_codebook(index.codebook, index.codes, ranking=index.ranking, class_prior=index.class_prior)
    q = Query.image_and_sketch(db[1], np.where(np.arange(N)[:, None] < 3, 2, -1))
    np.testing.assert_array_equal(twin.search(q, k=40).distances, index.search(q, k=40).distances)
    assert Index.from_codebook(index.codebook, index.codes).ranking.name == "l2"  # plain maps by default


def test_bad_rankings_are_refused():
    with pytest.raises(ValueError, match="unknown ranking 'cosine'; use one of: balanced, l2"):
        Index(C, N, 8, ranking="cosine")
    with pytest.raises(ValueError, match="photo_weight"):
        Index(C, N, 8, ranking=Ranking("mine", 0.25, 0.0))
    with pytest.raises(ValueError, match="prior_power"):
        Index(C, N, 8, ranking=Ranking("mine", -1.0, 0.5))
    custom = Index(C, N, 8, ranking=Ranking("mine", 0.5, 0.75)).train(sharp_photos(20, seed=6), seed=0)
    assert custom.ranking == Ranking("mine", 0.5, 0.75)


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "l2"},
        "l2",
        {"name": "x", "prior_power": "a", "photo_weight": 1},
        {"name": "x", "prior_power": 0.0, "photo_weight": 2.0},
        {"name": "x", "prior_power": True, "photo_weight": 1.0},
    ],
)
def test_a_damaged_ranking_field_is_named(tmp_path, bad):
    index = Index(C, N, 8, ranking="l2").train(sharp_photos(20, seed=7), seed=0)
    index.save(tmp_path / "i.segsearch")
    header, arrays = storage.load(tmp_path / "i.segsearch", mmap=False)
    storage.save(tmp_path / "i.segsearch", dict(header, ranking=bad), arrays)
    with pytest.raises(IndexFormatError, match="header field 'ranking'"):
        Index.load(tmp_path / "i.segsearch")


def test_a_missing_or_bad_class_prior_is_named(tmp_path):
    index = Index(C, N, 8).train(sharp_photos(20, seed=8), seed=0)
    index.save(tmp_path / "i.segsearch")
    header, arrays = storage.load(tmp_path / "i.segsearch", mmap=False)
    storage.save(tmp_path / "a.segsearch", header, {k: v for k, v in arrays.items() if k != "class_prior"})
    with pytest.raises(IndexFormatError, match="array 'class_prior' is missing"):
        Index.load(tmp_path / "a.segsearch")
    storage.save(tmp_path / "b.segsearch", header, dict(arrays, class_prior=np.full(C, -1.0, np.float32)))
    with pytest.raises(IndexFormatError, match="class_prior must be finite and > 0"):
        Index.load(tmp_path / "b.segsearch", verify=False)
