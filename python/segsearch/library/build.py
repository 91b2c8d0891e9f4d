"""Index a folder of photos: segment, train the codebooks, encode -- one network pass per photo, resumable,
crash-safe, bounded memory. The folder's files are listed in :mod:`segsearch.engine.layout`.

Steps (each one resumes where it stopped; every batch is one SQLite transaction):

1. list the photos (recursively, sorted) and add new ones to the state as ``pending``;
2. segment a training sample (the first ``sample`` photos in a seeded random order) and keep its maps in
   ``work/sample.f16`` (float16);
3. train the codebooks from that file with :meth:`Index.train` (one class at a time in memory) and save them
   as ``work/codebook.segsearch``;
4. encode the sample photos from their saved maps (they are not segmented again), then segment and encode
   every other photo (:meth:`Index.encode`), keeping each photo's codes in the state;
5. write ``index.segsearch`` from the codes of the photos that are done (:meth:`Index.from_codebook`), then
   delete the sample maps and the codebook checkpoint: the index holds the codebook;
6. add the date, camera and folder of the indexed photos ``photos.sqlite`` lacks
   (:func:`~segsearch.library.metadata.fill_metadata`: EXIF read from each file's header, else its file time).

Photos are decoded in background processes (:meth:`Segmenter.iter_predict`). Photos that cannot be read are
marked ``failed`` with the error and never abort the run. ``--add`` takes the codebook from ``index.segsearch``
and writes the photos the folder does not hold yet as a new shard (:func:`segsearch.library.shards.add_shard`): nothing
already written is rewritten; ``segsearch compact`` merges the shards into ``index.segsearch``.

Faults: one run at a time holds a lock on ``work/`` (a second one is told so). Every file is replaced
atomically (``index.segsearch``, ``captions.sqlite`` and the codebook checkpoint are written to a temp file that
is renamed over them) and every batch is one SQLite transaction, so a kill, a full disk or an I/O error loses
nothing already finished; the next run removes the temp files a killed run left and resumes. The photos folder
is read without following links out of it: a symlink whose target is outside the folder (or any file that is
not a regular file: a FIFO, a device) is skipped, so every id is a relative path inside the photos folder.
"""

from __future__ import annotations

import functools
import json
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
    METADATA_FILE,
    SAMPLE_FILE,
    STATE_FILE,
    WORK_DIR,
    resolve_inside,
)
from ..engine.ranking import DEFAULT_RANKING
from ..engine.sharded import open_folder
from ..errors import OptionError
from .captions import read_captions_checked, write_captions
from .lock import lock_folder, unlock_folder
from .metadata import MetadataReport, fill_metadata
from .options import BuildOptions
from .photos import IMAGE_EXTENSIONS, scan_photos
from .progress import BuildState
from .records import encode_records, read_records
from .segmenting import (
    LazySegmenter,
    progress_bar,
    read_sample_rows,
    sample_maps,
    segment_photos,
    segment_sample,
)
from .shards import add_shard_locked, last_written_ids, remove_unlisted

DEFAULT_SIZE = 64
#: The default K is the largest power of two with at least this many photos per centroid, within
#: [MIN_CENTROIDS, MAX_CENTROIDS] (see :func:`default_centroids`).
PHOTOS_PER_CENTROID = 8
MIN_CENTROIDS, MAX_CENTROIDS = 4, 256
#: Where segsearch <= 0.1 kept the trained codebook (read to resume such a run, deleted when it finishes).
OLD_CODEBOOK_FILE = "codebook.npy"


@dataclass
class BuildReport:
    """What :func:`build_index` did: counts, the failed photos (path, error) and where the index is."""

    index_path: Path
    n_photos: int = 0
    n_done: int = 0
    #: Photos this run added to the index folder (to ``index.segsearch`` or a new shard): 0 for a run that found
    #: nothing new, every indexed photo for a first run (or its resume), the readable new photos for ``--add``.
    n_new: int = 0
    n_centroids: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    n_captions: int = 0
    #: The shard this run wrote (``--add`` to a finished index), else None.
    shard_path: Path | None = None
    #: The photo metadata this run added to ``photos.sqlite`` (:func:`~segsearch.library.metadata.fill_metadata`).
    metadata: MetadataReport = field(default_factory=MetadataReport)


