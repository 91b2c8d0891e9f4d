"""Leaving a class out (``exclude=``, ``--exclude``) and why a result is there (``explain=True``, ``--explain``),
issue 22 items 2 and 5, against the plain numpy references of tests/reference.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import random_probs, random_sketch
from reference import adc_maps, argmax_counts, class_parts, exact_maps
from segsearch import Index, PhotoIndex, Query
from segsearch.cli import main
from segsearch.engine.explain import explain
from segsearch.engine.index import empty_like
from segsearch.engine.sharded import ShardedIndex
from test_metadata import folder, segmenter  # noqa: F401 (folder: a fixture)
from test_storage import FIXTURES


def queries(probs, C, size, seed=0):
    """(kind name, Query, probs, labels) for each query kind."""
    sk = random_sketch(C, size, seed, n_classes=2, fill=0.6)
    return [
        ("image", Query.image(probs[3]), probs[3], None),
        ("sketch", Query.sketch(sk), None, sk),
        ("image_and_sketch", Query.image_and_sketch(probs[5], sk), probs[5], sk),
    ]


def reference_out(probs, rules) -> np.ndarray:
    """bool (N,): the photos where a class of rules {class: share} covers at least its share (argmax pixels)."""
    counts = argmax_counts(probs)
    D = probs.shape[2] * probs.shape[3]
    out = np.zeros(len(probs), bool)
    for c, share in rules.items():
        out |= counts[:, c] / D >= share
    return out


# ---------------------------------------------------------------------------------------------------- shares
def test_stored_shares_are_the_argmax_counts(built):
    _, probs, index = built
    assert index.has_class_shares
    np.testing.assert_array_equal(index.snapshot.shares[:, : len(index)].T, argmax_counts(probs))


def test_shares_of_photos_added_by_their_codes_come_from_their_exact_maps(built):
    """The exact maps are bytes of the reweighted maps: the weighting is undone before the argmax."""
    _, probs, index = built
    part = empty_like(index)
    part.add_codes(index.encode(probs), exact=index.exact_maps(probs))
    x = exact_maps(probs, index)  # (N, C, D): reweighted, in steps of 1/255
    if index.class_prior is not None:
        x = x * (index.class_prior.astype(np.float64) ** 0.25)[None, :, None]  # the README's a = 1/4
    got = part.snapshot.shares[:, : len(part)].T
    np.testing.assert_array_equal(got, argmax_counts(x))
    # and nearly the float maps' own: a pixel differs only where two classes are within a byte step
    assert np.abs(got.astype(np.int64) - argmax_counts(probs)).sum() <= 0.01 * probs[:, 0].size
    # codes alone: no shares, and the index says so
    bare = empty_like(index, keep_exact=False)
    bare.add_codes(index.encode(probs))
    assert not bare.has_class_shares


def test_shares_survive_save_load_and_shards(built, tmp_path):
    _, probs, index = built
    index.save(tmp_path / "i.segsearch")
    back = Index.load(tmp_path / "i.segsearch")
    np.testing.assert_array_equal(back.snapshot.shares[:, : len(back)], index.snapshot.shares[:, : len(index)])
    half = len(probs) // 2
    base = empty_like(index)
    base.add(probs[:half])
    shard = empty_like(index)
    shard.add(probs[half:])
    union = ShardedIndex(base, [shard.snapshot], [None, None])
    rules = [(1, 0.05), (2, 0.3)]
    np.testing.assert_array_equal(union.excluded(rules), index.excluded(rules))
    np.testing.assert_array_equal(index.excluded(rules), reference_out(probs, {1: 0.05, 2: 0.3}))


def test_an_index_without_shares_judges_them_from_the_codes():
    """A file made before shares were stored (format 4) loads without them; a class then covers its centroid's
    mass."""
    index = Index.load(FIXTURES / "v4.segsearch")
    assert not index.has_class_shares
    cb = index.codebook.reshape(index.num_classes, index.n_centroids, -1).astype(np.float64)
    mass = cb.sum(axis=2) / index.dim  # (C, K)
    for c, share in [(4, 0.01), (2, 0.2)]:
        want = mass[c][index.codes[:, c]] >= share
        np.testing.assert_array_equal(index.excluded([(c, share)]), want)
    new = Index.load(FIXTURES / "v5.segsearch")
    assert new.has_class_shares


def test_given_shares_are_checked(built):
    _, probs, index = built
    codes = index.encode(probs[:3])
    exact = index.exact_maps(probs[:3])
    counts = argmax_counts(probs[:3])
    with pytest.raises(ValueError, match="adding up to"):
        empty_like(index).add_codes(codes, exact=exact, shares=counts + 1)
    with pytest.raises(ValueError, match="shape"):
        empty_like(index).add_codes(codes, exact=exact, shares=counts[:2])
    part = empty_like(index).add_codes(codes, exact=exact, shares=counts)
    np.testing.assert_array_equal(part.snapshot.shares[:, :3].T, counts)


# ---------------------------------------------------------------------------------------------------- exclude
@pytest.mark.parametrize("rerank", [0, None])
def test_exclude_is_the_search_of_the_photos_left(built, rerank):
    """The same ids and distances as the search restricted to the photos the reference leaves, for every query
    kind; none of the results has a left-out class at its share; without exclude some do."""
    _, probs, index = built
    C, size = index.num_classes, index.size
    pi = PhotoIndex(index)
    share = argmax_counts(probs) / index.dim
    rules = {c: max(float(np.quantile(share[:, c], 0.8)), 0.01) for c in (2, 4)}  # about a third left out
    left_out = reference_out(probs, rules)
    assert 0 < left_out.sum() < len(probs) - 20
    changed = 0
    for _, q, p, lab in queries(probs, C, size):
        kw = {"maps": p, "sketch": lab, "k": 20, "rerank": rerank}
        hits = pi.search(**kw, exclude={index.class_names[c]: s for c, s in rules.items()})
        want = index.search(q, 20, subset=~left_out, rerank=rerank)
        assert [h.id for h in hits] == want.ids.tolist()
        np.testing.assert_array_equal([h.distance for h in hits], want.distances)
        assert not left_out[[h.id for h in hits]].any()
        changed += left_out[[h.id for h in pi.search(**kw)]].any()
    assert changed


def test_exclude_takes_names_numbers_and_default_shares(built):
    _, probs, index = built
    pi = PhotoIndex(index)
    np.testing.assert_array_equal(pi.exclude_mask(["CLASS3"]), reference_out(probs, {3: 0.01}))
    np.testing.assert_array_equal(pi.exclude_mask([3, "class1"]), reference_out(probs, {3: 0.01, 1: 0.01}))
    np.testing.assert_array_equal(pi.exclude_mask({"class3": 1.0}), reference_out(probs, {3: 1.0}))
    assert not pi.exclude_mask([]).any()


@pytest.mark.parametrize(
    ("exclude", "match"),
    [
        (["clas3"], "unknown class name 'clas3'; did you mean 'class3'"),
        ({"class3": 0}, r"must be a number in \(0, 1\]"),
        ({"class3": 1.5}, r"must be a number in \(0, 1\]"),
        ({"class3": "5%"}, r"must be a number in \(0, 1\]"),
        ({"class3": True}, r"must be a number in \(0, 1\]"),
        ([99], "not in 0.."),
        (5, "must be a list of class names or a dict"),
        ([None], "a name or a number"),
    ],
)
def test_bad_exclude_is_one_line(built, exclude, match):
    _, _, index = built
    with pytest.raises(ValueError, match=match) as e:
        PhotoIndex(index).search(sketch=random_sketch(index.num_classes, index.size, 0), exclude=exclude)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- explain
@pytest.mark.parametrize("rerank", [0, None])
def test_explained_parts_add_up_to_the_distance(built, rerank):
    _, probs, index = built
    pi = PhotoIndex(index)
    for kind, _, p, lab in queries(probs, index.num_classes, index.size):
        hits = pi.search(maps=p, sketch=lab, k=10, rerank=rerank, explain=True)
        drawn = set() if lab is None else set(np.unique(lab[lab >= 0]).tolist())
        for h in hits:
            parts = [c.part for c in h.explain]
            assert parts == sorted(parts, reverse=True)
            assert math.isclose(sum(parts), h.distance, rel_tol=1e-5, abs_tol=1e-6)
            if kind == "sketch":
                assert {c.index for c in h.explain} <= drawn
            assert all(c.name == index.class_names[c.index] for c in h.explain)


def test_explained_parts_are_the_reference_terms(built):
    """Exact distances: per class lam ||x_c - q_c / lam||^2 of the exact maps; the codes' (eps = 0): the same of
    the centroids their codes name."""
    _, probs, index = built
    C = index.num_classes
    exact = exact_maps(probs, index)
    decoded = adc_maps(index.codebook, index.codes)
    for kind, q, p, lab in queries(probs, C, index.size, seed=4):
        for is_exact, maps in ((True, exact), (False, decoded)):
            r = index.search(q, 8, exact=is_exact, rerank=0, eps=0)
            ref = class_parts(kind, p, lab, maps[r.ids], index)
            got = np.zeros_like(ref)
            for i, (classes, parts) in enumerate(explain(index, q, r.ids, exact=is_exact, eps=0)):
                got[i, classes] = parts
            scale = np.maximum(r.distances, 1.0)[:, None]
            np.testing.assert_allclose(got / scale, ref / scale, atol=2e-5, err_msg=f"{kind} exact={is_exact}")


def test_explain_on_every_simd_level(simd_level):
    """The exact parts follow the core's float lanes: the same sum on every SIMD level."""
    probs = random_probs(60, 6, 10, seed=7)
    index = Index(6, 10, 8, keep_exact=True)
    index.train(probs, niter=3)
    index.add(probs)
    q = Query.image(probs[11])
    r = index.search(q, 5, exact=True)
    sums = [parts.sum() for _, parts in explain(index, q, r.ids, exact=True)]
    np.testing.assert_allclose(sums, r.distances, rtol=1e-6)


