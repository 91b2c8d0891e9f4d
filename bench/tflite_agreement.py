"""Agreement of segsearch's torch DeepLab port with the TFLite interpreter on real photos.

Runs both on the same 513x513 inputs (photo stretched to 513x513, ``rgb / 127.5 - 1``) and reports,
averaged over the photos: pixel agreement of the argmax labels, mean absolute softmax difference
(over all 151 classes and pixels), and the mean per-pixel total-variation distance between the two
softmax distributions. Then the maps segsearch indexes (``Segmenter.predict``, 64 x 64, the CPU pipeline as
``segsearch index`` runs it) against the interpreter's (softmax of its 513 x 513 logits, the same area average):
class-mass agreement (per photo, sum over classes of the smaller of the two class shares) and cell agreement
(1 minus the total-variation distance per map cell). Also times one 513x513 inference of each with the same
thread count, and saves a side-by-side picture (photo | torch labels | TFLite labels) for 3 photos.

Needs the ``test`` extra (ai-edge-litert) and the shared data next to the repository::

    python bench/tflite_agreement.py [--out bench-report/agreement.png] [--photos 40] [--threads 2] [--hybrid-quant]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segsearch.network.segmenter import Segmenter

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODEL = SHARED / "models" / "deeplabv3-mnv2-ade20k" / "model.tflite"


def pick_photos(n: int) -> list[Path]:
    """About n/2 CamVid and n/2 COCO-MINI photos, evenly spread over each sorted list."""
    camvid = sorted((SHARED / "data" / "camvid").glob("*/images/*.jpg"))
    coco = sorted((SHARED / "data" / "coco-mini" / "images").glob("*.jpg"))
    half = n // 2
    spread = lambda files, k: [files[i] for i in np.linspace(0, len(files) - 1, k).round().astype(int)]
    return spread(camvid, half) + spread(coco, n - half)


def load_input(path: Path) -> np.ndarray:
    """The network input of a photo: float32 (513, 513, 3) in [-1, 1]."""
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB").resize((513, 513), Image.BILINEAR))
    return rgb.astype(np.float32) / 127.5 - 1.0


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def map_agreement(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per photo of 64 x 64 maps ``p`` and ``q`` (N, C, n, n): the class-mass agreement (sum over the classes of
    the smaller of the two class shares) and the cell agreement (mean over the cells of sum_c min(p_c, q_c), 1
    minus the total-variation distance); 1 for the same maps. The bench scripts' one measure of "the same maps"."""
    mass = np.minimum(p.mean(axis=(2, 3)), q.mean(axis=(2, 3))).sum(axis=1)
    cell = np.minimum(p, q).sum(axis=1).mean(axis=(1, 2))
    return mass, cell


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-report/agreement.png", help="side-by-side picture path")
    ap.add_argument("--photos", type=int, default=40, help="number of photos (half CamVid, half COCO-MINI)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both torch and TFLite")
    ap.add_argument("--weights", default=str(MODEL), help=".tflite or imported .safetensors weights")
    ap.add_argument("--hybrid-quant", action="store_true", help="mimic TFLite's int8 rounding of activations")
    args = ap.parse_args(argv)
    from ai_edge_litert.interpreter import Interpreter

    torch.set_num_threads(args.threads)
    seg = Segmenter.default(device="cpu", weights=args.weights, hybrid_quant=args.hybrid_quant)
    interp = Interpreter(str(MODEL), num_threads=args.threads)
    interp.allocate_tensors()
    in_idx = interp.get_input_details()[0]["index"]
    out_idx = interp.get_output_details()[0]["index"]

    photos = pick_photos(args.photos)
    agree, mae, tv, t_torch, t_tfl, shown, mass_agree, cell_agree = [], [], [], [], [], [], [], []
    for k, path in enumerate(photos):
        x = load_input(path)
        xt = torch.from_numpy(x).permute(2, 0, 1)[None].contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        interp.set_tensor(in_idx, x[None])
        interp.invoke()
        ref = interp.get_tensor(out_idx)[0]
        t1 = time.perf_counter()
        with torch.inference_mode():
            ours = seg.model(xt)[0].permute(1, 2, 0).numpy()
        t2 = time.perf_counter()
        if k > 0:  # first call is warm-up
            t_tfl.append(t1 - t0)
            t_torch.append(t2 - t1)
        maps = seg.predict(xt[0].permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8), size=64)[0]
        with torch.inference_mode():
            ref_t = torch.from_numpy(ref).permute(2, 0, 1)[None]
            ref_maps = torch.nn.functional.adaptive_avg_pool2d(torch.softmax(ref_t, 1), 64)[0].numpy()
        mass, cell = map_agreement(maps[None], ref_maps[None])
        mass_agree.append(float(mass[0]))
        cell_agree.append(float(cell[0]))
        p, q = softmax(ours, -1), softmax(ref, -1)
        la, lb = ours.argmax(-1), ref.argmax(-1)
        agree.append(float((la == lb).mean()))
        mae.append(float(np.abs(p - q).mean()))
        tv.append(float(0.5 * np.abs(p - q).sum(-1).mean()))
        name = "/".join(path.parts[-4:-2] + (path.name,))
        print(f"{name:<42} agree {agree[-1]:.4f}  mae {mae[-1]:.2e}  tv {tv[-1]:.4f}", flush=True)
        if k in (0, len(photos) // 2, len(photos) - 1):
            shown.append((x, la, lb))

    print(f"\nphotos: {len(photos)} ({args.photos // 2} CamVid, {args.photos - args.photos // 2} COCO-MINI)")
    print(f"pixel agreement (argmax), mean: {np.mean(agree):.4f}   min: {np.min(agree):.4f}")
    print(f"softmax mean absolute difference: {np.mean(mae):.3e}")
    print(f"softmax total-variation distance per pixel, mean: {np.mean(tv):.4f}")
    print(
        f"64x64 maps (Segmenter.predict) vs TFLite's: class-mass agreement mean {np.mean(mass_agree):.4f} "
        f"(min {np.min(mass_agree):.4f}), cell agreement mean {np.mean(cell_agree):.4f} (min {np.min(cell_agree):.4f})"
    )
    print(
        f"one 513x513 inference, {args.threads} threads, median: torch {np.median(t_torch):.3f} s, "
        f"TFLite {np.median(t_tfl):.3f} s"
    )

    rows = []
    for x, la, lb in shown:
        photo = ((x + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
        gap = np.full((513, 8, 3), 255, np.uint8)
        rows.append(np.concatenate([photo, gap, seg.colorize(la), gap, seg.colorize(lb)], axis=1))
    sep = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
    picture = np.concatenate([r for row in rows for r in (row, sep)][:-1], axis=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(out)
    print(f"picture (photo | torch labels | TFLite labels): {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
