"""Photos per second from JPEG files to codes on a GPU, through segsearch's own pipeline.

    python bench/gpu_throughput.py [--images 4096] [--batch 64] [--workers 8] [--amp float16|bfloat16|off]
                                   [--index-photos 1024] [--out bench-report/gpu.json] [--allow-cpu]

Reads the real photos of ../shared (CamVid + COCO-MINI JPEGs, cycled to reach --images) and measures, on the
default device (CUDA when there is one):

1. the stream: photos decoded in DataLoader workers (pinned memory), segmented by the default network under
   ``--amp`` autocast, softmax + pooling on the device, a K=256 codebook trained on the first batches' maps, every
   batch encoded on the device and its codes written to a .npy file: photos/s after one warm-up batch;
2. ``segsearch index`` itself (``build_index`` with the device, ``--batch`` and ``--workers``) on
   ``--index-photos`` copies of the photos into a fresh folder, end to end (sample, training, encoding, writing);
3. the maps' agreement with the CPU's (float32, the default pipeline) on 16 photos: class-mass and cell agreement
   (see bench/tflite_agreement.py), so the figures of a lower precision come with what it changes.

Without CUDA it prints that it skipped and exits 0 (``--allow-cpu`` runs it on the CPU anyway, slowly, to check the
script). ``bench/gpu_check.sh`` runs it for each precision in one command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from segsearch import Segmenter
from segsearch.engine.codebook import encode, train_codebook
from tflite_agreement import map_agreement

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def agreement(photos: list[Path], seg: Segmenter, amp) -> dict:
    """Class-mass and cell agreement of ``seg``'s maps under ``amp`` with the CPU pipeline's, on ``photos``."""
    cpu = Segmenter.default(device="cpu")
    ours = np.concatenate([p for _, p, _ in seg.iter_predict(photos, 64, 8, 2, autocast=amp)])
    ref = cpu.predict(photos, size=64)
    mass, cell = map_agreement(ours, ref)
    return {"photos": len(photos), "class_mass_agreement": float(mass.mean()), "cell_agreement": float(cell.mean())}


def index_throughput(paths: list[Path], device: str, batch: int, workers: int) -> dict:
    """``build_index`` on copies of ``paths``, end to end."""
    from segsearch.library.build import build_index

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, p in enumerate(paths):
            shutil.copyfile(p, folder / f"{i:05d}_{p.name}")
        t = time.perf_counter()
        result = build_index(folder, Path(tmp) / "idx", device=device, batch=batch, workers=workers, log=lambda s: None)
        seconds = time.perf_counter() - t
    n = result.n_done
    return {"photos": n, "seconds": seconds, "photos_per_s": n / seconds, "K": result.n_centroids}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--centroids", type=int, default=256)
    ap.add_argument("--amp", choices=["float16", "bfloat16", "off"], default="float16", help="autocast on CUDA")
    ap.add_argument("--index-photos", type=int, default=1024, help="photos for the segsearch index run (0: none)")
    ap.add_argument("--weights", default=str(SHARED / "models/deeplabv3-mnv2-ade20k/model.tflite"))
    ap.add_argument("--out", default="bench-report/gpu.json")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no CUDA device")
    args = ap.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_throughput: no CUDA device here; skipped (--allow-cpu runs it on the CPU)")
        return
    amp = False if args.amp == "off" else args.amp

    photos = sorted((SHARED / "data").glob("*/*/images/*.jpg")) + sorted((SHARED / "data").glob("*/images/*.jpg"))
    if not photos:
        raise SystemExit(f"no JPEG photos under {SHARED / 'data'}")
    paths = list(itertools.islice(itertools.cycle(photos), args.images))
    seg = Segmenter.default(weights=args.weights)
    device = seg.device
    print(f"device {device}, {len(paths)} images ({len(photos)} distinct), batch {args.batch}, workers {args.workers}")

    # 1. the stream: codebook from the first batches (at least K images), trained on the device
    n_train = max(args.centroids, args.batch)
    train = np.concatenate(
        [p for _, p, _ in seg.iter_predict(paths[:n_train], args.size, args.batch, args.workers, autocast=amp)]
    )
    codebook = train_codebook(train, args.centroids, niter=10, device=device).transpose(0, 2, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    codes = np.lib.format.open_memmap(
        out.with_suffix(".codes.npy"), mode="w+", dtype=np.uint8, shape=(len(paths), len(seg.classes))
    )
    done, t0, first = 0, None, 0
    for idx, probs, _failed in seg.iter_predict(paths, args.size, args.batch, args.workers, autocast=amp):
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
        "torch": torch.__version__,
        "amp": args.amp,
        "images": done,
        "batch": args.batch,
        "workers": args.workers,
        "images_per_s": rate,
    }
    print(f"stream (decode -> network -> maps -> codes): {rate:.1f} photos/s", flush=True)
    # 2. segsearch index itself
    if args.index_photos:
        result["index"] = index_throughput(paths[: args.index_photos], str(device), args.batch, args.workers)
        print(f"segsearch index: {result['index']['photos_per_s']:.1f} photos/s", flush=True)
    # 3. what the precision changes
    result["agreement_with_cpu"] = agreement(photos[:: max(1, len(photos) // 16)][:16], seg, amp)
    print(f"agreement with the CPU's maps: {result['agreement_with_cpu']}")
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
