"""The photos of a photos folder: image files found recursively, never followed out of the folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..engine.layout import resolve_inside

__all__ = ["IMAGE_EXTENSIONS", "find_photos", "scan_photos"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


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
