"""Each photo's maps kept exactly, in a compact form: block maps.

A photo's maps are stored as bytes (value v meaning v / 255, as the codebook's), each class's map cut into blocks
of :data:`BLOCK` values (the last one padded with zeros), and only the blocks holding a nonzero value kept: a
photo's maps are zero outside the few classes it shows and the places it shows them, so a photo takes a few
tens of kB instead of C * n * n bytes. Three arrays hold the photos of an index::

    ptr     int64 (N + 1,)     photo i's blocks are ptr[i] .. ptr[i + 1]
    index   uint32 (M,)        class * nb + block, increasing within a photo (nb = ceil(n * n / BLOCK))
    blocks  uint8 (M, BLOCK)   the blocks' values

The core (``_core.search_blocks``, ``_core.rerank_blocks``) computes exact distances from them: an exact search
reads every photo's blocks, a re-rank those of each query's candidates; a photo's distance is the same either way.
"""

from __future__ import annotations

import numpy as np

from .snapshot import grow_rows

#: Values per block (the core's kMapBlock).
BLOCK = 64
#: Photos converted at a time (bounds the memory of the dense bytes).
_CHUNK = 64


def blocks_per_map(dim: int) -> int:
    """nb: the blocks of one class map of ``dim`` = n * n values."""
    return -(-dim // BLOCK)


def to_blocks(maps_u8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blocks per photo int64 (N,), index uint32 (M,), blocks uint8 (M, BLOCK)) of uint8 maps (N, C, D), possibly
    memory-mapped (read ``_CHUNK`` photos at a time)."""
    N, C, D = maps_u8.shape
    nb = blocks_per_map(D)
    if C * nb > np.iinfo(np.uint32).max:
        raise ValueError(f"{C} classes of {D} values are too many blocks for a uint32 index")
    counts, index, blocks = [], [], []
    for s in range(0, N, _CHUNK):
        part = np.asarray(maps_u8[s : s + _CHUNK], np.uint8)
        if nb * BLOCK != D:
            part = np.concatenate([part, np.zeros(part.shape[:2] + (nb * BLOCK - D,), np.uint8)], axis=2)
        cut = part.reshape(len(part), C * nb, BLOCK)
        photo, blk = np.nonzero(cut.any(axis=2))
        counts.append(np.bincount(photo, minlength=len(part)).astype(np.int64))
        index.append(blk.astype(np.uint32))
        blocks.append(cut[photo, blk])
    if not counts:
        return np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros((0, BLOCK), np.uint8)
    return np.concatenate(counts), np.concatenate(index), np.concatenate(blocks)


class BlockMaps:
    """The block maps of n photos (see the module docstring). The arrays may extend past what the n photos use:
    a later :meth:`appended` writes there in place, where no reader of this object looks. Never changed once made."""

    __slots__ = ("ptr", "index", "blocks", "n")

    def __init__(self, ptr: np.ndarray, index: np.ndarray, blocks: np.ndarray, n: int):
        self.ptr, self.index, self.blocks, self.n = ptr, index, blocks, n

    @classmethod
    def empty(cls) -> BlockMaps:
        return cls(np.zeros(1, np.int64), np.zeros(0, np.uint32), np.zeros((0, BLOCK), np.uint8), 0)

    @classmethod
    def from_maps(cls, maps_u8) -> BlockMaps:
        """The block maps of uint8 maps (N, C, D)."""
        return cls.empty().appended(*to_blocks(maps_u8))

    @property
    def n_blocks(self) -> int:
        return int(self.ptr[self.n])

    @property
    def nbytes(self) -> int:
        """Bytes the n photos' maps take (offsets, index and blocks)."""
        return 8 * (self.n + 1) + self.n_blocks * (4 + BLOCK)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ptr, index, blocks) of the n photos, as an index file stores them and the core reads them."""
        m = self.n_blocks
        return self.ptr[: self.n + 1], self.index[:m], self.blocks[:m]

    def appended(self, counts: np.ndarray, index: np.ndarray, blocks: np.ndarray) -> BlockMaps:
        """These photos followed by photos with ``counts`` blocks each (their ``index`` and ``blocks`` in order)."""
        m = self.n_blocks
        ptr = grow_rows(self.ptr, self.n + 1, m + np.cumsum(counts, dtype=np.int64))
        return BlockMaps(ptr, grow_rows(self.index, m, index), grow_rows(self.blocks, m, blocks), self.n + len(counts))

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(counts, index, blocks) of the n photos, for :meth:`appended`."""
        ptr, index, blocks = self.arrays()
        return np.diff(ptr), index, blocks

    def dense(self, i: int, num_classes: int, dim: int) -> np.ndarray:
        """Photo i's maps as uint8 (C, D)."""
        nb = blocks_per_map(dim)
        out = np.zeros((num_classes * nb, BLOCK), np.uint8)
        a, b = int(self.ptr[i]), int(self.ptr[i + 1])
        out[self.index[a:b].astype(np.int64)] = self.blocks[a:b]
        return out.reshape(num_classes, nb * BLOCK)[:, :dim]

    def cell_sums(self, positions, c: int, dim: int, cells: np.ndarray) -> np.ndarray:
        """float64 (P, cells.max() + 1): per photo at ``positions`` the sums of its class-``c`` map (values v / 255)
        over the cells ``cells`` (int64 (dim,): each pixel's cell), read from class c's blocks alone."""
        nb = blocks_per_map(dim)
        n_cells = int(cells.max()) + 1
        padded = np.zeros(nb * BLOCK, np.int64)  # padding values are 0: any cell
        padded[:dim] = cells
        pos = np.asarray(positions, np.int64).reshape(-1)
        out = np.zeros((len(pos), n_cells))
        for s in range(0, len(pos), 4096):
            part = pos[s : s + 4096]
            a, counts = self.ptr[part], self.ptr[part + 1] - self.ptr[part]
            total = int(counts.sum())
            owner = np.repeat(np.arange(len(part)), counts)
            rows = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(a, counts)
            idx = self.index[rows].astype(np.int64)
            keep = idx // nb == c
            rows, owner, blk = rows[keep], owner[keep], idx[keep] % nb
            cid = padded[blk[:, None] * BLOCK + np.arange(BLOCK)[None, :]]
            flat = (owner[:, None] * n_cells + cid).reshape(-1)
            vals = np.asarray(self.blocks[rows], np.float64).reshape(-1)
            out[s : s + len(part)] = np.bincount(flat, weights=vals, minlength=len(part) * n_cells).reshape(
                len(part), n_cells
            )
        return out / 255.0


