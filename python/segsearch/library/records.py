"""What an indexing run keeps of each photo once it is encoded (the ``codes`` column of the build state): its C
codes, followed, when the folder keeps exact maps, by those maps (:func:`~segsearch.engine.exact_maps.photo_bytes`).
The same bytes come from this process or from a Ray actor."""

from __future__ import annotations

import numpy as np

from ..engine.exact_maps import BlockMaps, from_photo_bytes, photo_bytes

__all__ = ["encode_records", "read_records"]


def encode_records(index, maps, *, device=None) -> list[bytes]:
    """Each photo's record: its codes under ``index``'s codebook, and its exact maps if ``index`` keeps them."""
    codes = index.encode(maps, device=device)
    if not index.keep_exact:
        return [c.tobytes() for c in codes]
    exact = index.exact_maps(maps)
    return [codes[i].tobytes() + photo_bytes(exact, i) for i in range(len(codes))]


def read_records(records: list[bytes], index) -> tuple[np.ndarray, BlockMaps | None]:
    """(codes uint8 (N, C), exact maps or None) of records made for ``index`` (checked: ValueError if damaged)."""
    C = index.num_classes
    if any(len(r) < C or (not index.keep_exact and len(r) != C) for r in records):
        raise ValueError(f"damaged build state: a photo's record is not {C} codes (and its exact maps)")
    codes = np.array([np.frombuffer(r, np.uint8, C) for r in records], np.uint8).reshape(len(records), C)
    exact = from_photo_bytes([r[C:] for r in records], C, index.dim) if index.keep_exact else None
    return codes, exact
