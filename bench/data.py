"""Data for the segsearch benchmarks: sizes, cached synthetic indexes, queries, the faiss twin, memory.

Everything is scaled by the environment variable ``SEGSEARCH_BENCH_SCALE`` (default 1.0 = the paper's
sizes); ``0.01`` gives a smoke run in a minute. Indexes are built from :mod:`segsearch.synthetic` maps in
batches (the maps of N = 82,783 images do not fit in memory) and cached in ``bench/.cache``; delete that
folder to rebuild them. ``python bench/data.py`` builds the caches ahead of a run.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

import segsearch
from segsearch import Index, Query
from segsearch.synthetic import synthetic_codes, synthetic_probs


def _scale() -> float:
    raw = os.environ.get("SEGSEARCH_BENCH_SCALE", "1.0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (0 < value <= 1000):
        raise ValueError(f"SEGSEARCH_BENCH_SCALE must be a positive number such as 1 or 0.01; got {raw!r}")
    return value


SCALE = _scale()
SIZE, K, TOPK = 64, 256, 10
CLASSES = (60, 151)  # the paper's two label sets
KINDS = ("image", "sketch", "image_and_sketch")


def scaled(n: int) -> int:
    """n images at the current scale (at least TOPK)."""
    return max(TOPK, round(n * SCALE))


N_PAPER = scaled(82_783)
N_EXACT = (scaled(1_835), scaled(3_353))  # the paper's Table 1 sizes (C = 60)
N_BIG = scaled(10_000_000)
N_TRAIN = max(K, scaled(2_000))  # k-means needs at least K images
N_SCALING = tuple(scaled(n) for n in (10_000, 100_000, 1_000_000, 10_000_000))  # codes-only scaling curve
KS_TABLE1 = (4, 16, 64, 256)  # Table 1's K (the paper: 4, 16, 64) plus ours
N_QUERIES = 20
SKETCH_CLASSES = 5  # classes drawn in the sketch of the end-to-end and 10M benchmarks
BATCH = 1_000  # images generated and encoded at a time
DATA_VERSION = 1  # bump when the generated data changes, to invalidate the caches
CACHE = Path(__file__).resolve().parent / ".cache"
TRAIN_SEED, QUERY_SEED, CODES_SEED = 1_000_000_001, 1_000_000_002, 1_000_000_003


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict:
    """CPU model, cores, SIMD level and the load average now (to tell whether the machine is shared)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "simd": segsearch.simd_level(),
            "loadavg": list(os.getloadavg()), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


# ---------------------------------------------------------------------------------------------- indexes
def build_index(C: int, n_images: int, *, keep_exact: bool = False) -> Index:
    """Train on N_TRAIN synthetic images, then add n_images more, BATCH at a time.

    Image i of the database is the same for every n_images (batch seeds are batch offsets), so smaller
    indexes hold a prefix of larger ones. ``keep_exact`` indexes serve only exact search, which ignores the
    codebook: theirs has a single centroid, from one image.
    """
    index = Index(C, SIZE, 1 if keep_exact else K, keep_exact=keep_exact)
    t0 = time.perf_counter()
    n_train = 1 if keep_exact else N_TRAIN
    index.train(synthetic_probs(n_train, C, SIZE, seed=TRAIN_SEED))
    log(f"C={C}: codebook trained in {time.perf_counter() - t0:.0f} s")
    for start in range(0, n_images, BATCH):
        index.add(synthetic_probs(min(BATCH, n_images - start), C, SIZE, seed=start))
        log(f"C={C}: {len(index):,}/{n_images:,} images encoded ({time.perf_counter() - t0:.0f} s)")
    return index


def cached_index(C: int, n_images: int, *, keep_exact: bool = False) -> Index:
    """``build_index`` through the on-disk cache, loaded into memory (not mmapped) for steady timings."""
    name = f"exact-C{C}-N{n_images}" if keep_exact else f"pq-C{C}-N{n_images}-K{K}-T{N_TRAIN}"
    path = CACHE / f"{name}-n{SIZE}-v{DATA_VERSION}.segsearch"
    if not path.exists():
        CACHE.mkdir(exist_ok=True)
        (CACHE / ".gitignore").write_text("*\n")
        log(f"building {path.name} (cached for later runs)")
        build_index(C, n_images, keep_exact=keep_exact).save(path)
    return Index.load(path, mmap=False)


@functools.cache
def pq_index(C: int) -> Index:
    """The paper-scale PQ index (N_PAPER images) for C classes."""
    return cached_index(C, N_PAPER)


@functools.cache
def exact_index(n_images: int) -> Index:
    """A C = 60 index that keeps the uncompressed maps, for the exact baseline."""
    return cached_index(60, n_images, keep_exact=True)


