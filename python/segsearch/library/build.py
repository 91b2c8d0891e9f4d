"""Index a folder of photos: segment, train the codebooks, encode -- one network pass per photo, resumable,
crash-safe, bounded memory. The folder's files are listed in :mod:`segsearch.index_folder`.

Steps (each one resumes where it stopped; every batch is one SQLite transaction):

1. list the photos (recursively, sorted) and add new ones to the state as ``pending``;
2. segment a training sample (the first ``sample`` photos in a seeded random order) and keep its maps in
   ``work/sample.f16`` (float16);
3. train the codebooks from that file with :meth:`Index.train` (one class at a time in memory) and save them
   as ``work/codebook.segsearch``;
4. encode the sample photos from their saved maps (they are not segmented again), then segment and encode
   every other photo (:meth:`Index.encode`), keeping each photo's codes in the state;
5. write ``index.segsearch`` from the codes of the photos that are done (:meth:`Index.from_codebook`), then
   delete the sample maps and the codebook checkpoint: the index holds the codebook.

Photos are decoded in background processes (:meth:`Segmenter.iter_predict`). Photos that cannot be read are
marked ``failed`` with the error and never abort the run. ``--add`` takes the codebook from ``index.segsearch``
and writes the photos the folder does not hold yet as a new shard (:func:`segsearch.shards.add_shard`): nothing
already written is rewritten; ``segsearch compact`` merges the shards into ``index.segsearch``.

Faults: one run at a time holds a lock on ``work/`` (a second one is told so). Every file is replaced
atomically (``index.segsearch``, ``captions.sqlite`` and the codebook checkpoint are written to a temp file that
is renamed over them) and every batch is one SQLite transaction, so a kill, a full disk or an I/O error loses
nothing already finished; the next run removes the temp files a killed run left and resumes. The photos folder
is read without following links out of it: a symlink whose target is outside the folder (or any file that is
not a regular file: a FIFO, a device) is skipped, so every id is a relative path inside the photos folder.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..engine.index import empty_like
from ..engine.layout import (
    CAPTIONS_FILE,
    CODEBOOK_FILE,
    INDEX_FILE,
    META_NETWORK,
    META_NETWORK_SHA256,
    META_PHOTOS_DIR,
    META_SIZE,
    SAMPLE_FILE,
    STATE_FILE,
    WORK_DIR,
    resolve_inside,
)
from ..engine.ranking import DEFAULT_RANKING, get_ranking
from ..engine.sharded import open_folder
from .backends import ray_backend
from .captions import read_captions_checked, write_captions
from .lock import lock_folder, unlock_folder
from .shards import add_shard_locked, last_written_ids, remove_unlisted

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
DEFAULT_SIZE = 64
#: The default K is the largest power of two with at least this many photos per centroid, within
#: [MIN_CENTROIDS, MAX_CENTROIDS] (see :func:`default_centroids`).
PHOTOS_PER_CENTROID = 8
MIN_CENTROIDS, MAX_CENTROIDS = 4, 256
#: Where segsearch <= 0.1 kept the trained codebook (read to resume such a run, deleted when it finishes).
OLD_CODEBOOK_FILE = "codebook.npy"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,            -- insertion order = order in the index
    path TEXT UNIQUE NOT NULL,         -- relative to the photos folder, '/'-separated
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    error TEXT,
    sample_row INTEGER,                -- in the training sample: its row in sample.f16 once segmented
    sampled INTEGER NOT NULL DEFAULT 0, -- 1 once its maps are in sample.f16
    codes BLOB                         -- C bytes once done
);
"""


@dataclass
class BuildReport:
    """What :func:`build_index` did: counts, the failed photos (path, error) and where the index is."""

    index_path: Path
    n_photos: int = 0
    n_done: int = 0
    n_new: int = 0
    n_centroids: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    n_captions: int = 0
    #: The shard this run wrote (``--add`` to a finished index), else None.
    shard_path: Path | None = None


def find_photos(root: str | os.PathLike) -> list[str]:
    """Image files under ``root`` (recursively, by extension, case-insensitive), as sorted relative posix paths.
    Only regular files inside ``root`` count: see :func:`scan_photos` for what is skipped."""
    return scan_photos(root)[0]


