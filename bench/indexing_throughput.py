"""``segsearch index`` on the CPU: photos/s, its wall time against the network's own time, and where the rest goes.

    python bench/indexing_throughput.py [--photos 200] [--batch 8] [--threads 2] [--out bench-report/indexing.json]
    python bench/indexing_throughput.py --photos 48 --compare /path/to/old/venv/bin/python --repeats 5 --tflite
    python bench/indexing_throughput.py --photos 24 --cli-only --fresh-cache --repeats 5

``--compare PYTHON``: also run ``PYTHON -m segsearch.cli index`` (another install, e.g. a venv with an earlier
commit installed) side by side with this checkout's, as separate processes on copies of the same photos, with
``--threads`` (OMP_NUM_THREADS) each, ``--repeats`` times, the order alternating so that a change of the machine's
load hits both; reports each one's median and spread and the ratio of the medians. The network alone is timed
after each round too, and each run is set against that round's (the VM's speed drifts within minutes): the
``segsearch index`` / network figure printed is the median of the rounds' ratios. ``--fresh-cache``: each of those
runs gets an empty HOME and user cache, so it imports the bundled network first (a new user's first run).
``--tflite``: the TFLite interpreter (``ai-edge-litert``, the ``test`` extra) on the same photos in the same run,
decoding and network, for the README's table. ``--cli-only``: skip the in-process breakdown below.

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
import os
import shutil
import statistics
import subprocess
import sys
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


def load_average() -> float | None:
    """The 1-minute load average (None where the OS does not tell)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def copy_photos(photos: list[Path], folder: Path) -> Path:
    """Copies of ``photos`` in ``folder`` (the indexer skips links that lead out of the photos folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(photos):
        shutil.copyfile(p, folder / f"{i:04d}_{p.name}")
    return folder


def cli_index_seconds(python: str, folder: Path, work: Path, threads: int, fresh_cache: bool, cache: Path) -> float:
    """Wall time of ``python -m segsearch.cli index folder`` into a new index folder under ``work``, run from
    ``work`` (never from a checkout, whose source would shadow the install). ``fresh_cache``: an empty HOME and
    user cache of its own (the bundled network is imported first), else the shared ``cache``."""
    out = Path(tempfile.mkdtemp(dir=work))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop("SEGSEARCH_WEIGHTS", None)
    home = Path(tempfile.mkdtemp(dir=work)) if fresh_cache else cache
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    t = time.perf_counter()
    subprocess.run(
        [python, "-m", "segsearch.cli", "index", str(folder), "--out", str(out / "idx")],
        cwd=work,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    if fresh_cache:
        shutil.rmtree(home, ignore_errors=True)
    return seconds


def compare_installs(pythons: dict[str, str], photos: list[Path], args, network_pass=None) -> dict:
    """``segsearch index`` of each install in ``pythons`` ({label: python}) on copies of ``photos``, ``--repeats``
    rounds, each round in the other order than the last; one untimed run each first (imports and weights cached,
    photos in the page cache) unless ``--fresh-cache``. ``network_pass()``: the network alone on the same photos
    (seconds), timed after each round, so that each round's runs are set against the network timed beside them
    (this VM's speed drifts by up to 1.5x within minutes)."""
    work = Path(tempfile.mkdtemp(prefix="segsearch-compare-"))
    try:
        folder = copy_photos(photos, work / "photos")
        cache = work / "home"
        cache.mkdir()
        labels = list(pythons)
        if not args.fresh_cache:
            for label in labels:
                cli_index_seconds(pythons[label], folder, work, args.threads, False, cache)
        times = {label: [] for label in labels}
        network = []
        loads = [load_average()]
        for r in range(args.repeats):
            for label in labels if r % 2 == 0 else labels[::-1]:
                sec = cli_index_seconds(pythons[label], folder, work, args.threads, args.fresh_cache, cache)
                times[label].append(sec)
                print(f"  round {r + 1}: {label:<12} {sec:6.1f} s  ({len(photos) / sec:.2f} photos/s)", flush=True)
            if network_pass is not None:
                network.append(network_pass())
                print(f"  round {r + 1}: network alone {network[-1]:6.1f} s", flush=True)
            loads.append(load_average())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"repeats": args.repeats, "fresh_cache": args.fresh_cache, "load_average_1min": loads, "runs": {}}
    if network:
        result["network_s_per_round"] = network
    for label in labels:
        med = statistics.median(times[label])
        result["runs"][label] = {
            "python": pythons[label],
            "seconds": times[label],
            "median_s": med,
            "photos_per_s": len(photos) / med,
            "photos_per_s_range": [len(photos) / max(times[label]), len(photos) / min(times[label])],
        }
        if network:
            ratios = [t / n for t, n in zip(times[label], network)]
            result["runs"][label]["over_network_per_round"] = ratios
            result["runs"][label]["over_network_median"] = statistics.median(ratios)
    if len(labels) == 2:
        a, b = labels
        result["speedup"] = result["runs"][a]["median_s"] / result["runs"][b]["median_s"]
        result["speedup_per_round"] = [ta / tb for ta, tb in zip(times[a], times[b])]
    return result


