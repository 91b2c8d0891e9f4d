"""Sharded index folders (``segsearch.engine.sharded``): ``--add`` writes a shard, ``segsearch compact`` merges them,
and a folder searches as one index over all its photos -- the same ids and distances, ties in insertion order --
before and after compaction; crashes between the steps and hostile manifests or shards."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from conftest import file_regions, random_probs
from photo_folder import make_photos, pixel_net
from segsearch import Index, IndexFormatError, PhotoIndex, Query
from segsearch.cli import main
from segsearch.engine import storage
from segsearch.engine.index import empty_like, merged
from segsearch.engine.sharded import ShardedIndex, open_folder
from segsearch.library import shards
from segsearch.library.build import build_index
from segsearch.library.shards import add_shard, compact
from segsearch.network.segmenter import Segmenter

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def assert_same_results(got, want):
    got, want = (got, want) if isinstance(got, list) else ([got], [want])
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.ids.tolist() == w.ids.tolist()
        np.testing.assert_array_equal(g.distances, w.distances)  # bit for bit, not approximately


def run_cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------------ the pipeline


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """A folder indexed with 14 photos, then --add 10, then --add 8 (one of them a copy of an earlier photo
    under a new name, so that distances tie across shards), with the tiny fixed network."""
    root = tmp_path_factory.mktemp("grown")
    names = make_photos(root / "all", n=32, seed=4)
    for i, extra in ((3, "copy_a.png"), (20, "copy_b.png")):  # the same pixels: the same codes, equal distances
        shutil.copyfile(root / "all" / names[i], root / "all" / extra)
    steps = [names[:14], names[14:24] + ["copy_a.png"], names[24:] + ["copy_b.png"]]
    seg = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    opts = dict(segmenter=seg, size=8, n_centroids=4, batch=4, niter=3, workers=0, sample=10, log=lambda s: None)
    photos, out = root / "photos", root / "idx"
    photos.mkdir()
    reports = []
    for i, step in enumerate(steps):
        for n in step:
            shutil.copyfile(root / "all" / n, photos / n)
        reports.append(build_index(photos, out, add=i > 0, **opts))
    return {
        "root": root,
        "out": out,
        "photos": photos,
        "seg": seg,
        "reports": reports,
        "order": [n for step in steps for n in sorted(step)],
    }


def copy_grown(grown, tmp_path: Path) -> tuple[Path, Path]:
    """(index folder, photos folder): copies of ``grown``'s, the copy's state pointing at the copied photos."""
    out, photos = tmp_path / "idx", tmp_path / "photos"
    shutil.copytree(grown["out"], out)
    shutil.copytree(grown["photos"], photos)
    db = sqlite3.connect(out / "work" / "state.sqlite")
    cfg = json.loads(db.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0])
    with db:
        db.execute("UPDATE meta SET value=? WHERE key='config'", (json.dumps(dict(cfg, photos_dir=str(photos))),))
    db.close()
    return out, photos


def reference(out: Path) -> Index:
    """One index over all the folder's photos, as ``--add`` made before shards: the base's codebook and every
    done photo's codes from the state, in insertion order (codes alone: once written, the state keeps no exact
    maps; :func:`reference_exact` has them)."""
    base = Index.load(out / "index.segsearch")
    db = sqlite3.connect(out / "work" / "state.sqlite")
    rows = db.execute("SELECT path, codes FROM photos WHERE status='done' ORDER BY id").fetchall()
    db.close()
    assert all(len(c) == base.num_classes for _, c in rows)  # the exact maps were dropped once written
    return empty_like(base, keep_exact=False).add_codes(
        np.stack([np.frombuffer(c, np.uint8) for _, c in rows]), ids=[p for p, _ in rows]
    )


def reference_exact(out: Path) -> Index:
    """One index holding the folder's photos with their exact maps (the base's and each shard's, in order)."""
    folder = open_folder(out)
    return merged(folder.base, folder.shards)


