"""``segsearch index`` on the CPU: photos/s, its wall time against the network's own time, and where the rest goes.

    python bench/indexing_throughput.py [--photos 200] [--batch 8] [--threads 2] [--out bench-report/indexing.json]

Takes ``--photos`` real photos from ../shared (CamVid and COCO-MINI, mixed), then in one run:

1. the network alone: the default network's forward pass (513x513 input to 513x513 logits, as the published
   TFLite graph) on every photo, pixels decoded beforehand, in batches of ``--batch``;
2. ``segsearch index`` (``build_index``, defaults: K from the number of photos, one decoding worker) on the same
   photos, into a fresh folder, timed end to end, with the time inside each step recorded on the way: the
   network, softmax + area pooling, the codebook training, encoding, and writing the index;
3. decoding + resizing to 513x513 alone, in this process (during indexing it runs in a worker process).

The target (issue "out of the box"): index wall time <= 1.3x the network's own time. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import segsearch
from segsearch import Index, Segmenter
from segsearch.library.build import build_index
from segsearch.network.segmenter import _square_pixels

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def write_report(report: dict, path) -> None:
    """Write a bench report as JSON (its folder created if missing) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


def real_photos(n: int) -> list[Path]:
    """n photos: CamVid and COCO-MINI interleaved (COCO-MINI has 80)."""
    camvid = sorted((SHARED / "data" / "camvid").glob("*/images/*.jpg"))
    coco = sorted((SHARED / "data" / "coco-mini" / "images").glob("*.jpg"))
    n_coco = min(len(coco), n // 2)
    picked = [camvid[i] for i in np.linspace(0, len(camvid) - 1, n - n_coco).round().astype(int)] + coco[:n_coco]
    if len(picked) < n:
        raise SystemExit(f"only {len(picked)} photos in {SHARED / 'data'}")
    return picked


class Timers:
    """Wraps methods to add up the wall time spent inside them (outermost call only)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.undo = []

    def wrap(self, owner, name: str, label: str):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t

        setattr(owner, name, timed)
        self.undo.append((owner, name, original))

    def restore(self):
        for owner, name, original in reversed(self.undo):
            setattr(owner, name, original)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench-report/indexing.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = real_photos(args.photos)
    seg = Segmenter.default(device="cpu")
    report = {
        "photos": len(photos),
        "batch": args.batch,
        "threads": args.threads,
        "device": "cpu",
        "simd": segsearch.simd_level(),
        "torch": torch.__version__,
    }

    # 3. decoding alone (also gives the network its input for 1.)
    t = time.perf_counter()
    pixels = [_square_pixels(p, seg.input_size) for p in photos]
    report["decode_s"] = time.perf_counter() - t

    # 1. the network alone
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(pixels), args.batch):
            seg.model(seg._normalize(torch.from_numpy(np.stack(pixels[s : s + args.batch]))))
    report["network_s"] = time.perf_counter() - t
    del pixels

    # 2. segsearch index, timed end to end and inside its steps
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, p in enumerate(photos):  # copies: the indexer skips links that lead out of the photos folder
            shutil.copyfile(p, folder / f"{i:04d}_{p.name}")
        timers = Timers()
        timers.wrap(Segmenter, "_forward", "network")
        timers.wrap(Segmenter, "_maps", "network + softmax + pooling")
        timers.wrap(Index, "train", "codebook training")
        timers.wrap(Index, "encode", "encoding")
        timers.wrap(Index, "save", "writing index files")
        t = time.perf_counter()
        try:
            result = build_index(folder, Path(tmp) / "idx", batch=args.batch, segmenter=seg, log=lambda s: None)
        finally:
            timers.restore()
        report["index_s"] = time.perf_counter() - t
        report["index_folder_bytes"] = sum(f.stat().st_size for f in (Path(tmp) / "idx").rglob("*") if f.is_file())
        report["n_centroids"] = result.n_centroids
        shutil.rmtree(Path(tmp) / "idx")
    steps = dict(timers.seconds)
    steps["softmax + pooling"] = steps.pop("network + softmax + pooling") - steps["network"]
    steps["decode (in a worker process, overlapped)"] = report["decode_s"]
    steps["the rest (reading the folder, SQLite, sample file, waiting for decoding)"] = report["index_s"] - sum(
        v for k, v in steps.items() if not k.startswith("decode")
    )
    report["index_steps_s"] = steps
    report["photos_per_s"] = len(photos) / report["index_s"]
    report["index_over_network"] = report["index_s"] / report["network_s"]

    n = len(photos)
    print(f"{n} photos, batch {args.batch}, {args.threads} threads, CPU")
    print(f"  network alone           {report['network_s']:7.1f} s  ({1000 * report['network_s'] / n:.0f} ms/photo)")
    print(
        f"  segsearch index         {report['index_s']:7.1f} s  ({report['photos_per_s']:.2f} photos/s, "
        f"{report['index_over_network']:.2f}x the network; target <= 1.3x)"
    )
    for name, sec in steps.items():
        print(f"    {name:<72} {sec:7.1f} s  {100 * sec / report['index_s']:5.1f}%")
    print(f"  index folder: {report['index_folder_bytes'] / 2**20:.1f} MB at K={report['n_centroids']}")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