def scan_photos(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(photos, skipped): the image files under ``root`` as sorted relative posix paths, and the image names
    skipped because they are not regular files inside ``root``: a symlink is followed only when its target
    resolves inside ``root`` (symlinked folders are not entered), and FIFOs, devices and sockets are never
    read (opening a FIFO would wait forever)."""
    root = Path(root)
    real_root = root.resolve()
    found, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):  # does not enter symlinked folders
        dirnames.sort()
        for name in filenames:
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            rel = (Path(dirpath) / name).relative_to(root).as_posix()
            real, _ = resolve_inside(real_root, rel)  # None: leads out or not a regular file
            (found if real is not None and real.is_file() else skipped).append(rel)  # is_file: not dangling
    return sorted(found), sorted(skipped)


def default_centroids(n_photos: int) -> int:
    """K for a folder of ``n_photos``: the largest power of two <= n_photos / 8, at least 4 and at most 256
    (256 from 2,048 photos on). The codebook is C * K * n * n bytes and their row-run sums (C = 151, n = 64:
    0.70 MB per centroid), so a small folder gets a small index; the README gives what the smaller K costs."""
    k = MIN_CENTROIDS
    while k * 2 <= min(MAX_CENTROIDS, n_photos // PHOTOS_PER_CENTROID):
        k *= 2
    return k


class _State:
    """The progress database (``work/state.sqlite``, WAL mode)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def get(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key: str, value) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def count(self, where: str = "1", args=()) -> int:
        return self.db.execute(f"SELECT COUNT(*) FROM photos WHERE {where}", args).fetchone()[0]

    def rows(self, sql: str, args=()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall()

    def mark_failed(self, rows: list[tuple], failed: list[tuple[int, str]]) -> None:
        """Mark ``rows[i]`` failed with its error, for each (i, error) in ``failed`` (inside a transaction)."""
        self.db.executemany("UPDATE photos SET status='failed', error=? WHERE id=?",
                            ((err, rows[i][0]) for i, err in failed))

    def close(self) -> None:
        self.db.close()


def _progress(total: int, desc: str, unit: str = "photo"):
    from tqdm import tqdm

    # shutil falls back to 100 columns where the terminal reports a width of 0 (some ptys)
    cols, rows = shutil.get_terminal_size((100, 24))
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, ncols=cols, nrows=rows)


def build_index(photos_dir, out_dir, *, size: int | None = None, n_centroids: int | None = None,
                device=None, weights=None, batch: int = 8, sample: int = 2000, add: bool = False,
                captions=None, segmenter=None, seed: int = 0, niter: int = 20, workers: int = 1,
                ranking: str | None = None, ray: str | None = None, ray_actors: int | None = None,
                ray_threads: int | None = None, log: Callable[[str], None] = print) -> BuildReport:
    """Index the photos under ``photos_dir`` into the folder ``out_dir`` (see the module docstring).

    Re-running with the same arguments resumes an interrupted run. ``add=True`` appends photos that are not
    in a finished index yet, with its codebook. ``size`` / ``n_centroids`` default to 64 /
    :func:`default_centroids` of the number of photos for a new index and to the stored values when resuming
    (a different explicit value is an error). ``segmenter``: a ready :class:`~segsearch.segmenter.Segmenter`
    (else the default network, from ``weights``/``device``, built when first needed). ``workers``: processes
    decoding photos. ``ranking``: ``"balanced"`` (the default for a new index) or ``"l2"`` (the paper's), see
    ``segsearch.ranking``; fixed when the index is made. ``ray``: segment and encode the photos on Ray actors
    at this address (``"local"``, ``"auto"``, ``"HOST:PORT"``, see :mod:`segsearch.ray_indexing`), ``ray_actors``
    of them, each running torch with ``ray_threads`` threads (default: as many as in this process, so the
    index is the one a run without Ray writes); ``device`` is then the actors' (default: a GPU each where the
    cluster has GPUs) and ``segmenter`` is sent to them. Raises ValueError for bad input.
    """
    root = Path(photos_dir).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"photos folder {str(photos_dir)!r} does not exist or is not a folder")
    if batch < 1 or sample < 1 or workers < 0:
        raise ValueError(f"--batch and --sample must be >= 1 and workers >= 0; got {batch}, {sample}, {workers}")
    if n_centroids is not None and not 1 <= n_centroids <= 256:
        raise ValueError(f"--centroids must be in 1..256; got {n_centroids}")
    if size is not None and not 1 <= size <= 1024:
        raise ValueError(f"--size must be in 1..1024; got {size}")
    if ray is None:
        _check_device(device)  # on Ray, the actors' device: checked where they run
    else:
        ray_backend().check_address(ray)
        for name, v in (("ray_actors", ray_actors), ("ray_threads", ray_threads)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a whole number >= 1; got {v!r}")
    if ranking is not None:
        get_ranking(ranking)  # a known name, or ValueError
    paths, skipped = scan_photos(root)
    if skipped:
        log(f"note: {len(skipped)} files skipped: links to outside the photos folder or not regular files "
            f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})")
    if not paths:
        raise ValueError(f"no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {str(root)!r}")
    caption_pairs = read_captions_checked(captions, paths, log) if captions is not None else None
    out = Path(out_dir).expanduser()
    work = out / WORK_DIR
    if add and not (out / INDEX_FILE).is_file() and not (work / CODEBOOK_FILE).is_file():
        raise ValueError(f"--add needs an existing index folder; {str(out)!r} has none (build it first without "
                         "--add)")
    work.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(work, out)
    try:
        return _build_locked(root, out, work, paths, caption_pairs, size, n_centroids, device, weights, batch,
                             sample, add, segmenter, seed, niter, workers, ranking, log, ray, ray_actors,
                             ray_threads)
    finally:
        unlock_folder(lock)