def queries(grown) -> list[Query]:
    maps = grown["seg"].predict([grown["photos"] / n for n in ("photo003.png", "photo027.png")], size=8)
    sketch = np.full((8, 8), -1, np.int32)
    sketch[:3] = 1
    sketch[5:, 2:6] = 3
    return [Query.image(maps[0]), Query.image(maps[1]), Query.sketch(sketch), Query.image_and_sketch(maps[1], sketch)]


def test_add_writes_shards_and_the_folder_searches_like_one_index(grown, tmp_path):
    out = grown["out"]
    assert [r.shard_path for r in grown["reports"]] == [
        None,
        out / "shards" / "000001.segsearch",
        out / "shards" / "000002.segsearch",
    ]
    assert len(Index.load(out / "index.segsearch")) == 14  # the base was not rewritten
    union = open_folder(out)
    assert isinstance(union, ShardedIndex) and [st.n for st in union.shards] == [14, 11, 9]
    assert union.ids.tolist() == grown["order"]  # insertion order: the base, then each shard
    ref, ref_exact = reference(out), reference_exact(out)
    assert union.ids.tolist() == ref.ids.tolist() == ref_exact.ids.tolist()
    np.testing.assert_array_equal(union.codes, ref.codes)
    qs = queries(grown)
    for k in (1, 5, 34, 100):
        assert_same_results(union.search(qs, k, rerank=0), ref.search(qs, k))
        assert_same_results(union.search(qs, k, eps=0, rerank=0), ref.search(qs, k, eps=0))
        assert_same_results(union.search(qs, k, exact=True), ref_exact.search(qs, k, exact=True))
        assert_same_results(union.search(qs, k, rerank=34), ref_exact.search(qs, k, rerank=34))  # all re-ranked
    ids = ["photo003.png", "copy_a.png", "photo020.png", "copy_b.png", "photo030.png", "photo010.png"]
    mask = np.arange(34) % 3 != 1
    for sub in (ids, mask, ids[:1], []):
        assert_same_results(union.search(qs, 4, subset=sub, rerank=0), ref.search(qs, 4, subset=sub))
        assert_same_results(union.search(qs, 4, subset=sub), ref_exact.search(qs, 4, subset=sub))
    # ties across shards in insertion order: the photo and its copies have equal codes (their exact maps differ in
    # the last bits: the network saw them in other batches), so equal PQ distances
    hits = union.search(qs[0], 34, rerank=0)
    d = dict(zip(hits.ids.tolist(), hits.distances.tolist()))
    assert d["photo003.png"] == d["copy_a.png"] and d["photo020.png"] == d["copy_b.png"]
    tied = [i for i in hits.ids.tolist() if d[i] == d["photo003.png"]]
    assert tied == sorted(tied, key=grown["order"].index) and "copy_a.png" in tied
    assert union.positions(["copy_b.png", "photo000.png"]).tolist() == [grown["order"].index("copy_b.png"), 0]
    assert "copy_b.png" in union and "nope.png" not in union and ["unhashable"] not in union
    # errors as one index gives them
    for bad in (dict(k=0), dict(subset=["nope.png"]), dict(subset=np.ones(3, bool)), dict(rerank=-1)):
        with pytest.raises(ValueError):
            union.search(qs[0], **{"k": 3, **bad})


