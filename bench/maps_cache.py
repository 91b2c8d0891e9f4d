"""Network probability maps of real photos, cached in ``bench/.cache`` as float16 ``.npy``.

The cache key is a hash of the network (its name and weight file), the way segsearch computes the maps from it
(:data:`segsearch.network.segmenter.MAPS_PIPELINE`), the map size and the photo list (paths relative to the data
folder and file sizes), so a changed list, network or pipeline gives a new file. Segmenting the
468 CamVid photos takes several minutes on 2 CPU cores; later runs load the file in a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
SHARED = HERE.parent.parent / "shared"
MODEL = SHARED / "models" / "deeplabv3-mnv2-ade20k" / "model.tflite"
SIZE = 64


def log(msg: str) -> None:
    print(f"[maps] {msg}", file=sys.stderr, flush=True)


def ensure_cache() -> Path:
    """Create ``bench/.cache`` (ignored by git) if missing; returns it."""
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")
    return CACHE


def save_npy(path: Path, array: np.ndarray) -> None:
    """Save ``array`` to ``path`` in the cache (a temporary file renamed into place, no pickle)."""
    ensure_cache()
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    os.replace(tmp, path)


def weights_path() -> str | None:
    """``$SEGSEARCH_WEIGHTS``, else the shared TFLite file when present, else None (the user cache)."""
    if os.environ.get("SEGSEARCH_WEIGHTS"):
        return os.environ["SEGSEARCH_WEIGHTS"]
    return str(MODEL) if MODEL.is_file() else None


def _key(paths: list[Path], root: Path, network: str, weights: str) -> str:
    from segsearch.network.segmenter import MAPS_PIPELINE

    files = [[str(p.relative_to(root)), p.stat().st_size] for p in paths]
    blob = {"network": network, "weights": weights, "size": SIZE, "files": files}
    if MAPS_PIPELINE != 1:  # the first pipeline's files keep their names
        blob["pipeline"] = MAPS_PIPELINE
    blob = json.dumps(blob, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _cache_path(paths: list[Path], root: Path, tag: str) -> Path:
    from segsearch.network.weights import resolve_weights

    weights = resolve_weights(weights_path())
    return CACHE / f"maps-{tag}-{_key(paths, root, 'deeplabv3-mnv2-ade20k', weights.name)}-n{SIZE}.npy"


def cached_maps(paths: list[Path], root: Path, *, tag: str) -> np.ndarray | None:
    """The cached maps of ``network_maps`` (memory-mapped), or None when they are not cached (or the photos
    or the network's weights are missing)."""
    try:
        path = _cache_path(paths, root, tag)
    except (OSError, ValueError):  # WeightsNotFoundError is an OSError
        return None
    return np.load(path, allow_pickle=False, mmap_mode="r") if paths and path.exists() else None


def network_maps(paths: list[Path], root: Path, *, tag: str, threads: int = 2) -> np.ndarray:
    """float16 (N, 151, SIZE, SIZE) softmax maps of ``paths`` (in order) from the default network, cached.

    ``root`` is the data folder the paths are keyed relative to; ``tag`` names the cache file.
    """
    cached = cached_maps(paths, root, tag=tag)
    if cached is not None:
        return cached
    path = _cache_path(paths, root, tag)
    import torch

    from segsearch import Segmenter

    torch.set_num_threads(threads)
    seg = Segmenter.default(device="cpu", weights=weights_path())
    out = np.zeros((len(paths), len(seg.classes), SIZE, SIZE), np.float16)
    done = np.zeros(len(paths), bool)
    t0 = time.perf_counter()
    for idx, probs, failed in seg.iter_predict(paths, size=SIZE, batch_size=4, workers=1):
        if failed:
            raise RuntimeError(f"unreadable photos: {[(str(paths[i]), e) for i, e in failed]}")
        out[idx] = probs.astype(np.float16)
        done[idx] = True
        log(f"{tag}: {done.sum()}/{len(paths)} photos segmented ({time.perf_counter() - t0:.0f} s)")
    save_npy(path, out)
    log(f"{tag}: cached as {path.name}")
    return np.load(path, allow_pickle=False, mmap_mode="r")


def camvid_photos() -> tuple[list[Path], Path]:
    """All CamVid photos (train then val, sorted by name) and the data folder."""
    root = SHARED / "data" / "camvid"
    return sorted((root / "train" / "images").glob("*.jpg")) + sorted((root / "val" / "images").glob("*.jpg")), root


def coco_photos() -> tuple[list[Path], Path]:
    root = SHARED / "data" / "coco-mini"
    return sorted((root / "images").glob("*.jpg")), root


if __name__ == "__main__":
    for tag, (paths, root) in (("camvid", camvid_photos()), ("coco-mini", coco_photos())):
        maps = network_maps(paths, root, tag=tag)
        log(f"{tag}: {maps.shape} {maps.dtype}")