def trained_codebook(C: int, n_centroids: int = K) -> np.ndarray:
    """The codebook (C, K, n, n) trained on the N_TRAIN synthetic training images, cached as ``.npy``.

    For K = 256 it is the paper-scale index's codebook (the same training), taken from that index's cache
    file when it exists instead of training again.
    """
    path = CACHE / f"codebook-C{C}-K{n_centroids}-T{N_TRAIN}-n{SIZE}-v{DATA_VERSION}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    pq_path = CACHE / f"pq-C{C}-N{N_PAPER}-K{K}-T{N_TRAIN}-n{SIZE}-v{DATA_VERSION}.segsearch"
    if n_centroids == K and pq_path.exists():
        codebook = np.array(Index.load(pq_path, mmap=True).codebook)
    else:
        t0 = time.perf_counter()
        index = Index(C, SIZE, n_centroids).train(synthetic_probs(N_TRAIN, C, SIZE, seed=TRAIN_SEED))
        codebook = np.array(index.codebook)
        log(f"C={C} K={n_centroids}: codebook trained in {time.perf_counter() - t0:.0f} s")
    _save_npy(path, codebook)
    return codebook


def _save_npy(path: Path, array: np.ndarray) -> None:
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)


@functools.cache
def table1_codes(n_centroids: int) -> np.ndarray:
    """uint8 codes (max(N_EXACT), 60) of the exact baseline's images, encoded with ``trained_codebook(60, K)``:
    the same synthetic images as ``exact_index`` (smaller N = a prefix), cached as ``.npy``."""
    n = max(N_EXACT)
    path = CACHE / f"codes-C60-N{n}-K{n_centroids}-T{N_TRAIN}-n{SIZE}-v{DATA_VERSION}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    from segsearch.codebook import encode

    cb = trained_codebook(60, n_centroids)
    cb = np.ascontiguousarray(cb.reshape(60, n_centroids, SIZE * SIZE).transpose(0, 2, 1))  # position-major
    codes = np.concatenate([encode(synthetic_probs(min(BATCH, n - s), 60, SIZE, seed=s), cb)
                            for s in range(0, n, BATCH)])
    log(f"K={n_centroids}: {n:,} Table 1 images encoded")
    _save_npy(path, codes)
    return codes


@functools.cache
def table1_index(n_images: int, n_centroids: int) -> Index:
    """A C = 60 PQ index with K centroids over the first n_images of the exact baseline's images."""
    return Index.from_codebook(trained_codebook(60, n_centroids), table1_codes(n_centroids)[:n_images])


def rss_bytes() -> int:
    """This process's resident memory (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@functools.cache
def big_index() -> tuple[Index, dict]:
    """N_BIG images of C = 60: synthetic codes (made directly, no maps) with the paper-scale codebook.

    The codes are adopted without a copy (``codes.T`` of a (C, N) array). Returns the index and its memory
    figures: resident memory the index added to the process vs its codes + codebook (+5% allowed).
    """
    codebook = trained_codebook(60)  # resident before the baseline, as is the query
    probe = query(60, "image")
    before = rss_bytes()
    t0 = time.perf_counter()
    codes = synthetic_codes(N_BIG, 60, K, seed=CODES_SEED, layout="CN")
    index = Index.from_codebook(codebook, codes.T)
    assert np.may_share_memory(index._codes, codes), "from_codebook copied the (C, N) codes"
    index.search(probe, k=TOPK)  # let the scan allocate what it needs
    after = rss_bytes()
    log(f"N={N_BIG:,}: codes made and adopted in {time.perf_counter() - t0:.0f} s")
    codes_b, codebook_b = codes.nbytes, index._cb.nbytes
    return index, {"rss_mb": after / 2**20, "rss_index_mb": (after - before) / 2**20,
                   "codes_mb": codes_b / 2**20, "codebook_mb": codebook_b / 2**20,
                   "rss_target_mb": (1.05 * codes_b + codebook_b) / 2**20}


@functools.cache
def scaling_index(n_images: int) -> Index:
    """n_images synthetic codes (``synthetic_codes``, no maps) with the C = 60, K = 256 codebook: the points
    of the scaling curve. Its largest N is ``big_index``'s index (the same codes)."""
    if n_images == N_BIG:
        return big_index()[0]
    codes = synthetic_codes(n_images, 60, K, seed=CODES_SEED, layout="CN")
    return Index.from_codebook(trained_codebook(60), codes.T)