def _build_locked(root, out, work, paths, caption_pairs, size, n_centroids, device, weights, batch, sample,
                  add, segmenter, seed, niter, workers, ranking, log, ray=None, ray_actors=None,
                  ray_threads=None) -> BuildReport:
    _remove_temp_files(out, work)
    remove_unlisted(out)
    st = _State(work / STATE_FILE)
    seg = _LazySegmenter(st, segmenter, weights, device, ray, ray_actors, ray_threads, size, batch, workers)
    try:
        size, k_req, ranking = _configure(st, root, size, n_centroids, seed, sample, ranking, len(paths))
        n_new = _register(st, paths, add, out)
        seg.size = size
        here = None if ray is not None else device  # on Ray, --device is the actors'; this process trains on its own
        sample_path = work / SAMPLE_FILE
        index = _codebook(st, out, root, seg, size, k_req, ranking, batch, workers, niter, seed, here, log)
        _encode_sample(st, sample_path, index, batch, here)
        _encode_rest(st, root, seg, index, size, batch, workers, device, out)
        index_path, shard = _write_index(st, out, index, seg, root, size)
        report = BuildReport(index_path, n_photos=st.count(), n_done=st.count("status='done'"), n_new=n_new,
                             shard_path=shard,
                             n_centroids=index.n_centroids,
                             failed=st.rows("SELECT path, error FROM photos WHERE status='failed' ORDER BY id"))
        st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        seg.close()
        st.close()
    for leftover in (sample_path, work / CODEBOOK_FILE, work / OLD_CODEBOOK_FILE):  # the index holds the codebook
        leftover.unlink(missing_ok=True)
    if caption_pairs is not None:
        report.n_captions = _write_captions_atomically(caption_pairs, out / CAPTIONS_FILE)
    return report


#: What a killed run can leave in the index folder and its work/: ``NAME.XXXX.tmp`` from
#: ``storage.atomic_write`` and :func:`_write_captions_atomically`, and the latter's SQLite journal.
_TEMP_SUFFIXES = (".tmp", ".tmp-journal", ".tmp-wal", ".tmp-shm")


def _remove_temp_files(*folders: Path) -> None:
    """Remove the temp files a killed save left beside our files (see :data:`_TEMP_SUFFIXES`)."""
    names = tuple(n + "." for n in (INDEX_FILE, CAPTIONS_FILE, CODEBOOK_FILE))
    for folder in folders:
        for p in folder.iterdir():
            if p.name.startswith(names) and p.name.endswith(_TEMP_SUFFIXES) and p.is_file() and not p.is_symlink():
                p.unlink(missing_ok=True)


def _write_captions_atomically(pairs: list[tuple[str, str]], path: Path) -> int:
    """:func:`write_captions` into a temp file beside ``path``, renamed over it once complete: a kill or a full
    disk leaves the previous captions as they were (the next run removes the temp file)."""
    from ..engine.storage import atomic_path

    with atomic_path(path) as tmp:
        try:
            return write_captions(pairs, tmp)  # SQLite syncs the file on commit
        except BaseException:
            Path(str(tmp) + "-journal").unlink(missing_ok=True)
            raise


