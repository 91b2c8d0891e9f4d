"""Indexing throughput on Ray against the local pipeline, one machine: photos/s and whether the codes change.

    python bench/ray_indexing_throughput.py [--photos 48] [--configs 1x1,2x1,1x2] [--sample N/4] [--batch 8]
        [--threads T] [--out bench-report/ray_indexing.json]

Takes ``--photos`` real photos from ../shared (CamVid and COCO-MINI mixed, ``indexing_throughput.real_photos``),
copied once into a temporary photos folder, and indexes them with ``build_index`` and the real default network
(``segmenter=None``: loaded where the photos are segmented), each run into a fresh index folder with the same
photos, ``--sample`` (default a quarter of the photos, at least the default K, so both the training-sample phase
and the encode phase run), ``--batch`` and seed 0:

1. ``local``: without Ray, in this process (torch's default threads, or ``--threads``), before Ray starts;
2. Ray is started once on this machine (``segsearch.distributed.cluster.connect("local", num_cpus=os.cpu_count())``),
   timed on its own (``ray_start_s``) and left out of every run's time;
3. ``ray="local"`` for each ``AxT`` of ``--configs``: A actors (``ray_actors``), each running torch with T
   threads and reserving T CPUs (``ray_threads``). A configuration needing more CPUs than the machine has is
   reported with its error and skipped.

Each run reports its wall time (``build_index`` end to end), the part spent bringing up the network (``local``:
``Segmenter.default``; Ray: the actors' start, ``EncoderPool._start``, which loads the network in each actor),
photos/s over the wall time and over the wall time less that start-up, and, against the local run: how many
photos' codes differ (same codebook or not), whether the codebook is the same and whether ``index.segsearch`` is
identical byte for byte. The network's float rounding depends on torch's thread count (see
``segsearch.distributed.indexing``), so this shows how often a thread count other than the local run's changes codes.
Writes a JSON report to ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import segsearch
from indexing_throughput import real_photos, write_report
from segsearch import Index, Segmenter
from segsearch.library.build import build_index, default_centroids


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"1x1,2x1,1x2"`` -> [(actors, threads), ...]."""
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            a, t = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--configs: {item!r} is not ACTORSxTHREADS (e.g. 2x1)") from None
        if a < 1 or t < 1:
            raise argparse.ArgumentTypeError(f"--configs: {item!r}: actors and threads must be >= 1")
        out.append((a, t))
    return out


