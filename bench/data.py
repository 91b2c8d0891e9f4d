"""Data for the segsearch benchmarks: sizes, cached synthetic indexes, queries, the faiss twin, memory.

Everything is scaled by the environment variable ``SEGSEARCH_BENCH_SCALE`` (default 1.0 = the paper's
sizes); ``0.01`` gives a smoke run in a minute. Two kinds of data, built in batches (the maps of N = 82,783
images do not fit in memory) and cached in ``bench/.cache`` (delete that folder to rebuild them):

- synthetic: :mod:`segsearch.evaluation.synthetic` maps and codes (the engine's regression targets);
- real-derived: the network's maps of the CamVid photos (``maps_cache``), one video sequence held out for the
  queries, the other photos flipped, cropped and shifted to reach N (``augmented_batch``).

``python bench/data.py`` builds the caches ahead of a run. The indexes rank by the paper's squared L2
(``ranking="l2"``), as the timing tables are the paper's; ``ranking_index`` compares the default ranking with it.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from pathlib import Path

import numpy as np

import maps_cache
import segsearch
from segsearch import Index, Query
from segsearch.evaluation.synthetic import synthetic_codes, synthetic_probs


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
CACHE = maps_cache.CACHE
TRAIN_SEED, QUERY_SEED, CODES_SEED = 1_000_000_001, 1_000_000_002, 1_000_000_003
UNIFORM_SEED = 1_000_000_005


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
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "simd": segsearch.simd_level(),
        "loadavg": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


# ---------------------------------------------------------------------------------------------- indexes
def build_index(C: int, n_images: int, *, keep_exact: bool = False) -> Index:
    """Train on N_TRAIN synthetic images, then add n_images more, BATCH at a time.

    Image i of the database is the same for every n_images (batch seeds are batch offsets), so smaller
    indexes hold a prefix of larger ones. ``keep_exact`` indexes serve only exact search, which ignores the
    codebook: theirs has a single centroid, from one image.
    """
    index = Index(C, SIZE, 1 if keep_exact else K, keep_exact=keep_exact, ranking="l2")
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
        maps_cache.ensure_cache()
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
        index = Index(C, SIZE, n_centroids, ranking="l2").train(synthetic_probs(N_TRAIN, C, SIZE, seed=TRAIN_SEED))
        codebook = np.array(index.codebook)
        log(f"C={C} K={n_centroids}: codebook trained in {time.perf_counter() - t0:.0f} s")
    maps_cache.save_npy(path, codebook)
    return codebook


@functools.cache
def table1_codes(n_centroids: int) -> np.ndarray:
    """uint8 codes (max(N_EXACT), 60) of the exact baseline's images, encoded with ``trained_codebook(60, K)``:
    the same synthetic images as ``exact_index`` (smaller N = a prefix), cached as ``.npy``."""
    n = max(N_EXACT)
    path = CACHE / f"codes-C60-N{n}-K{n_centroids}-T{N_TRAIN}-n{SIZE}-v{DATA_VERSION}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    from segsearch.engine.codebook import encode

    cb = trained_codebook(60, n_centroids)
    cb = np.ascontiguousarray(cb.reshape(60, n_centroids, SIZE * SIZE).transpose(0, 2, 1))  # position-major
    codes = np.concatenate(
        [encode(synthetic_probs(min(BATCH, n - s), 60, SIZE, seed=s), cb) for s in range(0, n, BATCH)]
    )
    log(f"K={n_centroids}: {n:,} Table 1 images encoded")
    maps_cache.save_npy(path, codes)
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
    assert np.may_share_memory(index.codes, codes), "from_codebook copied the (C, N) codes"
    index.search(probe, k=TOPK)  # let the scan allocate what it needs
    after = rss_bytes()
    log(f"N={N_BIG:,}: codes made and adopted in {time.perf_counter() - t0:.0f} s")
    codes_b, codebook_b = codes.nbytes, index.codebook.nbytes
    return index, {
        "rss_mb": after / 2**20,
        "rss_index_mb": (after - before) / 2**20,
        "codes_mb": codes_b / 2**20,
        "codebook_mb": codebook_b / 2**20,
        "rss_target_mb": (1.05 * codes_b + codebook_b) / 2**20,
    }


@functools.cache
def scaling_index(n_images: int) -> Index:
    """n_images synthetic codes (``synthetic_codes``, no maps) with the C = 60, K = 256 codebook: the points
    of the scaling curve. Its largest N is ``big_index``'s index (the same codes)."""
    if n_images == N_BIG:
        return big_index()[0]
    codes = synthetic_codes(n_images, 60, K, seed=CODES_SEED, layout="CN")
    return Index.from_codebook(trained_codebook(60), codes.T)