def _check_device(device) -> None:
    """ValueError for a device string torch does not know, or CUDA asked for where there is none."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r} is not a torch device ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: CUDA is not available here; use --device cpu")


class _LazySegmenter:
    """Builds the segmenter (loading weights takes seconds) only when a photo must be segmented, and checks
    that it is the network the index folder was started with (recorded in the state the first time). With
    ``ray`` (an address), the photos are segmented by Ray actors instead (:meth:`pool`)."""

    def __init__(self, st: _State, segmenter, weights, device, ray=None, ray_actors=None, ray_threads=None,
                 size=None, batch=8, workers=1):
        self._st, self._seg, self._weights, self._device = st, segmenter, weights, device
        self._checked = False
        self._ray, self._ray_actors, self._ray_threads = ray, ray_actors, ray_threads
        self.size, self._batch, self._workers = size, batch, workers
        self._pool = None

    def pool(self):
        """The Ray actors (:class:`segsearch.ray_indexing.EncoderPool`), or None for a local run."""
        if self._ray is None:
            return None
        if self._pool is None:
            stored = self.identity
            want = stored["sha256"] if stored and self._weights is None else None
            self._pool = ray_backend().encoder_pool(self._ray, actors=self._ray_actors, threads=self._ray_threads,
                                     segmenter=self._seg, weights=self._weights, weights_sha256=want,
                                     device=self._device, size=self.size, batch=self._batch, workers=self._workers,
                                     check_identity=self._check_identity)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def get(self):
        if self._seg is None:
            from ..network.segmenter import Segmenter

            stored = self.identity
            want = stored["sha256"] if stored and self._weights is None else None
            self._seg = Segmenter.default(device=self._device, weights=self._weights, weights_sha256=want)
        if not self._checked:
            self._check_identity({"name": self._seg.name, "sha256": getattr(self._seg, "weights_sha256", None)})
            self._checked = True
        return self._seg

    def _check_identity(self, mine: dict) -> None:
        """Record the network ``mine`` ({"name", "sha256"}) as the folder's, or check it is the recorded one."""
        stored = self.identity
        if stored is None:
            self._st.put("network", mine)
        elif stored != mine:
            raise ValueError(
                f"this index folder was started with network {stored['name']!r} (weights sha256 "
                f"{str(stored['sha256'])[:12]}...), not {mine['name']!r} ({str(mine['sha256'])[:12]}...); run "
                "again with the same --weights, or use a new --out folder")

    @property
    def identity(self) -> dict | None:
        """{"name", "sha256"} of the network that segmented this folder's photos (None before the first)."""
        return self._st.get("network")

    @property
    def classes(self) -> list[str]:
        if self._seg is None:
            from ..network.classes import ADE20K_CLASSES

            return list(ADE20K_CLASSES)
        return list(self._seg.classes)


def _configure(st: _State, root: Path, size, k, seed, sample, ranking, n_photos: int) -> tuple[int, int, str]:
    """Store the options of a new index (K by default from the number of photos), or check them against a
    resumed one; returns (size, K requested, ranking)."""
    given = {"photos_dir": str(root), "size": size, "n_centroids": k, "ranking": ranking}
    stored = st.get("config")
    if stored is None:
        cfg = {"photos_dir": str(root), "size": size or DEFAULT_SIZE,
               "n_centroids": k or default_centroids(n_photos), "seed": seed, "sample": sample,
               "ranking": ranking or DEFAULT_RANKING}
        st.put("config", cfg)
        return cfg["size"], cfg["n_centroids"], cfg["ranking"]
    stored = dict(stored)
    stored.setdefault("ranking", "l2")  # folders started by segsearch 0.1 rank by plain L2
    for key, value in given.items():
        if value is not None and value != stored[key]:
            raise ValueError(f"this index folder was started with {key}={stored[key]!r}, not {value!r}; "
                             "re-run with the same options to resume, or use a new --out folder")
    return stored["size"], stored["n_centroids"], stored["ranking"]


def _register(st: _State, paths: list[str], add: bool, out: Path) -> int:
    """Add photos not yet in the state as pending; returns how many were new."""
    known = {p for (p,) in st.rows("SELECT path FROM photos")}
    new = [p for p in paths if p not in known]
    if new and known and st.get("finished") and not add:
        raise ValueError(f"{str(out)!r} already holds a finished index and the folder has {len(new)} new photos; "
                         "pass --add to append them")
    with st.db:
        st.db.executemany("INSERT INTO photos (path) VALUES (?)", ((p,) for p in new))
        if new:
            st.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', 'false')")
    return len(new)


