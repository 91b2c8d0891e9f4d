"""Type stubs for the C++ core (``segsearch._core``)."""

import enum
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def simd_level() -> str:
    """The SIMD level in use: 'scalar', 'avx2' or 'avx512'."""

def supported_simd_levels() -> list[str]:
    """SIMD levels compiled in and supported by this CPU, lowest first."""

def set_simd_level(level: str) -> None:
    """Force a SIMD level; ValueError if unknown or unsupported here."""

def default_threads() -> int:
    """Threads used when none are given: OpenMP's maximum, at most :func:`max_threads`."""

def max_threads() -> int:
    """The most threads a call uses: the CPUs this process may run on (OpenMP's omp_get_num_procs). Every
    ``threads`` argument above it is clamped to it (more threads cannot help); a negative one is a ValueError."""

def code_counts(codes: npt.NDArray[np.uint8], threads: int = 0) -> npt.NDArray[np.int64]:
    """How many times each value 0..255 occurs in each row of codes (C, N) (rows contiguous): int64 (C, 256)."""

def float16_to_float32(bits: npt.NDArray[np.uint16], threads: int = 0) -> npt.NDArray[np.float32]:
    """float32 values (same shape) of float16 numbers given by their bits (``a.view(np.uint16)``), exactly as
    ``astype(np.float32)`` gives them, and faster on subnormal values."""

def upsample_softmax_pool(
    logits: npt.NDArray[np.float32], H: int, W: int, size: int, threads: int = 0
) -> npt.NDArray[np.float32]:
    """Softmax maps float32 (B, C, size, size) of logits (B, h, w, C) (classes last) upsampled bilinearly to H x W
    (``align_corners=True``), each upsampled pixel's softmax over the classes area-averaged as
    ``adaptive_avg_pool2d`` does, without storing the upsampled logits."""

class QueryKind(enum.IntEnum):
    """The three query kinds, as the core numbers them (functions taking ``kind`` accept these or their integers
    0, 1, 2)."""

    image = 0
    sketch = 1
    image_and_sketch = 2

class Codebook:
    """A PQ codebook bound once for the core: its arrays checked and kept, then passed to :func:`build_lut` /
    :func:`build_luts` without being checked again.

    codebook: position-major (C, D, K), float32 or uint8 (value v means v / 255); norms: the squared centroid
    norms (C, K) float32; block_sums (optional, (C, n * ceil(n / block_w), K); float32, or uint16 for a uint8
    codebook): the codebook summed over runs of block_w pixels of a row.
    """

    def __init__(
        self,
        codebook: npt.NDArray[np.float32] | npt.NDArray[np.uint8],
        norms: npt.NDArray[np.float32],
        block_sums: npt.NDArray[np.float32] | npt.NDArray[np.uint16] | None = None,
        block_w: int = 16,
    ) -> None: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def n_centroids(self) -> int: ...
    @property
    def compact(self) -> bool:
        """Whether the values are bytes (v / 255)."""

def build_lut(
    codebook: Codebook,
    kind: int,
    probs: npt.NDArray[np.float32] | None,
    labels: npt.NDArray[np.int32] | None,
    eps: float,
    threads: int = 0,
    class_weights: npt.NDArray[np.float32] | None = None,
    photo_weight: float = 1.0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
    """LUT (C, K) of one query against a bound :class:`Codebook`, and the classes it sums.

    kind: 0 image, 1 sketch, 2 image + sketch; probs: (C, D) for kinds 0 and 2; labels: (D,) for kinds 1 and 2
    (-1 = unspecified); eps: query pixels with p <= eps are left out of image LUTs (0 = exact); threads: 0 = the
    default, more than :func:`max_threads` are clamped to it; class_weights (C,), > 0, optional: the query
    photo's maps are reweighted per pixel, w_c p_c / sum_c' w_c' p_c' (the index's class-prior correction);
    photo_weight w in (0, 1]: LUT[c, k] = w ||a_ck - q_c / w||^2 = ||q_c||^2 / w - 2 q_c.a_ck + w ||a_ck||^2 (1: the
    squared L2 distance; the ranking is that of ||q_c||^2 - 2 q_c.a + w ||a||^2).
    """

def build_luts(
    codebook: Codebook,
    kinds: Sequence[int],
    probs: Sequence[npt.NDArray[np.float32] | None],
    labels: Sequence[npt.NDArray[np.int32] | None],
    eps: float,
    threads: int = 0,
    class_weights: npt.NDArray[np.float32] | None = None,
    photo_weight: float = 1.0,
) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[np.int32]]]:
    """The LUTs (nq, C, K) of a batch of queries against a bound :class:`Codebook` (each as :func:`build_lut`)
    and, per query, the classes it sums: the plan every PQ search then scans with :func:`scan_pq`, once per part
    of the index."""

