"""Images per second from JPEG files to saved codes, on the GPU (the issue's H100 target: >= 1000 images/s).

    python bench/gpu_throughput.py [--images 4096] [--batch 64] [--workers 8] [--out bench-report/gpu.json]

Reads the real photos of ../shared (CamVid + COCO-MINI JPEGs, cycled to reach --images), decodes them in
DataLoader workers, segments them with the default network (float16 autocast on CUDA), trains a K=256
codebook on the first batches' maps, encodes every batch on the device and writes the codes to a .npy file.
Reports images/s for the whole path (decode -> network -> softmax/pool -> encode -> saved codes), after one
warm-up batch. Runs on the CPU too (slowly), to check it works before a GPU session; stays under 5 minutes
on one H100 at the defaults.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from segsearch import Segmenter
from segsearch.engine.codebook import encode, train_codebook

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--centroids", type=int, default=256)
    ap.add_argument("--weights", default=str(SHARED / "models/deeplabv3-mnv2-ade20k/model.tflite"))
    ap.add_argument("--out", default="bench-report/gpu.json")
    args = ap.parse_args()

    photos = sorted((SHARED / "data").glob("*/*/images/*.jpg")) + sorted((SHARED / "data").glob("*/images/*.jpg"))
    if not photos:
        raise SystemExit(f"no JPEG photos under {SHARED / 'data'}")
    paths = list(itertools.islice(itertools.cycle(photos), args.images))
    seg = Segmenter.default(weights=args.weights)
    device = seg.device
    print(f"device {device}, {len(paths)} images ({len(photos)} distinct), batch {args.batch}, workers {args.workers}")

    # codebook from the first batches (at least K images), trained on the device
    n_train = max(args.centroids, args.batch)
    train = np.concatenate(
        [p for _, p, _ in seg.iter_predict(paths[:n_train], args.size, args.batch, args.workers, autocast=True)]
    )
    codebook = train_codebook(train, args.centroids, niter=10, device=device).transpose(0, 2, 1)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    codes = np.lib.format.open_memmap(
        out.with_suffix(".codes.npy"), mode="w+", dtype=np.uint8, shape=(len(paths), len(seg.classes))
    )
    done, t0 = 0, None
    for idx, probs, _failed in seg.iter_predict(paths, args.size, args.batch, args.workers, autocast=True):
        codes[idx] = encode(probs, codebook, device=device)
        done += len(idx)
        if t0 is None:  # the first batch warms up CUDA kernels and workers
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, first = time.perf_counter(), done
    codes.flush()
    elapsed = time.perf_counter() - t0
    rate = (done - first) / elapsed if elapsed > 0 else float("nan")
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "images": done,
        "batch": args.batch,
        "workers": args.workers,
        "images_per_s": rate,
    }
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
