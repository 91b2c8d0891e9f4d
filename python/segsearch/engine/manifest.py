"""An index folder's shard manifest and shard files, read and checked (the folder is untrusted input).

Layout (names in :mod:`segsearch.engine.layout`)::

    INDEX_DIR/index.segsearch          the base: an ordinary index file (codebook, codes, ids, exact maps)
    INDEX_DIR/shards.json              the manifest: the further shards, in insertion order
    INDEX_DIR/shards/000001.segsearch  a shard: codes, ids (and exact maps if kept) of later photos, no codebook

A folder without ``shards.json`` (every folder made before shards existed) is the base alone. A shard file is
the index file format (:mod:`segsearch.engine.storage`) without the codebook arrays: its header names the codebook
it was encoded with by ``codebook_sha256`` (:meth:`Index.codebook_fingerprint`), which must match, so a shard
costs only its photos' bytes however large the codebook is.

The manifest records the base's photo count: once the base has been replaced (by a compaction, or by an older
segsearch rewriting it whole on ``--add``) it holds at least that count plus the shards' photos, the manifest is
stale and readers ignore it, so a crash during a compaction never shows a photo twice (any other count is an
error). A shard the manifest names must be ``shards/NNNNNN.segsearch`` (six digits), resolve (symlinks followed)
to a regular file inside the folder, hold as many photos as the manifest says and the base's codebook, and ids
must be unique over all shards; anything else is an :class:`IndexFormatError` naming the file. Writing is
:mod:`segsearch.library.shards`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import IndexFormatError, ShardMissingError
from . import index_file, storage
from .index import BLOCK_W, Index
from .layout import INDEX_FILE, MANIFEST_FILE, SHARDS_DIR, resolve_inside
from .snapshot import Snapshot

__all__ = [
    "read_manifest",
    "load_shard",
    "shard_expectation",
    "check_unique_ids",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "SHARD_NAME",
    "MAX_SHARD_NUMBER",
]

MANIFEST_FORMAT = "segsearch-shards"
MANIFEST_VERSION = 1
#: A manifest larger than this is refused unread (a million shards' entries take about 50 MB).
MANIFEST_MAX_BYTES = 64 << 20
#: The name of a shard file in ``shards/``.
SHARD_NAME = re.compile(r"[0-9]{6}\.segsearch")
MAX_SHARD_NUMBER = 999_999


def _damaged(path: Path, msg: str) -> IndexFormatError:
    return IndexFormatError(f"{path} is damaged: {msg}")


def read_manifest(d: Path, base: Index) -> list[tuple[str, int, str]]:
    """[(shard file, count, codebook fingerprint)] the manifest lists for this base; [] without a manifest or
    with a stale one (written for a base with another number of photos: replaced since, see the module doc)."""
    path = d / MANIFEST_FILE
    real, why = resolve_inside(d.resolve(), MANIFEST_FILE)
    if real is None:
        raise IndexFormatError(f"{path} is not a shard manifest: {why.replace('photos folder', 'index folder')}")
    try:
        with open(real, "rb") as f:
            blob = f.read(MANIFEST_MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    if len(blob) > MANIFEST_MAX_BYTES:
        raise _damaged(path, f"larger than {MANIFEST_MAX_BYTES} bytes")
    try:
        m = json.loads(blob)
    except (ValueError, RecursionError) as e:
        raise _damaged(path, f"unreadable JSON ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
        raise _damaged(path, f'not a segsearch shard manifest (no "format": "{MANIFEST_FORMAT}")')
    version = m.get("version")
    if type(version) is not int or version < 1:
        raise _damaged(path, f"version {str(version)[:50]!r}; expected an integer >= 1")
    if version > MANIFEST_VERSION:
        raise IndexFormatError(
            f"{path} is a shard manifest of version {version}, newer than this segsearch "
            f"understands ({MANIFEST_VERSION}); upgrade segsearch"
        )
    b, shards = m.get("base"), m.get("shards")
    if not isinstance(b, dict) or type(b.get("count")) is not int or not isinstance(b.get("codebook_sha256"), str):
        raise _damaged(path, '"base" must be an object with an integer "count" and a "codebook_sha256"')
    if not isinstance(shards, list):
        raise _damaged(path, '"shards" must be a list')
    if b["count"] != len(base):
        total = sum(e["count"] for e in shards if isinstance(e, dict) and type(e.get("count")) is int)
        if len(base) >= b["count"] + total:  # the base was replaced after this manifest: its shards are in it
            return []
        raise _damaged(
            path, f"it was written for an {INDEX_FILE} of {b['count']} photos, but {d / INDEX_FILE} holds {len(base)}"
        )
    fp = base.codebook_fingerprint()
    if b["codebook_sha256"] != fp:
        raise _damaged(path, f"it was written for another codebook than {d / INDEX_FILE}'s")
    out, seen = [], set()
    for i, e in enumerate(shards):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or type(e.get("count")) is not int:
            raise _damaged(path, f'shard entry {i} must be an object with a "file" and an integer "count"')
        rel, count = e["file"], e["count"]
        head, _, name = rel.partition("/")
        if head != SHARDS_DIR or not SHARD_NAME.fullmatch(name):
            raise _damaged(
                path,
                f"shard entry {i} names {rel[:100]!r}; shard files are "
                f"{SHARDS_DIR}/NNNNNN.segsearch (six digits) inside the index folder",
            )
        if rel in seen:
            raise _damaged(path, f"it lists {rel} twice")
        if count < 1:
            raise _damaged(path, f"shard entry {i} ({rel}) has count {count}; expected >= 1")
        seen.add(rel)
        out.append((rel, count, fp))
    return out


def shard_expectation(base: Index) -> tuple:
    """What every shard's header must repeat of the base: (num_classes, size, K, class names, keep_exact, ranking);
    picklable, so a process that opens shards without the base (a Ray actor) can check them."""
    return (base.num_classes, base.size, base.n_centroids, base.class_names, base.keep_exact, base.ranking.to_json())


def load_shard(d: Path, rel: str, count: int, base, fp: str, *, mmap: bool = True, verify: bool = True):
    """(the shard's photos as a :class:`~segsearch.engine.snapshot.Snapshot`, its path), checked against the base
    (an Index, or its :func:`shard_expectation`) and the manifest."""
    manifest = d / MANIFEST_FILE
    real, why = resolve_inside(d.resolve(), rel)
    if real is None:
        raise IndexFormatError(
            f"{manifest} lists the shard {rel}, which is refused: {why.replace('photos folder', 'index folder')}"
        )
    if not real.exists():
        raise ShardMissingError(
            f"{manifest} lists the shard {rel}, which is missing; restore it (the folder is "
            "incomplete without it) or delete the manifest to search the base index alone"
        )
    header, arr = storage.load(real, mmap=mmap, verify=verify)
    path = d / rel
    if header.get("codebook_sha256") != fp:
        raise IndexFormatError(
            f"{path} is not a shard of this index: it was not encoded with the codebook of {d / INDEX_FILE}"
        )
    f = index_file.check_index(path, header, arr, verify=verify, block_w=BLOCK_W, shard=True)
    mine = base if isinstance(base, tuple) else shard_expectation(base)
    theirs = (f["num_classes"], f["size"], f["n_centroids"], f["class_names"], f["keep_exact"], f["ranking"].to_json())
    if mine != theirs:
        raise IndexFormatError(
            f"{path} does not match {d / INDEX_FILE} (classes, map size, K, keep_exact or ranking differ)"
        )
    if f["count"] != count:
        raise IndexFormatError(f"{path} holds {f['count']} photos but {manifest} says {count}")
    if f["ids"] is None:
        raise IndexFormatError(f"{path} is damaged: a shard's ids must be stored (ids_kind 'int64' or 'str')")
    st = Snapshot.from_file(f, arr)
    return st, path


def check_unique_ids(shards: list[Snapshot], manifest: Path) -> None:
    """IndexFormatError if an id is in more than one of ``shards`` (each shard's own are unique, checked as it was
    loaded) or the shards mix string and integer ids."""
    kinds = {isinstance(st.ids, list) for st in shards if st.n}
    if len(kinds) > 1:
        raise IndexFormatError(f"{manifest}: its shards mix string and integer ids")
    if kinds == {True}:  # lists of str (each shard's unique already): no fixed-width copy of them all
        seen: set = set()
        for st in shards:
            dup = next((i for i in st.ids if i in seen), None) if seen else None
            if dup is not None:
                raise IndexFormatError(
                    f"{manifest}: the id {dup[:100]!r} is in more than one shard; ids must be unique"
                )
            seen.update(st.ids)
        return
    s = np.sort(np.concatenate([st.all_ids() for st in shards]).astype(np.int64))
    rep = s[1:][s[1:] == s[:-1]]
    if rep.size:
        raise IndexFormatError(f"{manifest}: the id {int(rep[0])} is in more than one shard; ids must be unique")