def test_explain_is_in_the_hits_json(built):
    _, probs, index = built
    pi = PhotoIndex(index)
    h = pi.search(maps=probs[0], k=2, explain=True)[0]
    d = json.loads(json.dumps(h.as_dict()))
    assert [e["class"] for e in d["explain"]] == [c.index for c in h.explain]
    assert set(d["explain"][0]) == {"class", "name", "part"}
    assert "explain" not in pi.search(maps=probs[0], k=2)[0].as_dict()
    with pytest.raises(ValueError, match="explain must be True or False"):
        pi.search(maps=probs[0], explain="yes")


# ---------------------------------------------------------------------------------------------------- a folder
@pytest.fixture(scope="module")
def refine_folder(folder):  # noqa: F811 (test_metadata's fixture)
    """(index folder, photos folder, each photo's argmax counts by id): test_metadata's folder, indexed with
    captions and metadata."""
    idx, photos = folder[:2]
    pi = PhotoIndex.open(idx, segmenter=segmenter())
    ids = pi.index.ids.tolist()
    maps = segmenter().predict([photos / i for i in ids], size=pi.size)
    return idx, photos, dict(zip(ids, argmax_counts(maps)))


def test_a_folder_keeps_the_shares_and_exclude_composes(refine_folder):
    idx, _, counts = refine_folder
    pi = PhotoIndex.open(idx, segmenter=segmenter())
    assert pi.has_class_shares
    D = pi.size * pi.size
    for i, c in counts.items():  # indexing stores what the photo's maps show
        np.testing.assert_array_equal(pi.index.snapshot.shares[:, pi.index.positions([i])[0]], c)
    out = {i for i, c in counts.items() if c[1] / D >= 0.2}
    assert 0 < len(out) < len(counts)
    sk = np.where(np.arange(8)[:, None] < 4, 1, -1).repeat(8, axis=1)
    for kw in ({"sketch": sk}, {"text": "car"}, {"text": "car sea", "sketch": sk}, {"sketch": sk, "folder": "trip"}):
        plain = [h.id for h in pi.search(k=len(pi), **kw)]
        hits = [h.id for h in pi.search(k=len(pi), exclude={"b": 0.2}, **kw)]
        assert hits == [i for i in plain if i not in out], kw


