"""Exact re-ranking: each photo's maps kept as block maps, the PQ candidates re-ranked by their exact distance."""

import numpy as np
import pytest

import segsearch
from conftest import random_sketch
from reference import distances, exact_maps, topk
from segsearch import Index, Query
from segsearch.engine import storage
from segsearch.engine.exact_maps import BLOCK, BlockMaps, check_block_arrays, to_blocks
from segsearch.engine.index_file import index_file_contents
from segsearch.errors import IndexFormatError
from segsearch.evaluation.synthetic import synthetic_probs

KINDS = ["image", "sketch", "image_and_sketch"]


def queries(probs, C, size):
    """One query of each kind per photo picked: (kind, Query, probs, labels)."""
    out = []
    for s, i in enumerate((3, 17, 40)):
        lab = random_sketch(C, size, seed=s, n_classes=s + 1, fill=0.3 + 0.2 * s)
        out += [
            ("image", Query.image(probs[i]), probs[i], None),
            ("sketch", Query.sketch(lab), None, lab),
            ("image_and_sketch", Query.image_and_sketch(probs[i], lab), probs[i], lab),
        ]
    return out


def close(a, b, ref_scale):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * ref_scale)


def test_block_maps_hold_the_maps_exactly():
    rng = np.random.default_rng(0)
    for D in (64, 100, 4096):  # whole blocks, a padded last block, the default 64 x 64
        maps = (rng.random((9, 5, D)) < 0.02) * rng.integers(1, 256, (9, 5, D))
        maps[2] = 0  # a photo with no block at all
        maps = maps.astype(np.uint8)
        bm = BlockMaps.from_maps(maps)
        assert bm.n == 9 and bm.n_blocks == int(np.diff(bm.ptr[:10]).sum())
        for i in range(9):
            np.testing.assert_array_equal(bm.dense(i, 5, D), maps[i])
        assert check_block_arrays(*bm.arrays(), n=9, num_classes=5, dim=D) is None
        nonzero_blocks = sum(
            int(np.any(maps[i, c, b * BLOCK : (b + 1) * BLOCK]))
            for i in range(9)
            for c in range(5)
            for b in range(-(-D // BLOCK))
        )
        assert bm.n_blocks == nonzero_blocks  # only the blocks holding a nonzero value


def test_appending_grows_in_place_without_changing_earlier_maps():
    rng = np.random.default_rng(1)
    maps = (rng.random((20, 3, 64)) < 0.1).astype(np.uint8) * 7
    first = BlockMaps.from_maps(maps[:10])
    second = first.appended(*to_blocks(maps[10:]))
    assert first.n == 10 and second.n == 20
    for i in range(10):
        np.testing.assert_array_equal(first.dense(i, 3, 64), maps[i])
    for i in range(20):
        np.testing.assert_array_equal(second.dense(i, 3, 64), maps[i])


@pytest.mark.parametrize("kind", KINDS)
def test_rerank_of_every_photo_is_the_exact_search(built, kind):
    """rerank >= N: the same ids and bit-identical distances as exact=True, and both match the numpy reference
    of the exact maps."""
    name, probs, index = built
    N, C, size = probs.shape[0], probs.shape[1], probs.shape[-1]
    maps = exact_maps(probs, index)
    for k_, q, p, lab in queries(probs, C, size):
        if k_ != kind:
            continue
        ex = index.search(q, k=10, exact=True)
        rr = index.search(q, k=10, rerank=N)
        np.testing.assert_array_equal(rr.ids, ex.ids)
        np.testing.assert_array_equal(rr.distances, ex.distances)
        ref = distances(kind, p, lab, maps, index)
        scale = max(float(np.median(np.abs(ref))), 1e-6)
        close(rr.distances, ref[topk(ref, 10)], scale)
        close(ref[rr.ids], rr.distances, scale)


@pytest.mark.parametrize("kind", KINDS)
def test_rerank_orders_the_pq_candidates_by_exact_distance(built, kind):
    """rerank=R < N: the k nearest, by the exact reference, of the R nearest by PQ."""
    name, probs, index = built
    C, size = probs.shape[1], probs.shape[-1]
    maps = exact_maps(probs, index)
    for k_, q, p, lab in queries(probs, C, size):
        if k_ != kind:
            continue
        cand = index.search(q, k=25, rerank=0, eps=0).ids
        res = index.search(q, k=8, rerank=25, eps=0)
        ref = distances(kind, p, lab, maps, index)
        assert set(res.ids.tolist()) <= set(cand.tolist())
        scale = max(float(np.median(np.abs(ref))), 1e-6)
        close(res.distances, np.sort(ref[cand])[:8], scale)
        assert np.all(np.diff(res.distances) >= 0)


def test_rerank_breaks_the_ties_of_pq():
    """K = 1: every photo has the same code, so PQ ties them all; re-ranked, only equal maps tie."""
    probs = synthetic_probs(40, 6, 8, seed=3)
    probs[7] = probs[5]  # two photos with the same maps
    index = Index(6, 8, 1, keep_exact=True, ranking="l2")
    index.train(probs, niter=2)
    index.add(probs)
    q = Query.image(probs[5])
    pq = index.search(q, k=40, rerank=0)
    assert len(set(pq.distances.tolist())) == 1  # all tied, in insertion order
    res = index.search(q, k=40)  # the default re-ranks them
    assert res.ids[:2].tolist() == [5, 7] and res.distances[0] == res.distances[1]  # the maps' bytes differ from
    assert res.distances[0] < 1e-3 * res.distances[2]  # the query's floats by rounding only
    assert len(set(res.distances[1:].tolist())) == 39
    np.testing.assert_array_equal(res.ids, index.search(q, k=40, exact=True).ids)


def test_rerank_default_is_recorded_and_checked(tmp_path):
    probs = synthetic_probs(30, 4, 8, seed=1)
    assert Index(4, 8, 4, keep_exact=True).rerank == segsearch.engine.index.DEFAULT_RERANK
    assert Index(4, 8, 4).rerank == 0
    index = Index(4, 8, 4, keep_exact=True, rerank=5)
    index.train(probs, niter=2)
    index.add(probs)
    index.save(tmp_path / "a.segsearch")
    back = Index.load(tmp_path / "a.segsearch")
    assert back.rerank == 5 and back.keep_exact
    q = Query.image(probs[2])
    np.testing.assert_array_equal(back.search(q, k=5).ids, index.search(q, k=5, rerank=5).ids)
    with pytest.raises(ValueError, match="rerank"):
        Index(4, 8, 4, rerank=5)
    with pytest.raises(ValueError, match="rerank"):
        index.search(q, rerank=-1)
    plain = Index(4, 8, 4)
    plain.train(probs, niter=2)
    plain.add(probs)
    with pytest.raises(ValueError, match="exact maps"):
        plain.search(q, rerank=3)


def test_add_codes_with_exact_maps_is_add():
    probs = synthetic_probs(30, 4, 8, seed=2)
    a = Index(4, 8, 8, keep_exact=True)
    a.train(probs, niter=2)
    b = segsearch.engine.index.empty_like(a)
    a.add(probs)
    b.add_codes(b.encode(probs), exact=b.exact_maps(probs))
    q = Query.sketch(random_sketch(4, 8, seed=0))
    ra, rb = a.search(q, k=30), b.search(q, k=30)
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.distances, rb.distances)
    with pytest.raises(ValueError, match="exact="):
        b.add_codes(b.encode(probs[:2]))
    with pytest.raises(ValueError, match="BlockMaps"):
        b.add_codes(b.encode(probs[:2]), exact=b.exact_maps(probs[:3]))


def _damaged(tmp_path, change):
    probs = synthetic_probs(20, 4, 8, seed=4)
    index = Index(4, 8, 4, keep_exact=True)
    index.train(probs, niter=2)
    index.add(probs)
    header, arrays = index_file_contents(index, index.snapshot)
    arrays = {k: np.array(v) for k, v in arrays.items()}
    change(arrays)
    path = tmp_path / "bad.segsearch"
    storage.save(path, header, arrays)
    return path, Query.image(probs[1])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a["exact_ptr"].__setitem__(-1, a["exact_ptr"][-1] - 1), "exact_ptr"),
        (lambda a: a["exact_index"].__setitem__(0, 10**6), "exact_index"),
        (lambda a: a["exact_index"].__setitem__(slice(0, 2), a["exact_index"][1::-1]), "increase"),
    ],
)
def test_damaged_block_maps_are_refused(tmp_path, change, message):
    """verify=True names the damage; verify=False may give wrong distances but never reads outside the arrays:
    the core meets out-of-range entries with an IndexFormatError."""
    path, q = _damaged(tmp_path, change)
    with pytest.raises(IndexFormatError, match=message):
        Index.load(path)
    try:
        index = Index.load(path, verify=False)
    except IndexFormatError:
        return  # refused even unverified (the offsets' ends are always checked)
    for kw in ({"exact": True}, {"rerank": 20}):
        try:
            index.search(q, k=5, **kw)
        except IndexFormatError as e:
            assert "exact maps are damaged" in str(e) and "verify=True" in str(e)


