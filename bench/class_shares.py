"""How well each photo's class shares (the share of its pixels whose most likely class is c) can be judged from what
an index stores (issue 22, ``--exclude``). Prints its figures; asserts nothing.

    python bench/class_shares.py [--k 16] [--data camvid coco-mini]

For each data set's cached network maps (``bench/maps_cache.py``; CamVid: 468 photos, COCO-MINI: 80), an index of
the ``"balanced"`` ranking with K centroids is trained on the photos themselves (as ``segsearch index`` does), and
every (photo, class) share is estimated four ways against the truth, the argmax of the network's float maps:

- ``exact``: the argmax of the exact maps the index keeps (bytes of the reweighted maps, the weighting undone);
- ``codes``: the argmax of the maps the codes decode to (the weighting undone);
- ``codes, raw``: the same without undoing the weighting (what ``PhotoIndex.predicted_labels`` shows);
- ``code mass``: the decoded class map's mass over the pixels (no argmax).

Per estimate: the mean absolute error of the shares over the pairs where either is > 0, how many pairs with a true
share >= 3% an ``--exclude CLASS`` (default share 1%) would keep (missed), how many with a true share < 1% it would
drop (wrongly dropped), and how many of the decisions at 1% differ from the truth's.
"""

from __future__ import annotations

import argparse

import numpy as np

import maps_cache
from segsearch import Index
from segsearch.engine.exact_maps import BlockMaps


def argmax_shares(maps: np.ndarray) -> np.ndarray:
    """(N, C) share of each photo's pixels whose argmax over the classes is c, of maps (N, C, D)."""
    N, C = maps.shape[:2]
    lab = np.argmax(maps, axis=1)
    return np.stack([np.bincount(lab[i], minlength=C) for i in range(N)]).astype(np.float64) / maps.shape[2]


def estimates(probs: np.ndarray, K: int) -> dict[str, np.ndarray]:
    N, C, n, _ = probs.shape
    index = Index(C, n, K, keep_exact=True)
    index.train(probs, niter=10, device="cpu")
    codes = index.encode(probs, device="cpu")
    w = index.class_weights.astype(np.float64)[None, :, None]
    bm: BlockMaps = index.exact_maps(probs)
    exact = np.stack([bm.dense(i, C, n * n) for i in range(N)]).astype(np.float64)
    dec = index.decode(codes).reshape(N, C, n * n).astype(np.float64)
    return {
        "exact": argmax_shares(exact / w),
        "codes": argmax_shares(dec / w),
        "codes, raw": argmax_shares(dec),
        "code mass": dec.sum(axis=2) / (n * n),
    }


def report(name: str, truth: np.ndarray, est: np.ndarray) -> None:
    either = (truth > 0) | (est > 0)
    mae = float(np.abs(truth - est)[either].mean())
    big = truth >= 0.03
    missed = int((big & (est < 0.01)).sum())
    small = truth < 0.01
    wrong = int((small & (est >= 0.01)).sum())
    differ = int(((truth >= 0.01) != (est >= 0.01)).sum())
    print(
        f"  {name:10s}  share MAE {mae:.4f}   true >= 3% kept: {missed}/{int(big.sum())}   "
        f"true < 1% dropped: {wrong}/{int(small.sum())}   decisions at 1% that differ: {differ}/{truth.size}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--data", nargs="+", choices=["camvid", "coco-mini"], default=["camvid", "coco-mini"])
    a = ap.parse_args()
    for data in a.data:
        photos = maps_cache.camvid_photos() if data == "camvid" else maps_cache.coco_photos()
        probs = np.asarray(maps_cache.network_maps(*photos, tag=data), np.float32)
        N, C = probs.shape[:2]
        truth = argmax_shares(probs.reshape(N, C, -1))
        per_photo = (truth > 0).sum(axis=1)
        print(
            f"{data}: {N} photos, K={a.k}; classes with argmax pixels per photo: median {np.median(per_photo):.0f}, "
            f"max {per_photo.max()}"
        )
        for name, est in estimates(probs, a.k).items():
            report(name, truth, est)


if __name__ == "__main__":
    main()