def test_photo_index_cli_and_compaction_on_a_sharded_folder(grown, tmp_path):
    out = tmp_path / "idx"
    shutil.copytree(grown["out"], out)
    ref = reference_exact(out)
    qs = queries(grown)
    pi = PhotoIndex.open(out, segmenter=grown["seg"])
    assert isinstance(pi.index, ShardedIndex) and len(pi) == 34
    hits = pi.search(image=grown["photos"] / "photo003.png", k=34)
    want = ref.search(Query.image(pi.segment(grown["photos"] / "photo003.png")), 34)
    assert [h.id for h in hits] == want.ids.tolist()
    assert [h.distance for h in hits] == want.distances.tolist()
    assert hits[0].path == (grown["photos"] / hits[0].id).resolve()
    labels = pi.predicted_labels("copy_b.png")  # a photo in the last shard
    np.testing.assert_array_equal(labels, np.argmax(ref.decode(ref.codes[ref.positions(["copy_b.png"])])[0], axis=0))
    sketch = tmp_path / "sketch.png"
    from PIL import Image

    Image.fromarray(np.where(np.arange(64).reshape(8, 8) < 24, 2, 4).astype(np.uint8)).save(sketch)
    rc, text, err = run_cli("search", out, "--sketch", sketch, "-k", "34", "--json")
    assert rc == 0, err
    lines = [json.loads(s) for s in text.splitlines()]
    want = ref.search(Query.sketch(pi.sketch_labels(sketch)), 34)
    assert [h["id"] for h in lines] == want.ids.tolist()
    assert [h["distance"] for h in lines] == want.distances.tolist()
    before = {
        p: pi.search(**q, k=34)
        for p, q in (("img", {"image": grown["photos"] / "photo027.png"}), ("sk", {"sketch": sketch}))
    }
    rc, text, err = run_cli("compact", out)
    assert rc == 0 and "merged 2 shards" in text, err
    assert sorted(p.name for p in out.iterdir()) == ["index.segsearch", "photos.sqlite", "work"]  # no shards, manifest
    merged = Index.load(out / "index.segsearch")
    assert (
        merged.ids.tolist() == ref.ids.tolist()
        and merged.metadata == Index.load(grown["out"] / "index.segsearch").metadata
    )
    np.testing.assert_array_equal(merged.codes, ref.codes)
    for k in (3, 34):
        assert_same_results(merged.search(qs, k), ref.search(qs, k))
    pi2 = PhotoIndex.open(out, segmenter=grown["seg"])
    assert isinstance(pi2.index, Index)
    for p, q in (("img", {"image": grown["photos"] / "photo027.png"}), ("sk", {"sketch": sketch})):
        assert pi2.search(**q, k=34) == before[p]
    assert run_cli("compact", out)[1].startswith(f"{out} has no shards")


def test_add_with_nothing_new_writes_no_shard(grown, tmp_path):
    out = tmp_path / "idx"
    shutil.copytree(grown["out"], out)
    seg = grown["seg"]
    report = build_index(
        grown["photos"],
        out,
        segmenter=seg,
        size=8,
        n_centroids=4,
        batch=4,
        niter=3,
        workers=0,
        sample=10,
        add=True,
        log=lambda s: None,
    )
    assert report.shard_path is None and report.n_done == 34
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["000001.segsearch", "000002.segsearch"]


def test_add_reads_only_the_last_file(grown, tmp_path, monkeypatch):
    """A further --add finds the new photos from the state's written mark and the folder's last shard: an
    earlier shard whose codes are damaged (only a full read would notice) does not stop it; and a folder whose
    state has no mark (written by segsearch 0.2) is looked up whole, once, and gains the mark."""
    import segsearch.library.build as indexing

    out, photos = copy_grown(grown, tmp_path)
    more = make_photos(tmp_path / "more", n=3, seed=11)
    opts = dict(
        segmenter=grown["seg"], size=8, n_centroids=4, batch=4, niter=3, workers=0, sample=10, log=lambda s: None
    )
    shard1 = out / "shards" / "000001.segsearch"
    blob = bytearray(shard1.read_bytes())
    codes = np.ascontiguousarray(storage.load(shard1, mmap=False, verify=False)[1]["codes"]).tobytes()
    blob[bytes(blob).index(codes, 16)] ^= 0x01  # a code changed: its checksum no longer matches
    shard1.write_bytes(bytes(blob))
    with pytest.raises(IndexFormatError, match="000001.segsearch"):
        open_folder(out)
    monkeypatch.setattr(indexing, "open_folder", lambda *a, **k: pytest.fail("--add opened the whole folder"))
    shutil.copyfile(tmp_path / "more" / more[0], photos / "z_new0.png")
    report = build_index(photos, out, add=True, **opts)
    assert report.n_new == 1 and report.shard_path == out / "shards" / "000003.segsearch"
    shard1.write_bytes(grown["out"].joinpath("shards", "000001.segsearch").read_bytes())
    monkeypatch.undo()
    db = sqlite3.connect(out / "work" / "state.sqlite")
    with db:
        db.execute("DELETE FROM meta WHERE key='written_through'")
    db.close()
    shutil.copyfile(tmp_path / "more" / more[1], photos / "z_new1.png")
    report = build_index(photos, out, add=True, **opts)
    assert report.n_new == 1 and report.shard_path == out / "shards" / "000004.segsearch"
    union = open_folder(out)
    assert union.ids.tolist() == grown["order"] + ["z_new0.png", "z_new1.png"]
    db = sqlite3.connect(out / "work" / "state.sqlite")
    assert db.execute("SELECT value FROM meta WHERE key='written_through'").fetchone() is not None
    db.close()