@functools.cache
def uniform_index() -> Index:
    """N_PAPER images of C = 60 with uniform random codes (every code equally likely: no code can be skipped,
    the float scan's worst case) and the C = 60, K = 256 codebook. Codes adopted as a (C, N) array."""
    codes = np.random.default_rng(UNIFORM_SEED).integers(0, K, (60, N_PAPER), dtype=np.uint8)
    return Index.from_codebook(trained_codebook(60), codes.T)


# ---------------------------------------------------------------------------------------------- real-derived
# Augmented real maps: the network's maps of the CamVid photos (``maps_cache``). Sequence REAL_QUERY_SEQ is held
# out: REAL_N_QUERIES of its photos are the queries and none of its photos is in any database (its neighbouring
# frames are near-duplicates of the queries). The other photos are flipped, cropped and shifted to reach N.
REAL_VERSION = 1  # bump when the augmentation changes, to invalidate the real-derived caches
REAL_QUERY_SEQ = "0001TP"
REAL_BATCH = 250  # augmented maps made and encoded at a time (C = 151: 620 MB of float32 maps)
REAL_SEED = 1_000_000_004
SHIFT_MAX, CROP_MIN = 6, 52  # shift by up to +-6 px (edge replication); crop windows of 52..64 px


@functools.cache
def camvid():
    """The CamVid maps split for the real-derived data, or None without the cached network maps
    (``python bench/maps_cache.py``): dict with the database photos' float16 maps ``base``, the query photos'
    ``queries16``, their photo numbers, the classes by total probability mass over ``base`` (``order``)."""

    paths, root = maps_cache.camvid_photos()
    maps16 = maps_cache.cached_maps(paths, root, tag="camvid")
    if maps16 is None:
        return None
    seq = np.array([p.name[:6] for p in paths])
    held, base = np.flatnonzero(seq == REAL_QUERY_SEQ), np.flatnonzero(seq != REAL_QUERY_SEQ)
    queries = held[np.linspace(0, len(held) - 1, N_QUERIES).round().astype(int)]
    base16 = np.ascontiguousarray(maps16[base])
    mass = np.zeros(base16.shape[1])
    for s in range(0, len(base16), 50):
        mass += base16[s : s + 50].astype(np.float32).sum(axis=(0, 2, 3))
    return {
        "key": f"{Path(maps16.filename).stem}-{REAL_QUERY_SEQ}",
        "base": base16,
        "queries16": np.array(maps16[queries]),
        "base_ids": base,
        "query_ids": queries,
        "n_held": len(held),
        "n_photos": len(paths),
        "mass": mass,
        "order": np.argsort(-mass, kind="stable"),
    }


def real_classes(maps, C: int, *, normalise: bool = True):
    """float16 maps (B, 151, n, n) as a float32 torch tensor (B, C, n, n), renormalised per pixel unless told
    not to: all 151 network classes for C = 151; else the C - 1 classes with the most mass over the database
    photos (by mass, descending) and one 'others' class with the sum of the rest."""
    import torch

    p = torch.from_numpy(np.ascontiguousarray(maps)).float()  # torch converts float16 far faster than numpy
    if C != p.shape[1]:
        order = torch.from_numpy(camvid()["order"])
        p = torch.cat([p[:, order[: C - 1]], p[:, order[C - 1 :]].sum(dim=1, keepdim=True)], dim=1)
    if normalise:
        p /= p.sum(dim=1, keepdim=True)
    return p


def _axis(offset, width, shift, flip=None):
    """Bilinear sampling positions along one axis: output pixel u takes the crop window's pixel
    clamp(u - shift) (a shift with edge replication), the window [offset, offset + width) resized to SIZE
    (half-pixel centres, as ``F.interpolate(mode='bilinear')``), mirrored when ``flip``.
    Returns (i0, i1, f): value = (1 - f) * x[i0] + f * x[i1], each (B, SIZE)."""
    u = np.arange(SIZE)
    s = np.clip(u[None] - shift[:, None], 0, SIZE - 1)
    x = np.clip(offset[:, None] + (s + 0.5) * width[:, None] / SIZE - 0.5, 0, SIZE - 1)
    if flip is not None:
        x = np.where(flip[:, None], SIZE - 1 - x, x)
    i0 = np.minimum(np.floor(x).astype(np.int64), SIZE - 2)
    return i0, i0 + 1, (x - i0).astype(np.float32)


