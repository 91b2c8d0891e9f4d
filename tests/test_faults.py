"""Faults while indexing: ``kill -9`` at chosen points of ``segsearch index`` (the training sample, training,
encoding, the codebook and index saves, the captions) and of ``--add`` (its shard's and manifest's saves), and a
full disk at those points.

After each fault the same command, run again, must finish with exactly the index of a clean run (ids, codes,
codebook, captions), leave no temp files, and a full disk must end in one line ``segsearch: error: ...`` with
exit status 2 while the previous index file and the state database stay intact.

Each run is this file run as a script (``python tests/test_faults.py FAULT -- ARGS``): the ``segsearch`` command
line with a tiny fixed network (``photo_folder.pixel_net``, 5 classes, 16x16 input) instead of the default one, and a
fault
armed at a deterministic point: ``ACTION@POINT#N`` runs ACTION (``kill``: SIGKILL itself; ``fill``: fill the disk
of ``$FAULT_FILLER`` to the last byte) the Nth time the run reaches POINT. Points are hooks wrapped around
functions in the child only (no test code in the package):

    pwrite / pwrite-done          before / after writing a batch of sample maps (os.pwrite; not yet committed)
    trained                       the codebooks are trained, not yet saved
    save:NAME / write:NAME        a save of file NAME starts / writes a chunk to its temp file
    saved:NAME                    NAME is renamed into place
    stored                        a batch's codes are stored, the transaction not yet committed
    captions                      the captions are inserted into their temp file, not yet committed
    start                         before the command runs

The disk-full tests mount a 3 MB tmpfs as the index folder (root only; skipped otherwise, with the reason).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
#: 8x8 maps, K=4, batches of 3, a 12-photo sample of 40 photos, no decoding processes, few k-means steps.
OPTS = ["--size", "8", "--centroids", "4", "--batch", "3", "--sample", "12", "--workers", "0"]
N_PHOTOS, N_BASE = 40, 28
TIMEOUT = 240


# ------------------------------------------------------------------------------------------------ the child


def _fill_disk(path: str) -> None:
    """Write ``path`` until the disk has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        chunk = b"\0" * (1 << 16)
        while True:
            try:
                if os.write(fd, chunk) == 0:
                    break
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


def child(fault: str, argv: list[str]) -> int:
    """Run ``segsearch`` with the tiny network and ``fault`` armed (``none`` for a clean run)."""
    import torch

    torch.set_num_threads(1)
    import segsearch.library.captions as captions_mod
    import segsearch.network.classes as classes_mod
    from photo_folder import pixel_net
    from segsearch.cli import main
    from segsearch.engine import storage
    from segsearch.engine.index import Index
    from segsearch.library import build as indexing
    from segsearch.network.segmenter import Segmenter

    tiny = Segmenter.from_module(pixel_net(), list("abcde"), device="cpu", input_size=16)
    Segmenter.default = classmethod(lambda cls, **kw: tiny)
    classes_mod.ADE20K_CLASSES = tiny.classes  # the default network's classes, known before it is loaded
    action, _, rest = fault.partition("@")
    target, _, nth = rest.partition("#")
    counts: dict[str, int] = {}

    def point(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1
        if name != target or counts[name] != int(nth or 1):
            return
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "fill":
            _fill_disk(os.environ["FAULT_FILLER"])

    real_pwrite = os.pwrite

    def pwrite(fd, data, offset):
        point("pwrite")
        n = real_pwrite(fd, data, offset)
        point("pwrite-done")
        return n

    os.pwrite = pwrite
    real_train = Index.train

    def train(self, *a, **kw):
        out = real_train(self, *a, **kw)
        point("trained")
        return out

    Index.train = train
    real_atomic = storage.atomic_write

    class Spy:
        def __init__(self, f, name):
            self._f, self._name = f, name

        def write(self, b):
            point(f"write:{self._name}")
            return self._f.write(b)

        def __getattr__(self, attr):
            return getattr(self._f, attr)

    @contextlib.contextmanager
    def atomic_write(path):
        name = Path(path).name
        point(f"save:{name}")
        with real_atomic(path) as f:
            yield Spy(f, name)
        point(f"saved:{name}")

    storage.atomic_write = atomic_write
    real_store = indexing._store_records

    def store(*a, **kw):
        real_store(*a, **kw)
        point("stored")

    indexing._store_records = store
    real_fill = captions_mod._fill_fts

    def fill_fts(*a, **kw):
        point("captions")
        return real_fill(*a, **kw)

    captions_mod._fill_fts = fill_fts
    point("start")
    return main(argv)


# ------------------------------------------------------------------------------------------------ helpers


def run(fault: str, *args, env: dict | None = None, capture: bool = True) -> subprocess.CompletedProcess:
    """``segsearch ARGS`` in a child process with ``fault`` armed. ``capture=False``: its output is dropped and
    only the child itself is waited for (with pipes, the wait would last until every process holding them, such
    as a killed run's decoders, has ended)."""
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.run(
        [sys.executable, str(HERE), fault, "--", *map(str, args)],
        stdout=out,
        stderr=out,
        text=True,
        timeout=TIMEOUT,
        env=e,
    )


def index_args(photos: Path, out: Path, captions: Path, add: bool = False) -> list:
    return ["index", photos, "--out", out, *OPTS, "--captions", captions] + (["--add"] if add else [])


def snapshot(out: Path) -> dict:
    """What a finished index folder holds: ids, codes, codebook, metadata and the captions."""
    from segsearch.engine.sharded import open_folder

    index = open_folder(out, mmap=False)  # with the shards --add wrote
    db = sqlite3.connect(f"{(out / 'captions.sqlite').as_uri()}?mode=ro", uri=True)
    caps = db.execute("SELECT path, caption FROM captions ORDER BY rowid").fetchall()
    db.close()
    return {
        "ids": list(index.ids),
        "codes": index.codes.tolist(),
        "codebook": index.codebook.tobytes(),
        "K": index.n_centroids,
        "meta": index.metadata,
        "captions": caps,
    }


def assert_same(got: dict, want: dict) -> None:
    assert got["ids"] == want["ids"]
    assert got["codes"] == want["codes"]
    assert got["codebook"] == want["codebook"]
    assert (got["K"], got["meta"], got["captions"]) == (want["K"], want["meta"], want["captions"])


def temp_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if ".tmp" in p.name)