def test_add_hashes_the_codebook_once(grown, tmp_path, monkeypatch):
    """An --add run to a folder with shards reads index.segsearch once and hashes its codebook once (it was
    about five times: the orphan sweep, the last shard's check, the new shard's codebook and the manifest)."""
    import segsearch.engine.index as index_module

    out, photos = copy_grown(grown, tmp_path)
    more = make_photos(tmp_path / "more", n=1, seed=12)
    shutil.copyfile(tmp_path / "more" / more[0], photos / "z_new.png")
    calls = []
    real = index_module.fingerprint
    monkeypatch.setattr(index_module, "fingerprint", lambda *a: calls.append(1) or real(*a))
    report = build_index(
        photos,
        out,
        add=True,
        segmenter=grown["seg"],
        size=8,
        n_centroids=4,
        batch=4,
        niter=3,
        workers=0,
        sample=10,
        log=lambda s: None,
    )
    assert report.n_new == 1 and report.shard_path == out / "shards" / "000003.segsearch"
    assert len(calls) == 1
    monkeypatch.undo()
    assert open_folder(out).ids.tolist() == grown["order"] + ["z_new.png"]


# ------------------------------------------------------------------------------------------------ the Python API


@pytest.fixture
def api_folder(tmp_path):
    """A folder made from Python: a base of 30 photos keeping exact maps, then two shards (positional ids
    continued, then explicit ones), some photos repeated across shards; and the one index over them all."""
    P = random_probs(60, 5, 8, 0)
    P[45] = P[50] = P[20] = P[3]  # equal distances across the shards
    base = Index(5, 8, 8, keep_exact=True, metadata={"made": "by hand"})
    base.train(P[:30], niter=3)
    base.add(P[:30])
    d = tmp_path / "idx"
    d.mkdir()
    base.save(d / "index.segsearch")
    b = Index.load(d / "index.segsearch")
    add_shard(d, empty_like(b).add(P[30:45]))
    add_shard(d, empty_like(b).add(P[45:], ids=np.arange(100, 115)))
    one = empty_like(b).add(P[:45]).add(P[45:], ids=np.arange(100, 115))
    qs = [
        Query.image(P[3]),
        Query.sketch(np.argmax(P[7], 0).astype(np.int32)),
        Query.image_and_sketch(P[9], np.where(np.arange(64).reshape(8, 8) < 20, 1, -1).astype(np.int32)),
    ]
    return d, one, qs, P


def test_exact_and_pq_search_of_shards_equal_one_index_then_compact(api_folder):
    d, one, qs, _ = api_folder
    union = open_folder(d)
    assert union.ids.tolist() == list(range(45)) + list(range(100, 115))
    for exact in (False, True):
        for k in (1, 4, 60):
            for sub in (None, [0, 3, 20, 44, 100, 105], np.arange(60) % 3 == 0):
                assert_same_results(
                    union.search(qs, k, exact=exact, subset=sub), one.search(qs, k, exact=exact, subset=sub)
                )
    top = union.search(qs[0], 4, exact=True)
    assert top.ids.tolist() == [3, 20, 100, 105] and len(set(top.distances.tolist())) == 1  # ties: insertion order
    assert compact(d) == 2
    assert sorted(p.name for p in d.iterdir()) == ["index.segsearch", "work"]
    merged = open_folder(d)
    assert isinstance(merged, Index) and merged.metadata == {"made": "by hand"} and merged.keep_exact
    for exact in (False, True):
        assert_same_results(merged.search(qs, 60, exact=exact), one.search(qs, 60, exact=exact))
    # a shard added after the compaction starts the numbering again; still one index
    _, _, _, P = api_folder
    assert add_shard(d, empty_like(merged).add(P[:5] * 0.5 + P[5:10] * 0.5)) == d / "shards" / "000001.segsearch"
    one.add(P[:5] * 0.5 + P[5:10] * 0.5)
    union = open_folder(d)
    assert union.ids.tolist() == one.ids.tolist()
    assert_same_results(union.search(qs, 65, exact=True), one.search(qs, 65, exact=True))
    assert_same_results(union.search(qs, 7), one.search(qs, 7))