def test_cli_exclude_and_explain(refine_folder, capsys, tmp_path):
    idx, _, counts = refine_folder
    D = 64
    base = ["search", str(idx), "--draw", "b:0,0,1,0.5", "-k", "20"]
    assert main([*base, "--exclude", "b:20%", "--exclude", "e:0.1", "--json", "--explain"]) == 0
    rows = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert 0 < len(rows) < len(counts)
    assert all(counts[r["id"]][1] / D < 0.2 and counts[r["id"]][4] / D < 0.1 for r in rows)
    for r in rows:
        assert math.isclose(sum(e["part"] for e in r["explain"]), r["distance"], rel_tol=1e-5)
        assert [e["name"] for e in r["explain"]] == ["b"]  # a sketch of b compares b alone
    assert main([*base, "--explain", "--sheet", str(tmp_path / "s.png")]) == 0
    line = capsys.readouterr().out.splitlines()[0].split("\t")
    assert line[3].startswith("b=") and math.isclose(float(line[3][2:]), float(line[2]), rel_tol=1e-3)
    assert Image.open(tmp_path / "s.png").size[1] > 0
    for bad, msg in (("car", "unknown class name 'car'"), ("b:0", r"SHARE must be in \(0, 1\]"), ("b:x", "SHARE")):
        assert main([*base, "--exclude", bad]) == 2
        err = capsys.readouterr().err
        assert msg in err or __import__("re").search(msg, err), err
        assert err.count("\n") == 1