@functools.cache
def real_index():
    """The paper-scale N of *real* codes, or None: the network's maps of the 468 CamVid photos (cached by
    ``maps_cache.py``; None when that cache is missing) encoded with a K = 256 codebook trained on them, the
    code table repeated to N_PAPER rows. The scan's cost depends on each class's share of non-default codes,
    which repeating keeps. Returns (index, maps of photo 0 float32, its argmax label map)."""
    import maps_cache

    paths, root = maps_cache.camvid_photos()
    maps16 = maps_cache.cached_maps(paths, root, tag="camvid")
    if maps16 is None:
        return None
    path = CACHE / f"codebook-{Path(maps16.filename).stem}-all-K{K}.npy"
    if path.exists():
        codebook = np.load(path, allow_pickle=False)
    else:
        t0 = time.perf_counter()
        codebook = np.array(Index(maps16.shape[1], SIZE, K).train(_as_probs(maps16)).codebook)
        _save_npy(path, codebook)
        log(f"CamVid codebook K={K} trained in {time.perf_counter() - t0:.0f} s")
    small = Index.from_codebook(codebook, np.zeros((0, maps16.shape[1]), np.uint8))
    for s in range(0, len(maps16), 100):
        small.add(_as_probs(maps16[s : s + 100]))
    reps = -(-N_PAPER // len(small))
    codes = np.ascontiguousarray(np.tile(small.codes.T, (1, reps))[:, :N_PAPER])  # (C, N)
    photo = _as_probs(maps16[:1])[0]
    return Index.from_codebook(codebook, codes.T), photo, photo.argmax(0).astype(np.int32)


def _as_probs(maps16) -> np.ndarray:
    p = np.asarray(maps16, dtype=np.float32)
    return p / p.sum(axis=1, keepdims=True)


def real_query(kind: str) -> Query:
    """A query on ``real_index``: CamVid photo 0's maps; a sketch of its 5 largest classes (argmax, the other
    pixels unspecified); the photo with its 2 largest classes drawn over it."""
    _, photo, labels = real_index()

    def largest(m):
        counts = np.bincount(labels.ravel())
        keep = np.argsort(-counts, kind="stable")[:m]
        return np.where(np.isin(labels, keep), labels, -1).astype(np.int32)

    if kind == "image":
        return Query.image(photo)
    if kind == "sketch":
        return Query.sketch(largest(SKETCH_CLASSES))
    return Query.image_and_sketch(photo, largest(2))


# ---------------------------------------------------------------------------------------------- queries
@functools.cache
def image_queries(C: int) -> tuple[Query, ...]:
    """N_QUERIES image queries: held-out synthetic photos (not in any index)."""
    return tuple(Query.image(p) for p in synthetic_probs(N_QUERIES, C, SIZE, seed=QUERY_SEED))


def band_sketch(C: int, drawn: int) -> np.ndarray:
    """A full sketch of classes 0..drawn-1 (the most frequent ones), each one region of the n x n map in
    raster order: horizontal bands while drawn <= n, runs of pixels beyond."""
    if not 1 <= drawn <= C:
        raise ValueError(f"drawn must be in 1..{C}; got {drawn}")
    return (np.arange(SIZE * SIZE) * drawn // (SIZE * SIZE)).reshape(SIZE, SIZE).astype(np.int32)


def partial_sketch() -> np.ndarray:
    """Strokes over a photo: class 0 across the top quarter, class 1 in the bottom-left corner."""
    labels = np.full((SIZE, SIZE), -1, np.int32)
    labels[: SIZE // 4] = 0
    labels[-SIZE // 4 :, : SIZE // 2] = 1
    return labels


def query(C: int, kind: str, drawn: int | None = None) -> Query:
    """The representative query of a kind: 'image', 'sketch' (``drawn`` classes, default SKETCH_CLASSES)
    or 'image_and_sketch'."""
    if kind == "image":
        return image_queries(C)[0]
    if kind == "sketch":
        return Query.sketch(band_sketch(C, drawn or SKETCH_CLASSES))
    if kind == "image_and_sketch":
        return Query.image_and_sketch(image_queries(C)[0].probs, partial_sketch())
    raise ValueError(f"unknown query kind {kind!r}")


# ---------------------------------------------------------------------------------------------- faiss
@functools.cache
def faiss_twin(C: int):
    """``faiss.IndexPQ`` holding the same codebook and codes as ``pq_index(C)``."""
    import faiss

    index = pq_index(C)
    twin = faiss.IndexPQ(C * SIZE * SIZE, C, 8)
    # faiss's centroid layout is (M, ksub, dsub) = (C, K, n*n); its codes are (N, M) bytes.
    faiss.copy_array_to_vector(np.ascontiguousarray(index.codebook).reshape(-1), twin.pq.centroids)
    faiss.copy_array_to_vector(np.ascontiguousarray(index.codes).reshape(-1), twin.codes)
    twin.ntotal = len(index)
    twin.is_trained = True
    return twin


if __name__ == "__main__":
    log(f"scale {SCALE}: building the cached indexes in {CACHE} (segsearch {segsearch.__version__})")
    for c in CLASSES:
        pq_index(c)
    for n in N_EXACT:
        exact_index(n)
    log("done")
