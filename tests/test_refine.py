"""Emphasising a class (``weights=``, ``--emphasize``) and more / fewer like these (``like=`` / ``unlike=``), issue
22 items 1 and 3, against the plain numpy references of tests/reference.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import random_probs, random_sketch, synthetic_probs
from reference import (
    adc_maps,
    argmax_counts,
    class_parts,
    distances,
    emphasis_parts,
    exact_maps,
    rocchio,
    topk,
    unweighted,
)
from segsearch import Index, PhotoIndex, Query
from segsearch.cli import main
from segsearch.engine.emphasis import DEFAULT_WEIGHT
from segsearch.engine.explain import explain
from segsearch.engine.index import empty_like
from segsearch.engine.sharded import ShardedIndex
from test_exclude_explain import refine_folder  # noqa: F401 (a fixture)
from test_metadata import folder, segmenter  # noqa: F401 (folder: a fixture)


def shown_class(probs, q: int, rank: int = 1) -> int:
    """The class covering most of photo q (its argmax pixels) besides the ``rank`` most common ones."""
    counts = np.bincount(probs[q].argmax(0).ravel(), minlength=probs.shape[1])
    return int(np.argsort(-counts, kind="stable")[rank])


def queries(probs, C, size, c):
    """(kind, Query, probs, labels) of each kind, each showing class c (a sketch draws it)."""
    sk = random_sketch(C, size, 3, n_classes=2, fill=0.6)
    sk[: size // 2, : size // 2] = c
    return [
        ("image", Query.image(probs[3]), probs[3], None),
        ("sketch", Query.sketch(sk), None, sk),
        ("image_and_sketch", Query.image_and_sketch(probs[5], sk), probs[5], sk),
    ]


def in_two_shards(index, probs, half: int) -> ShardedIndex:
    """The photos of ``index`` (ids: their positions) as a folder of two shards, split at ``half``."""
    base, shard = empty_like(index), empty_like(index)
    base.add(probs[:half], ids=np.arange(half))
    shard.add(probs[half:], ids=np.arange(half, len(probs)))
    return ShardedIndex(base, [shard.snapshot], [None, None])


def reference_distances(kind, p, lab, maps, weights, index):
    C, D = index.num_classes, index.dim
    labels = None if lab is None else lab.reshape(-1)
    base = distances(kind, None if p is None else p.reshape(C, D), labels, maps, index)
    return base + emphasis_parts(kind, p, labels, maps, weights, index).sum(axis=1)


# ---------------------------------------------------------------------------------------------------- emphasis
@pytest.mark.parametrize("how", ["exact", "rerank_all", "codes"])
def test_emphasis_is_the_reference_distance(built, how):
    """Exact search, a re-rank of every photo and the codes alone (eps = 0): the ids and distances of the reference,
    the base distance plus w S (1 - cov) of each emphasised class, of the exact maps or of the centroids."""
    _, probs, index = built
    C, N = index.num_classes, len(index)
    maps = adc_maps(index.codebook, index.codes) if how == "codes" else exact_maps(probs, index)
    kw = {"exact": {"exact": True}, "rerank_all": {"rerank": N}, "codes": {"rerank": 0, "eps": 0}}[how]
    c = shown_class(probs, 3)
    for kind, q, p, lab in queries(probs, C, index.size, c):
        other = shown_class(probs, 3 if kind == "image" else 5, rank=0)
        two = {c: 0.5, other: 2.0} if kind != "sketch" and other != c else {c: 0.5}
        for weights in ({c: 4.0}, two):
            ref = reference_distances(kind, p, lab, maps, weights, index)
            r = index.search(q.emphasized(weights), 10, **kw)
            np.testing.assert_allclose(r.distances, ref[r.ids], rtol=2e-5, atol=1e-3, err_msg=f"{kind} {weights}")
            want = topk(ref, 10)
            # the same photos but where the reference's distances tie to float rounding
            assert (r.ids == want).mean() >= 0.8 or np.allclose(ref[r.ids], ref[want], rtol=1e-5), kind
            plain = index.search(q, 10, **kw)
            assert not np.array_equal(plain.distances, r.distances)
            every = index.search(q.emphasized(weights), N, **kw)  # k past the re-rank depth too
            np.testing.assert_allclose(every.distances, ref[every.ids], rtol=2e-5, atol=1e-3)


def test_emphasis_rewards_the_class_where_the_query_has_it():
    """Realistic maps: with the class emphasised, the photos that show it in the query's quarter of the frame fill
    more of the top 10 (honest: it can fail)."""
    probs = synthetic_probs(300, 12, 16, seed=3)
    index = Index(12, 16, 32, keep_exact=True).train(probs, niter=10).add(probs)
    lab = probs.argmax(1)
    gains = []
    for qi in range(0, 60, 3):
        counts = np.bincount(lab[qi].ravel(), minlength=12)
        small = [c for c in np.argsort(counts) if 8 <= counts[c] <= 40]  # a small object of the query photo
        if not small:
            continue
        c = int(small[0])
        rows, cols = np.nonzero(lab[qi] == c)
        quarter = (int(rows.mean() >= 8), int(cols.mean() >= 8))
        there = np.array(
            [(lab[i, quarter[0] * 8 : quarter[0] * 8 + 8, quarter[1] * 8 : quarter[1] * 8 + 8] == c).sum() >= 4
             for i in range(len(probs))]
        )  # fmt: skip
        before = index.search(Query.image(probs[qi]), 11)
        after = index.search(Query.image(probs[qi]).emphasized({c: 4.0}), 11)
        gains.append(there[after.ids[after.ids != qi][:10]].sum() - there[before.ids[before.ids != qi][:10]].sum())
    assert len(gains) >= 10
    assert np.mean(gains) > 1.0, gains


@pytest.mark.parametrize("rerank", [0, None])
def test_explained_parts_add_up_with_emphasis(built, rerank):
    _, probs, index = built
    pi = PhotoIndex(index)
    c = shown_class(probs, 3)
    for kind, _, p, lab in queries(probs, index.num_classes, index.size, c):
        hits = pi.search(maps=p, sketch=lab, k=8, rerank=rerank, explain=True, weights={index.class_names[c]: 3.0})
        for h in hits:
            assert math.isclose(sum(x.part for x in h.explain), h.distance, rel_tol=1e-5, abs_tol=1e-4), kind
        # the emphasised class's part holds its term: it is the reference's class part plus the term
        exact = exact_maps(probs, index) if rerank is None else adc_maps(index.codebook, index.codes)
        pos = index.positions([h.id for h in hits])
        labels = None if lab is None else lab.reshape(-1)
        C, D = index.num_classes, index.dim
        flat = None if p is None else p.reshape(C, D)
        want = class_parts(kind, flat, labels, exact[pos], index)[:, c]
        want = want + emphasis_parts(kind, p, labels, exact[pos], {c: 3.0}, index)[:, c]
        got = [next(x.part for x in h.explain if x.index == c) for h in hits]
        if rerank == 0:  # the codes' parts are the LUT's (eps 1e-3 leaves faint pixels out of the dot products)
            np.testing.assert_allclose(got, want, rtol=2e-3, atol=0.5)
        else:
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-3)


def test_emphasis_on_shards_is_the_one_index_search(built):
    _, probs, index = built
    half = len(probs) // 2
    union = in_two_shards(index, probs, half)
    c = shown_class(probs, 3)
    for _, q, _, _ in queries(probs, index.num_classes, index.size, c):
        qe = q.emphasized({c: 4.0})
        for kw in ({}, {"rerank": 0}, {"exact": True}, {"subset": np.arange(len(probs)) % 3 > 0}):
            a, b = union.search(qe, 10, **kw), index.search(qe, 10, **kw)
            np.testing.assert_array_equal(a.ids, b.ids)
            np.testing.assert_array_equal(a.distances, b.distances)
        got = explain(union, qe, union.positions(a.ids), exact=True)
        np.testing.assert_allclose([x.sum() for _, x in got], a.distances, rtol=1e-5)


def test_emphasis_composes_with_exclude_and_text(refine_folder):  # noqa: F811 (a fixture)
    idx, _, counts = refine_folder
    pi = PhotoIndex.open(idx, segmenter=segmenter())
    sk = np.where(np.arange(8)[:, None] < 4, 1, -1).repeat(8, axis=1)
    out = {i for i, c in counts.items() if c[2] / 64 >= 0.2}
    for kw in ({"sketch": sk}, {"text": "car", "sketch": sk}, {"sketch": sk, "folder": "trip"}):
        hits = pi.search(k=len(pi), weights={"b": 2.0}, exclude={"c": 0.2}, **kw)
        assert not out & {h.id for h in hits}
        assert {h.id for h in hits} == {h.id for h in pi.search(k=len(pi), exclude={"c": 0.2}, **kw)}


@pytest.mark.parametrize("rerank", [None, 0])
def test_emphasis_when_filters_leave_no_photo(refine_folder, rerank):  # noqa: F811 (a fixture)
    """Found trying the CLI: --emphasize with an --exclude that every photo meets failed on the empty candidates."""
    pi = PhotoIndex.open(refine_folder[0], segmenter=segmenter())
    sk = np.where(np.arange(8)[:, None] < 4, 1, -1).repeat(8, axis=1)
    assert pi.search(sketch=sk, weights={"b": 2.0}, rerank=rerank, explain=True, folder="no-such-folder") == []
    assert pi.search(sketch=sk, weights={"b": 2.0}, rerank=rerank, folder="no-such-folder") == []


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"clas3": 2}, "unknown class name 'clas3'; did you mean 'class3'"),
        ({"class3": 0}, "must be a number > 0"),
        ({"class3": -1.0}, "must be a number > 0"),
        ({"class3": math.inf}, "must be a number > 0"),
        ({"class3": True}, "must be a number > 0"),
        ({"class3": "4"}, "must be a number > 0"),
        ({99: 2.0}, "not in 0.."),
        (4, "must be a list of class names or a dict"),
        ([None], "a name or a number"),
        ({"class0": 2.0}, "the sketch does not draw 'class0'"),
    ],
)
def test_bad_weights_are_one_line(built, weights, match):
    _, _, index = built
    sk = np.full((index.size, index.size), -1, np.int32)
    sk[:4, :4] = 3
    with pytest.raises(ValueError, match=match) as e:
        PhotoIndex(index).search(sketch=sk, weights=weights)
    assert "\n" not in str(e.value)


def test_a_class_the_query_does_not_show_cannot_be_emphasised():
    probs = random_probs(40, 4, 8, seed=2)
    probs[:, 3] = 0.0
    probs /= probs.sum(axis=1, keepdims=True)
    index = Index(4, 8, 4, keep_exact=True).train(probs, niter=2).add(probs)
    with pytest.raises(ValueError, match="the query shows almost no 'class3'"):
        index.search(Query.image(probs[0]).emphasized({3: 2.0}))
    with pytest.raises(ValueError, match="weights= emphasise classes of a photo or a sketch"):
        PhotoIndex(index).search(text=None, weights={"class1": 2.0})
    with pytest.raises(ValueError, match="must be a number > 0"):
        Query.image(probs[0]).emphasized({1: 0.0})


# ---------------------------------------------------------------------------------------------------- like
def test_photo_maps_come_from_the_index(built):
    """From the exact maps (the class prior's reweighting undone), else the decoded codes."""
    from segsearch.engine.feedback import photo_probs

    _, probs, index = built
    C, D = index.num_classes, index.dim
    got = photo_probs(index, [4, 9]).reshape(2, C, D)
    np.testing.assert_allclose(got, unweighted(exact_maps(probs[[4, 9]], index), index), atol=1e-5)
    assert np.abs(got - probs[[4, 9]].reshape(2, C, D)).max() < 0.03  # bytes of reweighted maps
    bare = empty_like(index, keep_exact=False)
    bare.add(probs)
    decoded = adc_maps(index.codebook, bare.codes[[4, 9]])
    np.testing.assert_allclose(photo_probs(bare, [4, 9]).reshape(2, C, D), unweighted(decoded, index), atol=1e-5)


@pytest.mark.parametrize("rerank", [0, None])
def test_like_is_the_moved_photo_query(built, rerank):
    """like / unlike with and without a photo and a sketch: the search of the reference's Rocchio maps."""
    _, probs, index = built
    C, D, n = index.num_classes, index.dim, index.size
    pi = PhotoIndex(index)
    held = unweighted(exact_maps(probs, index), index)
    sk = random_sketch(C, n, 1, n_classes=2, fill=0.3)
    for photo, like, unlike, sketch in (
        (None, [7, 11], [], None),
        (3, [7], [20, 30], None),
        (3, [], [20], None),
        (None, [7, 11], [20], sk),
    ):
        p = None if photo is None else probs[photo].reshape(C, D)
        moved = rocchio(p, held[like], held[unlike]).reshape(C, n, n).astype(np.float32)
        q = Query.image(moved) if sketch is None else Query.image_and_sketch(moved, sketch)
        want = index.search(q, 10, rerank=rerank)
        hits = pi.search(
            maps=None if photo is None else probs[photo],
            sketch=sketch,
            like=like,
            unlike=unlike or None,
            k=10,
            rerank=rerank,
        )
        assert [h.id for h in hits] == want.ids.tolist()
        np.testing.assert_allclose([h.distance for h in hits], want.distances, rtol=1e-4)


def test_like_moves_toward_the_liked_photos():
    """Realistic maps: liking two photos brings them and photos like them up (honest: it can fail)."""
    probs = synthetic_probs(300, 12, 16, seed=5)
    index = Index(12, 16, 32, keep_exact=True).train(probs, niter=10).add(probs)
    pi = PhotoIndex(index)
    for a, b in ((10, 40), (100, 200)):
        top = [h.id for h in pi.search(like=[a, b], k=5)]
        assert {a, b} <= set(top)
    stay, kept = [], []
    for q in range(0, 60, 3):  # unlike three of a photo query's nearest: most of them leave its top 10
        base = [h.id for h in pi.search(maps=probs[q], k=10)]
        away = [h.id for h in pi.search(maps=probs[q], unlike=base[1:4], k=10)]
        stay.append(len(set(base[1:4]) & set(away)))
        kept.append(q in away)
    assert np.mean(stay) < 1.5 and np.mean(kept) > 0.9, (stay, kept)


def test_like_on_shards_and_with_exclude(built):
    _, probs, index = built
    half = len(probs) // 2
    union = in_two_shards(index, probs, half)
    one, two = PhotoIndex(index), PhotoIndex(union)
    kw = {"like": [3, half + 5], "unlike": [half + 9], "k": 12, "weights": None}
    assert [(h.id, h.distance) for h in one.search(**kw)] == [(h.id, h.distance) for h in two.search(**kw)]
    shares = argmax_counts(probs) / index.dim
    c = int(np.argmax(np.median(shares, axis=0)))
    rule = {index.class_names[c]: float(np.median(shares[:, c]))}  # about half of the photos out
    out = one.exclude_mask(rule)
    hits = one.search(**kw, exclude=rule)
    assert len(hits) == 12 and not out[[h.id for h in hits]].any()
    assert out[[h.id for h in one.search(**kw)]].any()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"like": [10_000]}, "like: photo 10000 is not in the index; give ids that searches return"),
        ({"like": ["x.jpg"]}, "like: photo 'x.jpg' is not in the index"),
        ({"unlike": [10_000], "like": [1]}, "unlike: photo 10000 is not in the index"),
        ({"like": 3}, "like must be a list of photo ids"),
        ({"like": "a.jpg"}, "like must be a list of photo ids"),
        ({"like": [1, 2], "unlike": [2]}, "photo 2 is both liked and unliked"),
        ({"unlike": [2]}, "unlike= needs a query to move away from"),
        ({"unlike": [2], "sketch": np.zeros((4, 4), np.int32)}, "a sketch alone only counts its drawn pixels"),
        ({"like": [[1]]}, "is not in the index"),
    ],
)
def test_bad_like_is_one_line(built, kw, match):
    _, _, index = built
    with pytest.raises(ValueError, match=match) as e:
        PhotoIndex(index).search(**kw)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------------- the CLI
