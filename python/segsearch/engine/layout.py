"""The files of an index folder, named in one place for the writer (:mod:`segsearch.library.build`) and the readers
(:mod:`segsearch.library.photo_index`, the CLI, the sketch tool)::

    INDEX_DIR/index.segsearch          the index: codebook, codes, ids (photo paths relative to the photos folder);
                                       with shards, the base shard: the codebook and the first photos
    INDEX_DIR/shards.json              optional: the manifest of the further shards, in order (engine.manifest)
    INDEX_DIR/shards/NNNNNN.segsearch  the shards it lists: codes and ids of the photos added later, no codebook
    INDEX_DIR/captions.sqlite          optional: the photos' captions
    INDEX_DIR/photos.sqlite            the photos' date, camera and folder, for search filters (library.metadata);
                                       missing in older folders: 'segsearch metadata INDEX_DIR' adds it
    INDEX_DIR/work/state.sqlite        indexing progress and each photo's codes (kept for resume and --add)
    INDEX_DIR/work/sample.f16          while indexing: float16 maps of the codebook's training sample
    INDEX_DIR/work/codebook.segsearch  while indexing: the trained codebook (an index of no photos)

Once indexing finishes only ``index.segsearch``, ``captions.sqlite``, ``photos.sqlite`` and the small
``work/state.sqlite`` stay, and after ``--add`` the manifest and its shards (``segsearch compact`` merges them
into ``index.segsearch``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

INDEX_FILE = "index.segsearch"
CAPTIONS_FILE = "captions.sqlite"
METADATA_FILE = "photos.sqlite"
WORK_DIR = "work"
STATE_FILE = "state.sqlite"
SAMPLE_FILE = "sample.f16"
CODEBOOK_FILE = "codebook.segsearch"
MANIFEST_FILE = "shards.json"
SHARDS_DIR = "shards"
#: Metadata keys an index made by ``segsearch index`` carries.
META_NETWORK, META_NETWORK_SHA256, META_PHOTOS_DIR, META_SIZE = "network", "network_sha256", "photos_dir", "size"


def resolve_inside(root: Path, rel) -> tuple[Path | None, str | None]:
    """(real path, None) when ``root / rel``, symlinks followed, is a regular file inside ``root`` (already
    resolved) or does not exist; else (None, why not). Nothing is opened: a FIFO, device, folder or a path
    leading out of ``root`` is refused from its metadata alone."""
    try:
        real = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a name too long
        return None, f"cannot be resolved ({e})"
    if real != root and root not in real.parents:
        return None, f"resolves outside the photos folder {root}"
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        return real, None
    except OSError as e:
        return None, f"cannot be examined ({e.strerror or e})"
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a file"
        )
        return None, f"not a regular file ({kind})"
    return real, None
