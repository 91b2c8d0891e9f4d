"""Codebooks: k-means per class subspace (torch, GPU when available), encoding maps to codes, and the compact
(one byte per value) codebook with what the search derives from it. torch is imported when a codebook is
trained or maps are encoded, not before.

Most class maps of most images are near zero (the class is absent from the photo). Those rows are
not fed to k-means: centroid 0 of every class is reserved for them (their mean), and the other
K - 1 centroids are trained on the rows where the class is present. Encoding is exact nearest-centroid
assignment; for near-zero rows a norm bound proves centroid 0 is nearest without computing the
distances to the other centroids: ||x - a_k||^2 >= (||x|| - ||a_k||)^2.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from .checks import as_float32, as_numpy
from .index_file import CODEBOOK_MAX, CODEBOOK_MIN, codebook_in_range

if TYPE_CHECKING:
    import torch

#: A class map counts as "absent" when its total probability mass is below this many pixels.
ABSENT_MASS = 1.0


def pick_device(device=None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: Classes whose k-means run together hold at most this many floats of training rows (a small sample's 151 classes
#: run as one batch: a few large tensor operations per iteration instead of a few small ones per class).
KMEANS_BATCH_FLOATS = 1 << 25


def _kmeans_batched(xs: list[np.ndarray], k: int, niter: int, perms: list[np.ndarray], dev) -> np.ndarray:
    """Lloyd's k-means of several classes at once: rows ``xs[g]`` (n_g, D) float32 with n_g >= k, initial
    centroids the rows ``perms[g]``; returns (G, k, D). Each iteration: every row's nearest centroid (the first on
    ties), the means, and empty clusters re-seeded with the rows farthest from their centroids, on the classes
    stacked (padding rows excluded). It stops early once an iteration assigns every row as the one before and
    leaves no cluster empty: the centroids are then the means of the same rows again, so every later iteration
    would repeat them bit for bit (the result is that of ``niter``). The batch is put together in numpy and moved
    to the device once: a few large tensor operations per iteration, not a few small ones per class."""
    import torch

    G, D = len(xs), xs[0].shape[1]
    nmax = max(len(x) for x in xs)
    packed = np.zeros((G, nmax, D), np.float32)
    for g, x in enumerate(xs):
        packed[g, : len(x)] = x
    X = torch.from_numpy(packed).to(dev)
    cents = torch.from_numpy(np.stack([x[p] for x, p in zip(xs, perms)])).to(dev)
    n = torch.tensor([len(x) for x in xs], device=dev)
    valid = torch.arange(nmax, device=dev)[None, :] < n[:, None]
    xn2 = (X * X).sum(2, keepdim=True)
    one_hot = k + 1 <= 32  # small k: the sums as a matrix product; else one index_add_ over the whole batch
    last = None
    for _ in range(niter):
        d = xn2 - 2.0 * torch.bmm(X, cents.transpose(1, 2)) + (cents * cents).sum(2)[:, None, :]
        best, idx = d.min(dim=2)
        dist = best.clamp_min(0).masked_fill_(~valid, -1.0)
        idx = idx.masked_fill_(~valid, k)  # padding rows go to a bin of their own, dropped
        if one_hot:
            assign = X.new_zeros((G, nmax, k + 1)).scatter_(2, idx[..., None], 1.0)
            sums = torch.bmm(assign.transpose(1, 2), X)
            counts = assign.sum(1)
        else:
            flat = (idx + torch.arange(G, device=dev)[:, None] * (k + 1)).flatten()
            sums = X.new_zeros((G * (k + 1), D)).index_add_(0, flat, X.reshape(G * nmax, D)).view(G, k + 1, D)
            counts = torch.bincount(flat, minlength=G * (k + 1)).view(G, k + 1).to(X.dtype)
        counts = counts[:, :k]
        new = sums[:, :k] / counts.clamp_min(1)[..., None]
        with_empty = (counts == 0).any(1).nonzero().flatten().tolist()
        for g in with_empty:
            empty = (counts[g] == 0).nonzero().flatten()
            far = torch.argsort(dist[g], descending=True, stable=True)[: len(empty)]
            new[g, empty] = X[g, far]
        if not with_empty and last is not None and torch.equal(idx, last):
            break  # every class converged: new == cents
        cents, last = new, idx
    return cents.cpu().numpy()


def train_codebook(
    probs: np.ndarray,
    n_centroids: int,
    *,
    niter: int = 20,
    seed: int = 0,
    device=None,
    absent_mass: float = ABSENT_MASS,
    row_mass: np.ndarray | None = None,
    progress=None,
) -> np.ndarray:
    """Train one codebook per class on maps ``probs`` (N, C, n, n), float16 or float32 (read one class at a
    time, so a memory-mapped sample is never loaded whole). Returns float32 (C, K, n*n). A class map is absent
    when its mass is below ``absent_mass``: its own sum, or ``row_mass`` (N, C) when given (e.g. the mass before
    a reweighting). ``progress``: called with 1 after each class (e.g. a tqdm bar's ``update``).

    The k-means of consecutive classes run as one batch while their rows hold at most
    :data:`KMEANS_BATCH_FLOATS` floats (:func:`_kmeans_batched`).

    Raises ValueError if K exceeds the number of training images.
    """
    import torch

    N, C = probs.shape[:2]
    D = probs.shape[2] * probs.shape[3]
    K = n_centroids
    if K > N:
        raise ValueError(
            f"n_centroids={K} needs at least {K} training images; got {N}. Train on more images or use a smaller K"
        )
    dev = pick_device(device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = np.zeros((C, K, D), dtype=np.float32)
    pending: dict[int, list] = {}  # k-means slots -> [(class, first slot, rows, initial rows)] waiting to run
    done: list[int] = []  # classes whose centroids are final, not reported yet

    def flush(slots: int) -> None:
        jobs = pending.pop(slots, [])
        if jobs:
            cents = _kmeans_batched([j[2] for j in jobs], slots, niter, [j[3] for j in jobs], dev)
            for (c, first, _, _), cc in zip(jobs, cents):
                out[c, first:] = cc
                done.append(c)
        if progress is not None:
            for _ in done:
                progress(1)
        done.clear()

    whole = None  # a small sample is read once, whole (not class by class from a memory-mapped file)
    if N * C * D <= KMEANS_BATCH_FLOATS:
        whole = probs.block(slice(None)) if hasattr(probs, "block") else as_float32(probs)
    with torch.inference_mode():
        for c in range(C):  # each class's rows sorted out in numpy (small arrays: no thread pool to wake)
            x = as_float32((whole if whole is not None else probs)[:, c]).reshape(N, D)
            mass = x.sum(1) if row_mass is None else np.asarray(row_mass[:, c])
            absent = mass < absent_mass
            first = 1 if absent.any() else 0
            if first:
                out[c, 0] = x[absent].mean(0)
            present = x[~absent] if first else x
            slots = K - first
            if not slots:  # K = 1 and absent maps: centroid 0 is the codebook
                done.append(c)
                continue
            if len(present) >= slots:
                # k-means, batched with other classes; the initial rows are drawn now, in class order
                perm = torch.randperm(len(present), generator=gen, device="cpu")[:slots].numpy()
                pending.setdefault(slots, []).append((c, first, present, perm))
                if sum(len(j[2]) for j in pending[slots]) * D >= KMEANS_BATCH_FLOATS:
                    flush(slots)
                continue
            if len(present):
                # Fewer informative rows than centroids: each row is its own centroid; the rest repeat
                # centroid 0 and are never chosen (ties go to the first).
                out[c, first : first + len(present)] = present
                out[c, first + len(present) :] = out[c, 0]
            else:
                out[c, 1:] = out[c, 0]
            done.append(c)
        for slots in list(pending):
            flush(slots)
        flush(-1)  # report the last classes
    return out


#: Photos encoded at a time hold at most this many floats (27 photos at C = 151, n = 64).
ENCODE_BLOCK_FLOATS = 1 << 24


def encode(
    probs: np.ndarray, codebook: np.ndarray, *, device=None, batch: int = 4096, norms: np.ndarray | None = None
) -> np.ndarray:
    """Nearest-centroid codes (N, C) uint8 of maps (N, C, n, n) for a codebook laid out position-major,
    (C, D, K) (the index's own layout; pass ``cb.transpose(0, 2, 1)`` for a (C, K, D) one): float, or uint8 with
    v meaning v / 255. ``norms``: the centroids' squared norms float32 (C, K) if known (an index keeps them), else
    computed here.

    Centroid 0's distance and the norm bound that proves it nearest are computed for all classes at once; the
    other centroids' distances only for the classes where some map is not proved, a batch of classes at a time
    (one matrix product each, not a few small operations per class)."""
    import torch

    N, C = probs.shape[:2]
    D, K = codebook.shape[1], codebook.shape[2]
    dev = pick_device(device)
    codes = np.zeros((N, C), dtype=np.uint8)
    scale = 1.0 / 255.0 if codebook.dtype == np.uint8 else 1.0  # the compact codebook: v means v / 255
    with torch.inference_mode():
        # centroid 0 and the norms of all centroids, every class (C x D and C x K floats)
        a0 = torch.from_numpy(np.ascontiguousarray(codebook[:, :, 0], dtype=np.float32)).to(dev)
        if norms is None:
            cnorm2 = torch.empty((C, K), dtype=torch.float32, device=dev)
            for c in range(C):
                cents = torch.from_numpy(np.array(codebook[c], dtype=np.float32)).to(dev)
                if scale != 1.0:
                    cents /= 255.0
                cnorm2[c] = (cents * cents).sum(0)
        else:
            cnorm2 = torch.from_numpy(np.ascontiguousarray(norms, dtype=np.float32)).to(dev)
        if scale != 1.0:
            a0 /= 255.0
        others = cnorm2[:, 1:].sqrt() if K > 1 else cnorm2.new_full((C, 1), float("inf"))
        step = max(1, min(batch, ENCODE_BLOCK_FLOATS // (C * D)))
        for s in range(0, N, step):
            rows = slice(s, s + step)
            block = probs.block(rows) if hasattr(probs, "block") else probs[rows]  # a Reweighted view, or maps
            x = torch.from_numpy(as_float32(block)).to(dev).reshape(-1, C, D)
            xn2 = torch.einsum("bcd,bcd->bc", x, x)
            d0 = (xn2 - 2.0 * torch.einsum("bcd,cd->bc", x, a0) + cnorm2[:, 0]).clamp_min(0)
            # Lower bound of the distance to every other centroid from the norms alone.
            lb = (xn2.sqrt()[:, :, None] - others[None]).square().min(2).values
            todo = d0 >= lb  # (B, C): maps not proved nearest to centroid 0
            classes = todo.any(0).nonzero().flatten()
            per = max(1, ENCODE_BLOCK_FLOATS // (D * K))  # classes whose centroids are converted at a time
            for g in range(0, len(classes), per):
                cls = classes[g : g + per]
                idx = cls.cpu().numpy()
                cents = torch.from_numpy(np.asarray(codebook[idx], dtype=np.float32)).to(dev)  # (G, D, K)
                if scale != 1.0:
                    cents /= 255.0
                xs = x[:, cls].transpose(0, 1)  # (G, B, D)
                d = xn2[:, cls].T[:, :, None] - 2.0 * torch.bmm(xs, cents) + cnorm2[cls][:, None, :]
                code = torch.where(todo[:, cls].T, d.min(dim=2).indices, 0)  # (G, B); first of ties, as before
                codes[s : s + len(x), idx] = code.T.to(torch.uint8).cpu().numpy()
    return codes


def to_bytes(codebook: np.ndarray) -> np.ndarray:
    """A float codebook (C, ...) of probabilities as bytes: v = round(255 * clip(value, 0, 1)), a class at a time."""
    out = np.empty(codebook.shape, np.uint8)
    for c in range(codebook.shape[0]):
        x = np.clip(np.asarray(codebook[c], np.float32), 0.0, 1.0)
        np.rint(x * np.float32(255.0), out=x)
        out[c] = x
    return out


def block_sums_shape(C: int, n: int, K: int, block_w: int) -> tuple[int, int, int]:
    """(C, n * blocks per row, K) of a codebook of n x n maps summed over blocks of ``block_w`` pixels of a row."""
    return C, n * -(-n // min(block_w, n)), K


def derived(cb: np.ndarray, n: int, block_w: int, block_sums=None) -> tuple[np.ndarray, np.ndarray]:
    """(squared centroid norms float32 (C, K), the codebook summed over blocks of ``block_w`` pixels of a row
    (C, n * nb, K): uint16 for a uint8 codebook, else float32) of a position-major codebook ``cb`` (C, n*n, K);
    ``block_sums`` when given (read from a file, checked there) is used as it is."""
    C, _, K = cb.shape
    bytes_ = cb.dtype == np.uint8
    norms = np.empty((C, K), np.float64)
    for c in range(C):  # a class at a time: no float64 copy of the whole codebook
        x = cb[c].astype(np.float64)
        norms[c] = np.einsum("dk,dk->k", x, x)
    norms = (norms / (255.0 * 255.0) if bytes_ else norms).astype(np.float32)
    if block_sums is None:
        w = min(block_w, n)
        shape = block_sums_shape(C, n, K, block_w)
        nb = shape[1] // n
        dtype = np.uint16 if bytes_ else np.float32  # at most 16 * 255 for bytes
        sums = np.zeros((C, n, nb, K), dtype)
        grid = cb.reshape(C, n, n, K)
        for b in range(nb):
            sums[:, :, b] = grid[:, :, b * w : (b + 1) * w].sum(axis=2, dtype=dtype)
        block_sums = sums.reshape(shape)
    return norms, block_sums


def decode(cb: np.ndarray, codes, size: int) -> np.ndarray:
    """The maps float32 (N, C, n, n) that codes (N, C) stand for in a position-major codebook ``cb`` (C, n*n, K):
    each class's centroid. ValueError for codes of another shape, dtype or range."""
    C, D, K = cb.shape
    cd = as_numpy(codes, "codes")
    if cd.ndim != 2 or cd.shape[1] != C or cd.dtype.kind not in "iu":
        raise ValueError(f"codes must be integers of shape (N, {C}); got {cd.dtype} {cd.shape}")
    if cd.size and (cd.min() < 0 or cd.max() >= K):
        raise ValueError(f"codes must be in 0..{K - 1}")
    out = np.empty((len(cd), C, D), np.float32)
    for c in range(C):
        out[:, c] = cb[c][:, cd[:, c]].T
    if cb.dtype == np.uint8:
        out /= np.float32(255.0)
    return out.reshape(len(cd), C, size, size)


def fingerprint(*arrays) -> str:
    """sha256 (hex) of arrays (dtype, shape and bytes; None counts too): what a shard's codes mean."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.name}{list(a.shape)};".encode())
        flat = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
        for s in range(0, flat.size, 1 << 26):
            h.update(memoryview(flat[s : s + (1 << 26)]))
    return h.hexdigest()


def check_given_codebook(codebook, codes) -> tuple[np.ndarray, np.ndarray]:
    """A codebook (C, K, n, n) and codes (N, C) from another tool, checked: (codebook, codes) as arrays. The
    codebook must be uint8 (v meaning v / 255) or float probabilities in [CODEBOOK_MIN, CODEBOOK_MAX]; the codes
    uint8 of one row per photo."""
    cb = as_numpy(codebook, "codebook")
    if cb.ndim != 4 or cb.shape[2] != cb.shape[3]:
        raise ValueError(f"codebook must have shape (C, K, n, n); got {cb.shape}")
    if cb.dtype.kind != "f" and cb.dtype != np.uint8:
        raise ValueError(f"codebook must be a float array (or uint8, v meaning v / 255); got dtype {cb.dtype}")
    if cb.dtype.kind == "f" and not np.isfinite(cb).all():
        raise ValueError("codebook contains NaN or inf")
    ok, lo, hi = codebook_in_range(cb) if cb.dtype.kind == "f" else (True, 0, 1)
    if not ok:
        raise ValueError(
            f"codebook values must be probabilities in [{CODEBOOK_MIN}, {CODEBOOK_MAX}] (centroids of softmax "
            f"maps); found values in [{lo:.6g}, {hi:.6g}]: pass the centroids of the maps themselves"
        )
    cd = as_numpy(codes, "codes")
    if cd.ndim != 2 or cd.shape[1] != cb.shape[0]:
        raise ValueError(f"codes must have shape (N, {cb.shape[0]}) to match the codebook; got {cd.shape}")
    if cd.dtype != np.uint8:
        raise ValueError(f"codes must be uint8; got dtype {cd.dtype}")
    return cb, cd
