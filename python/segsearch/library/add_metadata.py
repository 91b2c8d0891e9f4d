"""``segsearch metadata INDEX_DIR``: give a finished index folder the photo metadata it lacks (a folder indexed
before ``photos.sqlite`` existed, or one whose file was deleted), without indexing anything again."""

from __future__ import annotations

from collections.abc import Callable

from ..engine.layout import METADATA_FILE
from .lock import folder_lock
from .metadata import MetadataReport, fill_metadata
from .photo_index import PhotoIndex

__all__ = ["add_metadata"]


def add_metadata(index_dir, *, photos_dir=None, log: Callable[[str], None] = print) -> MetadataReport:
    """Add to ``index_dir``'s ``photos.sqlite`` the date, camera and folder of every indexed photo it lacks
    (:func:`~segsearch.library.metadata.fill_metadata`), reading the photos in ``photos_dir`` (default: the
    folder recorded at indexing time). Photos are read only inside that folder (:meth:`PhotoIndex.locate`); the
    folder's lock is held meanwhile, as an indexing run holds it."""
    pi = PhotoIndex.open(index_dir, photos_dir=photos_dir)
    if pi.photos_root is None:
        raise ValueError(f"cannot read the photos: {pi.photos_root_note}; give it with --photos DIR")
    with folder_lock(pi.index_dir):
        return fill_metadata(pi.index_dir / METADATA_FILE, pi.index.ids.tolist(), pi.locate, log)
