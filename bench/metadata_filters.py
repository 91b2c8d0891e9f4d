"""What photo metadata costs (issue 22): reading the photos' EXIF when indexing, and a search with a date, folder or
camera filter against the same search without one. Prints its figures; asserts nothing.

    python bench/metadata_filters.py [--photos DIR] [--n-photos 100] [--index] [--n 100000] [--reps 30] [--search-only]

Indexing: copies ``--n-photos`` photos of ``--photos`` (default: the shared CamVid training photos) to a temp
folder and times the metadata pass (:func:`segsearch.library.metadata.fill_metadata`) over them; with
``--index``, also the whole ``segsearch index`` of that folder (the default network, on the CPU), of which the
pass is a part. Search: a synthetic index of ``--n`` photos (C=60, K=16, PQ codes only) with a synthetic
``photos.sqlite`` (dates over 5 years, 100 folders, 10 cameras); median time of a sketch and of an image query
(1 thread) without a filter and with filters that pass every photo, about half, 10% and 1%, with ``exclude=`` (random
class shares stored with the codes), and the first search with each filter, which makes its mask (later ones reuse
it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from segsearch import Index, PhotoIndex
from segsearch.evaluation.synthetic import synthetic_probs
from segsearch.library.metadata import MetadataRow, fill_metadata, write_metadata

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "train" / "images"


def indexing_cost(photos: Path, n: int, with_index: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for p in sorted(photos.iterdir())[:n]:
            shutil.copy2(p, folder / p.name)
        ids = sorted(p.name for p in folder.iterdir())
        t0 = time.perf_counter()
        r = fill_metadata(Path(tmp) / "photos.sqlite", ids, lambda i: (folder / i, None), log=print)
        t = time.perf_counter() - t0
        print(
            f"metadata pass: {len(ids)} photos in {t * 1000:.0f} ms ({t / len(ids) * 1000:.2f} ms per photo; "
            f"{r.n_exif} dated by EXIF, {r.n_file} by file time)"
        )
        if with_index:
            from segsearch.library.build import build_index

            t0 = time.perf_counter()
            build_index(folder, Path(tmp) / "idx", device="cpu", log=lambda s: None)
            ti = time.perf_counter() - t0
            print(f"whole index run: {ti:.1f} s ({ti / len(ids) * 1000:.0f} ms per photo); the pass is {t / ti:.2%}")


def synthetic_folder(d: Path, n: int) -> None:
    C, size, K = 60, 16, 16
    index = Index(C, size, K, ranking="l2", keep_exact=False)
    index.train(synthetic_probs(512, C, size, seed=0), niter=5)
    ids = [f"f{i % 100:02d}/p{i:07d}.jpg" for i in range(n)]
    codes = np.random.default_rng(1).integers(0, K, (n, C), dtype=np.uint8)
    # class shares (for exclude=): pixel counts drawn with class c about 1/(c+1) as likely as class 0
    p = 1.0 / np.arange(1, C + 1)
    shares = np.random.default_rng(3).multinomial(size * size, p / p.sum(), size=n)
    index.add_codes(codes, ids=ids, shares=shares)
    index.save(d / "index.segsearch")
    t0 = dt.datetime(2019, 1, 1)
    rng = np.random.default_rng(2)
    rows = [
        MetadataRow(p, (t0 + dt.timedelta(seconds=int(s))).isoformat(), "exif", f"Camera {c}", p.rpartition("/")[0])
        for p, s, c in zip(ids, rng.integers(0, 5 * 365 * 86400, n), rng.integers(0, 10, n))
    ]
    write_metadata(rows, d / "photos.sqlite")


def median_ms(fn, reps: int) -> tuple[float, float]:
    """(the first call's time, the median of ``reps`` more), in ms."""
    t0 = time.perf_counter()
    fn()
    first = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times) * 1000


def search_cost(n: int, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        synthetic_folder(d, n)
        pi = PhotoIndex.open(d)
        t0 = time.perf_counter()
        pi.filter_mask(folder="")
        print(f"first filtered search reads photos.sqlite: {(time.perf_counter() - t0) * 1000:.0f} ms for {n:,} photos")
        sketch = np.full((16, 16), -1)
        sketch[:6] = 2
        sketch[10:] = 5
        maps = synthetic_probs(1, 60, 16, seed=99)[0]
        filters = {
            "none": {},
            "all pass (folder='')": {"folder": ""},
            "~half (after=2021-07-01)": {"after": "2021-07-01"},
            "~1% (folder=f07)": {"folder": "f07"},
            "~10% (camera='camera 3')": {"camera": "camera 3"},
        }
        for what, ex in (("class30 >= 1%", {"class30": 0.01}), ("class5 >= 5%", {"class5": 0.05})):
            left = 1 - pi.exclude_mask(ex).mean()
            filters[f"exclude {what} ({left:.0%} pass)"] = {"exclude": ex}
        filters["exclude class30 >= 1% and after=2021-07-01"] = {"exclude": {"class30": 0.01}, "after": "2021-07-01"}
        for kind, q in (("sketch", {"sketch": sketch}), ("image", {"maps": maps})):
            base = None
            for name, f in filters.items():
                first, ms = median_ms(lambda q=q, f=f: pi.search(**q, k=10, threads=1, **f), reps)
                base = ms if base is None else base
                print(
                    f"{kind} query, N={n:,}, filter {name}: {ms:.3f} ms ({ms / base - 1:+.1%}); "
                    f"its first search (the mask made): {first:.3f} ms"
                )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, default=CAMVID)
    ap.add_argument("--n-photos", type=int, default=100)
    ap.add_argument("--index", action="store_true", help="also time the whole index run (the network on the CPU)")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--search-only", action="store_true", help="time the searches only")
    a = ap.parse_args()
    if not a.search_only:
        indexing_cost(a.photos, a.n_photos, a.index)
    search_cost(a.n, a.reps)


if __name__ == "__main__":
    main()