@functools.cache
def _base_transposed(C: int):
    """The database photos' maps in C classes, float32 torch (n_base, C, cols, rows) (C = 151: 1 GB)."""
    import torch

    base = camvid()["base"]
    return torch.cat(
        [
            real_classes(base[s : s + 50], C, normalise=False).transpose(2, 3).contiguous()
            for s in range(0, len(base), 50)
        ]
    )


@functools.cache
def _buffers(C: int):
    import torch

    return torch.empty(REAL_BATCH, C, SIZE, SIZE), torch.empty(REAL_BATCH, C, SIZE, SIZE)


def augmented_batch(C: int, start: int, count: int = REAL_BATCH) -> np.ndarray:
    """Augmented maps start .. start+count-1 (start a multiple of REAL_BATCH) of the real-derived set, float32
    (count, C, n, n), each pixel summing to 1. Map i is the same for every N and C: a database photo drawn at
    random, mirrored with probability 1/2, a random 52..64 px window resized back to 64 x 64 (bilinear),
    shifted by -6..6 px each way with edge replication; seeded per batch. The array is a buffer that the next
    call overwrites: use or copy it before then."""
    import torch

    if start % REAL_BATCH or not 0 < count <= REAL_BATCH:
        raise ValueError(f"start must be a multiple of {REAL_BATCH} and 0 < count <= {REAL_BATCH}")
    rng = np.random.default_rng([REAL_SEED, start])
    B = REAL_BATCH
    src = rng.integers(0, len(camvid()["base"]), B)
    flip = rng.random(B) < 0.5
    width = rng.integers(CROP_MIN, SIZE + 1, B)
    x0, y0 = rng.integers(0, SIZE - width + 1), rng.integers(0, SIZE - width + 1)
    dx, dy = rng.integers(-SHIFT_MAX, SHIFT_MAX + 1, (2, B))
    cols, rows = _axis(x0, width, dx, flip), _axis(y0, width, dy)

    def weights(i0, i1, f):  # (count, n source pixels, n output pixels): the bilinear sampling as a matrix
        w = torch.zeros(count, SIZE, SIZE)
        w.scatter_(1, torch.from_numpy(i0[:count, None]), torch.from_numpy(1 - f[:count, None]))
        return w.scatter_add_(1, torch.from_numpy(i1[:count, None]), torch.from_numpy(f[:count, None]))

    # Preallocated buffers: fresh 0.6 GB arrays per batch cost more in page faults than the arithmetic.
    xt, out = (b[:count] for b in _buffers(C))
    torch.index_select(_base_transposed(C), 0, torch.from_numpy(src[:count]), out=xt)  # (count, C, cols, rows)
    torch.bmm(xt.view(count, C * SIZE, SIZE), weights(*rows), out=out.view(count, C * SIZE, SIZE))  # rows
    xt.copy_(out.transpose(2, 3))  # (count, C, rows, cols)
    torch.bmm(xt.view(count, C * SIZE, SIZE), weights(*cols), out=out.view(count, C * SIZE, SIZE))  # columns
    out /= out.sum(dim=1, keepdim=True)
    return out.numpy()


def augmented_batches(C: int, n_images: int):
    """(start, maps) over the first n_images augmented maps, REAL_BATCH at a time."""
    for start in range(0, n_images, REAL_BATCH):
        yield start, augmented_batch(C, start, min(REAL_BATCH, n_images - start))


def _real_name(C: int, what: str) -> Path:
    return CACHE / f"real-{camvid()['key']}-C{C}-{what}-T{N_TRAIN}-n{SIZE}-v{REAL_VERSION}.npy"


BUILD_TIMES = CACHE / f"real-build-seconds-T{N_TRAIN}-v{REAL_VERSION}.json"  # one file per scale


def _record_time(name: str, seconds: float) -> None:
    import json

    times = json.loads(BUILD_TIMES.read_text()) if BUILD_TIMES.exists() else {}
    times[name] = round(seconds, 1)
    BUILD_TIMES.write_text(json.dumps(times, indent=1, sort_keys=True))


