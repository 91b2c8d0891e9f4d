"""Retrieval quality on real photos, the paper's Fig. 7 and Sec. 4.2 redone with what ../shared holds.

    python bench/quality.py [--out bench-report/paper] [--part all|camvid|coco] [--threads 2]
                            [--rankings l2,balanced]

Every layout score is given for both rankings (``segsearch.engine.ranking``): the paper's squared L2 (method names
as in the paper: "K=16", "exact", "text + sketch") and segsearch's default, "balanced" ("balanced K=16",
"balanced exact", "text + sketch (balanced)"). Writes ``OUT/quality.json`` (``bench/report.py`` renders it).
Needs the network's maps of the photos,
computed once and cached by ``maps_cache.py`` (several minutes on 2 cores), and caches each fold's PQ
codebooks in ``bench/.cache`` too, so a rerun takes about a minute. Everything is seeded.

**CamVid (Fig. 7).** 468 street photos from three video sequences. Neighbouring frames are near-duplicates,
so queries and database come from different sequences: each sequence in turn is the query set and the other
two are the database (three folds, 468 queries). Relevance of a database photo to a query is graded 0-3
from their ground-truth label maps: both reduced to GRID x GRID cells (each cell's most common label, void
ignored), agreement = the fraction of cells with the same label, grade = how many of THRESHOLDS it reaches.
Scores are nDCG@10 and @50 (``segsearch.evaluation``) for four query kinds: the query photo's network
maps ('image'); a sketch made from its ground-truth labels mapped to the network's ADE20K classes
('sketch', every labelled pixel; 'partial sketch', only its two largest classes); the photo with the
partial sketch over it. Each with PQ codebooks of K = 4, 16, 64, 256 (trained per fold on the database's
maps and their mirror images, so that the smallest database still has 2N >= 256 training maps) and
exact (uncompressed) search; baselines: random ranking (mean over RANDOM_DRAWS orders) and the distance
between global class histograms (mean class probabilities: no layout).

**COCO-MINI captions (Sec. 4.2, automatic stand-in for the user study).** Each of the 80 photos is held out in turn;
the query words are one of its captions (drawn with a fixed seed) less stop words; the database is the other 79
photos with all their captions. Text ranking: the paper's score, the number of distinct query words found in a
photo's captions (``segsearch.library.captions.distinct_word_count``, words compared after ``normalize_words``:
case, punctuation and simple plurals folded), ties in random order (nDCG averaged over RANDOM_DRAWS orders). 'text
(bm25)' is segsearch's own text-only ranking instead: SQLite FTS5's bm25 over the 79 photos (all captions of a photo
one document, Porter stemming; ``segsearch.library.captions.Captions.bm25``), queried with the whole drawn caption
as typed (bm25 leaves its stop words out and matches each word in any form), ties (photos without any query word,
which it does not score) in random order. Text + layout: the paper's score, ties broken by the spatial-semantic
distance (exact) of a layout query: a sketch of the held-out photo's ground-truth objects mapped to ADE20K classes
(background left unspecified), or the held-out photo itself as an image query. Relevance: the same cell grading on
COCO's object masks, with background cells of both photos left out (a class-aware IoU of the objects) and lower
thresholds COCO_THRESHOLDS (most COCO pairs share no object).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maps_cache  # noqa: E402
from data import machine_info  # noqa: E402
from segsearch import Index, Query  # noqa: E402
from segsearch.engine.index import empty_like  # noqa: E402
from segsearch.evaluation import (  # noqa: E402
    class_histogram,
    grade,
    histogram_distances,
    label_grid,
    layout_agreement,
    ndcg,
    query_maps,
)
from segsearch.library.captions import Captions, normalize_words, read_captions  # noqa: E402
from segsearch.network.segmenter import ADE20K_CLASSES  # noqa: E402

SEED = 20180105
GRID = 8
THRESHOLDS = (0.5, 0.6, 0.7)  # CamVid: agreement >= 0.5 / 0.6 / 0.7 -> grade 1 / 2 / 3
COCO_THRESHOLDS = (1e-6, 0.1, 0.25)  # COCO objects: any shared cell / 10% / 25% of the union of object cells
KS = (4, 8, 16, 32, 64, 256)  # 8, 16, 32: the default K of folders of 64-127, 128-255, 256-511 photos
CUTOFFS = (10, 50)
RANDOM_DRAWS = 20
C = len(ADE20K_CLASSES)
QUERY_KINDS = ("image", "sketch", "partial_sketch", "two_class_fill", "image_and_partial_sketch")
RERANKED_KS = (16, 32)  # the default K of folders of 128-511 photos, searched as segsearch index's folders are

CAMVID_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_VOID = 11
#: CamVid class -> ADE20K class of the network (a bicyclist is mostly the person riding).
CAMVID_TO_ADE = {
    "Sky": "sky",
    "Building": "building",
    "Pole": "pole",
    "Road": "road",
    "Pavement": "sidewalk",
    "Tree": "tree",
    "SignSymbol": "signboard",
    "Fence": "fence",
    "Car": "car",
    "Pedestrian": "person",
    "Bicyclist": "person",
}
#: COCO class -> ADE20K class where the first word of the COCO name is not already an ADE20K name.
COCO_TO_ADE = {
    "motorcycle": "minibike",
    "couch": "sofa",
    "potted plant": "plant",
    "dining table": "table",
    "tv": "television",
    "laptop": "computer",
    "teddy bear": "plaything",
    "sports ball": "ball",
    "wine glass": "glass",
    "stop sign": "signboard",
    "backpack": "bag",
    "handbag": "bag",
    "suitcase": "bag",
    **{a: "animal" for a in ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")},
    **{
        f: "food"
        for f in ("banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake")
    },
}
STOP_WORDS = (
    "a an the of on in at to with and or is are its it this that there some two three next near by for "
    "from up down while his her their other each into over under very"
)


def log(msg: str) -> None:
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


def as_probs(maps16: np.ndarray) -> np.ndarray:
    """float16 cached maps -> float32, renormalized per pixel (float16 rounding moves sums by ~1e-4)."""
    p = np.asarray(maps16, dtype=np.float32)
    p /= p.sum(axis=1, keepdims=True)
    return p


def ade_index(name: str) -> int:
    return ADE20K_CLASSES.index(name)


def summarize(values) -> dict:
    """Mean, 95% normal-approximation CI half-width and count of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return {"mean": None, "ci95": None, "n": 0}
    ci = 1.96 * v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else None
    return {"mean": float(v.mean()), "ci95": None if ci is None else float(ci), "n": int(len(v))}


