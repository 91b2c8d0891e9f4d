"""Indexing and search on Ray, on a local Ray cluster of 2 CPUs started once for this module: the results must
be the single-machine ones (bit for bit where the network runs with the same threads), a killed worker or
driver loses nothing, shards added and compacted are seen, and broken setups are clear errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "segsearch[ray]")')

import photo_folder  # noqa: E402
import segsearch  # noqa: E402
from photo_folder import (  # noqa: E402
    CLASSES,
    SIZE,
    DyingSegmenter,
    FakeSegmenter,
    make_index_folder,
    make_photos,
    make_sharded_copy,
    pixel_net,
)
from segsearch import PhotoIndex, Query  # noqa: E402
from segsearch.distributed.search import open_on_ray  # noqa: E402
from segsearch.engine.index import empty_like  # noqa: E402
from segsearch.engine.sharded import open_folder  # noqa: E402
from segsearch.errors import IndexFormatError, SegsearchError  # noqa: E402
from segsearch.library.build import build_index  # noqa: E402
from segsearch.library.shards import add_shard, compact  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CPUS = 2


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster (2 CPUs) for this module; the test helpers are sent to its workers by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(photo_folder)
    ray.init(
        num_cpus=CPUS,
        object_store_memory=200 << 20,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def folders(tmp_path_factory, cluster):
    """(whole index folder, the same photos as a base + 2 shards, photos folder, names)."""
    root = tmp_path_factory.mktemp("ray-search")
    index_dir, photos, names, _ = make_index_folder(root)
    return index_dir, make_sharded_copy(index_dir, root / "sharded"), photos, names


def _queries(photos, names):
    maps = FakeSegmenter().predict([photos / n for n in names[:4]], size=SIZE)
    sketch = np.full((SIZE, SIZE), -1, np.int32)
    sketch[: SIZE // 3] = CLASSES.index("sky")
    sketch[-SIZE // 4 :, 2:9] = CLASSES.index("road")
    return [Query.image(maps[0]), Query.image(maps[1]), Query.sketch(sketch), Query.image_and_sketch(maps[2], sketch)]


def _same(a, b):
    assert [list(x.ids) for x in a] == [list(y.ids) for y in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.distances, y.distances)


# ---------------------------------------------------------------------------------------------- search


@pytest.mark.parametrize("actors", [1, 2, 3])
def test_search_on_ray_equals_one_index(folders, actors):
    whole, sharded, photos, names = folders
    local = segsearch.Index.load(whole / "index.segsearch")
    on_ray = open_on_ray(sharded, actors=actors)
    assert len(on_ray.actors) == actors and sorted(s for a in on_ray.assignment for s in a) == [0, 1, 2]
    qs = _queries(photos, names)
    for k in (1, 7, 40, 100):  # k above the number of photos returns them all
        _same(on_ray.search(qs, k), local.search(qs, k))  # a batch: one round trip
        _same([on_ray.search(qs[2], k)], [local.search(qs[2], k)])
    subset = names[5:33:2]
    _same(on_ray.search(qs, 5, subset=subset), local.search(qs, 5, subset=subset))
    mask = np.zeros(len(names), bool)
    mask[[3, 16, 17, 31, 39]] = True
    _same(on_ray.search(qs, 4, subset=mask), local.search(qs, 4, subset=mask))
    assert on_ray.search([], 3) == []
    on_ray.close()
    with pytest.raises(SegsearchError, match="closed; open the index again"):
        on_ray.search(qs, 3)


def test_read_api_on_ray(folders):
    """ids, in, positions, code_rows and the codebook: what open_folder's index says, the per-photo parts
    answered by the actors."""
    _, sharded, photos, names = folders
    local = open_folder(sharded)
    with open_on_ray(sharded, actors=2) as on_ray:
        assert len(on_ray) == len(local) == 40
        assert list(on_ray.ids) == list(local.ids) and on_ray.string_ids
        assert names[22] in on_ray and "nope.png" not in on_ray and ["unhashable"] not in on_ray
        np.testing.assert_array_equal(on_ray.positions([names[39], names[0], names[16]]), [39, 0, 16])
        with pytest.raises(ValueError, match="not in the index"):
            on_ray.positions(["nope.png"])
        pos = [0, 14, 15, 29, 30, 39, 3]
        np.testing.assert_array_equal(on_ray.code_rows(pos), local.code_rows(pos))
        np.testing.assert_array_equal(on_ray.decode(on_ray.code_rows([5])), local.decode(local.code_rows([5])))
        assert on_ray.num_classes == len(CLASSES) and on_ray.metadata == local.metadata
        assert on_ray.position_map([names[30], "nope.png"]) == {names[30]: 30}
        with pytest.raises(ValueError, match="subset mixes bools and ids"):
            on_ray.search(_queries(photos, names)[0], 3, subset=[True, names[1]])


def test_exact_search_on_ray(tmp_path, cluster):
    """Exact and PQ search of a base and a shard on Ray equal one index's: photo, sketch and photo + sketch
    queries, photos repeated across the base and the shard (equal distances: the smaller position first), id and
    mask subsets, k from 1 to past the number of photos."""
    seg = FakeSegmenter()
    make_photos(tmp_path / "photos", n=12)
    maps = seg.predict(sorted((tmp_path / "photos").glob("*.png")), size=SIZE)
    maps[9] = maps[11] = maps[2]  # ties across the base (0-4) and the shard (5-11)
    maps[8] = maps[1]
    idx = segsearch.Index(len(CLASSES), SIZE, 4, class_names=CLASSES, keep_exact=True)
    idx.train(maps, niter=3)
    idx.add(maps[:5], ids=list(range(5)))
    (tmp_path / "idx").mkdir()
    idx.save(tmp_path / "idx" / "index.segsearch")
    add_shard(tmp_path / "idx", empty_like(idx).add(maps[5:], ids=list(range(5, 12))))
    whole = empty_like(idx).add(maps, ids=list(range(12)))
    on_ray = open_on_ray(tmp_path / "idx", actors=2)
    sketch = np.full((SIZE, SIZE), -1, np.int32)
    sketch[: SIZE // 3] = CLASSES.index("sky")
    sketch[-SIZE // 4 :, 2:9] = CLASSES.index("road")
    q = [
        Query.image(maps[7]),
        Query.image(maps[1]),
        Query.image(maps[2]),
        Query.sketch(sketch),
        Query.image_and_sketch(maps[5], sketch),
    ]
    mask = np.zeros(12, bool)
    mask[[1, 2, 8, 9, 10]] = True
    for exact in (False, True):
        for k in (1, 3, 6, 12, 20):
            for subset in (None, [11, 2, 9, 4, 8], mask):
                _same(on_ray.search(q, k, exact=exact, subset=subset), whole.search(q, k, exact=exact, subset=subset))
        top = on_ray.search(q[2], 3, exact=exact)
        assert top.ids.tolist() == [2, 9, 11] and len(set(top.distances.tolist())) == 1  # ties: insertion order
        assert [len(r) for r in on_ray.search(q, 20, exact=exact)] == [12] * len(q)
        assert [len(r) for r in on_ray.search(q, 20, exact=exact, subset=mask)] == [5] * len(q)
    on_ray.close()


def test_photo_index_on_ray_with_text(folders):
    """PhotoIndex.open(ray=...): photo, sketch, photo + sketch and text (alone and with a layout) give the hits of
    the folder opened in this process."""
    whole, sharded, photos, names = folders
    local = PhotoIndex.open(whole, segmenter=FakeSegmenter())
    on_ray = PhotoIndex.open(sharded, segmenter=FakeSegmenter(), ray="local", ray_actors=2)
    sketch = np.full((SIZE, SIZE), -1, np.int32)
    sketch[:5] = 1
    for kwargs in (
        {"image": photos / names[3]},
        {"sketch": sketch},
        {"image": photos / names[8], "sketch": sketch},
        {"text": "car road"},
        {"text": "trees", "sketch": sketch},
        {"text": "water", "image": photos / names[1]},
    ):
        assert on_ray.search(k=12, **kwargs) == local.search(k=12, **kwargs), kwargs
    assert np.array_equal(on_ray.predicted_labels(names[20]), local.predicted_labels(names[20]))


def test_search_sees_added_shards_and_compaction(tmp_path, folders):
    whole, _, photos, names = folders
    d = make_sharded_copy(whole, tmp_path / "d", cuts=(10,))
    union = segsearch.Index.load(whole / "index.segsearch")
    qs = _queries(photos, names)
    before = open_on_ray(d, actors=2)
    _same(before.search(qs, 10), union.search(qs, 10))
    # a new shard: photos 40.. (copies of earlier maps under new ids)
    extra = empty_like(union).add_codes(union.codes[:6], ids=[f"new{i}.png" for i in range(6)])
    add_shard(d, extra)
    both = empty_like(union).add_codes(
        np.concatenate([union.codes, union.codes[:6]]), ids=list(union.ids) + [f"new{i}.png" for i in range(6)]
    )
    after = open_on_ray(d, actors=2)
    assert len(after) == 46 and len(after.counts) == 3
    _same(after.search(qs, 50), both.search(qs, 50))
    assert compact(d) == 2
    compacted = open_on_ray(d)
    assert len(compacted.counts) == 1 and len(compacted.actors) == 1
    _same(compacted.search(qs, 50), both.search(qs, 50))


def test_dead_search_actor_is_restarted(folders):
    whole, sharded, photos, names = folders
    local = segsearch.Index.load(whole / "index.segsearch")
    on_ray = open_on_ray(sharded, actors=2)
    qs = _queries(photos, names)
    _same(on_ray.search(qs, 8), local.search(qs, 8))
    ray.kill(on_ray.actors[0], no_restart=False)  # its process dies; Ray starts it again
    _same(on_ray.search(qs, 8), local.search(qs, 8))


def test_missing_shard_is_named(tmp_path, folders):
    whole, _, photos, names = folders
    d = make_sharded_copy(whole, tmp_path / "d")
    on_ray = open_on_ray(d, actors=3)
    holder = next(i for i, shards in enumerate(on_ray.assignment) if 2 in shards)
    (d / "shards" / "000002.segsearch").unlink()  # the actor still maps it ...
    ray.kill(on_ray.actors[holder], no_restart=False)  # ... until it restarts: then it cannot open it
    with pytest.raises(IndexFormatError, match="000002.segsearch, which is missing"):
        on_ray.search(_queries(photos, names), 5)
    with pytest.raises(IndexFormatError, match="000002.segsearch"):  # and a new opening says so too
        open_on_ray(d)


def test_an_id_in_two_shards_is_refused(tmp_path, folders):
    """A hostile manifest listing a copy of a shard: each shard is fine alone, the folder is not; the actors
    find the repeated id (as open_folder does) without gathering the ids anywhere."""
    d = make_sharded_copy(folders[0], tmp_path / "d")
    shutil.copyfile(d / "shards" / "000001.segsearch", d / "shards" / "000003.segsearch")
    m = json.loads((d / "shards.json").read_text())
    m["shards"].append({"file": "shards/000003.segsearch", "count": m["shards"][0]["count"]})
    (d / "shards.json").write_text(json.dumps(m))
    with pytest.raises(IndexFormatError, match="is in more than one shard"):
        open_folder(d)
    for actors in (1, 3):
        with pytest.raises(IndexFormatError, match="is in more than one shard"):
            open_on_ray(d, actors=actors)
    assert len(open_on_ray(d, actors=2, verify=False)) == 55  # unchecked on request


def test_bad_ray_arguments(tmp_path, folders, monkeypatch):
    whole = folders[0]
    with pytest.raises(ValueError, match="Ray address"):
        PhotoIndex.open(whole, ray="not an address")
    with pytest.raises(ValueError, match="actors must be"):
        open_on_ray(whole, actors=0)
    make_photos(tmp_path / "photos", n=3)
    with pytest.raises(ValueError, match="ray_threads must be"):
        build_index(tmp_path / "photos", tmp_path / "idx", ray="local", ray_threads=0)
    seg = segsearch.Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    with pytest.raises(ValueError, match="ask for 1 or fewer"):
        build_index(
            tmp_path / "photos",
            tmp_path / "idx2",
            segmenter=seg,
            size=8,
            n_centroids=2,
            ray="local",
            ray_actors=2,
            ray_threads=2,
            log=lambda s: None,
        )


def test_without_ray_installed_says_how(monkeypatch, folders):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ImportError, match=r'pip install "segsearch\[ray\]"'):
        PhotoIndex.open(folders[0], ray="local")


# ---------------------------------------------------------------------------------------------- indexing


def _pixel_segmenter():
    return segsearch.Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray-photos") / "photos"
    make_photos(d, n=45)
    (d / "sub").mkdir()
    make_photos(d / "sub", n=6, seed=5)
    (d / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return d


OPTS = dict(size=8, n_centroids=8, batch=3, sample=20, niter=3, workers=0, log=lambda s: None)


@pytest.fixture(scope="module")
def local_build(tmp_path_factory, photo_dir):
    """The folder indexed without Ray, torch on CPUS threads (as the matched-thread Ray runs below)."""
    import torch

    out = tmp_path_factory.mktemp("local") / "idx"
    threads = torch.get_num_threads()
    torch.set_num_threads(CPUS)
    try:
        report = build_index(photo_dir, out, segmenter=_pixel_segmenter(), **OPTS)
    finally:
        torch.set_num_threads(threads)
    return out, report


def _index_bytes(d: Path) -> bytes:
    return (d / "index.segsearch").read_bytes()


def test_index_on_ray_gives_the_same_index(tmp_path, cluster, photo_dir, local_build):
    """Same sample and seed: the same codebook, codes, ids and failed photos, the same index file byte for
    byte: by default each actor runs torch on as many threads as this process (here CPUS: one actor)."""
    import torch

    local, report = local_build
    out = tmp_path / "idx"
    threads = torch.get_num_threads()
    torch.set_num_threads(CPUS)
    try:
        got = build_index(photo_dir, out, segmenter=_pixel_segmenter(), ray="local", **OPTS)
    finally:
        torch.set_num_threads(threads)
    assert (got.n_done, got.n_photos, got.failed) == (report.n_done, report.n_photos, report.failed)
    assert got.failed and got.failed[0][0] == "broken.jpg"
    assert _index_bytes(out) == _index_bytes(local)
    assert not (out / "work" / "codebook.segsearch").exists() and not (out / "work" / "sample.f16").exists()


def test_index_on_ray_one_thread_actors_same_rankings(tmp_path, cluster, photo_dir, local_build):
    """Two actors of one thread each: the same codes; the class prior may differ in the last bits (the
    network's rounding depends on the threads), so the rankings are compared, distances to 1e-5."""
    local, _ = local_build
    out = tmp_path / "idx"
    build_index(photo_dir, out, segmenter=_pixel_segmenter(), ray="local", ray_actors=2, ray_threads=1, **OPTS)
    a, b = segsearch.Index.load(local / "index.segsearch"), segsearch.Index.load(out / "index.segsearch")
    assert list(a.ids) == list(b.ids)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.codebook_u8, b.codebook_u8)
    maps = _pixel_segmenter().predict(sorted(photo_dir.glob("*.png"))[:5], size=8)
    for q in [Query.image(m) for m in maps]:
        ra, rb = a.search(q, 20), b.search(q, 20)
        assert list(ra.ids) == list(rb.ids)
        np.testing.assert_allclose(ra.distances, rb.distances, rtol=1e-5)