def test_add_shard_refuses_what_would_not_be_one_index(api_folder, tmp_path):
    d, one, qs, P = api_folder
    b = Index.load(d / "index.segsearch")
    with pytest.raises(ValueError, match="id 100 is already in the index folder"):
        add_shard(d, empty_like(b).add(P[:2], ids=[7000, 100]))
    with pytest.raises(ValueError, match="integer ids"):
        add_shard(d, empty_like(b).add(P[:2], ids=["a", "b"]))
    other = Index(5, 8, 8, keep_exact=True).train(P[10:40], niter=2)
    with pytest.raises(ValueError, match="not encoded with this folder's codebook"):
        add_shard(d, other.add(P[:2], ids=[9000, 9001]))
    with pytest.raises(ValueError, match="no photos"):
        add_shard(d, empty_like(b))
    assert len(open_folder(d)) == 60  # nothing was added


def test_folders_made_before_shards_still_open_and_search(tmp_path):
    from photo_folder import FakeSegmenter, make_index_folder

    index_dir, photos, names, _ = make_index_folder(tmp_path)
    pi = PhotoIndex.open(index_dir, segmenter=FakeSegmenter())
    plain = Index.load(index_dir / "index.segsearch")
    assert type(pi.index) is Index and len(pi) == len(plain)
    hits = pi.search(image=photos / names[5], k=5)
    assert hits[0].id == names[5]
    assert_same_results(
        open_folder(index_dir).search(Query.sketch(np.zeros((16, 16), np.int32)), 7),
        plain.search(Query.sketch(np.zeros((16, 16), np.int32)), 7),
    )
    for f in sorted(FIXTURES.glob("v*.segsearch")):  # files of every format version
        d = tmp_path / f.stem
        d.mkdir()
        shutil.copyfile(f, d / "index.segsearch")
        assert type(open_folder(d)) is Index and len(open_folder(d)) == len(Index.load(f))


# ------------------------------------------------------------------------------------------------ crashes