def ndcg_rows(order: np.ndarray, grades: np.ndarray) -> dict:
    """nDCG@k per query for rankings ``order`` (Q, >= max cutoff) of database positions."""
    return {k: np.array([ndcg(g[o[:k]], g, k) for o, g in zip(order, grades)]) for k in CUTOFFS}


def random_ndcg(grades: np.ndarray, rng: np.random.Generator) -> dict:
    """Mean nDCG@k over RANDOM_DRAWS random orders, per query."""
    out = {k: np.zeros(len(grades)) for k in CUTOFFS}
    for _ in range(RANDOM_DRAWS):
        order = np.stack([rng.permutation(grades.shape[1]) for _ in grades])
        for k, v in ndcg_rows(order, grades).items():
            out[k] += v / RANDOM_DRAWS
    return out


def two_largest(sketch: np.ndarray) -> np.ndarray:
    """The sketch with only its two most frequent classes kept (the rest -1)."""
    counts = np.bincount(sketch[sketch >= 0], minlength=C)
    keep = np.argsort(-counts, kind="stable")[:2]
    keep = keep[counts[keep] > 0]
    return np.where(np.isin(sketch, keep), sketch, -1).astype(np.int32)


def two_class_fill(sketch: np.ndarray) -> np.ndarray:
    """The sketch most people draw first ("sky at the top, road at the bottom"): its two most frequent classes
    filling the whole frame, each pixel the class of the nearest pixel of those two (on a half-resolution grid)."""
    part = two_largest(sketch)
    n = part.shape[0]
    small = part[::2, ::2]
    ys, xs = np.nonzero(small >= 0)
    if len(ys) == 0:
        return part
    gy, gx = np.mgrid[0 : small.shape[0], 0 : small.shape[1]]
    d = (gy.reshape(-1, 1) - ys[None]) ** 2 + (gx.reshape(-1, 1) - xs[None]) ** 2
    filled = small[ys, xs][np.argmin(d, axis=1)].reshape(small.shape)
    return np.kron(filled, np.ones((2, 2), np.int32))[:n, :n].astype(np.int32)


