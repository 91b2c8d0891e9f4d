"""Index files: round trip, mmap, old format fixtures, damaged and foreign files."""

import os
from pathlib import Path

import numpy as np
import pytest

import segsearch
from conftest import file_regions, random_probs, random_sketch
from segsearch import Index, IndexFormatError, Query
from segsearch.engine import storage

FIXTURES = Path(__file__).parent / "fixtures"


def build(ids=None, keep_exact=True):
    probs = random_probs(40, 4, 8, seed=11)
    index = Index(
        4,
        8,
        8,
        class_names=["sky", "road", "tree", "car"],
        keep_exact=keep_exact,
        metadata={"network": "test-net", "note": "ü"},
    )
    index.train(probs, niter=3)
    index.add(probs, ids=ids)
    return probs, index


def same_results(a, b, probs):
    qs = [
        Query.image(probs[0]),
        Query.sketch(random_sketch(4, 8, 0)),
        Query.image_and_sketch(probs[1], random_sketch(4, 8, 1)),
    ]
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
    extra_ids = (
        None if ids is None else (np.arange(2000, 2005) if isinstance(ids, np.ndarray) else [f"n{i}" for i in range(5)])
    )
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
    # format 1 knew only plain L2; format 2 records the ranking (the fixture: the default, "balanced")
    assert index.ranking.name == ("l2" if fixture.startswith("v1") else "balanced")
    assert (index.class_prior is None) == fixture.startswith("v1")
    expect = np.load(FIXTURES / (fixture.replace(".segsearch", ".expect.npz")), allow_pickle=False)
    q = Query.image(expect["query"])
    r = index.search(q, k=10, eps=0)
    np.testing.assert_array_equal(r.ids.astype(str), expect["ids"].astype(str))
    np.testing.assert_allclose(r.distances, expect["distances"], rtol=1e-5)
    s = index.search(Query.sketch(expect["sketch"]), k=10)
    np.testing.assert_array_equal(s.ids.astype(str), expect["sketch_ids"].astype(str))


def test_fixture_per_format_version_exists():
    assert (FIXTURES / f"v{segsearch.engine.storage.FORMAT_VERSION}.segsearch").exists()


@pytest.fixture(scope="module")
def saved_bytes(tmp_path_factory):
    probs, index = build(ids=[f"p{i}" for i in range(40)])
    path = tmp_path_factory.mktemp("saved") / "i.segsearch"
    index.save(path)
    return path.read_bytes()


@pytest.fixture()
def saved(tmp_path, saved_bytes):
    path = tmp_path / "i.segsearch"
    path.write_bytes(saved_bytes)
    return path