def test_cli_emphasize_like_unlike(refine_folder, capsys):  # noqa: F811 (a fixture)
    idx, _, counts = refine_folder
    ids = sorted(counts)
    base = ["search", str(idx), "--draw", "b:0,0,1,0.5", "-k", "5", "--json"]
    pi = PhotoIndex.open(idx, segmenter=segmenter())
    for extra, kw in (
        (["--emphasize", "b"], {"weights": {"b": DEFAULT_WEIGHT}}),
        (["--emphasize", "b:0.5", "--explain"], {"weights": {"b": 0.5}, "explain": True}),
        (["--like", ids[0], "--like", ids[1]], {"like": ids[:2]}),
        (
            ["--like", ids[0], "--unlike", ids[2], "--emphasize", "b:2"],
            {"like": ids[:1], "unlike": ids[2:3], "weights": {"b": 2.0}},
        ),
    ):
        assert main([*base, *extra]) == 0, capsys.readouterr().err
        rows = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
        want = pi.search(sketch=np.where(np.arange(8)[:, None] < 4, 1, -1).repeat(8, axis=1), k=5, **kw)
        assert [r["id"] for r in rows] == [h.id for h in want]
        np.testing.assert_allclose([r["distance"] for r in rows], [h.distance for h in want], rtol=1e-6)
    assert main(["search", str(idx), "--like", ids[3], "-k", "3"]) == 0  # like alone is a query
    assert capsys.readouterr().out.splitlines()[0].split("\t")[1].endswith(ids[3])
    for extra, msg in (
        (["--like", "nope.jpg"], "like: photo 'nope.jpg' is not in the index"),
        (["--emphasize", "b:0"], "WEIGHT must be a number > 0"),
        (["--emphasize", "b:x"], "expected CLASS or CLASS:WEIGHT"),
        (["--emphasize", "car"], "unknown class name 'car'"),
        (["--emphasize", "b", "--emphasize", "b:2"], "given twice"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert msg in err, err
        assert err.count("\n") == 1