def default_centroids(n_photos: int) -> int:
    """K for a folder of ``n_photos``: the largest power of two <= n_photos / 8, at least 4 and at most 256
    (256 from 2,048 photos on). The codebook is C * K * n * n bytes and their row-run sums (C = 151, n = 64:
    0.70 MB per centroid), so a small folder gets a small index; docs/cli.md ("Folder size and the default K")
    gives what the smaller K costs."""
    k = MIN_CENTROIDS
    while k * 2 <= min(MAX_CENTROIDS, n_photos // PHOTOS_PER_CENTROID):
        k *= 2
    return k


def build_index(
    photos_dir, out_dir, options: BuildOptions | None = None, *, log: Callable[[str], None] = print, **kwargs
) -> BuildReport:
    """Index the photos under ``photos_dir`` into the folder ``out_dir`` (see the module docstring), with
    ``options`` (a :class:`~segsearch.library.options.BuildOptions`; keyword arguments are its fields and
    override it: ``build_index(photos, out, n_centroids=64)``). ``log`` gets the notes a run prints.

    Re-running with the same options resumes an interrupted run; ``add=True`` appends photos that are not in a
    finished index yet, with its codebook. Raises :class:`~segsearch.errors.OptionError` (a ValueError) for a bad
    option and ValueError for other bad input.
    """
    opts = options if options is not None else BuildOptions()
    if not isinstance(opts, BuildOptions):
        raise TypeError(f"options must be a BuildOptions; got {type(opts).__name__}")
    if kwargs:
        opts = opts.replace(**kwargs)
    root = Path(photos_dir).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"photos folder {str(photos_dir)!r} does not exist or is not a folder")
    paths, skipped = scan_photos(root)
    if skipped:
        log(
            f"note: {len(skipped)} files skipped: links to outside the photos folder or not regular files "
            f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})"
        )
    if not paths:
        raise ValueError(f"no photos ({', '.join(sorted(IMAGE_EXTENSIONS))}) found in {str(root)!r}")
    caption_pairs = read_captions_checked(opts.captions, paths, log) if opts.captions is not None else None
    out = Path(out_dir).expanduser()
    work = out / WORK_DIR
    if opts.add and not (out / INDEX_FILE).is_file() and not (work / CODEBOOK_FILE).is_file():
        raise OptionError(
            "add", f"add needs an existing index folder; {str(out)!r} has none (build it first without add)"
        )
    work.mkdir(parents=True, exist_ok=True)
    lock = lock_folder(work, out)
    try:
        return _build_locked(root, out, work, paths, caption_pairs, opts, log)
    finally:
        unlock_folder(lock)


def _build_locked(root, out, work, paths, caption_pairs, o: BuildOptions, log) -> BuildReport:
    _remove_temp_files(out, work)
    st = BuildState(work / STATE_FILE)
    seg = LazySegmenter(st, o)
    try:
        cfg = _configure(st, root, o, len(paths))
        size = cfg["size"]
        _register(st, paths, o.add, out)
        seg.size = size
        here = None if o.ray is not None else o.device  # on Ray, device is the actors'; this process trains here
        sample_path = work / SAMPLE_FILE
        index, base = _codebook(st, out, root, seg, cfg, o, here, log)
        remove_unlisted(out, base)  # what a killed writer left, before anything is written
        _encode_sample(st, sample_path, index, o.batch, here)
        _encode_rest(st, root, seg, index, size, o.batch, o.workers, o.device, out)
        with progress_bar(1, "4/4 writing the index folder", unit="file") as bar:
            index_path, shard, n_new = _write_index(st, out, index, base, seg, root, size)
            bar.update(1)
        report = BuildReport(
            index_path,
            n_photos=st.count(),
            n_done=st.count("status='done'"),
            n_new=n_new,
            shard_path=shard,
            n_centroids=index.n_centroids,
            failed=st.rows("SELECT path, error FROM photos WHERE status='failed' ORDER BY id"),
        )
        done_ids = [p for (p,) in st.rows("SELECT path FROM photos WHERE status='done' ORDER BY id")]
        st.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        seg.close()
        st.close()
    for leftover in (sample_path, work / CODEBOOK_FILE, work / OLD_CODEBOOK_FILE):  # the index holds the codebook
        leftover.unlink(missing_ok=True)
    if caption_pairs is not None:
        report.n_captions = _write_captions_atomically(caption_pairs, out / CAPTIONS_FILE)
    report.metadata = fill_metadata(out / METADATA_FILE, done_ids, functools.partial(resolve_inside, root), log)
    return report


