"""Time of k-means training + encoding for a photo collection, the network's time excluded.

    python bench/codebook_time.py [--photos 10000] [--classes 151] [--sample 2000] [--centroids 256]

Maps are synthetic softmax maps shaped like real segmentation output (segsearch.evaluation.synthetic), made in batches
outside the timed parts. Training uses a sample of the photos, as `segsearch index` does; encoding covers
every photo. The issue's target: 10,000 photos in <= 2 minutes on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import time

from segsearch.engine.codebook import encode, train_codebook
from segsearch.evaluation.synthetic import synthetic_probs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=151)
    ap.add_argument("--sample", type=int, default=2_000)
    ap.add_argument("--centroids", type=int, default=256)
    ap.add_argument("--niter", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()

    sample = synthetic_probs(min(args.sample, args.photos), args.classes, 64, seed=1)
    t = time.perf_counter()
    codebook = train_codebook(sample, args.centroids, niter=args.niter, seed=0)
    t_train = time.perf_counter() - t
    del sample
    position_major = codebook.transpose(0, 2, 1)
    t_encode = 0.0
    for start in range(0, args.photos, args.batch):
        maps = synthetic_probs(min(args.batch, args.photos - start), args.classes, 64, seed=100 + start)
        t = time.perf_counter()
        encode(maps, position_major)
        t_encode += time.perf_counter() - t
    print(
        f"{args.photos:,} photos, C={args.classes}, K={args.centroids}, sample {args.sample:,}, niter {args.niter}: "
        f"train {t_train:.1f} s + encode {t_encode:.1f} s = {t_train + t_encode:.1f} s"
    )


if __name__ == "__main__":
    main()