@pytest.mark.parametrize("deaths", [1, 4])
def test_killed_worker_photos_are_redone(tmp_path, cluster, photo_dir, local_build, deaths):
    """The actor's process dies on its first ``deaths`` chunks (4: more than Ray restarts it, so a new actor
    takes the chunk): every photo is indexed once, and the index is the one a run without deaths writes."""
    local, report = local_build
    seg = DyingSegmenter(_pixel_segmenter(), tmp_path / "deaths", times=deaths)
    got = build_index(photo_dir, tmp_path / "idx", segmenter=seg, ray="local", ray_actors=1, ray_threads=CPUS, **OPTS)
    assert seg.deaths() == deaths
    assert got.n_done == report.n_done
    assert _index_bytes(tmp_path / "idx") == _index_bytes(local)


def test_workers_that_always_die_stop_the_run_and_it_resumes(tmp_path, cluster, photo_dir, local_build):
    local, _ = local_build
    seg = DyingSegmenter(_pixel_segmenter(), tmp_path / "deaths", times=-1)
    with pytest.raises(SegsearchError, match="run the same command again to resume"):
        build_index(photo_dir, tmp_path / "idx", segmenter=seg, ray="local", ray_actors=1, ray_threads=CPUS, **OPTS)
    assert not (tmp_path / "idx" / "index.segsearch").exists()
    build_index(
        photo_dir, tmp_path / "idx", segmenter=_pixel_segmenter(), ray="local", ray_actors=1, ray_threads=CPUS, **OPTS
    )
    assert _index_bytes(tmp_path / "idx") == _index_bytes(local)


