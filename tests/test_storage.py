"""Index files: round trip, mmap, old format fixtures, damaged and foreign files."""
import os
from pathlib import Path

import numpy as np
import pytest

import segsearch
from segsearch import Index, IndexFormatError, Query

from conftest import random_probs, random_sketch

FIXTURES = Path(__file__).parent / "fixtures"


def build(ids=None, keep_exact=True):
    probs = random_probs(40, 4, 8, seed=11)
    index = Index(4, 8, 8, class_names=["sky", "road", "tree", "car"], keep_exact=keep_exact,
                  metadata={"network": "test-net", "note": "ü"})
    index.train(probs, niter=3)
    index.add(probs, ids=ids)
    return probs, index


def same_results(a, b, probs):
    qs = [Query.image(probs[0]), Query.sketch(random_sketch(4, 8, 0)), Query.image_and_sketch(probs[1], random_sketch(4, 8, 1))]
    for ra, rb in zip(a.search(qs, k=40), b.search(qs, k=40)):
        np.testing.assert_array_equal(ra.ids, rb.ids)
        np.testing.assert_array_equal(ra.distances, rb.distances)
    if a.keep_exact:
        for ra, rb in zip(a.search(qs, k=40, exact=True), b.search(qs, k=40, exact=True)):
            np.testing.assert_array_equal(ra.ids, rb.ids)


@pytest.mark.parametrize("ids", [None, "int", "str"])
@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip(tmp_path, ids, mmap):
    ids = {None: None, "int": np.arange(1000, 1040), "str": [f"photos/é{i}.jpg" for i in range(40)]}[ids]
    probs, index = build(ids)
    path = tmp_path / "x.segsearch"
    index.save(path)
    assert not [p for p in tmp_path.iterdir() if p.name != "x.segsearch"]  # no temp file left
    back = Index.load(path, mmap=mmap)
    assert (back.num_classes, back.size, back.n_centroids, len(back)) == (4, 8, 8, 40)
    assert back.class_names == ["sky", "road", "tree", "car"]
    assert back.metadata == {"network": "test-net", "note": "ü"}
    np.testing.assert_array_equal(back.codes, index.codes)
    np.testing.assert_array_equal(back.codebook, index.codebook)
    np.testing.assert_array_equal(back.ids, index.ids)
    same_results(index, back, probs)
    # add after load (copies mmapped codes into memory), then save over the file it was loaded from
    extra_ids = None if ids is None else (np.arange(2000, 2005) if isinstance(ids, np.ndarray) else [f"n{i}" for i in range(5)])
    back.add(probs[:5], ids=extra_ids)
    assert len(back) == 45
    back.save(path)
    again = Index.load(path, mmap=mmap)
    assert len(again) == 45
    np.testing.assert_array_equal(again.codes, back.codes)


def test_save_is_atomic_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    probs, index = build()
    path = tmp_path / "a.segsearch"
    index.save(path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        index.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.segsearch"]


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("*.segsearch")))
def test_old_format_fixtures_still_load(fixture):
    """Small files saved by each format version, with the results they gave when saved."""
    index = Index.load(FIXTURES / fixture)
    expect = np.load(FIXTURES / (fixture.replace(".segsearch", ".expect.npz")), allow_pickle=False)
    q = Query.image(expect["query"])
    r = index.search(q, k=10, eps=0)
    np.testing.assert_array_equal(r.ids.astype(str), expect["ids"].astype(str))
    np.testing.assert_allclose(r.distances, expect["distances"], rtol=1e-5)
    s = index.search(Query.sketch(expect["sketch"]), k=10)
    np.testing.assert_array_equal(s.ids.astype(str), expect["sketch_ids"].astype(str))


def test_fixture_per_format_version_exists():
    assert (FIXTURES / f"v{segsearch.storage.FORMAT_VERSION}.segsearch").exists()


@pytest.fixture()
def saved(tmp_path):
    probs, index = build(ids=[f"p{i}" for i in range(40)])
    path = tmp_path / "i.segsearch"
    index.save(path)
    return path


def test_truncated_files(saved):
    data = saved.read_bytes()
    for cut in (0, 5, 20, 100, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(IndexFormatError):
            Index.load(saved)


@pytest.mark.parametrize("mmap", [True, False])
def test_corrupted_bytes(saved, mmap):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(0)
    # header damage is always caught; array damage is caught by checksums
    for pos in list(rng.integers(8, 300, 5)) + list(rng.integers(len(data) // 2, len(data), 5)):
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        saved.write_bytes(bytes(bad))
        try:
            index = Index.load(saved, mmap=mmap)
        except IndexFormatError:
            continue
        # a flip in alignment padding is harmless: the index must still work
        index.search(Query.sketch(random_sketch(4, 8, 0)), k=3)


def test_foreign_and_missing_files(tmp_path):
    for content in (b"", b"hello world", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, os.urandom(5000)):
        p = tmp_path / "f.bin"
        p.write_bytes(content)
        with pytest.raises(IndexFormatError, match="not a segsearch index"):
            Index.load(p)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(IndexFormatError):
        Index.load(tmp_path / "a.npy")
    with pytest.raises(FileNotFoundError):
        Index.load(tmp_path / "missing.segsearch")
    with pytest.raises(ValueError, match="directory"):
        Index.load(tmp_path)


def test_newer_version_is_refused(saved):
    data = bytearray(saved.read_bytes())
    data[8:12] = (99).to_bytes(4, "little")
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="newer"):
        Index.load(saved)


def test_save_errors(tmp_path):
    probs, index = build()
    with pytest.raises(ValueError, match="directory"):
        index.save(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        index.save(tmp_path / "nope" / "x.segsearch")
    with pytest.raises(segsearch.NotTrainedError):
        Index(3, 8, 4).save(tmp_path / "u.segsearch")