def tflite_seconds(photos: list[Path], threads: int, repeats: int) -> dict:
    """The TFLite interpreter on ``photos``: decoding + resizing to 513 x 513 and the network (the published
    graph, to 513 x 513 logits), per photo, in this process; the median of ``repeats`` passes."""
    from ai_edge_litert.interpreter import Interpreter

    model = SHARED / "models" / "deeplabv3-mnv2-ade20k" / "model.tflite"
    interp = Interpreter(str(model), num_threads=threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    passes = []
    for _ in range(repeats):
        t = time.perf_counter()
        for p in photos:
            x = _square_pixels(p, 513).astype(np.float32) / np.float32(127.5) - np.float32(1.0)
            interp.set_tensor(inp, x[None])
            interp.invoke()
            interp.get_tensor(out)
        passes.append(time.perf_counter() - t)
    med = statistics.median(passes)
    return {"seconds": passes, "median_s": med, "photos_per_s": len(photos) / med}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench-report/indexing.json")
    ap.add_argument("--compare", metavar="PYTHON", help="the python of another install to run side by side")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the side-by-side runs (default 3)")
    ap.add_argument("--fresh-cache", action="store_true", help="an empty user cache for each side-by-side run")
    ap.add_argument("--tflite", action="store_true", help="time the TFLite interpreter on the same photos too")
    ap.add_argument("--cli-only", action="store_true", help="only the side-by-side runs (no in-process breakdown)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    photos = real_photos(args.photos)
    seg = Segmenter.default(device="cpu")
    # 3. decoding alone (also gives the network its input for 1.)
    t = time.perf_counter()
    pixels = [_square_pixels(p, seg.input_size) for p in photos]
    decode_s = time.perf_counter() - t

    def network_seconds(upsample: bool = True) -> float:
        """The network alone on every photo (pixels decoded beforehand), warm: the published graph (to 513 x 513
        logits), or as indexing runs it (``upsample=False``: to its own logits)."""
        kwargs = {} if upsample else {"upsample": False}
        with torch.inference_mode():
            seg.model(seg._normalize(torch.from_numpy(np.stack(pixels[: args.batch]))), **kwargs)  # warm-up
            t = time.perf_counter()
            for s in range(0, len(pixels), args.batch):
                seg.model(seg._normalize(torch.from_numpy(np.stack(pixels[s : s + args.batch]))), **kwargs)
            return time.perf_counter() - t

    side = {}
    if args.compare or args.cli_only:
        pythons = {"this": sys.executable}
        if args.compare:
            pythons = {"baseline": args.compare, "this": sys.executable}
        print(f"segsearch index, {len(photos)} photos, {args.threads} threads, load {load_average()}", flush=True)
        side = compare_installs(pythons, photos, args, network_seconds)
        for label, r in side["runs"].items():
            lo, hi = r["photos_per_s_range"]
            print(f"  {label:<10} median {r['median_s']:6.1f} s  {r['photos_per_s']:.2f} photos/s ({lo:.2f}-{hi:.2f})")
        if "speedup" in side:
            print(
                f"  speedup (ratio of medians): {side['speedup']:.2f}x; per round: "
                + ", ".join(f"{x:.2f}" for x in side["speedup_per_round"])
            )
    report = {
        "photos": len(photos),
        "batch": args.batch,
        "threads": args.threads,
        "device": "cpu",
        "simd": segsearch.simd_level(),
        "torch": torch.__version__,
    }

    report["side_by_side"] = side
    if args.tflite:
        report["tflite"] = tflite_seconds(photos, args.threads, max(1, min(args.repeats, 3)))
        print(f"  TFLite interpreter (decode + network): {report['tflite']['photos_per_s']:.2f} photos/s")

    report["decode_s"] = decode_s

    # 1. the network alone: the published graph (to 513 x 513 logits), and as indexing runs it (to its own logits);
    # after side-by-side rounds, the median of the passes timed after each round
    rounds = side.get("network_s_per_round")
    report["network_s"] = statistics.median(rounds) if rounds else network_seconds()
    report["network_lowres_s"] = network_seconds(upsample=False)
    if side:
        for r in side["runs"].values():
            r["over_network"] = r["median_s"] / report["network_s"]
    if args.cli_only:
        print(
            f"  network alone (513 x 513 logits, warm) median {report['network_s']:.1f} s; segsearch index / network "
            "(median of the rounds' ratios): "
            + ", ".join(f"{k} {r['over_network_median']:.2f}x" for k, r in side["runs"].items())
        )
        write_report(report, args.out)
        return
    pixels.clear()  # the in-process run below decodes its own

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