def test_add_on_ray_writes_the_same_shard(tmp_path, cluster, photo_dir):
    """--add on Ray: the new photos become one shard, the one a local --add writes."""
    photos = tmp_path / "photos"
    shutil.copytree(photo_dir, photos)
    opts = dict(OPTS, segmenter=_pixel_segmenter())
    build_index(photos, tmp_path / "a", **opts)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    make_photos(photos / "later", n=7, seed=9)
    ra = build_index(photos, tmp_path / "a", add=True, **opts)
    rb = build_index(photos, tmp_path / "b", add=True, ray="local", ray_actors=1, ray_threads=CPUS, **opts)
    assert ra.n_new == rb.n_new == 7 and rb.shard_path.name == "000001.segsearch"
    sa, sb = open_folder(tmp_path / "a"), open_folder(tmp_path / "b")
    assert list(sa.ids) == list(sb.ids) and np.array_equal(sa.codes, sb.codes)
    assert not (tmp_path / "b" / "work" / "codebook.segsearch").exists()


# ---------------------------------------------------------------------------------------------- acceptance


def _real_photos(dest: Path, n: int) -> list[Path]:
    """n real photos from ../shared, copied into dest (a temp folder: links out of it would be skipped)."""
    photos = sorted((SHARED / "data" / "camvid").glob("*/images/*.jpg"))[: n // 2]
    photos += sorted((SHARED / "data" / "coco-mini" / "images").glob("*.jpg"))[: n - len(photos)]
    if len(photos) < n:
        pytest.skip(f"needs {n} real photos in {SHARED}/data")
    dest.mkdir(parents=True)
    for p in photos:
        shutil.copyfile(p, dest / p.name)
    return photos


def _cli(*args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "segsearch.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        **kwargs,
    )


def test_cli_on_ray_acceptance_with_a_killed_driver(tmp_path, cluster):
    """The same real photos indexed without Ray and with --ray (the driver killed once mid-run, then the same
    command resumed) give the same index file, and `search` with and without --ray the same rankings for a
    photo, a sketch and a photo + sketch."""
    photos = tmp_path / "photos"
    _real_photos(photos, 12)
    env = dict(os.environ, OMP_NUM_THREADS=str(CPUS))  # the local run: torch on CPUS threads
    common = ["--sample", "6", "--batch", "2", "--workers", "0", "--centroids", "4", "--size", "32"]
    r = _cli("index", photos, "--out", tmp_path / "local", *common, env=env)
    assert r.returncode == 0, r.stderr
    ray_args = ["--ray", cluster, "--ray-actors", "1", "--ray-threads", str(CPUS)]
    out = tmp_path / "on-ray"
    proc = subprocess.Popen(
        [sys.executable, "-m", "segsearch.cli", "index", str(photos), "--out", str(out), *common, *ray_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    state = out / "work" / "state.sqlite"
    deadline = time.time() + 600
    while proc.poll() is None and time.time() < deadline:  # kill it once the first chunk is committed
        try:
            with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
                if db.execute("SELECT COUNT(*) FROM photos WHERE sampled=1").fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, "the indexing run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(state) as db:
        done = db.execute("SELECT COUNT(*) FROM photos WHERE sampled=1").fetchone()[0]
    assert 0 < done < 12
    r = _cli("index", photos, "--out", out, *common, *ray_args, env=env)
    assert r.returncode == 0, r.stderr
    assert "indexed 12 photos" in r.stdout
    assert (out / "index.segsearch").read_bytes() == (tmp_path / "local" / "index.segsearch").read_bytes()
    query = photos / sorted(os.listdir(photos))[3]
    for q in (
        ["--image", query],
        ["--draw", "sky:0,0,1,0.4", "--draw", "road:0,0.7,1,1"],
        ["--image", query, "--draw", "tree:0,0,0.5,0.5"],
    ):
        a = _cli("search", tmp_path / "local", *q, "-k", "12", "--json", env=env)
        b = _cli("search", out, *q, "-k", "12", "--json", "--ray", cluster, env=env)
        assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
        assert [json.loads(x) for x in a.stdout.splitlines()] == [json.loads(x) for x in b.stdout.splitlines()]
        assert len(a.stdout.splitlines()) == 12


def test_cli_ray_errors(tmp_path, folders):
    r = _cli("search", folders[0], "--draw", "sky:0,0,1,0.5", "--ray", "127.0.0.1:1")
    assert r.returncode == 2 and "cannot connect to the Ray cluster at '127.0.0.1:1': nothing answers" in r.stderr
    assert "Traceback" not in r.stderr


def test_gui_command_passes_ray(monkeypatch):
    from segsearch import cli, gui

    seen = {}
    monkeypatch.setattr(gui, "run", lambda index_dir, **kw: seen.update(kw, index_dir=index_dir) or 0)
    assert cli.main(["gui", "IDX", "--ray", "local", "--ray-actors", "3"]) == 0
    assert (seen["index_dir"], seen["ray"], seen["ray_actors"]) == ("IDX", "local", 3)
    assert cli.main(["gui", "IDX", "--ray"]) == 0 and seen["ray"] == "auto"