def real_build_times() -> dict:
    import json

    return json.loads(BUILD_TIMES.read_text()) if BUILD_TIMES.exists() else {}


def real_codebook(C: int, n_centroids: int = K) -> np.ndarray:
    """Codebook (C, K, n, n) trained (k-means, seed 0) on the first N_TRAIN augmented maps, cached as .npy."""
    path = _real_name(C, f"K{n_centroids}-codebook")
    if path.exists():
        return np.load(path, allow_pickle=False)
    t0 = time.perf_counter()
    sample = np.empty((N_TRAIN, C, SIZE, SIZE), np.float32)  # C = 151: 4.9 GB
    for start, maps in augmented_batches(C, N_TRAIN):
        sample[start : start + len(maps)] = maps
    t1 = time.perf_counter()
    codebook = np.array(Index(C, SIZE, n_centroids, ranking="l2").train(sample, seed=0).codebook)
    del sample
    t2 = time.perf_counter()
    maps_cache.save_npy(path, codebook)
    _record_time(f"C{C} K{n_centroids} codebook: {N_TRAIN:,} maps augmented", t1 - t0)
    _record_time(f"C{C} K{n_centroids} codebook: k-means on {N_TRAIN:,} maps", t2 - t1)
    log(f"real C={C} K={n_centroids}: {N_TRAIN} maps augmented in {t1 - t0:.0f} s, k-means {t2 - t1:.0f} s")
    return codebook