def _codebook(st, out, root, seg, size, k_req, ranking, batch, workers, niter, seed, device, log):
    """The index whose codebook encodes this folder: the checkpoint, else the finished index (resume, --add),
    else trained now from the sample (segmented first) and checkpointed."""
    from ..engine.index import Index

    for path in (out / WORK_DIR / CODEBOOK_FILE, out / INDEX_FILE):
        if path.is_file():
            return Index.load(path, mmap=False)  # read into memory: no mapping of a file that can change
    if (out / WORK_DIR / OLD_CODEBOOK_FILE).is_file():  # a run interrupted by segsearch <= 0.1
        old = np.load(out / WORK_DIR / OLD_CODEBOOK_FILE, allow_pickle=False)
        return Index.from_codebook(old, np.zeros((0, old.shape[0]), np.uint8), class_names=seg.classes)
    sample_path = out / WORK_DIR / SAMPLE_FILE
    _choose_sample(st, st.get("config")["sample"], seed)
    _segment_sample(st, root, seg, sample_path, size, batch, workers)
    rows = np.array([r for (r,) in st.rows("SELECT sample_row FROM photos WHERE sampled=1 ORDER BY sample_row")],
                    np.int64)
    if not len(rows):
        raise ValueError("none of the training sample's photos could be read; see the failed photos in "
                         f"{WORK_DIR}/{STATE_FILE}")
    K = min(k_req, len(rows))
    if K < k_req:
        log(f"note: only {len(rows)} readable sample photos, so --centroids {k_req} is lowered to {K}")
    classes = seg.classes
    maps = _sample_maps(sample_path, int(rows[-1]) + 1, len(classes), size)
    contiguous = rows[-1] + 1 == len(rows)  # always so for a sample segmented by this version
    index = Index(len(classes), size, K, classes, ranking=ranking)
    index.train(maps if contiguous else maps[rows], niter=niter, seed=seed, device=device)
    index.save(out / WORK_DIR / CODEBOOK_FILE)
    return index


def _choose_sample(st: _State, sample: int, seed: int) -> None:
    """Pick the training sample once: the first ``sample`` photos in a seeded random order (``sample_row`` is
    set to -1 until the photo is segmented, then to its row in sample.f16)."""
    if st.get("n_sample") is not None:
        return
    ids = [i for (i,) in st.rows("SELECT id FROM photos ORDER BY id")]
    order = np.random.default_rng(seed).permutation(len(ids))[:sample]
    with st.db:
        st.db.executemany("UPDATE photos SET sample_row=-1 WHERE id=?", ((ids[j],) for j in order.tolist()))
        st.db.execute("INSERT OR REPLACE INTO meta VALUES ('n_sample', ?)", (json.dumps(len(order)),))


def _segment(st: _State, root: Path, seg: _LazySegmenter, todo: list[tuple], size: int, batch: int,
             workers: int, desc: str, store: Callable, codebook: tuple[str, str] | None = None) -> None:
    """Segment the photos ``todo`` [(id, path)] in batches (decoded in ``workers`` processes); for each batch,
    one transaction marks the unreadable photos failed and runs ``store(rows, maps)`` for the others. On Ray
    the actors segment chunks of whole batches (encoded with ``codebook`` = (checkpoint, sha256) when given:
    ``store`` then gets codes), committed here in ``todo``'s order."""
    if not todo:
        return
    pool = seg.pool()
    with _progress(len(todo), desc) as bar:
        for part, idx, payload, failed in (_local_batches(seg.get(), root, todo, size, batch, workers)
                                           if pool is None else pool.chunks(root, todo, codebook=codebook)):
            with st.db:
                st.mark_failed(part, [(i, _short_error(err, root)) for i, err in failed])
                if len(idx):
                    store([part[i] for i in idx.tolist()], payload)
            bar.update(len(idx) + len(failed))


def _local_batches(model, root: Path, todo: list[tuple], size: int, batch: int, workers: int):
    """(rows, positions in rows segmented, their maps, failed) per network batch, segmented in this process."""
    for s in range(0, len(todo), batch * 64):  # a fresh loader every 64 batches keeps its queue short
        part = todo[s : s + batch * 64]
        for idx, maps, failed in model.iter_predict([root / r[1] for r in part], size=size, batch_size=batch,
                                                    workers=workers):
            yield part, idx, maps, failed