def test_a_shard_written_without_its_manifest_is_ignored_then_removed(api_folder, monkeypatch):
    d, one, qs, P = api_folder
    b = Index.load(d / "index.segsearch")

    def killed(*a, **kw):
        raise KeyboardInterrupt  # as if killed after the shard's rename, before the manifest's

    monkeypatch.setattr(shards, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        add_shard(d, empty_like(b).add(P[:3], ids=[500, 501, 502]))
    monkeypatch.undo()
    assert (d / "shards" / "000003.segsearch").is_file()
    (d / "shards" / "000004.segsearch.ab12cd.tmp").write_bytes(b"partial")  # a save killed midway
    union = open_folder(d)
    assert len(union) == 60 and 500 not in union  # the orphan is not part of the folder
    assert_same_results(union.search(qs, 60), one.search(qs, 60))
    add_shard(d, empty_like(b).add(P[:2], ids=[600, 601]))  # the next writer removes the orphan and temp file
    assert sorted(p.name for p in (d / "shards").iterdir()) == [
        "000001.segsearch",
        "000002.segsearch",
        "000003.segsearch",
    ]
    union = open_folder(d)
    assert len(union) == 62 and 500 not in union and union.ids[-2:].tolist() == [600, 601]


def test_a_compaction_killed_after_its_commit_shows_every_photo_once(api_folder, monkeypatch):
    d, one, qs, _ = api_folder
    real = shards.remove_unlisted
    calls = []

    def killed_second_time(folder):
        calls.append(folder)
        if len(calls) == 2:  # after the merged index.segsearch was renamed into place
            raise KeyboardInterrupt
        return real(folder)

    monkeypatch.setattr(shards, "remove_unlisted", killed_second_time)
    with pytest.raises(KeyboardInterrupt):
        compact(d)
    monkeypatch.undo()
    assert (d / "shards.json").is_file() and (d / "shards" / "000001.segsearch").is_file()
    got = open_folder(d)  # the manifest is stale (the base has every photo): ignored
    assert isinstance(got, Index) and len(got) == 60
    assert_same_results(got.search(qs, 60), one.search(qs, 60))
    assert compact(d) == 0  # cleans up
    assert sorted(p.name for p in d.iterdir()) == ["index.segsearch", "work"]


def test_compact_small_shards_keeps_the_base_and_the_results(api_folder, monkeypatch):
    """compact(max_photos=N): consecutive shards merged into shards of at most N photos, the base kept, the
    same results (exact and PQ, ties in insertion order); a kill before the manifest's commit leaves the
    folder as it was (the new shard unlisted, deleted by the next writer)."""
    d, one, qs, P = api_folder
    b = Index.load(d / "index.segsearch")
    for i in range(4):  # shards of 15, 15, 4, 4, 4, 4 photos
        part = empty_like(b).add(
            P[i * 4 : i * 4 + 4] * 0.5 + P[40 - i * 4 : 44 - i * 4] * 0.5, ids=np.arange(200 + i * 4, 204 + i * 4)
        )
        add_shard(d, part)
        one.add(P[i * 4 : i * 4 + 4] * 0.5 + P[40 - i * 4 : 44 - i * 4] * 0.5, ids=np.arange(200 + i * 4, 204 + i * 4))
    before = (d / "index.segsearch").read_bytes()

    def killed(*args):
        raise KeyboardInterrupt  # at the commit point: the merged shard is written, the manifest not yet

    monkeypatch.setattr(shards, "_write_manifest", killed)
    with pytest.raises(KeyboardInterrupt):
        compact(d, max_photos=12)
    monkeypatch.undo()
    assert (d / "shards" / "000007.segsearch").is_file()  # written, never listed
    union = open_folder(d)
    assert [st.n for st in union.shards] == [30, 15, 15, 4, 4, 4, 4]
    assert_same_results(union.search(qs, 76), one.search(qs, 76))

    assert compact(d, max_photos=12) == 2  # the four shards of 4 -> 12 + 4: two files fewer
    assert (d / "index.segsearch").read_bytes() == before
    listed = [e["file"] for e in json.loads((d / "shards.json").read_text())["shards"]]
    assert sorted(p.name for p in (d / "shards").iterdir()) == sorted(f.split("/")[1] for f in listed)
    union = open_folder(d)
    assert [st.n for st in union.shards] == [30, 15, 15, 12, 4] and union.ids.tolist() == one.ids.tolist()
    for exact in (False, True):
        for k in (1, 5, 76):
            assert_same_results(union.search(qs, k, exact=exact), one.search(qs, k, exact=exact))
    assert compact(d, max_photos=12) == 0  # nothing left that fits
    assert compact(d, max_photos=100) == 3  # 15 + 15 + 12 + 4 = 46
    assert [st.n for st in open_folder(d).shards] == [30, 46]
    assert_same_results(open_folder(d).search(qs, 76, exact=True), one.search(qs, 76, exact=True))
    with pytest.raises(ValueError, match="max_photos must be"):
        compact(d, max_photos=0)
    rc, text, _ = run_cli("compact", d, "--max-photos", "10")
    assert rc == 0 and "nothing merged" in text
    rc, text, _ = run_cli("compact", d)
    assert rc == 0 and "merged 1 shard into" in text and isinstance(open_folder(d), Index)  # 30 + 46


# ------------------------------------------------------------------------------------------------ hostile folders


def write_manifest(d: Path, change) -> None:
    m = json.loads((d / "shards.json").read_text())
    change(m)
    (d / "shards.json").write_text(json.dumps(m))


def entry(i):
    return lambda m: m["shards"][i]


HOSTILE = {
    "outside": (
        lambda d: write_manifest(d, lambda m: entry(0)(m).update(file="../evil.segsearch")),
        "shards/NNNNNN.segsearch",
    ),
    "absolute": (
        lambda d: write_manifest(d, lambda m: entry(0)(m).update(file="/etc/passwd")),
        "shards/NNNNNN.segsearch",
    ),
    "dotdot": (
        lambda d: write_manifest(d, lambda m: entry(0)(m).update(file="shards/../index.segsearch")),
        "shards/NNNNNN.segsearch",
    ),
    "twice": (
        lambda d: write_manifest(d, lambda m: entry(1)(m).update(file="shards/000001.segsearch")),
        "lists shards/000001.segsearch twice",
    ),
    "missing": (lambda d: (d / "shards" / "000002.segsearch").unlink(), "000002.segsearch, which is missing"),
    "damaged": (lambda d: flip_byte(d / "shards" / "000001.segsearch"), "000001.segsearch is damaged"),
    "truncated": (lambda d: os.truncate(d / "shards" / "000002.segsearch", 300), "000002.segsearch is truncated"),
    "count": (lambda d: write_manifest(d, lambda m: entry(0)(m).update(count=3)), "holds 15 photos but"),
    "base count": (lambda d: write_manifest(d, lambda m: m["base"].update(count=31)), "of 31 photos, but"),
    "codebook": (lambda d: write_manifest(d, lambda m: m["base"].update(codebook_sha256="0" * 64)), "another codebook"),
    "same ids": (lambda d: copy_shard_as_third(d), "in more than one shard"),
    "json": (lambda d: (d / "shards.json").write_text("{not json"), "unreadable JSON"),
    "not ours": (lambda d: (d / "shards.json").write_text("[1, 2]"), "not a segsearch shard manifest"),
    "newer": (lambda d: write_manifest(d, lambda m: m.update(version=9)), "version 9, newer"),
    "entry": (lambda d: write_manifest(d, lambda m: m["shards"].append("x")), "shard entry 2"),
    "folder": (lambda d: make_dir_manifest(d), "not a shard manifest: not a regular file"),
    "link out": (lambda d: link_shard_out(d), "refused: resolves outside the index folder"),
    "fifo": (lambda d: fifo_shard(d), "not a regular file"),
    "index as shard": (
        lambda d: shutil.copyfile(d / "index.segsearch", d / "shards" / "000001.segsearch"),
        "not a shard of this index",
    ),
}


def flip_byte(p: Path) -> None:
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF  # inside the exact maps
    p.write_bytes(bytes(b))


def copy_shard_as_third(d: Path) -> None:
    shutil.copyfile(d / "shards" / "000001.segsearch", d / "shards" / "000003.segsearch")
    write_manifest(d, lambda m: m["shards"].append({"file": "shards/000003.segsearch", "count": 15}))


def make_dir_manifest(d: Path) -> None:
    (d / "shards.json").unlink()
    (d / "shards.json").mkdir()


def link_shard_out(d: Path) -> None:
    target = d.parent / "outside.segsearch"
    shutil.copyfile(d / "shards" / "000001.segsearch", target)
    (d / "shards" / "000001.segsearch").unlink()
    (d / "shards" / "000001.segsearch").symlink_to(target)


def fifo_shard(d: Path) -> None:
    (d / "shards" / "000001.segsearch").unlink()
    os.mkfifo(d / "shards" / "000001.segsearch")


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_manifests_and_shards_are_clear_errors(api_folder, case):
    d = api_folder[0]
    make, message = HOSTILE[case]
    make(d)
    with pytest.raises(IndexFormatError) as e:
        open_folder(d)
    assert message in str(e.value)
    assert str(d) in str(e.value)  # names the file
    rc, _, err = run_cli("search", d, "--draw", "class1:0,0,1,0.5", "--photos", d)
    assert rc == 2 and err.startswith("segsearch: error: ") and err.count("\n") == 1, err
    before = sorted(p.name for p in (d / "shards").iterdir())
    with pytest.raises(IndexFormatError):  # writers refuse too, and delete nothing
        compact(d)
    assert sorted(p.name for p in (d / "shards").iterdir()) == before


def test_damaged_shard_files_and_manifests_never_crash(api_folder):
    """Random byte flips and cuts of a shard file, and random values in the manifest: opening gives an
    IndexFormatError naming the file, never another exception, or an index that gives the undamaged folder's
    results (ids and distances, PQ and exact, every photo). A flip of a header or array byte of the shard is
    always caught; only flips confined to alignment padding may open. A manifest whose base count says the base
    has since been compacted (a stale manifest, ignored by design) may open as the base alone."""
    d, one, qs, _ = api_folder
    shard, manifest = d / "shards" / "000002.segsearch", d / "shards.json"
    good_shard, good_manifest = shard.read_bytes(), manifest.read_text()
    undamaged = open_folder(d)
    assert len(undamaged) == 60
    want = [undamaged.search(qs, 60, exact=exact) for exact in (False, True)]
    base = Index.load(d / "index.segsearch")
    base_alone = [base.search(qs, 60, exact=exact) for exact in (False, True)]
    header_end, arrays = file_regions(good_shard)
    caught = np.zeros(len(good_shard), bool)  # the bytes a flip of must be caught: header and arrays
    caught[:header_end] = True
    for a, b in arrays:
        caught[a:b] = True
    rng = np.random.default_rng(7)

    def opens_or_says_why(name: str, stale_ok: bool = False) -> bool:
        try:
            union = open_folder(d)
        except IndexFormatError as e:
            assert name in str(e)
            return False
        expect = base_alone if stale_ok and len(union) == len(base) else want
        for exact, w in zip((False, True), expect):
            assert_same_results(union.search(qs, 60, exact=exact), w)
        return True

    opened = 0
    for _ in range(60):
        b = bytearray(good_shard)
        if rng.random() < 0.3:
            b = b[: rng.integers(0, len(b))]
        else:
            for i in rng.integers(0, len(b), rng.integers(1, 4)):
                b[i] ^= 1 << int(rng.integers(0, 8))
        shard.write_bytes(bytes(b))
        if opens_or_says_why("000002.segsearch"):
            changed = np.flatnonzero(np.frombuffer(bytes(b), np.uint8) != np.frombuffer(good_shard[: len(b)], np.uint8))
            cut_off = np.arange(len(b), len(good_shard))
            assert not caught[changed].any() and not caught[cut_off].any(), "damage to a header or array byte opened"
            opened += 1
    shard.write_bytes(good_shard)
    values = [
        None,
        True,
        -1,
        0,
        2**70,
        1.5,
        "x",
        [],
        {},
        "shards/000001.segsearch",
        "shards/0000001.segsearch",
        "shards\\000001.segsearch",
        "shards/000001.segsearch\0",
        "SHARDS/000001.segsearch",
    ]
    for _ in range(60):
        m = json.loads(good_manifest)
        where = [m, m["base"], m["shards"][0], m["shards"][1]][rng.integers(0, 4)]
        key = list(where)[rng.integers(0, len(where))]
        where[key] = values[rng.integers(0, len(values))]
        manifest.write_text(json.dumps(m))
        if opens_or_says_why("shards", stale_ok=where is m["base"] and key == "count"):
            opened += 1
    assert opened >= 1  # (the shard flips of alignment padding and the stale base counts)


def test_string_ids_repeated_across_shards_and_compact_errors(grown, tmp_path):
    out = tmp_path / "idx"
    shutil.copytree(grown["out"], out)
    shutil.copyfile(out / "shards" / "000001.segsearch", out / "shards" / "000003.segsearch")
    write_manifest(out, lambda m: m["shards"].append({"file": "shards/000003.segsearch", "count": 11}))
    with pytest.raises(IndexFormatError, match="the id 'copy_a.png' is in more than one shard"):
        open_folder(out)
    rc, _, err = run_cli("compact", out)
    assert rc == 2 and "'copy_a.png' is in more than one shard" in err and err.count("\n") == 1
    rc, _, err = run_cli("compact", tmp_path / "nothing")
    assert rc == 2 and "has no index.segsearch" in err