def scan_pq(
    codes: npt.NDArray[np.uint8],
    defaults: npt.NDArray[np.uint8],
    luts: npt.NDArray[np.float32],
    classes: Sequence[npt.NDArray[np.int32]],
    k: int,
    mask: npt.NDArray[np.uint8] | None = None,
    ids: npt.NDArray[np.int64] | None = None,
    threads: int = 0,
    dense: npt.NDArray[np.uint8] | None = None,
    quantized: bool | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Top-k ADC scan of codes (C, N) (rows contiguous) for LUTs (nq, C, K).

    Returns positions (nq, k), distances (nq, k) ascending, and per query the number of entries filled.
    mask: (N,) nonzero = candidate; ids: candidate positions (sorted, unique); threads: 0 = default, more
    than :func:`max_threads` are clamped to it. quantized: sum byte-quantized tables first and re-rank the
    images that can still make the top-k with the float sums (identical results, speed only); True / False
    force it on / off, None = ``SEGSEARCH_QUANTIZED_SCAN=0|1`` if set, else automatic.
    """

def quantized_scan_stats() -> tuple[int, int, int]:
    """Since the module was loaded: (queries :func:`scan_pq` scanned with the quantized scan, images it re-ranked
    with float sums, blocks of 2,048 it summed in float instead, having too many candidates). A diagnostic for
    tests and benchmarks."""

def search_blocks(
    ptr: npt.NDArray[np.int64],
    index: npt.NDArray[np.uint32],
    blocks: npt.NDArray[np.uint8],
    num_classes: int,
    dim: int,
    kinds: Sequence[int],
    probs: Sequence[npt.NDArray[np.float32] | None],
    labels: Sequence[npt.NDArray[np.int32] | None],
    k: int,
    mask: npt.NDArray[np.uint8] | None = None,
    ids: npt.NDArray[np.int64] | None = None,
    threads: int = 0,
    class_weights: npt.NDArray[np.float32] | None = None,
    photo_weight: float = 1.0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Exact top-k over block maps (see :mod:`segsearch.engine.exact_maps`): ptr (N + 1,), index (M,) = class * nb +
    block, blocks (M, 64) read as value/255. threads: 0 = default, more than :func:`max_threads` are clamped to it.
    class_weights, photo_weight: as in :func:`build_lut`. Out-of-range offsets or index entries: ValueError."""

def rerank_blocks(
    ptr: npt.NDArray[np.int64],
    index: npt.NDArray[np.uint32],
    blocks: npt.NDArray[np.uint8],
    num_classes: int,
    dim: int,
    kinds: Sequence[int],
    probs: Sequence[npt.NDArray[np.float32] | None],
    labels: Sequence[npt.NDArray[np.int32] | None],
    candidates: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    k: int,
    threads: int = 0,
    class_weights: npt.NDArray[np.float32] | None = None,
    photo_weight: float = 1.0,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Per query the k nearest of its candidates (row q of (nq, R), its first counts[q]: distinct positions < N),
    by the distance :func:`search_blocks` computes. Arrays and options as in :func:`search_blocks`."""