#: What a killed run can leave in the index folder and its work/: ``NAME.XXXX.tmp`` from
#: ``storage.atomic_write`` and :func:`_write_captions_atomically`, and the latter's SQLite journal.
_TEMP_SUFFIXES = (".tmp", ".tmp-journal", ".tmp-wal", ".tmp-shm")


def _remove_temp_files(*folders: Path) -> None:
    """Remove the temp files a killed save left beside our files (see :data:`_TEMP_SUFFIXES`)."""
    names = tuple(n + "." for n in (INDEX_FILE, CAPTIONS_FILE, METADATA_FILE, CODEBOOK_FILE))
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


def _configure(st: BuildState, root: Path, o: BuildOptions, n_photos: int) -> dict:
    """Store the options of a new index (K by default from the number of photos), or check them against a
    resumed one; returns them (photos_dir, size, n_centroids: K requested, seed, sample, ranking, keep_exact,
    rerank: None for the index's default)."""
    given = {
        "photos_dir": str(root),
        "size": o.size,
        "n_centroids": o.n_centroids,
        "ranking": o.ranking,
        "keep_exact": o.keep_exact,
        "rerank": o.rerank,
    }
    stored = st.get("config")
    if stored is None:
        cfg = {
            "photos_dir": str(root),
            "size": o.size or DEFAULT_SIZE,
            "n_centroids": o.n_centroids or default_centroids(n_photos),
            "seed": o.seed,
            "sample": o.sample,
            "ranking": o.ranking or DEFAULT_RANKING,
            "keep_exact": True if o.keep_exact is None else o.keep_exact,
            "rerank": o.rerank,
        }
        st.put("config", cfg)
        return cfg
    stored = dict(stored)
    stored.setdefault("ranking", "l2")  # folders started by segsearch 0.1 rank by plain L2
    stored.setdefault("keep_exact", False)  # and those started before 0.3 keep no exact maps
    stored.setdefault("rerank", None)
    for key, value in given.items():
        if value is not None and value != stored[key]:
            raise ValueError(
                f"this index folder was started with {key}={stored[key]!r}, not {value!r}; "
                "re-run with the same options to resume, or use a new index folder"
            )
    return stored


def _register(st: BuildState, paths: list[str], add: bool, out: Path) -> None:
    """Add photos not yet in the state as pending."""
    known = {p for (p,) in st.rows("SELECT path FROM photos")}
    new = [p for p in paths if p not in known]
    if new and known and st.get("finished") and not add:
        raise ValueError(
            f"{str(out)!r} already holds a finished index and the folder has {len(new)} new photos; "
            "add them with add=True ('segsearch index --add')"
        )
    with st.db:
        st.db.executemany("INSERT INTO photos (path) VALUES (?)", ((p,) for p in new))
        if new:
            st.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', 'false')")