class StartTimer:
    """Adds up the wall time spent in ``owner.name`` (a method or classmethod) while active."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.seconds = owner, name, 0.0

    def __enter__(self):
        self.saved = vars(self.owner)[self.name]  # the descriptor itself (a classmethod stays one)
        original = getattr(self.owner, self.name)
        bound = isinstance(self.saved, classmethod)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return original(*(args[1:] if bound else args), **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

        setattr(self.owner, self.name, classmethod(timed) if bound else timed)
        return self

    def __exit__(self, *exc):
        setattr(self.owner, self.name, self.saved)


def index_once(photos: Path, out: Path, args, **ray_opts) -> dict:
    """One ``build_index`` run into ``out`` (fresh); its times and what it wrote."""
    from segsearch.distributed.indexing import EncoderPool

    owner, name = (EncoderPool, "_start") if ray_opts else (Segmenter, "default")
    with StartTimer(owner, name) as start:
        t = time.perf_counter()
        result = build_index(photos, out, batch=args.batch, sample=args.sample, seed=0, log=lambda s: None, **ray_opts)
        wall = time.perf_counter() - t
    n = result.n_done
    return {
        "wall_s": wall,
        "start_s": start.seconds,
        "photos_done": n,
        "failed": len(result.failed),
        "n_centroids": result.n_centroids,
        "photos_per_s": n / wall,
        "photos_per_s_after_start": n / (wall - start.seconds) if wall > start.seconds else None,
    }


def compare(out: Path, reference: Path) -> dict:
    """How the index in ``out`` differs from the one in ``reference`` (photos matched by id)."""
    mine, ref = Index.load(out / "index.segsearch", mmap=False), Index.load(reference / "index.segsearch", mmap=False)
    ref_codes = dict(zip(ref.ids.tolist(), np.asarray(ref.codes)))
    codes = np.asarray(mine.codes)
    differ = sum(
        1
        for i, pid in enumerate(mine.ids.tolist())
        if pid not in ref_codes or not np.array_equal(codes[i], ref_codes[pid])
    )
    same_cb = mine.n_centroids == ref.n_centroids and np.array_equal(
        np.asarray(mine.codebook_u8), np.asarray(ref.codebook_u8)
    )
    return {
        "codes_differ": differ,
        "codebook_equal": bool(same_cb),
        "index_file_identical": _sha256(out / "index.segsearch") == _sha256(reference / "index.segsearch"),
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument(
        "--configs",
        type=parse_configs,
        default=parse_configs("1x1,2x1,1x2"),
        help="Ray runs as ACTORSxTHREADS, comma-separated (default 1x1,2x1,1x2)",
    )
    ap.add_argument(
        "--sample", type=int, default=None, help="training-sample photos (default: photos/4, at least the default K)"
    )
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the local run (default torch's)")
    ap.add_argument("--object-store-mb", type=int, default=1024, help="the local Ray instance's object store")
    ap.add_argument("--out", default="bench-report/ray_indexing.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.sample is None:
        args.sample = max(args.photos // 4, default_centroids(args.photos))
    photos = real_photos(args.photos)
    import ray

    report = {
        "photos": len(photos),
        "sample": args.sample,
        "batch": args.batch,
        "seed": 0,
        "cpu_count": os.cpu_count(),
        "local_threads": torch.get_num_threads(),
        "device": "cpu",
        "simd": segsearch.simd_level(),
        "segsearch": segsearch.__version__,
        "torch": torch.__version__,
        "ray": ray.__version__,
        "machine": platform.platform(),
        "load_before": os.getloadavg(),
        "runs": [],
    }

    with tempfile.TemporaryDirectory(prefix="segsearch-ray-bench-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "photos"  # copies: the indexer skips symlinks that lead out of the photos folder
        folder.mkdir()
        for i, p in enumerate(photos):
            shutil.copyfile(p, folder / f"{i:04d}_{p.name}")

        def record(label: str, actors, threads, run):
            row = {"config": label, "actors": actors, "threads": threads}
            try:
                row.update(run())
            except (ValueError, segsearch.SegsearchError) as e:  # e.g. more CPUs asked than the machine has
                row["error"] = f"{type(e).__name__}: {e}"
            report["runs"].append(row)
            print(
                f"  {label}: " + (row.get("error") or f"{row['wall_s']:.1f} s, {row['photos_per_s']:.2f} photos/s"),
                flush=True,
            )
            return row

        print(f"{len(photos)} photos, sample {args.sample}, batch {args.batch}, {os.cpu_count()} CPUs", flush=True)
        local = tmp / "idx-local"
        record("local", None, torch.get_num_threads(), lambda: index_once(folder, local, args))

        from segsearch.distributed.cluster import connect

        t = time.perf_counter()
        connect(
            "local", num_cpus=os.cpu_count(), object_store_memory=args.object_store_mb * 2**20, include_dashboard=False
        )
        report["ray_start_s"] = time.perf_counter() - t
        print(f"  Ray started in {report['ray_start_s']:.1f} s (not counted in the runs)", flush=True)
        try:
            for a, th in args.configs:

                def run(out=tmp / f"idx-ray-{a}x{th}", a=a, th=th):
                    return {
                        **index_once(folder, out, args, ray="local", ray_actors=a, ray_threads=th),
                        **compare(out, local),
                    }

                record(f"ray {a}x{th}", a, th, run)
        finally:
            ray.shutdown()
    report["load_after"] = os.getloadavg()

    print(
        f"\n{'config':<10} {'wall s':>7} {'start s':>7} {'photos/s':>8} {'after start':>11} {'codes differ':>12} "
        f"{'same codebook':>13} {'same file':>9}"
    )
    for r in report["runs"]:
        if "error" in r:
            print(f"{r['config']:<10} {r['error']}")
            continue
        after = r["photos_per_s_after_start"]
        print(
            f"{r['config']:<10} {r['wall_s']:7.1f} {r['start_s']:7.2f} {r['photos_per_s']:8.2f} "
            f"{after if after is None else format(after, '.2f'):>11} {r.get('codes_differ', '-')!s:>12} "
            f"{r.get('codebook_equal', '-')!s:>13} {r.get('index_file_identical', '-')!s:>9}"
        )
    print(f"Ray start: {report['ray_start_s']:.1f} s; local run: torch {report['local_threads']} threads")
    write_report(report, args.out)


if __name__ == "__main__":
    main()
