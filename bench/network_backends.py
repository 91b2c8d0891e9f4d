"""The default network on a CPU through other runtimes, side by side in one run: time, start-up cost, and how much
each changes the maps. Issue 21's directions to measure: ``torch.compile``, ONNX Runtime, int8.

    pip install onnxruntime onnx onnxscript      # for the ONNX Runtime candidates (else they are skipped)
    python bench/network_backends.py [--photos 16] [--batch 8] [--threads 2] [--repeats 3] [--only NAME ...]

On ``--photos`` real photos from ../shared (CamVid and COCO-MINI, mixed), decoded once, each candidate runs the
network to the logits indexing uses (before the last upsampling, 129 x 129 for the 513 x 513 input) in batches of
``--batch``; the maps are then made by the same C++ pass (upsampling + softmax + pooling to 64 x 64). Candidates:

- ``default``: this package's path (fused, packed oneDNN convolutions);
- ``plain``: the same module with ``SEGSEARCH_FUSED_CONV=0`` (conv, padding and activation as separate torch ops);
- ``compile``: ``torch.compile`` (inductor, CPU, freezing on) of the plain module; its first call (the
  compilation) is reported as start-up;
- ``onnxruntime``: the plain module exported to ONNX (``torch.onnx.export``), run by ONNX Runtime (all graph
  optimizations, ``--threads`` intra-op threads); export + session creation is start-up;
- ``onnxruntime-int8``: that ONNX graph quantized statically to int8 (QDQ, per-channel weights, activations
  calibrated on the first ``--calibrate`` photos) by ``onnxruntime.quantization``: changes the maps.

Each candidate's steady time is the median of ``--repeats`` passes over all photos; agreement with ``default``'s
maps is the class-mass agreement (per photo, sum over classes of the smaller class share) and the pixel argmax
agreement of the 64 x 64 maps. A candidate whose package is missing (onnxruntime, onnx, onnxscript) is reported
as skipped. Writes a JSON report.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from indexing_throughput import load_average, real_photos, write_report
from segsearch import Segmenter
from segsearch.network.segmenter import _square_pixels, _upsample_softmax_pool
from tflite_agreement import map_agreement

SIZE = 64


def timed_passes(run, inputs: list[torch.Tensor], repeats: int) -> tuple[list[float], list[torch.Tensor]]:
    """``repeats`` timed passes of ``run`` over the batches (after one untimed batch); (seconds, last logits)."""
    run(inputs[0])
    secs, out = [], []
    for _ in range(repeats):
        out = []
        t = time.perf_counter()
        for x in inputs:
            out.append(run(x))
        secs.append(time.perf_counter() - t)
    return secs, out


def maps_of(logits: list[torch.Tensor], in_hw) -> np.ndarray:
    return np.concatenate([_upsample_softmax_pool(torch.as_tensor(lg), in_hw, SIZE).numpy() for lg in logits])


def agreement(p: np.ndarray, q: np.ndarray) -> dict:
    mass, _ = map_agreement(p, q)
    pix = (p.argmax(1) == q.argmax(1)).mean(axis=(1, 2))
    return {
        "class_mass_agreement": float(mass.mean()),
        "class_mass_agreement_min": float(mass.min()),
        "pixel_agreement": float(pix.mean()),
        "max_abs_map_diff": float(np.abs(p - q).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calibrate", type=int, default=8, help="photos the int8 activations are calibrated on")
    ap.add_argument("--only", nargs="*", help="run only these candidates (default first, always)")
    ap.add_argument("--out", default="bench-report/backends.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seg = Segmenter.default(device="cpu")
    model = seg.model.eval()
    photos = real_photos(args.photos)
    pixels = [_square_pixels(p, seg.input_size) for p in photos]
    inputs = [
        seg._normalize(torch.from_numpy(np.stack(pixels[s : s + args.batch])))
        for s in range(0, len(pixels), args.batch)
    ]
    in_hw = tuple(inputs[0].shape[-2:])
    report = {
        "photos": len(photos),
        "batch": args.batch,
        "threads": args.threads,
        "torch": torch.__version__,
        "load_average_1min": [load_average()],
        "candidates": {},
    }

    def record(name: str, startup_s: float, secs: list[float], logits, note: str = "") -> None:
        med = statistics.median(secs)
        entry = {
            "startup_s": startup_s,
            "seconds": secs,
            "median_s": med,
            "ms_per_photo": 1000 * med / len(photos),
            "note": note,
        }
        maps = maps_of(logits, in_hw)
        if name == "default":
            report["_default_maps"] = maps
        else:
            entry.update(agreement(maps, report["_default_maps"]))
        report["candidates"][name] = entry
        extra = "" if name == "default" else f", class-mass agreement {entry['class_mass_agreement']:.4f}"
        print(
            f"{name:<18} {entry['ms_per_photo']:7.1f} ms/photo (passes {', '.join(f'{s:.2f}' for s in secs)} s), "
            f"start-up {startup_s:.1f} s{extra}",
            flush=True,
        )

    def skipped(name: str, why: str) -> None:
        report["candidates"][name] = {"skipped": why}
        print(f"{name:<18} skipped: {why}", flush=True)

    want = set(args.only or ["plain", "compile", "onnxruntime", "onnxruntime-int8"])

    with torch.inference_mode():
        secs, logits = timed_passes(lambda x: model(x, upsample=False), inputs, args.repeats)
    record("default", 0.0, secs, logits)

    os.environ["SEGSEARCH_FUSED_CONV"] = "0"  # the plain module: what compile and export see
    try:
        if "plain" in want:
            with torch.inference_mode():
                secs, logits = timed_passes(lambda x: model(x, upsample=False), inputs, args.repeats)
            record("plain", 0.0, secs, logits)

        if "compile" in want:
            try:
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                compiled = torch.compile(lambda x: model(x, upsample=False), dynamic=False)
                with torch.no_grad():
                    t = time.perf_counter()
                    compiled(inputs[0])
                    startup = time.perf_counter() - t
                    secs, logits = timed_passes(compiled, inputs, args.repeats)
                record("compile", startup, secs, logits, "inductor, freezing, first call compiles")
            except Exception as e:  # noqa: BLE001 -- a runtime that fails is a result to report
                skipped("compile", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")

        if want & {"onnxruntime", "onnxruntime-int8"}:
            run_onnx(args, model, inputs, record, skipped, want)
    finally:
        os.environ.pop("SEGSEARCH_FUSED_CONV", None)

    report["load_average_1min"].append(load_average())
    report.pop("_default_maps", None)
    write_report(report, args.out)


class _Lowres(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, upsample=False)


def run_onnx(args, model, inputs, record, skipped, want) -> None:
    try:
        import onnxruntime as ort
    except ImportError as e:
        for name in ("onnxruntime", "onnxruntime-int8"):
            skipped(name, f"not installed ({e})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        t = time.perf_counter()
        try:
            with torch.no_grad():
                net = _Lowres(model).eval()
                torch.onnx.export(net, (inputs[0],), str(path), input_names=["x"], output_names=["logits"], dynamo=True)
        except Exception as e:  # noqa: BLE001
            for name in ("onnxruntime", "onnxruntime-int8"):
                skipped(name, f"export failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
            return
        export_s = time.perf_counter() - t

        def session(p: Path):
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])

        def runner(sess):
            name = sess.get_inputs()[0].name
            return lambda x: sess.run(None, {name: x.contiguous().numpy()})[0]

        if "onnxruntime" in want:
            t = time.perf_counter()
            sess = session(path)
            startup = export_s + time.perf_counter() - t
            secs, logits = timed_passes(runner(sess), inputs, args.repeats)
            record("onnxruntime", startup, secs, logits, f"export {export_s:.1f} s + session")

        if "onnxruntime-int8" in want:
            try:
                from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
                from onnxruntime.quantization.shape_inference import quant_pre_process

                # whole batches (the graph was exported at the batch's shape)
                calib = [x.contiguous().numpy() for x in inputs[: max(1, -(-args.calibrate // args.batch))]]

                class Reader(CalibrationDataReader):
                    def __init__(self):
                        self.it = iter(calib)

                    def get_next(self):
                        x = next(self.it, None)
                        return None if x is None else {"x": x}

                t = time.perf_counter()
                pre = Path(tmp) / "pre.onnx"
                quant_pre_process(str(path), str(pre))
                q = Path(tmp) / "int8.onnx"
                quantize_static(
                    str(pre),
                    str(q),
                    Reader(),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                )
                sess = session(q)
                startup = time.perf_counter() - t
                secs, logits = timed_passes(runner(sess), inputs, args.repeats)
                record("onnxruntime-int8", startup, secs, logits, f"calibrated on {sum(map(len, calib))} photos")
            except Exception as e:  # noqa: BLE001
                skipped("onnxruntime-int8", f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")


if __name__ == "__main__":
    main()