def _codebook(st, out, root, seg, cfg: dict, o: BuildOptions, device, log):
    """(the index whose codebook encodes this folder, the folder's ``index.segsearch`` if that is it, else None):
    the checkpoint, else the finished index (resume, --add), else trained now from the sample (segmented first)
    and checkpointed. The finished index is read once per run: its codebook is hashed once."""
    from ..engine.index import Index

    if (out / WORK_DIR / CODEBOOK_FILE).is_file():
        return Index.load(out / WORK_DIR / CODEBOOK_FILE, mmap=False), None
    if (out / INDEX_FILE).is_file():
        base = Index.load(out / INDEX_FILE, mmap=False)  # read into memory: no mapping of a file that can change
        return base, base
    if (out / WORK_DIR / OLD_CODEBOOK_FILE).is_file():  # a run interrupted by segsearch <= 0.1
        old = np.load(out / WORK_DIR / OLD_CODEBOOK_FILE, allow_pickle=False)
        return Index.from_codebook(old, np.zeros((0, old.shape[0]), np.uint8), class_names=seg.classes), None
    sample_path = out / WORK_DIR / SAMPLE_FILE
    size, k_req = cfg["size"], cfg["n_centroids"]
    _choose_sample(st, cfg["sample"], o.seed)
    segment_sample(st, root, seg, sample_path, size, o.batch, o.workers)
    rows = np.array(
        [r for (r,) in st.rows("SELECT sample_row FROM photos WHERE sampled=1 ORDER BY sample_row")], np.int64
    )
    if not len(rows):
        raise ValueError(
            f"none of the training sample's photos could be read; see the failed photos in {WORK_DIR}/{STATE_FILE}"
        )
    K = min(k_req, len(rows))
    if K < k_req:
        log(f"note: only {len(rows)} readable sample photos, so n_centroids {k_req} is lowered to {K}")
    classes = seg.classes
    maps = sample_maps(sample_path, int(rows[-1]) + 1, len(classes), size)
    contiguous = rows[-1] + 1 == len(rows)  # always so for a sample segmented by this version
    index = Index(
        len(classes), size, K, classes, ranking=cfg["ranking"], keep_exact=cfg["keep_exact"], rerank=cfg["rerank"]
    )
    with progress_bar(len(classes), f"2/4 training codebooks (K={K})", unit="class") as bar:
        index.train(maps if contiguous else maps[rows], niter=o.niter, seed=o.seed, device=device, progress=bar.update)
        index.save(out / WORK_DIR / CODEBOOK_FILE)  # the checkpoint, under the same bar
    return index, None


def _choose_sample(st: BuildState, sample: int, seed: int) -> None:
    """Pick the training sample once: the first ``sample`` photos in a seeded random order (``sample_row`` is
    set to -1 until the photo is segmented, then to its row in sample.f16)."""
    if st.get("n_sample") is not None:
        return
    ids = [i for (i,) in st.rows("SELECT id FROM photos ORDER BY id")]
    order = np.random.default_rng(seed).permutation(len(ids))[:sample]
    with st.db:
        st.db.executemany("UPDATE photos SET sample_row=-1 WHERE id=?", ((ids[j],) for j in order.tolist()))
        st.db.execute("INSERT OR REPLACE INTO meta VALUES ('n_sample', ?)", (json.dumps(len(order)),))


def _store_records(st: BuildState, rows, records: list[bytes]) -> None:
    """Mark ``rows`` done with their records (:mod:`~segsearch.library.records`)."""
    st.db.executemany("UPDATE photos SET status='done', codes=? WHERE id=?", ((c, r[0]) for r, c in zip(rows, records)))


def _encode_sample(st, sample_path: Path, index, batch: int, device) -> None:
    """Encode the sample photos from their saved maps (no second segmentation)."""
    todo = st.rows("SELECT id, sample_row FROM photos WHERE sampled=1 AND status='pending' ORDER BY sample_row")
    if not todo:
        return
    step = max(batch, 64)
    with progress_bar(len(todo), "3/4 encoding the sample") as bar:
        for s in range(0, len(todo), step):
            part = todo[s : s + step]
            if not _encode_sample_part(st, sample_path, index, part, device):
                return
            bar.update(len(part))


def _encode_sample_part(st, sample_path: Path, index, part: list, device) -> bool:
    """Encode sample photos ``part`` [(id, sample row)] from the saved maps; False (and those photos marked to be
    segmented again) where the sample maps are gone."""
    maps = (
        read_sample_rows(sample_path, [r[1] for r in part], index.num_classes, index.size)
        if sample_path.is_file()
        else None
    )
    if maps is None:
        with st.db:  # the sample maps were deleted or cut short: segment those photos again
            st.db.execute("UPDATE photos SET sampled=0 WHERE status='pending'")
        return False
    records = encode_records(index, maps, device=device)
    with st.db:
        _store_records(st, part, records)
    return True


