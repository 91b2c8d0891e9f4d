"""Index a folder of photos: segment, train the codebooks, encode — resumable, crash-safe, bounded memory.

Layout of an index folder ``OUT``::

    OUT/index.segsearch        the final index (ids = photo paths relative to the photos folder)
    OUT/captions.sqlite        optional: the photos' captions (see segsearch.captions)
    OUT/work/state.sqlite      progress: one row per photo (pending / done / failed, error, codes)
    OUT/work/sample.f16        float16 maps of the training sample (deleted once every photo is done)
    OUT/work/codebook.npy      the trained codebooks, float32 (C, K, n, n), written atomically

Steps (each one resumes where it stopped; every batch is one SQLite transaction):

1. list the photos (recursively, sorted) and add new ones to the state as ``pending``;
2. segment a training sample (the first ``sample`` photos in a seeded random order) into ``sample.f16``;
3. train the codebooks one class at a time from that file and save ``codebook.npy``;
4. encode the sample photos from their saved maps, then segment and encode every other photo;
5. write ``index.segsearch`` from the codes of the photos that are done.

Photos that cannot be read are marked ``failed`` with the error and never abort the run. If K exceeds
the number of readable sample photos it is lowered to that number (with a printed note).
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .captions import read_captions_checked, write_captions

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
NETWORK = "deeplabv3-mnv2-ade20k"
INDEX_FILE = "index.segsearch"
CAPTIONS_FILE = "captions.sqlite"
DEFAULT_SIZE = 64
DEFAULT_CENTROIDS = 256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,            -- insertion order = order in the index
    path TEXT UNIQUE NOT NULL,         -- relative to the photos folder, '/'-separated
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    error TEXT,
    sample_row INTEGER,                -- row in sample.f16, NULL if not in the training sample
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


def find_photos(root: str | os.PathLike) -> list[str]:
    """Image files under ``root`` (recursively, by extension, case-insensitive), as sorted relative posix paths."""
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(found)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    from .storage import atomic_write

    with atomic_write(path) as f:
        np.save(f, array, allow_pickle=False)


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

    def close(self) -> None:
        self.db.close()


def _load_images(root: Path, paths: list[str]):
    """Open the photos; returns (images, ok indices, [(index, error)] for those that failed)."""
    from .segmenter import _to_pil

    images, ok, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            images.append(_to_pil(root / p))
            ok.append(i)
        except Exception as e:  # noqa: BLE001 -- any unreadable / corrupt file is recorded, never fatal
            msg = " ".join(str(e).replace(str(root / p), p).split())
            bad.append((i, f"{type(e).__name__}: {msg}"))
    return images, ok, bad


def _progress(total: int, desc: str, unit: str = "photo"):
    from tqdm import tqdm

    # shutil falls back to 100 columns where the terminal reports a width of 0 (some ptys)
    cols, rows = shutil.get_terminal_size((100, 24))
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, ncols=cols, nrows=rows)


def build_index(photos_dir, out_dir, *, size: int | None = None, n_centroids: int | None = None,
                device=None, weights=None, batch: int = 8, sample: int = 2000, add: bool = False,
                captions=None, segmenter=None, seed: int = 0, niter: int = 20,
                log: Callable[[str], None] = print) -> BuildReport:
    """Index the photos under ``photos_dir`` into the folder ``out_dir`` (see the module docstring).

    Re-running with the same arguments resumes an interrupted run. ``add=True`` appends photos that are not
    in a finished index yet, with its saved codebook. ``size`` / ``n_centroids`` default to 64 / 256 for a
    new index and to the stored values when resuming (a different explicit value is an error).
    ``segmenter``: a ready :class:`~segsearch.segmenter.Segmenter` (else built from ``weights``/``device``
    when first needed). Raises ValueError for bad input.
    """
    root = Path(photos_dir).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"photos folder {str(photos_dir)!r} does not exist or is not a folder")
    if batch < 1 or sample < 1:
        raise ValueError(f"--batch and --sample must be >= 1; got {batch} and {sample}")
    if n_centroids is not None and not 1 <= n_centroids <= 256:
        raise ValueError(f"--centroids must be in 1..256; got {n_centroids}")
    if size is not None and not 1 <= size <= 1024:
        raise ValueError(f"--size must be in 1..1024; got {size}")
    _check_device(device)
    paths = find_photos(root)
    if not paths:
        raise ValueError(f"no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {str(root)!r}")
    caption_pairs = read_captions_checked(captions, paths, log) if captions is not None else None
    out = Path(out_dir).expanduser()
    work = out / "work"
    if add and not (work / "codebook.npy").is_file():
        raise ValueError(f"--add needs an existing index folder with a trained codebook; {str(out)!r} has none "
                         "(build it first without --add)")
    work.mkdir(parents=True, exist_ok=True)
    st = _State(work / "state.sqlite")
    try:
        size, k_req = _configure(st, root, size, n_centroids, seed, sample)
        n_new = _register(st, paths, add, out)
        seg = _LazySegmenter(segmenter, weights, device)
        mm_path = work / "sample.f16"
        cb_path = work / "codebook.npy"
        if not cb_path.is_file():
            C = len(seg.classes)
            _choose_sample(st, sample, seed)
            mm = _sample_memmap(st, mm_path, (st.get("n_sample"), C, size, size))
            _segment_sample(st, root, seg, mm, size, batch)
            cb = _train(st, mm, k_req, niter, seed, device, log)
            _atomic_save_npy(cb_path, cb)
            del mm
        cb = np.load(cb_path, allow_pickle=False)
        C, K = cb.shape[:2]
        cb_pm = np.ascontiguousarray(cb.reshape(C, K, -1).transpose(0, 2, 1))
        _encode_sample(st, mm_path, cb_pm, (C, size, size), batch, device)
        _encode_rest(st, root, seg, cb_pm, size, batch, device)
        index_path = _write_index(st, out, cb, seg, root, size)
        if mm_path.exists() and not st.count("sampled=1 AND status='pending'"):
            mm_path.unlink()
        report = BuildReport(index_path, n_photos=st.count(), n_done=st.count("status='done'"), n_new=n_new,
                             n_centroids=K,
                             failed=st.rows("SELECT path, error FROM photos WHERE status='failed' ORDER BY id"))
    finally:
        st.close()
    if caption_pairs is not None:
        report.n_captions = write_captions(caption_pairs, out / CAPTIONS_FILE)
    return report


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
    """Builds the segmenter (loading weights takes seconds) only when a photo must be segmented."""

    def __init__(self, segmenter, weights, device):
        self._seg, self._weights, self._device = segmenter, weights, device

    def get(self):
        if self._seg is None:
            from .segmenter import Segmenter

            self._seg = Segmenter.default(device=self._device, weights=self._weights)
        return self._seg

    @property
    def classes(self) -> list[str]:
        if self._seg is None:
            from .segmenter import ADE20K_CLASSES

            return list(ADE20K_CLASSES)
        return list(self._seg.classes)


def _configure(st: _State, root: Path, size, k, seed, sample) -> tuple[int, int]:
    """Store the options of a new index, or check them against a resumed one; returns (size, K requested)."""
    given = {"photos_dir": str(root), "size": size, "n_centroids": k}
    stored = st.get("config")
    if stored is None:
        cfg = {"photos_dir": str(root), "size": size or DEFAULT_SIZE, "n_centroids": k or DEFAULT_CENTROIDS,
               "seed": seed, "sample": sample}
        st.put("config", cfg)
        return cfg["size"], cfg["n_centroids"]
    for key, value in given.items():
        if value is not None and value != stored[key]:
            raise ValueError(f"this index folder was started with {key}={stored[key]!r}, not {value!r}; "
                             "re-run with the same options to resume, or use a new --out folder")
    return stored["size"], stored["n_centroids"]


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


def _choose_sample(st: _State, sample: int, seed: int) -> None:
    """Pick the training sample once: the first ``sample`` photos in a seeded random order."""
    if st.get("n_sample") is not None:
        return
    ids = [i for (i,) in st.rows("SELECT id FROM photos ORDER BY id")]
    order = np.random.default_rng(seed).permutation(len(ids))[:sample]
    with st.db:
        st.db.executemany("UPDATE photos SET sample_row=? WHERE id=?",
                          ((row, ids[j]) for row, j in enumerate(order.tolist())))
        st.db.execute("INSERT OR REPLACE INTO meta VALUES ('n_sample', ?)", (json.dumps(len(order)),))


def _sample_memmap(st: _State, path: Path, shape: tuple) -> np.memmap:
    """The float16 sample maps file; (re)created empty if missing or of the wrong size."""
    nbytes = int(np.prod(shape)) * 2
    if path.is_file() and path.stat().st_size == nbytes:
        return np.memmap(path, np.float16, "r+", shape=shape)
    with st.db:
        st.db.execute("UPDATE photos SET sampled=0")
    return np.memmap(path, np.float16, "w+", shape=shape)


def _segment_batches(st: _State, root: Path, seg: _LazySegmenter, todo: list[tuple], size: int, batch: int,
                     desc: str, store: Callable):
    """Segment photos ``todo`` [(id, path, ...)] in batches; ``store(rows, maps)`` runs inside the batch's
    transaction after the unreadable photos of the batch are marked failed."""
    if not todo:
        return
    with _progress(len(todo), desc) as bar:
        for s in range(0, len(todo), batch):
            part = todo[s : s + batch]
            images, ok, bad = _load_images(root, [r[1] for r in part])
            maps = seg.get().predict(images, size=size, batch_size=batch) if images else None
            with st.db:
                st.db.executemany("UPDATE photos SET status='failed', error=? WHERE id=?",
                                  ((err, part[i][0]) for i, err in bad))
                if ok:
                    store([part[i] for i in ok], maps)
            bar.update(len(part))


def _segment_sample(st, root, seg, mm, size, batch) -> None:
    todo = st.rows("SELECT id, path, sample_row FROM photos WHERE sample_row IS NOT NULL AND sampled=0 "
                   "AND status='pending' ORDER BY sample_row")

    def store(rows, maps):
        for (pid, _, row), m in zip(rows, maps):
            mm[row] = m.astype(np.float16)
        mm.flush()  # the maps are on disk before the transaction marks them sampled
        st.db.executemany("UPDATE photos SET sampled=1 WHERE id=?", ((r[0],) for r in rows))

    _segment_batches(st, root, seg, todo, size, batch, "segmenting sample", store)


def _train(st, mm, k_req, niter, seed, device, log) -> np.ndarray:
    """Train per-class codebooks on the sample maps, one class slice in memory at a time; (C, K, n, n)."""
    from .codebook import train_codebook

    rows = np.array([r for (r,) in st.rows("SELECT sample_row FROM photos WHERE sampled=1 AND status!='failed' "
                                           "ORDER BY sample_row")], dtype=np.int64)
    if not len(rows):
        raise ValueError("none of the training sample's photos could be read; see the failed photos in "
                         "work/state.sqlite")
    K = min(k_req, len(rows))
    if K < k_req:
        log(f"note: only {len(rows)} readable sample photos, so --centroids {k_req} is lowered to {K}")
    C, n = mm.shape[1], mm.shape[2]
    cb = np.empty((C, K, n, n), np.float32)
    with _progress(C, "training codebooks", unit="class") as bar:
        for c in range(C):
            x = np.asarray(mm[rows, c], dtype=np.float32)[:, None]  # (n_sample, 1, n, n)
            cb[c] = train_codebook(x, K, niter=niter, seed=seed + c, device=device)[0].reshape(K, n, n)
            bar.update(1)
    return cb


def _encode_sample(st, mm_path: Path, cb_pm, map_shape, batch, device) -> None:
    """Encode the sample photos from their saved maps (no second segmentation)."""
    from .codebook import encode

    todo = st.rows("SELECT id, sample_row FROM photos WHERE sampled=1 AND status='pending' ORDER BY sample_row")
    if not todo:
        return
    if not mm_path.is_file():  # the sample maps were deleted by hand: segment those photos again
        with st.db:
            st.db.execute("UPDATE photos SET sampled=0 WHERE status='pending'")
        return
    mm = np.memmap(mm_path, np.float16, "r", shape=(st.get("n_sample"),) + tuple(map_shape))
    for s in range(0, len(todo), batch):
        part = todo[s : s + batch]
        maps = np.asarray(mm[[r[1] for r in part]], dtype=np.float32)
        codes = encode(maps, cb_pm, device=device)
        with st.db:
            st.db.executemany("UPDATE photos SET status='done', codes=? WHERE id=?",
                              ((c.tobytes(), r[0]) for r, c in zip(part, codes)))


def _encode_rest(st, root, seg, cb_pm, size, batch, device) -> None:
    """Segment and encode the photos outside the sample."""
    from .codebook import encode

    todo = st.rows("SELECT id, path FROM photos WHERE status='pending' AND sampled=0 ORDER BY id")

    def store(rows, maps):
        codes = encode(maps, cb_pm, device=device)
        st.db.executemany("UPDATE photos SET status='done', codes=? WHERE id=?",
                          ((c.tobytes(), r[0]) for r, c in zip(rows, codes)))

    _segment_batches(st, root, seg, todo, size, batch, "segmenting", store)


def _write_index(st, out: Path, cb: np.ndarray, seg: _LazySegmenter, root: Path, size: int) -> Path:
    """Build ``index.segsearch`` from the codes of the photos that are done (in insertion order)."""
    from .index import Index

    C = cb.shape[0]
    codes = np.empty((st.count("status='done'"), C), np.uint8)
    ids = []
    for i, (p, c) in enumerate(st.db.execute("SELECT path, codes FROM photos WHERE status='done' ORDER BY id")):
        codes[i] = np.frombuffer(c, np.uint8)
        ids.append(p)
    index = Index.from_codebook(cb, codes, ids=ids, class_names=seg.classes,
                                metadata={"network": NETWORK, "photos_dir": str(root), "size": size})
    path = out / INDEX_FILE
    index.save(path)
    st.put("finished", True)
    return path
