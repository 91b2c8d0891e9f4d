"""Segmenting an indexing run's photos: the network loaded only when a photo needs it and checked against the one
the folder was started with (:class:`LazySegmenter`), batches decoded in worker processes or segmented by Ray
actors (:func:`segment_photos`), and the training sample's maps kept in ``work/sample.f16``."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .backends import ray_backend
from .options import BuildOptions
from .progress import BuildState

__all__ = ["LazySegmenter", "progress_bar", "segment_photos", "segment_sample", "sample_maps", "read_sample_rows"]


#: A phase's bar is redrawn at least this often (seconds), so its clock moves between slow steps.
TICK_S = 1.0


@contextlib.contextmanager
def progress_bar(total: int, desc: str, unit: str = "photo"):
    """A tqdm bar on stderr for one phase of a run (none when stderr is not a terminal), redrawn every
    :data:`TICK_S` by a thread while the phase runs: a batch of photos or a class's k-means can take seconds,
    and a bar that does not move looks like a hang."""
    from tqdm import tqdm

    # shutil falls back to 100 columns where the terminal reports a width of 0 (some ptys)
    cols, rows = shutil.get_terminal_size((100, 24))
    bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None, ncols=cols, nrows=rows)
    done = threading.Event()

    def tick():
        while not done.wait(TICK_S):
            bar.refresh()

    ticker = None if bar.disable else threading.Thread(target=tick, name="segsearch-progress", daemon=True)
    if ticker is not None:
        ticker.start()
    try:
        yield bar
    finally:
        done.set()
        if ticker is not None:
            ticker.join()
        bar.close()


class LazySegmenter:
    """Builds the segmenter (loading weights takes seconds) only when a photo must be segmented, and checks
    that it is the network the index folder was started with (recorded in the state the first time). With
    ``ray`` (an address), the photos are segmented by Ray actors instead (:meth:`pool`)."""

    def __init__(self, st: BuildState, o: BuildOptions):
        self._st, self._seg, self._weights, self._device = st, o.segmenter, o.weights, o.device
        self._checked = False
        self._ray, self._ray_actors, self._ray_threads = o.ray, o.ray_actors, o.ray_threads
        self.size, self._batch, self._workers = o.size, o.batch, o.workers
        self._pool = None

    def pool(self):
        """The Ray actors (:class:`segsearch.distributed.indexing.EncoderPool`), or None for a local run."""
        if self._ray is None:
            return None
        if self._pool is None:
            stored = self.identity
            want = stored["sha256"] if stored and self._weights is None else None
            self._pool = ray_backend().encoder_pool(
                self._ray,
                actors=self._ray_actors,
                threads=self._ray_threads,
                segmenter=self._seg,
                weights=self._weights,
                weights_sha256=want,
                device=self._device,
                size=self.size,
                batch=self._batch,
                workers=self._workers,
                check_identity=self._check_identity,
            )
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
                "again with the same weights, or use a new index folder"
            )

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


def segment_photos(
    st: BuildState,
    root: Path,
    seg: LazySegmenter,
    todo: list[tuple],
    size: int,
    batch: int,
    workers: int,
    desc: str,
    store: Callable,
    codebook: tuple[str, str] | None = None,
    dtype=np.float32,
) -> None:
    """Segment the photos ``todo`` [(id, path)] in batches (decoded in ``workers`` processes); for each batch,
    one transaction marks the unreadable photos failed and runs ``store(rows, maps)`` for the others (maps of
    ``dtype``; on Ray, float16). On Ray
    the actors segment chunks of whole batches (encoded with ``codebook`` = (checkpoint, sha256) when given:
    ``store`` then gets codes), committed here in ``todo``'s order."""
    if not todo:
        return
    pool = seg.pool()
    with progress_bar(len(todo), desc) as bar:
        for part, idx, payload, failed in (
            _local_batches(seg.get(), root, todo, size, batch, workers, dtype)
            if pool is None
            else pool.chunks(root, todo, codebook=codebook)
        ):
            with st.db:
                st.mark_failed(part, [(i, _short_error(err, root)) for i, err in failed])
                if len(idx):
                    store([part[i] for i in idx.tolist()], payload)
            bar.update(len(idx) + len(failed))


def _local_batches(model, root: Path, todo: list[tuple], size: int, batch: int, workers: int, dtype):
    """(rows, positions in rows segmented, their maps of ``dtype``, failed) per network batch, segmented in this
    process."""
    for s in range(0, len(todo), batch * 64):  # a fresh loader every 64 batches keeps its queue short
        part = todo[s : s + batch * 64]
        for idx, maps, failed in model.iter_predict(
            [root / r[1] for r in part], size=size, batch_size=batch, workers=workers, dtype=dtype
        ):
            yield part, idx, maps, failed


def _short_error(err: str, root: Path) -> str:
    """A decoding error with the photos folder taken out of the message (paths stay relative)."""
    return " ".join(err.replace(str(root) + os.sep, "").split())


def segment_sample(st, root, seg, sample_path: Path, size: int, batch: int, workers: int) -> None:
    """Segment the sample photos not yet in ``sample.f16``; each one's maps go to the next free row. Rows the
    file no longer holds (cut short by hand, or by a full disk) are segmented again into the same rows."""
    row_bytes = len(seg.classes) * size * size * 2
    have = sample_path.stat().st_size // row_bytes if sample_path.is_file() else 0
    with st.db:
        st.db.execute(
            "UPDATE photos SET sampled=0, sample_row=-1 WHERE sampled=1 AND status='pending' AND sample_row >= ?",
            (have,),
        )
    todo = st.rows(
        "SELECT id, path FROM photos WHERE sample_row IS NOT NULL AND sampled=0 AND status='pending' ORDER BY id"
    )
    if not todo:
        return
    next_row = st.rows("SELECT COALESCE(MAX(sample_row) + 1, 0) FROM photos WHERE sampled=1")[0][0]
    fd = os.open(sample_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, next_row * row_bytes)  # rows written after the last commit are not trusted

        def store(rows, maps):
            nonlocal next_row
            data = np.ascontiguousarray(maps, dtype=np.float16).tobytes()  # float16 already: no copy
            _pwrite_all(fd, data, next_row * row_bytes, sample_path)
            st.db.executemany(
                "UPDATE photos SET sampled=1, sample_row=? WHERE id=?",
                ((next_row + j, r[0]) for j, r in enumerate(rows)),
            )
            next_row += len(rows)

        desc = "1/4 segmenting the training sample"
        segment_photos(st, root, seg, todo, size, batch, workers, desc, store, dtype=np.float16)
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


def sample_maps(path: Path, n_rows: int, C: int, size: int) -> np.ndarray:
    """The first ``n_rows`` sample maps, float16 (n_rows, C, size, size), memory-mapped read-only to train on.
    Only an index run writes this file and runs hold the folder's lock, so it does not shrink while mapped."""
    shape = (n_rows, C, size, size)
    if not path.is_file() or path.stat().st_size < n_rows * C * size * size * 2:
        raise ValueError(
            f"{path} is shorter than the {n_rows} sample photos recorded as segmented; run the same "
            "command again to segment them again"
        )
    return np.memmap(path, np.float16, "r", shape=shape)


def read_sample_rows(path: Path, rows: list[int], C: int, size: int) -> np.ndarray | None:
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