def _encode_rest(st, root, seg, index, size, batch, workers, device, out: Path) -> None:
    """Segment and encode the photos outside the sample (on Ray, the actors encode them with the codebook
    checkpoint, written first if this run has none)."""
    todo = st.rows("SELECT id, path FROM photos WHERE status='pending' AND sampled=0 ORDER BY id")
    if not todo:
        return
    codebook = None
    if seg.pool() is None:  # here: the maps come back, encoded in this process

        def store(rows, maps):
            _store_records(st, rows, encode_records(index, maps, device=device))

    else:  # on Ray: the actors encode with the checkpoint and send the records
        checkpoint = out / WORK_DIR / CODEBOOK_FILE
        if not checkpoint.is_file():  # resuming from index.segsearch (--add): the actors need the codebook alone
            empty_like(index).save(checkpoint)
        codebook = (str(checkpoint.resolve()), index.codebook_fingerprint())

        def store(rows, records):
            _store_records(st, rows, records)

    segment_photos(st, root, seg, todo, size, batch, workers, "3/4 segmenting and encoding", store, codebook=codebook)


#: State key: the largest photo id such that every done photo up to it is in the index folder (set after each
#: write; photos never turn done after a write, as a write happens once none is pending).
WRITTEN_THROUGH = "written_through"


def _mark_written(st: BuildState, num_classes: int) -> None:
    """Record that every done photo is in the index folder, and keep only the codes of their records: their exact
    maps are in the folder now (the state would otherwise hold a second copy of them)."""
    with st.db:
        last = st.db.execute("SELECT COALESCE(MAX(id), 0) FROM photos").fetchone()[0]
        st.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (WRITTEN_THROUGH, json.dumps(last)))
        st.db.execute("INSERT OR REPLACE INTO meta VALUES ('finished', 'true')")
        stripped = st.db.execute(
            "UPDATE photos SET codes=substr(codes, 1, ?) WHERE status='done' AND length(codes) > ?",
            (num_classes, num_classes),
        ).rowcount
    if stripped:
        st.db.execute("VACUUM")  # give the space back


def _unwritten(st: BuildState, out: Path, base) -> list[tuple[str, bytes]]:
    """(path, record) of the done photos the folder does not hold yet, in insertion order: those after the
    written mark, less any a run killed after its last write (before it set the mark) already wrote; for a
    folder written before the mark was kept, every done photo is looked up in the folder (once)."""
    mark = st.get(WRITTEN_THROUGH)
    if type(mark) is not int:  # none yet (or not a number: the state came with the folder) -- look everything up
        held = open_folder(out, mmap=True)
        return [
            (p, c)
            for p, c in st.db.execute("SELECT path, codes FROM photos WHERE status='done' ORDER BY id")
            if p not in held
        ]
    rows = st.rows("SELECT path, codes FROM photos WHERE status='done' AND id > ? ORDER BY id", (mark,))
    if rows:
        last = last_written_ids(out, base)
        rows = [(p, c) for p, c in rows if p not in last]
    return rows


def _write_index(
    st, out: Path, index, base, seg: LazySegmenter, root: Path, size: int
) -> tuple[Path, Path | None, int]:
    """Write ``index.segsearch``: the codebook and the codes of the photos that are done, in insertion order.
    If the folder holds a finished index already (``--add``), write the done photos it does not hold yet as a
    new shard instead (none: nothing is written); only the folder's last file is read to find them
    (:func:`_unwritten`). Returns (the index file, the new shard or None, how many photos this run wrote)."""
    path = out / INDEX_FILE
    if path.is_file():
        rows = _unwritten(st, out, base)
        shard = None
        if rows:
            index.codebook_fingerprint()  # hashed here once (or already), shared with the part made from it
            part = empty_like(index)
            codes, exact = read_records([c for _, c in rows], index)
            part.add_codes(codes, ids=[p for p, _ in rows], exact=exact)
            shard = add_shard_locked(out, part, ids_are_new=True, base=base)
        _mark_written(st, index.num_classes)
        return path, shard, len(rows)
    done = st.rows("SELECT path, codes FROM photos WHERE status='done' ORDER BY id")
    ids = [p for p, _ in done]
    codes, exact = read_records([c for _, c in done], index)
    network = seg.identity or {"name": None, "sha256": None}
    final = empty_like(index)  # the codebook as it is, not converted and derived again
    final.metadata = {
        META_NETWORK: network["name"],
        META_NETWORK_SHA256: network["sha256"],
        META_PHOTOS_DIR: str(root),
        META_SIZE: size,
    }
    final.add_codes(codes, ids=ids, exact=exact)
    final.save(path)
    _mark_written(st, index.num_classes)
    return path, None, len(ids)