def _short_error(err: str, root: Path) -> str:
    """A decoding error with the photos folder taken out of the message (paths stay relative)."""
    return " ".join(err.replace(str(root) + os.sep, "").split())


def _segment_sample(st, root, seg, sample_path: Path, size: int, batch: int, workers: int) -> None:
    """Segment the sample photos not yet in ``sample.f16``; each one's maps go to the next free row. Rows the
    file no longer holds (cut short by hand, or by a full disk) are segmented again into the same rows."""
    row_bytes = len(seg.classes) * size * size * 2
    have = sample_path.stat().st_size // row_bytes if sample_path.is_file() else 0
    with st.db:
        st.db.execute("UPDATE photos SET sampled=0, sample_row=-1 WHERE sampled=1 AND status='pending' AND "
                      "sample_row >= ?", (have,))
    todo = st.rows("SELECT id, path FROM photos WHERE sample_row IS NOT NULL AND sampled=0 AND status='pending' "
                   "ORDER BY id")
    if not todo:
        return
    next_row = st.rows("SELECT COALESCE(MAX(sample_row) + 1, 0) FROM photos WHERE sampled=1")[0][0]
    fd = os.open(sample_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, next_row * row_bytes)  # rows written after the last commit are not trusted

        def store(rows, maps):
            nonlocal next_row
            data = np.ascontiguousarray(maps, dtype=np.float16).tobytes()
            _pwrite_all(fd, data, next_row * row_bytes, sample_path)
            st.db.executemany("UPDATE photos SET sampled=1, sample_row=? WHERE id=?",
                              ((next_row + j, r[0]) for j, r in enumerate(rows)))
            next_row += len(rows)

        _segment(st, root, seg, todo, size, batch, workers, "segmenting sample", store)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, data: bytes, offset: int, path: Path) -> None:
    """Write ``data`` at ``offset`` and fsync (the maps are on disk before the transaction marks them sampled);
    an OSError (a full disk: ENOSPC) names ``path``."""
    view = memoryview(data)
    try:
        while view:
            n = os.pwrite(fd, view, offset)
            if n <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view, offset = view[n:], offset + n
        os.fsync(fd)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None


def _sample_maps(path: Path, n_rows: int, C: int, size: int) -> np.ndarray:
    """The first ``n_rows`` sample maps, float16 (n_rows, C, size, size), memory-mapped read-only to train on.
    Only an index run writes this file and runs hold the folder's lock, so it does not shrink while mapped."""
    shape = (n_rows, C, size, size)
    if not path.is_file() or path.stat().st_size < n_rows * C * size * size * 2:
        raise ValueError(f"{path} is shorter than the {n_rows} sample photos recorded as segmented; run the same "
                         "command again to segment them again")
    return np.memmap(path, np.float16, "r", shape=shape)