def files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))


FINISHED = ["captions.sqlite", "index.segsearch", "photos.sqlite", "work", "work/state.sqlite"]
#: After --add: the new photos are a shard, listed in the manifest.
FINISHED_ADDED = sorted(FINISHED + ["shards", "shards.json", "shards/000001.segsearch"])


def state_ok(out: Path, photos: bool = True) -> None:
    """The progress database opens and passes SQLite's integrity check (and has its photos, unless the run
    ended before it could store them)."""
    db = sqlite3.connect(out / "work" / "state.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        if photos:
            assert db.execute("SELECT COUNT(*) FROM photos").fetchone()[0] == N_PHOTOS
    finally:
        db.close()


def one_line_error(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("segsearch: error: "), (p.returncode, p.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The photos (all 40, and the first 28 for the base of --add), captions, and clean runs: the full index,
    the base index and the base + --add index."""
    from photo_folder import make_photos

    root = tmp_path_factory.mktemp("faults")
    names = make_photos(root / "all", n=N_PHOTOS)
    (root / "grow").mkdir()
    for n in names[:N_BASE]:
        shutil.copyfile(root / "all" / n, root / "grow" / n)
    caps = root / "captions.csv"
    caps.write_text("path,caption\n" + "".join(f"{n},photo {i} of blocks\n" for i, n in enumerate(names[::3])))
    p = run("none", *index_args(root / "all", root / "clean", caps))
    assert p.returncode == 0, p.stderr
    p = run("none", *index_args(root / "grow", root / "base", caps))
    assert p.returncode == 0, p.stderr
    for n in names[N_BASE:]:  # the folder grows: --add appends these
        shutil.copyfile(root / "all" / n, root / "grow" / n)
    shutil.copytree(root / "base", root / "added")
    p = run("none", *index_args(root / "grow", root / "added", caps, add=True))
    assert p.returncode == 0, p.stderr
    assert "12 new" in p.stdout
    return {
        "root": root,
        "all": root / "all",
        "grow": root / "grow",
        "captions": caps,
        "clean": snapshot(root / "clean"),
        "base": root / "base",
        "added": snapshot(root / "added"),
    }


# ------------------------------------------------------------------------------------------------ kill -9

#: (fault, temp files the kill leaves): the 12-photo sample is 4 batches; its 12 codes are one stored batch,
#: the other 28 photos 10 more; a save writes its header in the first chunks.
BUILD_KILLS = [
    ("kill@pwrite-done#2", False),  # sample maps written, not committed
    ("kill@pwrite#3", False),  # between two sample batches
    ("kill@trained#1", False),  # codebooks trained, not saved
    ("kill@write:codebook.segsearch#3", True),  # during the codebook checkpoint's save
    ("kill@stored#1", False),  # encoding the sample from its maps
    ("kill@stored#4", False),  # encoding the other photos
    ("kill@write:index.segsearch#3", True),  # during the final save
    ("kill@saved:index.segsearch#1", False),  # index in place, work files not yet deleted
    ("kill@captions#1", True),  # writing the captions
]


@pytest.mark.parametrize(("fault", "leaves_temp"), BUILD_KILLS, ids=[f for f, _ in BUILD_KILLS])
def test_kill_during_indexing_then_resume_builds_the_clean_index(folders, tmp_path, fault, leaves_temp):
    out = tmp_path / "idx"
    cmd = index_args(folders["all"], out, folders["captions"])
    p = run(fault, *cmd)
    assert p.returncode == -signal.SIGKILL, f"the fault point was not reached: rc {p.returncode}\n{p.stderr}"
    state_ok(out)
    assert bool(temp_files(out)) == leaves_temp, temp_files(out)
    if "saved:index" not in fault and "captions" not in fault:
        assert not (out / "index.segsearch").exists()
    p = run("none", *cmd)  # the same command
    assert p.returncode == 0, p.stderr
    assert temp_files(out) == [] and files(out) == FINISHED
    assert_same(snapshot(out), folders["clean"])


#: (fault, temp files the kill leaves, photos the folder shows after the kill): --add writes the new photos as
#: a shard (shards/000001.segsearch), then the manifest that lists it (shards.json: the commit point).
ADD_KILLS = [
    ("kill@stored#2", False, N_BASE),  # encoding the new photos
    ("kill@write:000001.segsearch#3", True, N_BASE),  # during the shard's save
    ("kill@saved:000001.segsearch#1", False, N_BASE),  # shard in place, not in the manifest: ignored
    ("kill@write:shards.json#1", True, N_BASE),  # during the manifest's save
    ("kill@saved:shards.json#1", False, N_PHOTOS),  # committed, before the state records it: not redone
    ("kill@captions#1", True, N_PHOTOS),  # writing the captions
]


@pytest.mark.parametrize(("fault", "leaves_temp", "shown"), ADD_KILLS, ids=[f for f, _, _ in ADD_KILLS])
def test_kill_during_add_keeps_the_index_then_resume_adds(folders, tmp_path, fault, leaves_temp, shown):
    out = tmp_path / "idx"
    shutil.copytree(folders["base"], out)
    before = {n: (out / n).read_bytes() for n in ("index.segsearch", "captions.sqlite")}
    cmd = index_args(folders["grow"], out, folders["captions"], add=True)
    p = run(fault, *cmd)
    assert p.returncode == -signal.SIGKILL, f"the fault point was not reached: rc {p.returncode}\n{p.stderr}"
    state_ok(out)
    assert bool(temp_files(out)) == leaves_temp, temp_files(out)
    # nothing lost: the previous captions and index (never rewritten by --add) are as they were, and searchable
    assert {n: (out / n).read_bytes() for n in before} == before
    from segsearch.library.photo_index import PhotoIndex

    pi = PhotoIndex.open(out)
    assert len(pi) == shown and pi.search(text="blocks", k=3)
    pi.captions.close()
    p = run("none", *cmd)
    assert p.returncode == 0, p.stderr
    assert temp_files(out) == [] and files(out) == FINISHED_ADDED
    assert_same(snapshot(out), folders["added"])


def test_sample_maps_cut_short_are_segmented_again(folders, tmp_path):
    """Sample maps lost after they were committed (the file cut short by another program, or by hand) are
    segmented again into the same rows, so the codebook is the clean run's (before: an error saying to delete
    work/)."""
    out = tmp_path / "idx"
    cmd = index_args(folders["all"], out, folders["captions"])
    assert run("kill@trained#1", *cmd).returncode == -signal.SIGKILL
    sample = out / "work" / "sample.f16"
    size = sample.stat().st_size
    os.truncate(sample, size // 3 + 5)  # a third of the rows left, one of them cut
    p = run("none", *cmd)
    assert p.returncode == 0, p.stderr
    assert_same(snapshot(out), folders["clean"])


def test_a_second_run_on_the_same_folder_is_refused(folders, tmp_path):
    """Two runs writing one folder would overwrite each other's sample maps (and a sample file cut short under
    a reader's memory map is a bus error): the second is refused with one line while the first holds it."""
    import fcntl

    out = tmp_path / "idx"
    (out / "work").mkdir(parents=True)
    fd = os.open(out / "work", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running 'segsearch index' does
        p = run("none", *index_args(folders["all"], out, folders["captions"]))
        assert "another 'segsearch index' is writing" in one_line_error(p)
    finally:
        os.close(fd)
    assert not (out / "work" / "state.sqlite").exists()
    p = run("none", *index_args(folders["all"], out, folders["captions"]))  # lock released: it runs
    assert p.returncode == 0, p.stderr


def test_a_killed_run_leaves_no_lock_behind_in_its_decoders(folders, tmp_path):
    """The photo decoders (forked DataLoader workers) outlive a kill -9 of the run for a few seconds; they must
    not hold the folder's lock, or the same command run right away would be refused."""
    out = tmp_path / "idx"
    cmd = index_args(folders["all"], out, folders["captions"])
    cmd[cmd.index("--workers") + 1] = "1"
    assert run("kill@pwrite-done#1", *cmd, capture=False).returncode == -signal.SIGKILL
    p = run("none", *cmd, capture=False)
    assert p.returncode == 0, "refused: the lock outlived the killed run"
    assert_same(snapshot(out), folders["clean"])


def test_temp_files_of_killed_saves_are_removed_and_nothing_else(folders, tmp_path):
    out = tmp_path / "idx"
    (out / "work").mkdir(parents=True)
    ours = [
        "index.segsearch.abc123.tmp",
        "captions.sqlite.x1y2.tmp",
        "captions.sqlite.x1y2.tmp-journal",
        "photos.sqlite.z3.tmp",
        "photos.sqlite.z3.tmp-journal",
        "work/codebook.segsearch.q9.tmp",
    ]
    theirs = ["notes.tmp", "index.segsearch.bak", "work/other.tmp", "captions.sqlite.tmp.keep"]
    for name in ours + theirs:
        (out / name).write_bytes(b"partial")
    p = run("none", *index_args(folders["all"], out, folders["captions"]))
    assert p.returncode == 0, p.stderr
    assert files(out) == sorted(FINISHED + theirs)


# ------------------------------------------------------------------------------------------------ disk full


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted at tmp_path/disk (unmounted afterwards); skips when that is not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("the disk-full tests mount a tmpfs, which needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip() or p.returncode}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


#: (fault, what the error names): SQLite says "database or disk is full"; a file write names the file.
BUILD_FULL = [
    ("fill@start#1", "disk is full"),
    ("fill@pwrite#3", "sample.f16"),
    ("fill@save:codebook.segsearch#1", "codebook.segsearch"),
    ("fill@stored#2", "disk is full"),
    ("fill@save:index.segsearch#1", "index.segsearch"),
    ("fill@captions#1", "disk is full"),
]


@pytest.mark.parametrize(("fault", "names"), BUILD_FULL, ids=[f for f, _ in BUILD_FULL])
def test_disk_full_during_indexing_one_line_then_resume(folders, small_disk, fault, names):
    out, filler = small_disk / "idx", small_disk / "filler"
    cmd = index_args(folders["all"], out, folders["captions"])
    p = run(fault, *cmd, env={"FAULT_FILLER": str(filler)})
    line = one_line_error(p)
    assert names in line and ("No space left on device" in line or "disk is full" in line), line
    assert "free some space and run the same command again" in line
    assert temp_files(out) == []  # a failed save removes its temp file
    filler.unlink()  # (SQLite needs room to open a database in WAL mode, even to check it)
    if (out / "work" / "state.sqlite").exists():
        state_ok(out, photos=fault != "fill@start#1")
    p = run("none", *cmd)
    assert p.returncode == 0, p.stderr
    assert files(out) == FINISHED
    assert_same(snapshot(out), folders["clean"])


@pytest.mark.parametrize(
    "fault", ["fill@stored#1", "fill@save:000001.segsearch#1", "fill@save:shards.json#1", "fill@captions#1"]
)
def test_disk_full_during_add_loses_nothing_then_resume(folders, small_disk, fault):
    out, filler = small_disk / "idx", small_disk / "filler"
    shutil.copytree(folders["base"], out)
    before = {n: (out / n).read_bytes() for n in ("index.segsearch", "captions.sqlite")}
    cmd = index_args(folders["grow"], out, folders["captions"], add=True)
    p = run(fault, *cmd, env={"FAULT_FILLER": str(filler)})
    line = one_line_error(p)
    assert "No space left on device" in line or "disk is full" in line, line
    assert "free some space and run the same command again" in line
    assert {n: (out / n).read_bytes() for n in before} == before  # --add never rewrites index.segsearch
    assert temp_files(out) == []
    filler.unlink()
    state_ok(out)
    p = run("none", *cmd)
    assert p.returncode == 0, p.stderr
    assert_same(snapshot(out), folders["added"])


if __name__ == "__main__":  # the child: FAULT -- ARGS
    sep = sys.argv.index("--")
    sys.exit(child(sys.argv[1], sys.argv[sep + 1 :]))