# ---------------------------------------------------------------------------------------------- CamVid
def camvid_data():
    paths, root = maps_cache.camvid_photos()
    labels = [np.asarray(Image.open(p.parent.parent / "labels" / f"{p.stem}.png")) for p in paths]
    lut = np.full(CAMVID_VOID + 2, -1, np.int64)  # index -1 (empty cell) maps to -1 too
    for i, name in enumerate(CAMVID_NAMES):
        lut[i] = ade_index(CAMVID_TO_ADE[name])
    grids = np.stack([label_grid(lab, GRID, CAMVID_VOID + 1, ignore=[CAMVID_VOID]) for lab in labels])
    sketches = np.stack(
        [lut[label_grid(lab, maps_cache.SIZE, CAMVID_VOID + 1, ignore=[CAMVID_VOID])] for lab in labels]
    ).astype(np.int32)
    seq = np.array([p.name[:6] for p in paths])
    return paths, root, grids, sketches, seq


def fold_codebook(db: np.ndarray, K: int, key: str) -> np.ndarray:
    """PQ codebook (C, K, n, n) of the plain maps (the paper's "l2" ranking), see :func:`fold_index`."""
    return fold_index(db, K, key, "l2")[0]


def fold_index(db: np.ndarray, K: int, key: str, ranking: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(codebook (C, K, n, n), class prior (C,) or None) of an index with ``ranking`` trained (Index.train) on the
    database maps and their mirror images, cached."""
    tag = "" if ranking == "l2" else f"-{ranking}"
    path = maps_cache.CACHE / f"codebook-{key}{tag}-K{K}.npy"
    prior_path = maps_cache.CACHE / f"prior-{key}{tag}.npy"
    if path.exists() and (ranking == "l2" or prior_path.exists()):
        prior = np.load(prior_path, allow_pickle=False) if ranking != "l2" else None
        return np.load(path, allow_pickle=False), prior
    t0 = time.perf_counter()
    index = Index(C, maps_cache.SIZE, K, ranking=ranking).train(np.concatenate([db, db[..., ::-1]]), seed=0)
    codebook = np.array(index.codebook)
    maps_cache.save_npy(path, codebook)
    if index.class_prior is not None:
        maps_cache.save_npy(prior_path, np.array(index.class_prior))
    log(f"codebook K={K} ({ranking}) trained in {time.perf_counter() - t0:.0f} s")
    return codebook, index.class_prior


def camvid_queries(maps: np.ndarray, sketches: np.ndarray, qi: np.ndarray) -> dict:
    full = [sketches[i] for i in qi]
    part = [two_largest(s) for s in full]
    return {
        "image": [Query.image(maps[i]) for i in qi],
        "sketch": [Query.sketch(s) for s in full],
        "partial_sketch": [Query.sketch(s) for s in part],
        "two_class_fill": [Query.sketch(two_class_fill(s)) for s in full],
        "image_and_partial_sketch": [Query.image_and_sketch(maps[i], s) for i, s in zip(qi, part)],
    }


def histogram_order(kind: str, maps: np.ndarray, sketches: np.ndarray, qi: np.ndarray, db_hist: np.ndarray):
    """Rankings (Q, N) by class-histogram distance for one query kind."""
    rows = []
    for i in qi:
        full = sketches[i]
        part = two_largest(full)
        if kind == "image":
            q, classes = class_histogram(maps[i]), None
        elif kind in ("sketch", "partial_sketch", "two_class_fill"):
            s = {"sketch": full, "partial_sketch": part, "two_class_fill": two_class_fill(full)}[kind]
            q, classes = class_histogram(query_maps(s, C)), np.unique(s[s >= 0])
        else:
            q, classes = class_histogram(query_maps(part, C, maps[i])), None
        rows.append(np.argsort(histogram_distances(q, db_hist, classes), kind="stable"))
    return np.stack(rows)


def method_ranking(m: str) -> tuple[str, str]:
    """("K=16" | "K=16 re-ranked" | "exact", ranking) of a method name: "K=16" and "exact" are the paper's L2,
    "balanced K=16" and "balanced exact" segsearch's default ranking."""
    if m.startswith("balanced "):
        return m[len("balanced ") :], "balanced"
    return m, "l2"


def run_camvid(threads: int, rankings=("l2", "balanced")) -> dict:
    t_start = time.perf_counter()
    paths, root, grids, sketches, seq = camvid_data()
    maps16 = maps_cache.network_maps(paths, root, tag="camvid", threads=threads)
    maps_key = Path(maps16.filename).stem  # the codebooks depend on the maps: key them by the maps' cache file
    rng = np.random.default_rng(SEED)
    per_ranking = [f"K={k}" for k in KS] + [f"K={k} re-ranked" for k in RERANKED_KS] + ["exact"]
    methods = [f"{'' if r == 'l2' else r + ' '}{m}" for r in rankings for m in per_ranking]
    methods += ["class histogram", "random"]
    scores = {kind: {m: {k: [] for k in CUTOFFS} for m in methods} for kind in QUERY_KINDS}
    grade_counts = np.zeros(4, np.int64)
    folds, timing, agreements = [], {}, []
    for s in sorted(set(seq)):
        qi, di = np.flatnonzero(seq == s), np.flatnonzero(seq != s)
        log(f"fold: queries {s} ({len(qi)}), database {len(di)} photos")
        db = as_probs(maps16[di])
        qmaps = {i: m for i, m in zip(qi, as_probs(maps16[qi]))}
        agreement = layout_agreement(grids[qi][:, None], grids[di][None])
        agreements.append(agreement.ravel())
        grades = grade(agreement, THRESHOLDS)
        grade_counts += np.bincount(grades.ravel(), minlength=4)
        queries = camvid_queries(qmaps, sketches, qi)
        db_hist = class_histogram(db)
        top = max(CUTOFFS)
        for m in methods:
            t0 = time.perf_counter()
            base, ranking = method_ranking(m)
            if base.startswith("K=") and base.endswith(" re-ranked"):  # exact maps kept, the default re-rank
                K = int(base[2:].split()[0])
                codebook, prior = fold_index(db, K, f"{maps_key}-{s}", ranking)
                book = Index.from_codebook(codebook, np.zeros((0, C), np.uint8), ranking=ranking, class_prior=prior)
                index = empty_like(book, keep_exact=True).add(db)
            elif base.startswith("K="):
                codebook, prior = fold_index(db, int(base[2:]), f"{maps_key}-{s}", ranking)
                index = Index.from_codebook(
                    codebook, np.zeros((0, C), np.uint8), ranking=ranking, class_prior=prior
                ).add(db)
            elif base == "exact":  # K = 1: train only measures the class prior (of the database, like PQ's)
                index = Index(C, maps_cache.SIZE, 1, keep_exact=True, ranking=ranking).train(db).add(db)
            for kind in QUERY_KINDS:
                if m == "random":
                    result = random_ndcg(grades, rng)
                else:
                    if m == "class histogram":
                        order = histogram_order(kind, qmaps, sketches, qi, db_hist)
                    else:
                        res = index.search(queries[kind], k=top, exact=base == "exact", threads=threads)
                        order = np.stack([r.ids for r in res])
                    result = ndcg_rows(order, grades)
                for k in CUTOFFS:
                    scores[kind][m][k].extend(result[k].tolist())
            timing[m] = timing.get(m, 0.0) + time.perf_counter() - t0
        folds.append(
            {
                "queries": s,
                "n_queries": int(len(qi)),
                "n_database": int(len(di)),
                "grade_fractions": (np.bincount(grades.ravel(), minlength=4) / grades.size).tolist(),
                "mean_grade3_per_query": float((grades == 3).sum(1).mean()),
            }
        )
        del db, qmaps
    table = {
        kind: {m: {str(k): summarize(v[k]) for k in CUTOFFS} for m, v in per.items()} for kind, per in scores.items()
    }
    return {
        "table": table,
        "folds": folds,
        "methods": methods,
        "query_kinds": list(QUERY_KINDS),
        "grade_fractions": (grade_counts / grade_counts.sum()).tolist(),
        "grid": GRID,
        "thresholds": list(THRESHOLDS),
        "n_photos": len(paths),
        "agreement_percentiles": {
            str(p): float(v) for p, v in zip((50, 90, 99), np.percentile(np.concatenate(agreements), (50, 90, 99)))
        },
        "seconds": time.perf_counter() - t_start,
        "seconds_per_method": timing,
        "class_map": CAMVID_TO_ADE,
        "map_statistics": map_statistics(maps16),
    }


def map_statistics(maps16: np.ndarray) -> dict:
    """How the network's real maps compare with the bench's synthetic ones (C = 151, 64 x 64)."""
    from segsearch.evaluation.synthetic import synthetic_probs

    def stats(p):
        am = p.argmax(axis=1)
        area = np.stack([np.bincount(a.ravel(), minlength=p.shape[1]) for a in am]) / am[0].size
        mass = p.reshape(*p.shape[:2], -1).sum(-1)
        return {
            "classes_over_1pct_area": float((area >= 0.01).sum(1).mean()),
            "classes_over_10pct_area": float((area >= 0.1).sum(1).mean()),
            "class_maps_with_mass_over_1px": float((mass >= 1.0).mean() * p.shape[1]),
            "values_below_eps_1e-3": float((p <= 1e-3).mean()),
            "max_prob_mean": float(p.max(axis=1).mean()),
        }

    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(len(maps16), size=min(100, len(maps16)), replace=False))
    return {
        "camvid_network": stats(as_probs(maps16[pick])),
        "synthetic": stats(synthetic_probs(100, C, maps_cache.SIZE, seed=SEED)),
        "n_images": int(len(pick)),
    }


