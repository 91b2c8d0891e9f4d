"""Writing an index folder's shards: :func:`add_shard` (``segsearch index --add``), :func:`compact`.

Each write runs under the folder's lock (:mod:`segsearch.library.lock`, the one ``segsearch index`` takes):

* :func:`add_shard` writes ``shards/NNNNNN.segsearch`` (a new number, temp file + rename), then the manifest
  listing it (temp file + rename). The manifest's rename is the commit point: a crash before it leaves an
  orphan shard file that readers never open and the next writer deletes.
* :func:`compact` writes the union as a new ``index.segsearch`` (temp file + rename: the commit point), then
  deletes the manifest and the shards; a manifest left behind is stale (see :mod:`segsearch.engine.manifest`),
  so a crash between the steps never shows a photo twice. ``compact(max_photos=N)`` keeps the base and
  merges consecutive shards into shards of at most N photos: written under new numbers, then the manifest
  listing them in the old ones' place (the commit point), then the old shards deleted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..engine import index_file, storage
from ..engine.checks import check_folder, check_optional_count
from ..engine.index import Index, merged
from ..engine.layout import INDEX_FILE, MANIFEST_FILE, SHARDS_DIR
from ..engine.manifest import MANIFEST_FORMAT, MANIFEST_VERSION, MAX_SHARD_NUMBER, SHARD_NAME, load_shard, read_manifest
from ..engine.sharded import ShardedIndex, open_folder
from ..errors import IndexFormatError
from .lock import folder_lock

__all__ = ["add_shard", "add_shard_locked", "compact", "last_written_ids", "remove_unlisted"]


def add_shard(index_dir, part: Index) -> Path:
    """Append the photos of ``part`` to the index folder as a new shard; returns its path.

    ``part`` must use the folder's codebook (build it with :func:`empty_like` of the folder's base index, then
    ``add`` / ``add_codes``), with ids that are not in the folder yet (positional ids continue after the largest
    integer id). Nothing else in the folder is rewritten; the manifest's rename commits the shard."""
    d = check_folder(index_dir)
    with folder_lock(d):
        return add_shard_locked(d, part)


def add_shard_locked(d: Path, part: Index, *, ids_are_new: bool = False, base: Index | None = None) -> Path:
    """:func:`add_shard` for a writer that holds the folder's lock (``segsearch index --add``). ``ids_are_new``:
    the caller knows that ``part``'s ids (strings) are not in the folder (the indexer's state database does), so
    only the base's header and codebook and the manifest are read, not every shard; ``base``: the folder's
    ``index.segsearch`` as the caller loaded it under the lock (not read and hashed again)."""
    remove_unlisted(d, base)
    if ids_are_new:
        if not part.string_ids:
            raise ValueError("ids_are_new needs string ids")
        current = base = base if base is not None else Index.load(d / INDEX_FILE, mmap=True, verify=False)
        if len(base) and not base.string_ids:
            raise ValueError("this index folder uses integer ids; give the new photos integer ids too")
    else:
        current = open_folder(d, mmap=True)
        base = current.base if isinstance(current, ShardedIndex) else current
    if not len(part):
        raise ValueError("the new shard has no photos")
    fp = base.codebook_fingerprint()
    if part.codebook_fingerprint() != fp:
        raise ValueError(
            "the new shard's photos were not encoded with this folder's codebook: make the index "
            "with segsearch.engine.index.empty_like(the folder's index)"
        )
    if (part.keep_exact, part.ranking.to_json(), part.class_names) != (
        base.keep_exact,
        base.ranking.to_json(),
        base.class_names,
    ):
        raise ValueError("the new shard differs from the folder's index in keep_exact, ranking or class names")
    st = part.snapshot
    ids = st.ids
    string_ids = current.string_ids or base.string_ids
    if ids is None:
        if string_ids:
            raise ValueError("this index folder uses string ids: give the new photos ids")
        have = current.ids
        ids = np.arange(st.n, dtype=np.int64) + (int(have.max()) + 1 if len(have) else 0)
    elif isinstance(ids, list) != string_ids and len(current):
        kind = "string" if string_ids else "integer"
        raise ValueError(f"this index folder uses {kind} ids; give the new photos {kind} ids too")
    ids = ids if isinstance(ids, list) else ids[: st.n]
    dup = (
        None
        if ids_are_new
        else next((i for i in (ids if isinstance(ids, list) else ids.tolist()) if i in current), None)
    )
    if dup is not None:
        raise ValueError(f"id {dup!r} is already in the index folder; ids must be unique")
    listed = [(rel, count) for rel, count, _ in read_manifest(d, base)]
    number = max([int(rel[len(SHARDS_DIR) + 1 : -len(".segsearch")]) for rel, _ in listed], default=0) + 1
    if number > MAX_SHARD_NUMBER:
        raise ValueError(f"{d} has shard number {MAX_SHARD_NUMBER}: run 'segsearch compact {d}' first")
    rel = f"{SHARDS_DIR}/{number:06d}.segsearch"
    (d / SHARDS_DIR).mkdir(exist_ok=True)
    storage.save(d / rel, *index_file.index_file_contents(part, st, ids=ids, shard_of=fp))
    _write_manifest(d, base, fp, listed + [(rel, st.n)])
    return d / rel


