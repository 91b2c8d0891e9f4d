"""The engine's search time under two installs of segsearch, side by side in one run (e.g. a release and the
working tree), on the same synthetic index: a check that a change left the engine's speed as it was.

    python bench/compare_engine.py --python OLD_VENV/bin/python --python .venv/bin/python [--rounds 5]

Each round runs every install once, in turn, in a fresh process (``--child``), which builds the same index from a
seeded uint8 codebook and codes (``Index.from_codebook``; C = 151, K = 256, n = 64, N = 100,000 by default) and
times ``index.search`` for each query kind alone and for a batch of 8, one thread, k = 10 (median of
``--repeat`` calls after one warm-up). It checks that every install returns the same ids and distances, then
prints the per-install medians over the rounds and writes them with every round's figures to ``--out``.
Only the public API is used, so any install since 0.2 can be measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(args) -> None:
    import numpy as np

    import segsearch
    from segsearch import Index, Query

    rng = np.random.default_rng(0)
    C, K, n, N = args.classes, 256, 64, args.photos
    # codebook: mostly-empty maps with a blob, like softmax centroids (values v / 255)
    cb = np.zeros((C, K, n, n), np.uint8)
    yy, xx = np.mgrid[0:n, 0:n]
    for c in range(C):
        cy, cx, r = rng.integers(0, n, K), rng.integers(0, n, K), rng.integers(4, 24, K)
        blob = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < (r[:, None, None] ** 2)
        cb[c] = (blob * rng.integers(60, 255, (K, 1, 1))).astype(np.uint8)
        cb[c, 0] = 0  # the absent class
    freq = rng.random(C) ** 3  # a long tail: most classes absent from most photos
    present = rng.random((N, C)) < freq[None] * 0.3
    codes = np.where(present, rng.integers(1, K, (N, C)), 0).astype(np.uint8)
    index = Index.from_codebook(cb, codes)
    probs = rng.random((C, n, n)).astype(np.float32) ** 8
    probs /= probs.sum(0, keepdims=True)
    sketch = np.full((n, n), -1, np.int32)
    sketch[: n // 3] = 3
    sketch[-n // 3 :] = 7
    sketch[n // 3 : 2 * n // 3, n // 4 : n // 2] = 13
    queries = {
        "image": Query.image(probs),
        "sketch": Query.sketch(sketch),
        "image_and_sketch": Query.image_and_sketch(probs, sketch),
    }
    queries["batch of 8"] = [queries["image"], queries["sketch"], queries["image_and_sketch"]] * 2 + [
        queries["image"],
        queries["sketch"],
    ]
    out, answers = {}, {}
    for name, q in queries.items():
        r = index.search(q, k=10, threads=1)  # warm-up
        results = r if isinstance(r, list) else [r]
        answers[name] = [[x.ids.tolist(), x.distances.tolist()] for x in results]
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            index.search(q, k=10, threads=1)
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times) * 1e3
    print(
        json.dumps(
            {
                "version": segsearch.__version__,
                "file": segsearch.__file__,
                "simd": segsearch.simd_level(),
                "ms": out,
                "answers": answers,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append", default=[], help="an interpreter with segsearch installed")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--classes", type=int, default=151)
    ap.add_argument("--out", default="bench-report/compare_engine.json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if len(args.python) < 2:
        ap.error("give two or more --python interpreters to compare")
    rounds: dict[str, list] = {p: [] for p in args.python}
    first = None
    for r in range(args.rounds):
        for py in args.python:
            cmd = [
                py,
                __file__,
                "--child",
                "--repeat",
                str(args.repeat),
                "--photos",
                str(args.photos),
                "--classes",
                str(args.classes),
            ]
            got = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            if first is None:
                first = got["answers"]
            elif got["answers"] != first:
                sys.exit(f"{py} returned other ids or distances than {args.python[0]}")
            rounds[py].append(got)
            print(
                f"round {r + 1}: {py} ({got['version']}, {got['simd']}): "
                + ", ".join(f"{k} {v:.3f} ms" for k, v in got["ms"].items()),
                flush=True,
            )
    summary = {py: {k: statistics.median(g["ms"][k] for g in rs) for k in rs[0]["ms"]} for py, rs in rounds.items()}
    print("\nmedian over the rounds (ms per call; the same ids and distances from every install):")
    for k in next(iter(summary.values())):
        print(f"  {k:>17}: " + "  ".join(f"{summary[py][k]:.3f}" for py in args.python))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "pythons": args.python,
                "summary": summary,
                "rounds": {p: [g["ms"] for g in rs] for p, rs in rounds.items()},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