def test_truncated_files(saved):
    data = saved.read_bytes()
    for cut in (0, 5, 20, 100, len(data) // 2, len(data) - 1):
        saved.write_bytes(data[:cut])
        with pytest.raises(IndexFormatError):
            Index.load(saved)


@pytest.mark.parametrize("mmap", [True, False])
def test_corrupted_bytes(saved, mmap):
    """Header damage is always caught (every byte of the prefix and header flipped in turn); array damage is
    caught by checksums (the first, a middle and the last byte of every array); a flip anywhere else (alignment
    padding) is harmless: the index loads and gives the undamaged index's results."""
    data = bytearray(saved.read_bytes())
    good = Index.load(saved, mmap=False)
    probs = random_probs(40, 4, 8, seed=11)  # build()'s maps: queries of the three kinds
    header_end, arrays = file_regions(bytes(data))
    in_array = np.zeros(len(data), bool)
    for a, b in arrays:
        in_array[a:b] = True
    padding = np.flatnonzero(~in_array[header_end:]) + header_end
    assert len(arrays) >= 5 and len(padding) > 0
    rng = np.random.default_rng(0)
    positions = (
        list(range(header_end))
        + [p for a, b in arrays for p in (a, (a + b) // 2, b - 1)]
        + list(rng.integers(8, 300, 5))
        + list(rng.integers(len(data) // 2, len(data), 5))
        + list(padding[:: max(1, len(padding) // 40)])
        + [int(padding[-1])]
    )
    loaded = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        saved.write_bytes(bytes(bad))
        try:
            index = Index.load(saved, mmap=mmap)
        except IndexFormatError:
            continue
        assert pos >= header_end and not in_array[pos], f"a flip of byte {pos} was not caught"
        same_results(good, index, probs)  # a flip in alignment padding is harmless
        loaded += 1
    assert loaded >= 10  # the padding flips
    saved.write_bytes(bytes(data))


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


# ---------------------------------------------------------------------------------------------- one open file
def _other_version(tmp_path):
    """A second, different index file (other codebook, codes and ids) to rename over the first."""
    probs = random_probs(40, 4, 8, seed=99)
    other = Index(4, 8, 8, class_names=["sky", "road", "tree", "car"], keep_exact=True)
    other.train(probs, niter=2, seed=5)
    other.add(probs, ids=[f"q{i}" for i in range(40)])
    path = tmp_path / "other.segsearch"
    other.save(path)
    return other, path


@pytest.mark.parametrize("mmap", [True, False])
def test_load_takes_everything_from_one_open_file_across_a_rename(saved, tmp_path, monkeypatch, mmap):
    """Another process saving (temp file + rename) while we load: the header and every array must come from
    the file that was opened, never a mix of the two versions (the old load read the header through one open()
    and reopened the path for each array)."""
    from segsearch.engine import storage

    first = Index.load(saved, mmap=mmap)
    other, other_path = _other_version(tmp_path)
    staged = tmp_path / "staged.segsearch"
    real_loads = storage.json.loads

    class RenameDuringLoad:  # the header has been read; now a new version is renamed onto the path
        @staticmethod
        def loads(blob):
            os.link(other_path, staged)
            os.replace(staged, saved)
            return real_loads(blob)

    monkeypatch.setattr(storage, "json", RenameDuringLoad)
    back = Index.load(saved, mmap=mmap)
    monkeypatch.undo()
    assert back.ids.tolist() == first.ids.tolist()
    np.testing.assert_array_equal(back.codes, first.codes)
    np.testing.assert_array_equal(back.codebook, first.codebook)
    for a, b in zip(back.snapshot.exact.arrays(), first.snapshot.exact.arrays()):
        np.testing.assert_array_equal(a, b)
    assert Index.load(saved).ids.tolist() == other.ids.tolist()  # the rename did happen


def test_loads_during_concurrent_renames_each_read_one_version(saved, tmp_path):
    """A writer renames two versions over the path in a loop while loads run: every load is one version whole
    (a mix fails a checksum, or has the ids of one version and the codes of the other)."""
    import threading

    versions = []
    for path in (saved, _other_version(tmp_path)[1]):
        ix = Index.load(path)
        versions.append((path.read_bytes(), ix.ids.tolist(), np.array(ix.codes), np.array(ix.codebook)))
    stop = threading.Event()
    renames = []

    def writer():
        while not stop.is_set():
            i = len(renames)
            tmp = tmp_path / f"w{i}.tmp"
            tmp.write_bytes(versions[i % 2][0])
            os.replace(tmp, saved)
            renames.append(i)

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen = set()
        for i in range(200):
            ix = Index.load(saved, mmap=bool(i % 2))
            v = next(j for j, ver in enumerate(versions) if ver[1] == ix.ids.tolist())
            np.testing.assert_array_equal(ix.codes, versions[v][2])
            np.testing.assert_array_equal(ix.codebook, versions[v][3])
            seen.add(v)
    finally:
        stop.set()
        t.join()
    assert renames


# ---------------------------------------------------------------------------------------------- verified arrays
def test_large_memory_mapped_arrays_are_verified(tmp_path):
    """A codes array over 64 MB used to be loaded unchecked when memory-mapped: one changed code byte loaded
    silently and changed the results. Every array is checked on a default load; verify=False opts out."""
    rng = np.random.default_rng(3)
    C, K, n, N = 4, 4, 8, 17_500_000  # codes: 70 MB
    cb = rng.random((C, K, n, n), dtype=np.float32)
    codes = np.zeros((C, N), np.uint8)
    codes[:, ::1000] = rng.integers(1, K, (C, len(range(0, N, 1000))), dtype=np.uint8)
    index = Index.from_codebook(cb / cb.sum(axis=0), codes.T)
    path = tmp_path / "big.segsearch"
    index.save(path)
    del index, codes
    with open(path, "r+b") as f:  # one code byte of image 60,000,000 / C ... in the middle of the codes
        f.seek(path.stat().st_size - 30_000_000)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([(b[0] + 1) % K]))
    for mmap in (True, False):
        with pytest.raises(IndexFormatError, match="'codes' fails its checksum"):
            Index.load(path, mmap=mmap)
    assert len(Index.load(path, verify=False)) == N  # the documented opt-out for huge indexes you trust


# ---------------------------------------------------------------------------------------------- lying headers
def _parts(path):
    import json
    import struct

    data = path.read_bytes()
    _, version, hlen, _ = struct.unpack("<8sIII", data[:20])
    start = -(-(20 + hlen) // 64) * 64
    return version, json.loads(data[20 : 20 + hlen]), data[start:]


def _write(path, version, header, body, *, raw_header=None):
    """Write a file with ``header`` (a JSON-able object) and a correct header CRC over ``body`` (the arrays)."""
    import json
    import struct
    import zlib

    blob = raw_header if raw_header is not None else json.dumps(header).encode()
    start = -(-(20 + len(blob)) // 64) * 64
    path.write_bytes(
        struct.pack("<8sIII", b"SEGSRCH\0", version, len(blob), zlib.crc32(blob))
        + blob
        + b"\0" * (start - 20 - len(blob))
        + body
    )


def _edit_header(path, fn):
    version, header, body = _parts(path)
    fn(header)
    _write(path, version, header, body)


def _edit_array(path, name, fn):
    """Change array ``name`` with fn(array copy) and give it a matching CRC: damage no checksum can see."""
    import zlib

    version, header, body = _parts(path)
    e = header["arrays"][name]
    a = np.frombuffer(body, np.dtype(e["dtype"]), int(np.prod(e["shape"])), e["rel"]).reshape(e["shape"]).copy()
    a = np.ascontiguousarray(fn(a), dtype=np.dtype(e["dtype"]))
    assert a.nbytes == e["nbytes"]
    e["crc32"] = zlib.crc32(a.tobytes())
    body = body[: e["rel"]] + a.tobytes() + body[e["rel"] + e["nbytes"] :]
    _write(path, version, header, body)


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def fn(h):
        d = h
        for k in keys[:-1]:
            d = d[k]
        if value is _DELETE:
            del d[keys[-1]]
        else:
            d[keys[-1]] = value

    return fn


_DELETE = object()

LYING_HEADERS = [
    ("num_classes", _set("num_classes", "4"), "num_classes"),
    ("num_classes float", _set("num_classes", 4.0), "num_classes"),
    ("num_classes bool", _set("num_classes", True), "num_classes"),
    ("num_classes huge", _set("num_classes", 10**40), "class_names' must be a list of 1000"),
    ("num_classes gone", _set("num_classes", _DELETE), "num_classes"),
    ("size 0", _set("size", 0), "size"),
    ("size huge", _set("size", 5000), "size"),
    ("n_centroids", _set("n_centroids", 300), "n_centroids"),
    ("count negative", _set("count", -1), "count"),
    ("count huge", _set("count", 10**25), "shape"),
    ("class_names", _set("class_names", ["a"]), "class_names"),
    ("class_names type", _set("class_names", "abcd"), "class_names"),
    ("metadata", _set("metadata", [1, 2]), "metadata"),
    ("keep_exact", _set("keep_exact", "yes"), "keep_exact"),
    ("keep_exact off", _set("keep_exact", False), "unexpected array 'exact_"),
    ("ids_kind", _set("ids_kind", "float"), "ids_kind"),
    ("ids_kind list", _set("ids_kind", ["str"]), "ids_kind"),
    ("ids_kind range", _set("ids_kind", "range"), "unexpected array 'ids_"),
    ("ids_kind int64", _set("ids_kind", "int64"), "unexpected array|missing"),
    ("arrays gone", _set("arrays", _DELETE), "'arrays' table"),
    ("arrays list", _set("arrays", []), "'arrays' table"),
    ("entry list", _set("arrays", "codes", [1]), "not an object"),
    ("extra array", lambda h: h["arrays"].update(junk=dict(h["arrays"]["codes"])), "overlap|unexpected"),
    ("missing array", _set("arrays", "code_counts", _DELETE), "'code_counts' is missing"),
    ("dtype", _set("arrays", "codes", "dtype", "float64"), "dtype"),
    ("dtype object", _set("arrays", "codes", "dtype", "object"), "dtype"),
    ("dtype int", _set("arrays", "codes", "dtype", 5), "dtype"),
    ("dtype same size", lambda h: h["arrays"]["codebook"].update(dtype="int64", shape=[4, 64, 1]), "dtype"),
    (
        "block sums float",
        lambda h: h["arrays"]["block_sums"].update(dtype="float32", shape=[4, 8, 4]),
        "dtype",
    ),  # the same bytes, but a uint8 codebook's row-run sums are uint16
    ("shape", _set("arrays", "codes", "shape", [40, 4]), "shape"),
    ("shape str", _set("arrays", "codes", "shape", ["4", 40]), "shape"),
    ("shape negative", _set("arrays", "codes", "shape", [-4, -40]), "shape"),
    ("shape overflow", _set("arrays", "codes", "shape", [2**40, 2**40]), "disagree"),
    ("shape deep", _set("arrays", "codes", "shape", [1] * 100), "shape"),
    ("shape not list", _set("arrays", "codes", "shape", 160), "shape"),
    ("nbytes", _set("arrays", "codes", "nbytes", 161), "disagree"),
    ("nbytes str", _set("arrays", "codes", "nbytes", "160"), "disagree"),
    ("rel unaligned", lambda h: h["arrays"]["codes"].update(rel=h["arrays"]["codes"]["rel"] + 1), "offset"),
    ("rel negative", _set("arrays", "codes", "rel", -64), "offset"),
    ("rel float", _set("arrays", "codes", "rel", 64.0), "offset"),
    ("rel past end", _set("arrays", "codes", "rel", 64 * 10**9), "truncated"),
    ("rel overlap", lambda h: h["arrays"]["code_counts"].update(rel=h["arrays"]["codes"]["rel"]), "overlap"),
    ("rel other array", lambda h: h["arrays"]["codes"].update(rel=h["arrays"]["ids_utf8"]["rel"]), "overlap"),
    ("crc type", _set("arrays", "codes", "crc32", "0"), "checksum"),
    ("crc range", _set("arrays", "codes", "crc32", -1), "checksum"),
    ("crc wrong", _set("arrays", "codes", "crc32", 12345), "checksum"),
]


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("case", LYING_HEADERS, ids=[c[0] for c in LYING_HEADERS])
def test_lying_header_fields_raise_index_format_error(saved, case, mmap):
    """A header with a valid CRC but fields of the wrong type or range: always IndexFormatError naming the
    problem (these raised AttributeError, OverflowError, TypeError, IndexError, OSError...)."""
    name, fn, match = case
    _edit_header(saved, fn)
    with pytest.raises(IndexFormatError, match=match):
        Index.load(saved, mmap=mmap)
    if name == "crc wrong":  # verify=False reads no checksum (documented)
        assert len(Index.load(saved, mmap=mmap, verify=False)) == 40
    else:  # header fields, shapes, dtypes and offsets are checked whatever verify says
        with pytest.raises(IndexFormatError, match=match):
            Index.load(saved, mmap=mmap, verify=False)


@pytest.mark.parametrize(
    "raw",
    [b"[" * 100_000 + b"]" * 100_000, b"[1, 2]", b"\xff\xfe{}", b'{"arrays": {}', b"nul", b"{}", b'{"arrays": {}}'],
)
def test_unreadable_headers_with_a_valid_crc(saved, raw):
    version, header, body = _parts(saved)
    _write(saved, version, None, body, raw_header=raw)
    with pytest.raises(IndexFormatError, match="damaged"):
        Index.load(saved)


#: Damage to a float32 codebook (format 1 and 2 files, and such an index saved again).
FLOAT_CODEBOOK_LIES = [
    ("codebook NaN", "codebook", lambda a: np.where(a == a.flat[7], np.nan, a), "codebook values"),
    ("codebook inf", "codebook", lambda a: np.where(a == a.flat[7], np.inf, a), "codebook values"),
    ("codebook huge", "codebook", lambda a: a * 1e20, "codebook values"),
    ("codebook negative", "codebook", lambda a: a - 0.5, "codebook values"),
    ("block sums", "block_sums", lambda a: a + 0.01, "block_sums disagree"),
    (
        "block sums one",
        "block_sums",
        lambda a: np.where(np.arange(a.size).reshape(a.shape) == 77, a + 0.5, a),
        "block_sums disagree",
    ),
]

LYING_ARRAYS = [
    ("block sums", "block_sums", lambda a: a + 1, "block_sums disagree"),
    (
        "block sums one",
        "block_sums",
        lambda a: np.where(np.arange(a.size).reshape(a.shape) == 77, a + 1, a),
        "block_sums disagree",
    ),
    ("code >= K", "codes", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 50, 8, a), "< n_centroids=8"),
    ("code 255", "codes", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, 255, a), "< n_centroids=8"),
    (
        "code changed",
        "codes",
        lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, (a + 1) % 8, a),
        "code_counts disagree",
    ),
    ("code_counts", "code_counts", lambda a: np.roll(a, 1, axis=1), "code_counts disagree"),
    ("code_counts negative", "code_counts", lambda a: a * -1, "code_counts must be >= 0"),
    ("code_counts sum", "code_counts", lambda a: a + 1, "code_counts must be >= 0 and sum"),
    ("ids_offsets falling", "ids_offsets", lambda a: a[::-1], "ids_offsets"),
    ("ids_offsets not monotonic", "ids_offsets", lambda a: np.where(np.arange(a.size) == 5, a[7], a), "ids_offsets"),
    ("ids_offsets past end", "ids_offsets", lambda a: a * 2, "ids_offsets"),
    ("ids_offsets negative", "ids_offsets", lambda a: a - 3, "ids_offsets"),
    ("ids_utf8 bad", "ids_utf8", lambda a: np.where(np.arange(a.size) == 1, 0xFF, a), "UTF-8"),
    ("ids repeat", "ids_utf8", lambda a: np.where(np.arange(a.size) == 3, ord("0"), a), "more than once"),
    ("exact_index past the classes", "exact_index", lambda a: np.where(np.arange(a.size) == 2, 4 * 64, a), "holds"),
    ("exact_index not increasing", "exact_index", lambda a: np.concatenate([a[1::-1], a[2:]]), "increase"),
    ("exact_ptr falling", "exact_ptr", lambda a: np.where(np.arange(a.size) == 3, a[5], a), "exact_ptr"),
    (
        "exact_ptr past the end",
        "exact_ptr",
        lambda a: np.where(np.arange(a.size) == a.size - 1, a[-1] + 1, a),
        "exact_ptr",
    ),
]


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("case", LYING_ARRAYS, ids=[c[0] for c in LYING_ARRAYS])
def test_arrays_that_contradict_each_other_raise_index_format_error(saved, case, mmap):
    """Damage no checksum can see (the array's CRC recomputed): NaN codebooks, row-run sums that disagree with
    the codebook, codes >= K, code counts that do not count the codes, bad id offsets, repeated ids."""
    _, name, fn, match = case
    _edit_array(saved, name, fn)
    with pytest.raises(IndexFormatError, match=match):
        Index.load(saved, mmap=mmap)


@pytest.mark.parametrize("case", FLOAT_CODEBOOK_LIES, ids=[c[0] for c in FLOAT_CODEBOOK_LIES])
def test_a_damaged_float_codebook_raises_index_format_error(tmp_path, case):
    """Indexes of format 1 and 2 hold float32 centroids, and keep them when saved again: their values must be
    finite probabilities and their row-run sums must match them."""
    path = tmp_path / "f.segsearch"
    Index.load(FIXTURES / "v2.segsearch").save(path)
    assert storage.load(path, mmap=False)[1]["codebook"].dtype == np.float32
    _, name, fn, match = case
    _edit_array(path, name, fn)
    with pytest.raises(IndexFormatError, match=match):
        Index.load(path)


def test_repeated_int_ids_and_what_verify_false_skips(tmp_path):
    probs, index = build(ids=np.arange(100, 140))
    path = tmp_path / "i.segsearch"
    index.save(path)
    _edit_array(path, "ids", lambda a: np.where(a == 105, 131, a))
    with pytest.raises(IndexFormatError, match="the id 131 occurs more than once"):
        Index.load(path)
    index.save(path)
    _edit_array(path, "block_sums", lambda a: a + 1)
    with pytest.raises(IndexFormatError, match="codebook"):
        Index.load(path)
    assert len(Index.load(path, verify=False)) == 40  # verify=False trusts the arrays (documented)


def test_v1_file_without_block_sums_recomputes_them(tmp_path):
    """Format-1 files saved before the row-run sums were stored (the v1 fixture) recompute them on load."""
    fixture = FIXTURES / "v1.segsearch"
    _, header, _ = _parts(fixture)
    assert "block_sums" not in header["arrays"]
    index = Index.load(fixture)
    assert index.codebook_u8 is None  # float32 centroids, kept as they are
    grid = np.asarray(index.codebook).transpose(0, 2, 3, 1)  # (C, n, n, K)
    want = np.stack([grid[:, :, b * 16 : (b + 1) * 16].sum(axis=2) for b in range(-(-grid.shape[2] // 16))], axis=2)
    np.testing.assert_allclose(index._block_sums, want.reshape(index._block_sums.shape), rtol=1e-6, atol=1e-6)


def test_a_fifo_or_device_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.segsearch"
    os.mkfifo(fifo)
    with pytest.raises(IndexFormatError, match="not a regular file"):
        Index.load(fifo)
    with pytest.raises(IndexFormatError, match="not a regular file"):
        Index.load("/dev/zero")


def test_verify_codebook_checks_the_codebook_only(tmp_path):
    """verify="codebook" (a Ray driver's load: it builds lookup tables, the actors scan and verify the photos)
    catches a damaged codebook but not damaged codes, which verify=True catches."""
    C, n = 3, 8
    index = Index(C, n, 4, ranking="l2").train(random_probs(20, C, n, seed=1), niter=2)
    index.add(random_probs(30, C, n, seed=2))
    path = tmp_path / "a.segsearch"
    index.save(path)
    _, arrays = storage.load(path, mmap=False, verify=False)
    for name, must_fail in (("codes", ("verify",)), ("codebook", ("verify", "codebook"))):
        blob = bytearray(path.read_bytes())
        at = bytes(blob).index(np.ascontiguousarray(arrays[name]).tobytes(), 64)
        blob[at] ^= 0x01
        bad = tmp_path / f"bad-{name}.segsearch"
        bad.write_bytes(bytes(blob))
        for mode in (True, "codebook"):
            key = "verify" if mode is True else "codebook"
            if key in must_fail:
                with pytest.raises(IndexFormatError, match=name):
                    Index.load(bad, verify=mode)
            else:
                assert len(Index.load(bad, verify=mode)) == 30
    with pytest.raises(ValueError, match="verify must be"):
        Index.load(path, verify="codes")


def test_a_loaded_index_saves_to_the_same_bytes(tmp_path):
    """Saving what was loaded gives the current format's fixture back byte for byte: the header's fields and the
    arrays' order and layout stay what every release since format 2 wrote (an index built from the same photos is
    the same file)."""
    src = FIXTURES / f"v{storage.FORMAT_VERSION}.segsearch"
    Index.load(src, mmap=False).save(tmp_path / "again.segsearch")
    assert (tmp_path / "again.segsearch").read_bytes() == src.read_bytes()