def _write_manifest(d: Path, base: Index, fp: str, shards: list[tuple[str, int]]) -> None:
    m = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "base": {"count": len(base), "codebook_sha256": fp},
        "shards": [{"file": rel, "count": count} for rel, count in shards],
    }
    with storage.atomic_write(d / MANIFEST_FILE) as f:
        f.write(json.dumps(m, indent=1).encode() + b"\n")


def last_written_ids(d: Path, base: Index | None = None) -> set:
    """The ids of the folder's last written file: the last shard its manifest lists, else ``index.segsearch``
    (what a writer killed between its write and its own bookkeeping may have added). For writers holding the
    folder's lock; ``base`` as in :func:`add_shard_locked`."""
    base = base if base is not None else Index.load(d / INDEX_FILE, mmap=True, verify=False)
    listed = read_manifest(d, base)
    if not listed:
        st = base.snapshot
    else:
        rel, count, fp = listed[-1]
        st, _ = load_shard(d, rel, count, base, fp)
    return set(st.all_ids().tolist())


def remove_unlisted(d: Path, base: Index | None = None) -> list[str]:
    """Delete what no reader uses: shard files the manifest does not list (a writer killed before its commit,
    or the shards of a compaction killed before it deleted them), a stale manifest, and temp files of killed
    saves in ``shards/``. Only our own names are touched. For writers holding the folder's lock; returns the
    names deleted; ``base`` as in :func:`add_shard_locked`."""
    removed: list[str] = []
    if not (d / INDEX_FILE).is_file():
        return removed  # shards mean nothing without their base: leave everything as it is
    base = base if base is not None else Index.load(d / INDEX_FILE, mmap=True, verify=False)
    try:
        listed = {rel for rel, _, _ in read_manifest(d, base)}
    except IndexFormatError:
        return removed  # a damaged manifest: leave everything for the user to look at
    mpath = d / MANIFEST_FILE
    if not listed and mpath.is_file() and not mpath.is_symlink():
        mpath.unlink()
        removed.append(MANIFEST_FILE)
    for p in sorted(d.glob(MANIFEST_FILE + ".*.tmp")):
        if p.is_file() and not p.is_symlink():
            p.unlink()
            removed.append(p.name)
    sd = d / SHARDS_DIR
    if sd.is_dir() and not sd.is_symlink():
        for p in sorted(sd.iterdir()):
            rel = f"{SHARDS_DIR}/{p.name}"
            ours = SHARD_NAME.fullmatch(p.name) or (
                p.name.endswith(".tmp") and SHARD_NAME.fullmatch(p.name.split(".segsearch.")[0] + ".segsearch")
            )
            if ours and rel not in listed and p.is_file() and not p.is_symlink():
                p.unlink()
                removed.append(rel)
        if not listed and not any(sd.iterdir()):
            sd.rmdir()
    return removed


def _runs(counts: list[int], max_photos: int) -> list[list[int]]:
    """Consecutive shards grouped greedily into runs of at most ``max_photos`` photos (a larger shard alone)."""
    runs: list[list[int]] = []
    total = 0
    for i, n in enumerate(counts):
        if runs and total + n <= max_photos:
            runs[-1].append(i)
            total += n
        else:
            runs.append([i])
            total = n
    return runs


def compact(index_dir, *, max_photos: int | None = None) -> int:
    """Merge the index folder's shards; returns the number of shard files merged away (0: nothing to do).
    Searches give the same ids and distances before and after.

    By default everything goes into the base ``index.segsearch`` (see the module doc for why a crash at any
    point leaves a folder that opens with every photo once). With ``max_photos``, the base stays and only
    consecutive shards are merged, into shards of at most that many photos (a larger shard stays as it is): the
    folder keeps shards to spread over machines (:mod:`segsearch.distributed.search`). The merged shards are written
    first, under new numbers, then the manifest listing them in the others' place (the commit point); the
    shards they replace are then deleted (a crash before that leaves them unlisted, deleted by the next writer)."""
    max_photos = check_optional_count(max_photos, "max_photos")
    d = check_folder(index_dir)
    with folder_lock(d):
        remove_unlisted(d)
        current = open_folder(d, mmap=True)
        if not isinstance(current, ShardedIndex):
            return 0
        if max_photos is None:
            merged(current.base, current.shards).save(d / INDEX_FILE)  # the commit point: the manifest is stale
            remove_unlisted(d)
            return len(current.shards) - 1
        listed = [(rel, count) for rel, count, _ in read_manifest(d, current.base)]
        runs = _runs([count for _, count in listed], max_photos)
        if len(runs) == len(listed):
            return 0
        fp = current.base.codebook_fingerprint()
        number = max(int(rel[len(SHARDS_DIR) + 1 : -len(".segsearch")]) for rel, _ in listed)
        if number + len(runs) > MAX_SHARD_NUMBER:
            raise ValueError(
                f"{d} has shard numbers up to {number}: run 'segsearch compact {d}' (without --max-photos) first"
            )
        out = []
        for run in runs:
            if len(run) == 1:
                out.append(listed[run[0]])
                continue
            part = merged(current.base, [current.shards[i + 1] for i in run])
            number += 1
            rel = f"{SHARDS_DIR}/{number:06d}.segsearch"
            storage.save(d / rel, *index_file.index_file_contents(part, part.snapshot, shard_of=fp))
            out.append((rel, len(part)))
        _write_manifest(d, current.base, fp, out)  # the commit point
        remove_unlisted(d)
        return len(listed) - len(out)