# ---------------------------------------------------------------------------------------------- COCO
def run_coco(threads: int, rankings=("l2", "balanced")) -> dict:
    t_start = time.perf_counter()
    paths, root = maps_cache.coco_photos()
    maps = as_probs(maps_cache.network_maps(paths, root, tag="coco-mini", threads=threads))
    captions = {p.name: [] for p in paths}
    for name, caption in read_captions(root / "captions_train2017.json", list(captions))[0]:
        captions[name].append(caption)
    names = [line.split("\t")[1].strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    lut = np.full(257, -1, np.int64)  # COCO label -> ADE20K class; 0 background, 255 crowd, unmapped -> -1
    for i, name in enumerate(names[1:81], start=1):
        ade = COCO_TO_ADE.get(name, name.split()[0])
        lut[i] = ade_index(ade) if ade in ADE20K_CLASSES else -1
    labels = [np.asarray(Image.open(root / "labels" / f"{p.stem}.png")) for p in paths]
    grids = np.stack([label_grid(lab, GRID, 256, ignore=[255]) for lab in labels])
    sketches = [lut[label_grid(lab, maps_cache.SIZE, 256, ignore=[255])].astype(np.int32) for lab in labels]
    N = len(paths)
    grades = grade(layout_agreement(grids[:, None], grids[None], background=0), COCO_THRESHOLDS)
    stop = normalize_words(STOP_WORDS)
    rng = np.random.default_rng(SEED)
    picked = [int(rng.integers(len(captions[p.name]))) for p in paths]
    qwords = [normalize_words(captions[p.name][j]) - stop for p, j in zip(paths, picked)]
    dwords = [set().union(*(normalize_words(c) for c in captions[p.name])) for p in paths]
    text = np.array([[len(q & d) for d in dwords] for q in qwords], np.int64)  # the paper's distinct_word_count
    bm25 = np.zeros((N, N))
    for q, (p, j) in enumerate(zip(paths, picked)):  # each held-out photo's own database of the other 79
        with Captions.from_pairs([(o.name, c) for o in paths if o != p for c in captions[o.name]]) as db:
            found = db.bm25(captions[p.name][j])
        bm25[q] = [found.get(o.name, 0.0) for o in paths]
    # exact search; K = 1: train only measures the class prior of the balanced ranking (over all 80 photos)
    indexes = {r: Index(C, maps_cache.SIZE, 1, keep_exact=True, ranking=r).train(maps).add(maps) for r in rankings}
    tag = {r: "" if r == "l2" else f" ({r})" for r in rankings}  # "text + sketch" etc. are the paper's (L2)
    methods = (
        ["text"]
        + [f"{m}{tag[r]}" for r in rankings for m in ("text + sketch", "text + image", "sketch only", "image only")]
        + ["text (bm25)"]
    )
    ndcg10 = {m: [] for m in methods}
    top10 = {m: np.zeros(4) for m in methods}
    no_sketch = 0
    for q in range(N):
        others = np.array([d for d in range(N) if d != q])
        g = grades[q, others]
        score = text[q, others]
        dist = {}
        layout = {
            "sketch": Query.sketch(sketches[q]) if (sketches[q] >= 0).any() else None,
            "image": Query.image(maps[q]),
        }
        no_sketch += layout["sketch"] is None
        for rk, index in indexes.items():
            for name, query in layout.items():
                d = np.full(len(others), np.inf)
                if query is not None:
                    res = index.search(query, k=len(others), exact=True, subset=others, threads=threads)
                    d[np.searchsorted(others, res.ids)] = res.distances
                dist[name + tag[rk]] = d
        orders = {}
        draws = [rng.permutation(len(others)) for _ in range(RANDOM_DRAWS)]
        orders["text"] = [np.lexsort((r, -score)) for r in draws]
        orders["text (bm25)"] = [np.lexsort((r, -bm25[q, others])) for r in draws]
        for name in (f"{n}{tag[r]}" for r in rankings for n in ("sketch", "image")):
            kind, _, suffix = name.partition(" ")
            if np.isfinite(dist[name]).all():
                orders[f"text + {name}"] = [np.lexsort((dist[name], -score))]
                orders[f"{kind} only{' ' + suffix if suffix else ''}"] = [np.argsort(dist[name], kind="stable")]
            else:  # nothing to draw: text + sketch is the text ranking, sketch only is random
                orders[f"text + {name}"] = orders["text"]
                orders[f"{kind} only{' ' + suffix if suffix else ''}"] = draws
        for m, os_ in orders.items():
            ndcg10[m].append(float(np.mean([ndcg(g[o[:10]], g, 10) for o in os_])))
            for o in os_:
                top10[m] += np.bincount(g[o[:10]], minlength=4) / len(os_)
    arrays = {m: np.array(v) for m, v in ndcg10.items()}
    paired = {}
    for m in (f"text + {n}{tag[r]}" for r in rankings for n in ("sketch", "image")):
        diff = arrays[m] - arrays["text"]
        ok = np.isfinite(diff)
        diff = diff[ok]
        flips = np.where(rng.random((10_000, len(diff))) < 0.5, -1.0, 1.0)
        null = np.abs((flips * diff).mean(1))
        paired[m] = {
            "mean_diff": float(diff.mean()),
            "ci95": summarize(diff)["ci95"],
            "n": int(len(diff)),
            "wins": int((diff > 1e-12).sum()),
            "ties": int((np.abs(diff) <= 1e-12).sum()),
            "losses": int((diff < -1e-12).sum()),
            "p_sign_flip": float(((null >= abs(diff.mean()) - 1e-15).sum() + 1) / (len(null) + 1)),
        }
    return {
        "methods": list(methods),
        "ndcg10": {m: summarize(v) for m, v in arrays.items()},
        "ndcg10_values": {m: [None if not np.isfinite(x) else x for x in v.tolist()] for m, v in arrays.items()},
        "top10_grade_counts": {m: v.tolist() for m, v in top10.items()},
        "paired_vs_text": paired,
        "n_queries": N,
        "no_relevant": int(np.sum(np.where(np.eye(N, dtype=bool), 0, grades).max(1) == 0)),
        "no_sketch": int(no_sketch),
        "grid": GRID,
        "thresholds": list(COCO_THRESHOLDS),
        "mean_query_words": float(np.mean([len(q) for q in qwords])),
        "grade_fractions": (np.bincount(grades[~np.eye(N, dtype=bool)], minlength=4) / (N * (N - 1))).tolist(),
        "seconds": time.perf_counter() - t_start,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-report/paper", help="report folder (quality.json goes there)")
    ap.add_argument("--part", choices=("all", "camvid", "coco"), default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--rankings",
        default="l2,balanced",
        help="comma-separated rankings to score (default both: l2 is the paper's, balanced segsearch's)",
    )
    args = ap.parse_args(argv)
    rankings = tuple(r for r in args.rankings.split(",") if r)
    if not rankings or set(rankings) - {"l2", "balanced"}:
        ap.error("--rankings takes l2 and/or balanced")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "quality.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    before = machine_info()
    for part, run in (("camvid", run_camvid), ("coco", run_coco)):
        if args.part in ("all", part):
            result[part] = run(args.threads, rankings)
            result[part]["machine"] = {"before": before, "after": machine_info(), "threads": args.threads}
    result["seed"] = SEED
    path.write_text(json.dumps(result, indent=1))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