def test_rerank_agrees_at_every_simd_level(simd_level):
    probs = synthetic_probs(60, 6, 16, seed=5)
    index = Index(6, 16, 8, keep_exact=True)
    index.train(probs, niter=3)
    index.add(probs)
    want = {  # computed at the scalar level once per test process
        "image": Query.image(probs[4]),
        "sketch": Query.sketch(random_sketch(6, 16, seed=1, n_classes=2)),
    }
    before = segsearch.simd_level()
    segsearch.set_simd_level("scalar")
    ref = {k: index.search(q, k=12, rerank=30) for k, q in want.items()}
    segsearch.set_simd_level(before)
    for k, q in want.items():
        got = index.search(q, k=12, rerank=30)
        np.testing.assert_array_equal(got.ids, ref[k].ids)
        np.testing.assert_array_equal(got.distances, ref[k].distances)


def test_folders_keep_exact_maps_and_record_the_rerank(tmp_path, capsys):
    """segsearch index keeps exact maps by default (searches re-rank; exact=True works), --no-exact keeps codes
    alone, --rerank N is recorded; --add and compaction carry the maps; search --rerank overrides."""
    from photo_folder import make_photos, pixel_net
    from segsearch.cli import main
    from segsearch.engine.sharded import open_folder
    from segsearch.library.build import build_index
    from segsearch.library.shards import compact
    from segsearch.network.segmenter import Segmenter

    make_photos(tmp_path / "photos", n=14)
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    opts = dict(segmenter=seg, size=8, n_centroids=2, batch=4, niter=2, workers=0, log=lambda s: None)
    made = build_index(tmp_path / "photos", tmp_path / "a", **opts)
    index = Index.load(made.index_path)
    assert index.keep_exact and index.rerank == segsearch.engine.index.DEFAULT_RERANK
    maps = seg.predict([tmp_path / "photos" / sorted(p.name for p in (tmp_path / "photos").iterdir())[0]], size=8)
    q = Query.image(maps[0])
    assert len(set(index.search(q, k=14, rerank=0).distances.tolist())) < 14  # K = 2: the codes tie
    ex = index.search(q, k=14, exact=True)
    np.testing.assert_array_equal(index.search(q, k=14).ids, ex.ids)  # 14 photos <= 32: re-ranked = exact
    codes_only = build_index(tmp_path / "photos", tmp_path / "b", keep_exact=False, **opts)
    assert not Index.load(codes_only.index_path).keep_exact and Index.load(codes_only.index_path).rerank == 0
    three = build_index(tmp_path / "photos", tmp_path / "c", rerank=3, **opts)
    assert Index.load(three.index_path).rerank == 3
    with pytest.raises(ValueError, match="rerank"):
        build_index(tmp_path / "photos", tmp_path / "d", keep_exact=False, rerank=3, **opts)
    # --add writes the new photos' exact maps in the shard; compaction keeps them
    make_photos(tmp_path / "photos" / "more", n=4, seed=7)
    build_index(tmp_path / "photos", tmp_path / "a", add=True, **opts)
    folder = open_folder(tmp_path / "a")
    assert len(folder) == 18 and folder.keep_exact
    want = folder.search(q, k=18, exact=True)
    np.testing.assert_array_equal(folder.search(q, k=18).ids, want.ids)
    compact(tmp_path / "a")
    merged = open_folder(tmp_path / "a")
    assert isinstance(merged, Index) and merged.keep_exact
    got = merged.search(q, k=18, exact=True)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_array_equal(got.distances, want.distances)
    # the command line: the options reach build_index (checked before any work) and the search
    for argv in (
        ["index", str(tmp_path / "photos"), "--out", str(tmp_path / "e"), "--no-exact", "--rerank", "3"],
        ["search", str(tmp_path / "a"), "--text", "x", "--rerank", "-1"],
    ):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse's errors
            code = stop.code
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "rerank" in err