def check_block_arrays(ptr, index, blocks, *, n: int, num_classes: int, dim: int) -> str | None:
    """What is wrong with block map arrays of n photos (None if nothing): offsets from 0 up to M, never
    decreasing; each photo's index increasing and < C * nb; the padding after ``dim`` in each class's last block
    zero. Reads every array once."""
    if ptr.shape != (n + 1,) or blocks.shape != (len(index), BLOCK):
        return f"block map arrays have shapes {ptr.shape}, {index.shape}, {blocks.shape} for {n} photos"
    if ptr[0] != 0 or ptr[n] != len(index) or (n and (np.diff(ptr) < 0).any()):
        return "exact_ptr must start at 0, never decrease and end at the number of blocks"
    nb = blocks_per_map(dim)
    idx = np.asarray(index, np.int64)
    if len(idx) and idx.max() >= num_classes * nb:
        return f"exact_index holds {int(idx.max())}; blocks of {num_classes} classes are < {num_classes * nb}"
    if len(idx) > 1:
        step = np.diff(idx)
        inner = np.asarray(ptr[1:-1], np.int64)  # where photos 1..n-1 start
        starts = np.zeros(len(idx), bool)
        starts[inner[inner < len(idx)]] = True
        if ((step <= 0) & ~starts[1:]).any():
            return "exact_index must increase within each photo"
    pad = nb * BLOCK - dim
    if pad:
        last = idx % nb == nb - 1
        if last.any() and np.asarray(blocks[last])[:, BLOCK - pad :].any():
            return "exact_blocks hold values past the end of a map (the padding must be zero)"
    return None


def photo_bytes(bm: BlockMaps, i: int) -> bytes:
    """Photo i's exact maps as bytes, as an indexing run keeps them per photo: the number of blocks m (uint32,
    little-endian), their m index entries (uint32) and their m * BLOCK values."""
    a, b = int(bm.ptr[i]), int(bm.ptr[i + 1])
    idx = np.ascontiguousarray(bm.index[a:b], "<u4")
    return np.uint32(b - a).astype("<u4").tobytes() + idx.tobytes() + np.ascontiguousarray(bm.blocks[a:b]).tobytes()


def from_photo_bytes(blobs: list[bytes], num_classes: int, dim: int) -> BlockMaps:
    """The block maps of photos kept as :func:`photo_bytes` (checked: ValueError saying what is wrong)."""
    counts, index, blocks = [], [], []
    for j, blob in enumerate(blobs):
        m = int(np.frombuffer(blob[:4], "<u4")[0]) if len(blob) >= 4 else -1
        if m < 0 or len(blob) != 4 + m * (4 + BLOCK):
            raise ValueError(f"photo {j}'s exact maps are {len(blob)} bytes, not a block count and its blocks")
        counts.append(m)
        index.append(np.frombuffer(blob, "<u4", m, 4).astype(np.uint32))
        blocks.append(np.frombuffer(blob, np.uint8, m * BLOCK, 4 + 4 * m).reshape(m, BLOCK))
    if not blobs:
        return BlockMaps.empty()
    out = BlockMaps.empty().appended(np.array(counts, np.int64), np.concatenate(index), np.concatenate(blocks))
    bad = check_block_arrays(*out.arrays(), n=out.n, num_classes=num_classes, dim=dim)
    if bad:
        raise ValueError(f"damaged exact maps: {bad}")
    return out