def real_codes(C: int, n_images: int, n_centroids: int = K) -> np.ndarray:
    """uint8 codes (n_images, C) of the first n_images augmented maps with ``real_codebook``, cached as .npy."""
    path = _real_name(C, f"N{n_images}-K{n_centroids}-codes")
    if path.exists():
        return np.load(path, allow_pickle=False)
    from segsearch.engine.codebook import encode

    cb = real_codebook(C, n_centroids)
    cb = np.ascontiguousarray(cb.reshape(C, n_centroids, SIZE * SIZE).transpose(0, 2, 1))  # position-major
    codes = np.empty((n_images, C), np.uint8)
    t0, t_aug = time.perf_counter(), 0.0
    for start in range(0, n_images, REAL_BATCH):
        t = time.perf_counter()
        maps = augmented_batch(C, start, min(REAL_BATCH, n_images - start))
        t_aug += time.perf_counter() - t
        codes[start : start + len(maps)] = encode(maps, cb)
        if (start // REAL_BATCH) % 20 == 19 or start + len(maps) == n_images:
            log(
                f"real C={C} K={n_centroids}: {start + len(maps):,}/{n_images:,} augmented and encoded "
                f"({time.perf_counter() - t0:.0f} s, {t_aug:.0f} s of it augmenting)"
            )
    total = time.perf_counter() - t0
    maps_cache.save_npy(path, codes)
    _record_time(f"C{C} K{n_centroids} codes of N={n_images:,}: augment", t_aug)
    _record_time(f"C{C} K{n_centroids} codes of N={n_images:,}: encode", total - t_aug)
    return codes


@functools.cache
def real_pq_index(C: int) -> Index | None:
    """The paper-scale (N_PAPER) real-derived PQ index for C classes (K = 256), or None without the maps."""
    if camvid() is None:
        return None
    codes = real_codes(C, N_PAPER)
    return Index.from_codebook(real_codebook(C), np.ascontiguousarray(codes.T).T)  # adopts the (C, N) copy


@functools.cache
def ranking_index(ranking: str) -> Index | None:
    """C = 151, K = 256 real-derived index at the paper's N with ``ranking`` ("l2" or "balanced"), to compare
    what the rankings cost a search: "l2" is ``real_pq_index(151)``; "balanced" is built the same way with that
    ranking (its codebook trained by Index.train, seed 0, on the first N_TRAIN augmented maps, which also measures
    the class prior; every augmented map encoded with it), so the scan meets each ranking's own codes. None
    without the cached maps. Codebook, prior and codes cached."""
    if camvid() is None:
        return None
    if ranking == "l2":
        return real_pq_index(151)
    C = 151
    paths = {w: _real_name(C, f"K{K}-{ranking}-{w}") for w in ("codebook", "prior", "codes")}
    if not all(p.exists() for p in paths.values()):
        t0 = time.perf_counter()
        sample = np.empty((N_TRAIN, C, SIZE, SIZE), np.float32)  # 4.9 GB
        for start, maps in augmented_batches(C, N_TRAIN):
            sample[start : start + len(maps)] = maps
        index = Index(C, SIZE, K, ranking=ranking).train(sample, seed=0)
        del sample
        log(f"ranking {ranking}: codebook trained in {time.perf_counter() - t0:.0f} s")
        codes = np.empty((N_PAPER, C), np.uint8)
        for start, maps in augmented_batches(C, N_PAPER):
            codes[start : start + len(maps)] = index.encode(maps)
        maps_cache.save_npy(paths["codebook"], np.array(index.codebook_u8))
        maps_cache.save_npy(paths["prior"], np.array(index.class_prior))
        maps_cache.save_npy(paths["codes"], codes)
        log(f"ranking {ranking}: {N_PAPER:,} maps encoded, {time.perf_counter() - t0:.0f} s in all")
    codes = np.load(paths["codes"], allow_pickle=False)
    return Index.from_codebook(
        np.load(paths["codebook"], allow_pickle=False),
        np.ascontiguousarray(codes.T).T,
        ranking=ranking,
        class_prior=np.load(paths["prior"], allow_pickle=False),
    )


@functools.cache
def real_table1_index(n_images: int, n_centroids: int) -> Index:
    """C = 60 real-derived PQ index with K centroids over the first n_images augmented maps."""
    return Index.from_codebook(real_codebook(60, n_centroids), real_codes(60, max(N_EXACT), n_centroids)[:n_images])


@functools.cache
def real_exact_index(n_images: int) -> Index:
    """C = 60 index keeping the first n_images augmented maps (uint8) for the exact baseline, cached."""
    path = CACHE / f"real-{camvid()['key']}-exact-C60-N{n_images}-n{SIZE}-v{REAL_VERSION}.segsearch"
    if not path.exists():
        t0 = time.perf_counter()
        index = Index(60, SIZE, 1, keep_exact=True, ranking="l2").train(augmented_batch(60, 0, 1))
        for _, maps in augmented_batches(60, n_images):
            index.add(maps)
        maps_cache.ensure_cache()
        index.save(path)
        _record_time(f"C60 exact maps of N={n_images:,}: augment + quantise", time.perf_counter() - t0)
    return Index.load(path, mmap=False)


#: Photos of the re-ranking benchmark's index and the candidates it re-ranks (0: the PQ scan alone).
N_RERANK = scaled(4_096)
RERANK_DEPTHS = (0, 16, 32, 64, 256)


@functools.cache
def rerank_index(ranking: str) -> Index | None:
    """C = 151: the first N_RERANK real-derived maps kept exactly (block maps) and coded with a K = 16 codebook
    trained on the first 256 (5 k-means rounds), cached; None without the CamVid maps. What re-ranking costs
    depends on the candidates (how many, and their blocks), not on N or K: this smaller index measures it, and the
    paper-scale PQ scan is ``real_pq_index``'s."""
    if camvid() is None:
        return None
    path = CACHE / f"real-{camvid()['key']}-rerank-{ranking}-N{N_RERANK}-n{SIZE}-v{REAL_VERSION}.segsearch"
    if not path.exists():
        t0 = time.perf_counter()
        index = Index(151, SIZE, 16, keep_exact=True, ranking=ranking)
        index.train(augmented_batch(151, 0, min(256, REAL_BATCH)).copy(), niter=5, seed=0)
        for _, maps in augmented_batches(151, N_RERANK):
            index.add(maps)
        maps_cache.ensure_cache()
        index.save(path)
        _record_time(f"C151 {ranking} block maps of N={N_RERANK:,}: augment, encode, keep", time.perf_counter() - t0)
    return Index.load(path)


@functools.cache
def real_query_maps(C: int) -> np.ndarray:
    """float32 (N_QUERIES, C, n, n): the held-out photos' maps (not augmented; in no database)."""
    return real_classes(camvid()["queries16"], C).numpy()


def real_class_order(C: int) -> np.ndarray:
    """The C classes by total mass over the database photos, descending ('others' where its mass falls)."""
    mass = camvid()["mass"]
    if C != len(mass):
        order = camvid()["order"]
        mass = np.append(mass[order[: C - 1]], mass[order[C - 1 :]].sum())
    return np.argsort(-mass, kind="stable")


def real_sketch(C: int, drawn: int, photo: int = 0) -> tuple[np.ndarray, str]:
    """A sketch of ``drawn`` classes from held-out photo ``photo``'s label map (argmax of its network maps) and
    how it was made: 'photo' = its ``drawn`` largest classes where drawn, the other pixels unspecified; when
    the photo has fewer classes, 'bands' = the ``drawn`` classes with the most mass over the database, as a
    full sketch of bands (``band_sketch``)."""
    labels = real_query_maps(C)[photo].argmax(axis=0).astype(np.int32)
    counts = np.bincount(labels.ravel(), minlength=C)
    if drawn <= (counts > 0).sum():
        keep = np.argsort(-counts, kind="stable")[:drawn]
        return np.where(np.isin(labels, keep), labels, -1).astype(np.int32), "photo"
    return band_sketch(C, drawn, real_class_order(C)), "bands"


def real_query(C: int, kind: str, drawn: int | None = None) -> Query:
    """Held-out photo 0 as an image query; a sketch of its SKETCH_CLASSES (or ``drawn``) largest classes; the
    photo with its 2 largest classes drawn over it."""
    photo = real_query_maps(C)[0]
    if kind == "image":
        return Query.image(photo)
    if kind == "sketch":
        return Query.sketch(real_sketch(C, drawn or SKETCH_CLASSES)[0])
    if kind == "image_and_sketch":
        return Query.image_and_sketch(photo, real_sketch(C, 2)[0])
    raise ValueError(f"unknown query kind {kind!r}")


def real_description(C: int) -> dict:
    """How the real-derived data was made, for the report."""
    cam = camvid()
    d = {
        "photos": cam["n_photos"],
        "database_photos": len(cam["base"]),
        "held_out_sequence": REAL_QUERY_SEQ,
        "held_out_photos": cam["n_held"],
        "queries": N_QUERIES,
        "shift_max_px": SHIFT_MAX,
        "crop_min_px": CROP_MIN,
        "train_maps": N_TRAIN,
        "seed": REAL_SEED,
        "version": REAL_VERSION,
        "query_photo_classes": int((np.bincount(real_query_maps(C)[0].argmax(0).ravel()) > 0).sum()),
        "build_seconds": real_build_times(),
    }
    if C != cam["base"].shape[1]:
        mass = cam["mass"]
        d["others_classes"] = int(len(mass) - (C - 1))
        d["others_mass_share"] = float(mass[cam["order"][C - 1 :]].sum() / mass.sum())
    return d


# ---------------------------------------------------------------------------------------------- queries
@functools.cache
def image_queries(C: int) -> tuple[Query, ...]:
    """N_QUERIES image queries: held-out synthetic photos (not in any index)."""
    return tuple(Query.image(p) for p in synthetic_probs(N_QUERIES, C, SIZE, seed=QUERY_SEED))


def band_sketch(C: int, drawn: int, classes=None) -> np.ndarray:
    """A full sketch of classes[0..drawn-1] (default: classes 0..drawn-1, the most frequent synthetic ones),
    each one region of the n x n map in raster order: horizontal bands while drawn <= n, runs of pixels beyond."""
    if not 1 <= drawn <= C:
        raise ValueError(f"drawn must be in 1..{C}; got {drawn}")
    bands = (np.arange(SIZE * SIZE) * drawn // (SIZE * SIZE)).reshape(SIZE, SIZE)
    return (bands if classes is None else np.asarray(classes)[bands]).astype(np.int32)


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
    return faiss_pq(pq_index(C))


@functools.cache
def uniform_faiss_twin():
    """``faiss.IndexPQ`` holding the same codebook and codes as ``uniform_index()``."""
    return faiss_pq(uniform_index())


@functools.cache
def real_faiss_twin(C: int):
    """``faiss.IndexPQ`` holding the same codebook and codes as ``real_pq_index(C)``."""
    return faiss_pq(real_pq_index(C))


def faiss_pq(index: Index):
    """A ``faiss.IndexPQ`` with the codebook and codes of ``index`` (K = 256)."""
    import faiss

    C = index.num_classes
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
    if camvid() is None:
        log("no cached CamVid network maps (python bench/maps_cache.py): real-derived data not built")
    else:
        for c in CLASSES:
            real_pq_index(c)
        for k in KS_TABLE1:
            real_table1_index(max(N_EXACT), k)
        for n in N_EXACT:
            real_exact_index(n)
        log(f"real-derived build times (s): {real_build_times()}")
    log("done")