def _read_rows(path: Path, rows: list[int], C: int, size: int) -> np.ndarray | None:
    """Sample maps ``rows`` float16 (len(rows), C, size, size) read with pread (no mapping: a file cut short
    meanwhile gives None, never a bus error)."""
    row_bytes = C * size * size * 2
    out = np.empty((len(rows), C, size, size), np.float16)
    flat = out.reshape(len(rows), row_bytes // 2)
    with open(path, "rb", buffering=0) as f:
        for i, r in enumerate(rows):
            data = os.pread(f.fileno(), row_bytes, r * row_bytes)
            if len(data) != row_bytes:
                return None
            flat[i] = np.frombuffer(data, np.float16)
    return out


def _store_codes(st: _State, rows, codes: np.ndarray) -> None:
    st.db.executemany("UPDATE photos SET status='done', codes=? WHERE id=?",
                      ((c.tobytes(), r[0]) for r, c in zip(rows, codes)))


def _encode_sample(st, sample_path: Path, index, batch: int, device) -> None:
    """Encode the sample photos from their saved maps (no second segmentation)."""
    todo = st.rows("SELECT id, sample_row FROM photos WHERE sampled=1 AND status='pending' ORDER BY sample_row")
    if not todo:
        return
    step = max(batch, 64)
    for s in range(0, len(todo), step):
        part = todo[s : s + step]
        maps = _read_rows(sample_path, [r[1] for r in part], index.num_classes, index.size) \
            if sample_path.is_file() else None
        if maps is None:
            with st.db:  # the sample maps were deleted or cut short: segment those photos again
                st.db.execute("UPDATE photos SET sampled=0 WHERE status='pending'")
            return
        codes = index.encode(maps, device=device)
        with st.db:
            _store_codes(st, part, codes)


def _encode_rest(st, root, seg, index, size, batch, workers, device, out: Path) -> None:
    """Segment and encode the photos outside the sample (on Ray, the actors encode them with the codebook
    checkpoint, written first if this run has none)."""
    todo = st.rows("SELECT id, path FROM photos WHERE status='pending' AND sampled=0 ORDER BY id")
    if not todo:
        return
    if seg.pool() is None:
        _segment(st, root, seg, todo, size, batch, workers, "segmenting",
                 lambda rows, maps: _store_codes(st, rows, index.encode(maps, device=device)))
        return

    checkpoint = out / WORK_DIR / CODEBOOK_FILE
    if not checkpoint.is_file():  # resuming from index.segsearch (--add): the actors need the codebook alone
        empty_like(index).save(checkpoint)
    codebook = (str(checkpoint.resolve()), index.codebook_fingerprint())
    _segment(st, root, seg, todo, size, batch, workers, "segmenting", lambda rows, codes: _store_codes(st, rows, codes),
             codebook=codebook)


#: State key: the largest photo id such that every done photo up to it is in the index folder (set after each
#: write; photos never turn done after a write, as a write happens once none is pending).
WRITTEN_THROUGH = "written_through"


def _mark_written(st: _State) -> None:
    with st.db:
        last = st.db.execute("SELECT COALESCE(MAX(id), 0) FROM photos").fetchone()[0]
        st.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (WRITTEN_THROUGH, json.dumps(last)))
        st.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', 'true')")


def _unwritten(st: _State, out: Path) -> list[tuple[str, bytes]]:
    """(path, codes) of the done photos the folder does not hold yet, in insertion order: those after the
    written mark, less any a run killed after its last write (before it set the mark) already wrote; for a
    folder written before the mark was kept, every done photo is looked up in the folder (once)."""
    mark = st.get(WRITTEN_THROUGH)
    if type(mark) is not int:  # none yet (or not a number: the state came with the folder) -- look everything up
        held = open_folder(out, mmap=True)
        return [(p, c) for p, c in st.db.execute("SELECT path, codes FROM photos WHERE status='done' ORDER BY id")
                if p not in held]
    rows = st.rows("SELECT path, codes FROM photos WHERE status='done' AND id > ? ORDER BY id", (mark,))
    if rows:
        last = last_written_ids(out)
        rows = [(p, c) for p, c in rows if p not in last]
    return rows


def _write_index(st, out: Path, index, seg: _LazySegmenter, root: Path, size: int) -> tuple[Path, Path | None]:
    """Write ``index.segsearch``: the codebook and the codes of the photos that are done, in insertion order.
    If the folder holds a finished index already (``--add``), write the done photos it does not hold yet as a
    new shard instead (none: nothing is written); only the folder's last file is read to find them
    (:func:`_unwritten`). Returns (the index file, the new shard or None)."""
    path = out / INDEX_FILE
    if path.is_file():
        rows = _unwritten(st, out)
        shard = None
        if rows:
            part = empty_like(index)
            part.add_codes(np.stack([np.frombuffer(c, np.uint8) for _, c in rows]), ids=[p for p, _ in rows])
            shard = add_shard_locked(out, part, ids_are_new=True)
        _mark_written(st)
        return path, shard
    codes = np.empty((st.count("status='done'"), index.num_classes), np.uint8)
    ids = []
    for i, (p, c) in enumerate(st.db.execute("SELECT path, codes FROM photos WHERE status='done' ORDER BY id")):
        codes[i] = np.frombuffer(c, np.uint8)
        ids.append(p)
    network = seg.identity or {"name": None, "sha256": None}
    final = empty_like(index)  # the codebook as it is, not converted and derived again
    final.metadata = {META_NETWORK: network["name"], META_NETWORK_SHA256: network["sha256"], META_PHOTOS_DIR: str(root),
                      META_SIZE: size}
    final.add_codes(codes, ids=ids)
    final.save(path)
    _mark_written(st)
    return path, None
