"""Hubness of the spatial-semantic distance on real photos, and rankings that reduce it.

    python bench/hubness.py [--out bench-report/hubness] [--part all|camvid|coco] [--no-pq] [--threads 1]

writes ``OUT/hubness.json`` and prints the tables (bench/README.md, "Hubness", says what they showed).
Reuses ``bench/quality.py``'s data, relevance grading and nDCG (``segsearch.evaluation``), its per-fold PQ
codebooks and the network's maps cached by ``maps_cache.py``. About 5 minutes on 2 cores with 1 thread; the
first run takes about 4 minutes more to train the codebooks of the transformed maps (cached in bench/.cache).

**Protocol.** CamVid as in quality.py: leave one sequence out (its photos are the queries, the other two
sequences the database; 468 queries, relevance 0-3 from ground-truth label agreement on 8 x 8 cells).
COCO-MINI: each of the 80 photos queries the other 79 (the index holds all 80, as in quality.py's layout
rankings), relevance from the COCO object masks (class-aware IoU of object cells, quality.COCO_THRESHOLDS).
Query kinds: 'image' (the photo's network maps), 'sketch' (its ground-truth labels mapped to ADE20K;
COCO: objects only, background unspecified), 'partial_sketch' (the sketch's two largest classes) and
'image_and_partial_sketch' (the photo with that partial sketch drawn over it). COCO photos without any
mapped object have no sketch and are left out of the sketch kinds. Every candidate is scored on the float
maps (the paper's "without PQ") and with PQ at the default K of each database (segsearch index's K: 8 for
80 photos, 16 or 32 for CamVid's databases of 163-406), as the scan computes it (LUT sums, eps = 0; checked
against Index.search); L2 and the selected rankings also at a second K (CamVid 256, COCO-MINI 16).

**Hubness** (Radovanovic et al., JMLR 2010): N10(x) = the number of queries whose top 10 holds photo x.
'hub' = the worst photo's share of the top-10 lists (max N10 / queries), 'bad' = the same counting only
lists where x is irrelevant (grade 0), 'skew' = skewness of N10, 'never' = photos in no top-10 list. CamVid:
per fold (a query sequence against its database), hub and bad the worst fold, skew the mean over folds,
never summed over folds. References: a random order (its hub is chance: 79 candidates, 10 slots) and the
ground-truth order (rank by label agreement: the relevance itself is hubby when many photos share one
popular layout or object).

**Candidates.** Each is a ranking the scan can produce: an index-time transform of the stored maps (also
applied to query photos), a lookup-table change, or a per-photo value the scan adds or multiplies in.
Per class, the distance is ||q_c||^2 - 2 (q_c - gam m_c).x_c + lam ||x_c||^2 (m: the database's mean map):
(lam, gam) = (1, 0) is the paper's squared L2; lam < 1 weighs the photo's own mass less (the same ranking
as the L2 distance to q / lam); gam > 0 subtracts gam times the photo's squared distance to the mean photo
(centering, the global form of CSLS). Both are set per query kind (sketch kinds: only the drawn classes
are summed, as before; image kinds: all classes) and cost the scan nothing (a (C, K) table of per-centroid
terms replaces the centroid norms in the LUT). Transforms: sharpening (power, argmax), Hellinger (sqrt
maps), a per-pixel confidence weight (1 - normalized entropy), dividing by the database's class prior.
Per-photo offsets, computed at indexing time from the photo's own maps (entropy penalty) or from its
distances to the database (CSLS, local scaling, z-score, k-occurrence balancing: offsets that even out how
often each photo is in the database's own top-10 lists), apply to image kinds only (an offset over all
classes would make undrawn classes count in a sketch query); with leave-one-out they are fitted without the
query photo. Mutual proximity needs the query's distances to the whole database first (per-query work over
all photos: not free); it is a reference.

**Tuning.** Each family's parameters are chosen on one data set (best mean nDCG@10 over the four kinds) and
reported on both; the script does it both ways (tuned on CamVid, shown on COCO-MINI, and the reverse), on
the float maps and on PQ. Paired differences against L2 (per query, mean and 95% CI) for every pick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: the machine may be shared
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maps_cache  # noqa: E402
import quality as Q  # noqa: E402  (data, grading and nDCG helpers of the reproduction bench)
from data import machine_info  # noqa: E402
from segsearch.evaluation import grade, label_grid, layout_agreement, ndcg  # noqa: E402

C = Q.C
P = maps_cache.SIZE * maps_cache.SIZE
TOP = 10
KINDS = ("image", "sketch", "partial_sketch", "image_and_partial_sketch")
SKETCH_KINDS = ("sketch", "partial_sketch")
IMAGE_KINDS = ("image", "image_and_partial_sketch")
RANDOM_DRAWS = 20


def log(msg: str) -> None:
    print(f"[hubness] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- data
@dataclass
class Dataset:
    name: str
    maps: np.ndarray  # float32 (N, C, P), renormalized softmax maps
    sketch: np.ndarray  # int32 (N, P): ground-truth labels mapped to ADE20K, -1 unspecified
    partial: np.ndarray  # int32 (N, P): the sketch's two largest classes
    grades: np.ndarray  # int (N, N) relevance 0-3
    agreement: np.ndarray  # float (N, N) label agreement the grades come from
    folds: list  # [(query positions, database positions, fold name)]
    loo: bool  # queries are in the database (leave-one-out): their own entry is excluded
    maps_key: str  # the maps' cache file stem (keys the PQ codebooks)

    @property
    def has_sketch(self) -> np.ndarray:
        return (self.sketch >= 0).any(1)


def load_camvid(threads: int) -> Dataset:
    paths, root, grids, sketches, seq = Q.camvid_data()
    maps16 = maps_cache.network_maps(paths, root, tag="camvid", threads=threads)
    agreement = layout_agreement(grids[:, None], grids[None])
    folds = [(np.flatnonzero(seq == s), np.flatnonzero(seq != s), s) for s in sorted(set(seq))]
    return _dataset("camvid", maps16, sketches, agreement, Q.THRESHOLDS, folds, False)


def load_coco(threads: int) -> Dataset:
    """COCO-MINI as quality.run_coco builds it (labels -> 8 x 8 grids and 64 x 64 sketches of ADE20K classes)."""
    paths, root = maps_cache.coco_photos()
    maps16 = maps_cache.network_maps(paths, root, tag="coco-mini", threads=threads)
    names = [line.split("\t")[1].strip() for line in (root / "classes.txt").read_text().splitlines() if line.strip()]
    lut = np.full(257, -1, np.int64)  # COCO label -> ADE20K class; 0 background, 255 crowd, unmapped -> -1
    for i, name in enumerate(names[1:81], start=1):
        ade = Q.COCO_TO_ADE.get(name, name.split()[0])
        lut[i] = Q.ade_index(ade) if ade in Q.ADE20K_CLASSES else -1
    labels = [np.asarray(Image.open(root / "labels" / f"{p.stem}.png")) for p in paths]
    grids = np.stack([label_grid(lab, Q.GRID, 256, ignore=[255]) for lab in labels])
    sketches = np.stack([lut[label_grid(lab, maps_cache.SIZE, 256, ignore=[255])] for lab in labels]).astype(np.int32)
    agreement = layout_agreement(grids[:, None], grids[None], background=0)
    everyone = np.arange(len(paths))
    return _dataset("coco-mini", maps16, sketches, agreement, Q.COCO_THRESHOLDS, [(everyone, everyone, "all")], True)


def _dataset(name, maps16, sketches, agreement, thresholds, folds, loo) -> Dataset:
    maps = Q.as_probs(maps16).reshape(len(maps16), C, P)
    partial = np.stack([Q.two_largest(s) for s in sketches])
    return Dataset(
        name,
        maps,
        sketches.reshape(len(sketches), P).astype(np.int32),
        partial.reshape(len(sketches), P).astype(np.int32),
        grade(agreement, thresholds),
        agreement,
        folds,
        loo,
        Path(maps16.filename).stem,
    )


# ---------------------------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    """A ranking. ``transform``: index-time transform of the stored maps, applied to query photos too
    (('confidence', 'db') only to the database); sketches stay one-hot. Per query kind, the class term is
    ||q_c||^2 - 2 (q_c - gam m_c).x_c + lam ||x_c||^2 (summed over the drawn classes for sketch kinds, all
    classes for image kinds). ``offset``: a per-photo value applied to image kinds."""

    name: str
    family: str
    transform: tuple = ("identity",)
    lam_s: float = 1.0
    gam_s: float = 0.0
    lam_i: float = 1.0
    gam_i: float = 0.0
    offset: tuple = ()
    scan_cost: str = "none: LUT only"

    def params(self, kind: str) -> tuple[float, float]:
        return (self.lam_s, self.gam_s) if kind in SKETCH_KINDS else (self.lam_i, self.gam_i)


L2 = Candidate("L2 (paper)", "L2", scan_cost="the paper's")
FREE_TRANSFORM = "none: maps transformed at indexing"
FREE_OFFSET = "one add per photo (a float per photo)"


def candidates() -> list[Candidate]:
    out = [L2]
    for p in (2, 4):
        out.append(Candidate(f"sharpen T=1/{p}", "sharpen", ("power", p), scan_cost=FREE_TRANSFORM))
    out.append(Candidate("sharpen: argmax one-hot", "sharpen", ("onehot",), scan_cost=FREE_TRANSFORM))
    out.append(Candidate("Hellinger (sqrt maps)", "Hellinger", ("sqrt",), scan_cost=FREE_TRANSFORM))
    for who in ("db", "both"):
        out.append(
            Candidate(f"confidence weight ({who})", "confidence weight", ("confidence", who), scan_cost=FREE_TRANSFORM)
        )
    for a in (0.25, 0.5):
        for lam_s in (1.0, 0.5):
            for lam_i in (1.0, 0.75, 0.5):
                out.append(
                    Candidate(
                        f"class prior a={a}, sketch lam={lam_s:g}, image lam={lam_i:g}",
                        "class prior",
                        ("prior", a),
                        lam_s=lam_s,
                        lam_i=lam_i,
                        scan_cost=FREE_TRANSFORM + " (C floats)",
                    )
                )
    for k in (5, 10, 20):
        for beta in (0.25, 0.5, 1.0):
            out.append(Candidate(f"CSLS k={k} b={beta:g}", "CSLS", offset=("csls", k, beta), scan_cost=FREE_OFFSET))
    for k in (5, 10, 20):
        for a in (0.5, 1.0):
            out.append(
                Candidate(
                    f"local scaling k={k} a={a:g}",
                    "local scaling",
                    offset=("ls", k, a),
                    scan_cost="one multiply per photo (a float per photo)",
                )
            )
    for eta, iters, label in ((0.02, 5, "mild"), (0.05, 5, "medium"), (0.1, 50, "full")):
        out.append(
            Candidate(
                f"k-occurrence balancing, {label}",
                "k-occurrence balancing",
                offset=("balance", 10, eta, iters),
                scan_cost=FREE_OFFSET + "; refit after --add",
            )
        )
    for beta in (0.1, 0.25):
        out.append(
            Candidate(f"entropy penalty b={beta:g}", "entropy penalty", offset=("entropy", beta), scan_cost=FREE_OFFSET)
        )
    out.append(
        Candidate(
            "z-score (global MP)",
            "z-score",
            offset=("zscore",),
            scan_cost="one multiply-add per photo (2 floats per photo)",
        )
    )
    out.append(
        Candidate(
            "mutual proximity",
            "mutual proximity",
            offset=("mp",),
            scan_cost="NOT free: the query's distances to all photos first, then erfc per photo",
        )
    )
    for lam in (0.75, 0.5, 0.25, 0.0):
        out.append(Candidate(f"norm weight lam={lam:g}", "norm weight", lam_s=lam, lam_i=lam))
    for g in (0.25, 0.5):
        out.append(
            Candidate(f"centering g={g:g} (lam={1 - g:g})", "centering", lam_s=1 - g, gam_s=g, lam_i=1 - g, gam_i=g)
        )
    # The per-kind grid: sketch kinds' lam_s (image kinds plain), image kinds' (lam_i, gam_i) (sketch kinds plain).
    for lam in (0.75, 0.5, 0.25, 0.0):
        out.append(Candidate(f"sketch kinds: lam={lam:g}", "per-kind: sketch", lam_s=lam))
    for lam in (1.0, 0.75, 0.5, 0.25):
        for g in (0.0, 0.125, 0.25, 0.375, 0.5):
            if (lam, g) != (1.0, 0.0):
                out.append(Candidate(f"image kinds: lam={lam:g} g={g:g}", "per-kind: image", lam_i=lam, gam_i=g))
    return out


# ---------------------------------------------------------------------------------------------- transforms
def transform_maps(x: np.ndarray, transform: tuple, prior: np.ndarray | None) -> np.ndarray:
    """The maps (n, C, P) float32 as the index would store them under ``transform``."""
    kind = transform[0]
    if kind == "identity":
        return x
    if kind == "power":  # sharpening at temperature 1/p
        y = np.power(x, transform[1], dtype=np.float32)
    elif kind == "onehot":
        y = np.zeros_like(x)
        np.put_along_axis(y, x.argmax(1)[:, None], 1.0, 1)
        return y
    elif kind == "sqrt":  # Hellinger: L2 between sqrt maps; every pixel has unit norm
        return np.sqrt(x)
    elif kind == "confidence":  # each pixel times 1 - its normalized entropy
        ent = -(x * np.log(np.maximum(x, 1e-12))).sum(1, keepdims=True) / np.log(C)
        return (x * (1.0 - ent)).astype(np.float32)
    elif kind == "prior":  # divide by the database's class prior ** a, renormalize (logit adjustment)
        y = x / (prior[None, :, None] ** transform[1]).astype(np.float32)
    else:
        raise ValueError(transform)
    y /= y.sum(1, keepdims=True)
    return y


def query_transform(transform: tuple) -> tuple:
    return ("identity",) if transform == ("confidence", "db") else transform


# ---------------------------------------------------------------------------------------------- terms
@dataclass
class Terms:
    """Everything the distances of one fold need, per class, for queries (nq) against the database (nd)."""

    G: np.ndarray  # (C, nq, nd) image query . photo
    S: np.ndarray  # (C, nq, nd) full sketch (one-hot) . photo
    H: np.ndarray  # (C, nq, nd) image + partial sketch . photo
    qn_image: np.ndarray  # (nq,) ||q||^2
    qn_h: np.ndarray  # (nq,)
    counts: np.ndarray  # (nq, C) pixels drawn per class (= ||q_c||^2 of the sketch)
    drawn_partial: np.ndarray  # (nq, C) bool
    nx: np.ndarray  # (nd, C) ||x_c||^2 (PQ: of the centroid)
    mx: np.ndarray  # (nd, C) m_c . x_c
    db_terms: dict = field(default_factory=dict)  # db photos as queries, for offsets: G (nd, nd), qn (nd,),
    # entropy (nd,): the photo's summed per-pixel entropy (nats)


def _onehot(labels: np.ndarray, c: int):
    import torch

    return torch.from_numpy((labels == c).astype(np.float32))


def _override(q: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Photo maps (b, C, P) with the drawn pixels of ``labels`` (b, P) replaced by one-hot."""
    q = q.copy()
    b, p = np.nonzero(labels >= 0)
    q[b, :, p] = 0.0
    q[b, labels[b, p], p] = 1.0
    return q


class Database:
    """The database side: exact maps (nd, C, P) or PQ codes with their codebook; ``cross(query_c, c)`` gives
    the dot products (nq, nd) of query rows with every photo's class-c map, as the scan sees them."""

    def __init__(self, maps: np.ndarray, codebook: np.ndarray | None = None, codes: np.ndarray | None = None):
        import torch

        self.maps, self.codebook, self.codes = maps, codebook, codes
        self.n = len(maps)
        if codebook is None:
            self.nx = np.einsum("ncp,ncp->nc", maps, maps)
        else:
            cn = np.einsum("ckp,ckp->ck", codebook, codebook)
            self.nx = np.stack([cn[c, codes[:, c]] for c in range(C)], 1)
        self.mean = maps.mean(0)  # (C, P): the database's mean map (exact maps)
        self.mx = np.stack([self.cross(torch.from_numpy(self.mean[c][None]), c)[0] for c in range(C)], 1)

    def cross(self, q, c: int) -> np.ndarray:
        import torch

        if self.codebook is None:
            return (q @ torch.from_numpy(self.maps[:, c]).T).numpy()
        lut = (q @ torch.from_numpy(self.codebook[c]).T).numpy()  # (nq, K)
        return lut[:, self.codes[:, c]]


def fold_terms(ds: Dataset, qi: np.ndarray, db: Database, qmaps: np.ndarray, dbq_maps: np.ndarray | None) -> Terms:
    """Terms of queries ``qi`` (their transformed maps ``qmaps``) against ``db``; ``dbq_maps``: the database
    photos' own (transformed, exact) maps as queries, for the per-photo offsets (None: not needed)."""
    import torch

    nq = len(qi)
    sk, part = ds.sketch[qi], ds.partial[qi]
    G = np.empty((C, nq, db.n), np.float32)
    S = np.zeros((C, nq, db.n), np.float32)
    H = np.empty((C, nq, db.n), np.float32)
    qh = _override(qmaps, part)
    present = set(np.unique(sk[sk >= 0]).tolist())
    qt, ht = torch.from_numpy(qmaps), torch.from_numpy(qh)
    for c in range(C):
        G[c] = db.cross(qt[:, c], c)
        H[c] = db.cross(ht[:, c], c)
        if c in present:
            S[c] = db.cross(_onehot(sk, c), c)
    counts = np.stack([np.bincount(s[s >= 0], minlength=C) for s in sk]).astype(np.float32)
    drawn_partial = np.stack([np.bincount(s[s >= 0], minlength=C) > 0 for s in part])
    t = Terms(
        G,
        S,
        H,
        np.einsum("ncp,ncp->n", qmaps, qmaps),
        np.einsum("ncp,ncp->n", qh, qh),
        counts,
        drawn_partial,
        db.nx,
        db.mx,
    )
    if dbq_maps is not None:
        dt = torch.from_numpy(dbq_maps)
        Gd = np.zeros((db.n, db.n), np.float64)
        for c in range(C):
            Gd += db.cross(dt[:, c], c)
        t.db_terms = {"G": Gd, "qn": np.einsum("ncp,ncp->n", dbq_maps, dbq_maps), "entropy": mean_entropy(db.maps) * P}
    return t


def class_terms(t: Terms, lam: float, gam: float) -> np.ndarray:
    """Per photo and class, the part of the distance that depends on the photo alone: (nd, C)."""
    return lam * t.nx + 2.0 * gam * t.mx


def distances(t: Terms, cand: Candidate, kind: str) -> np.ndarray:
    """(nq, nd) float64 distances of ``kind`` under ``cand``, before any per-photo offset."""
    lam, gam = cand.params(kind)
    E = class_terms(t, lam, gam)
    if kind == "image":
        return t.qn_image[:, None] - 2.0 * t.G.sum(0, dtype=np.float64) + E.sum(1)[None]
    if kind == "image_and_partial_sketch":
        return t.qn_h[:, None] - 2.0 * t.H.sum(0, dtype=np.float64) + E.sum(1)[None]
    drawn = (t.counts > 0) if kind == "sketch" else t.drawn_partial
    M = drawn.astype(np.float64)
    return (
        (M * t.counts).sum(1)[:, None]
        - 2.0 * np.einsum("ic,cij->ij", M, t.S, dtype=np.float64)
        + M @ E.T.astype(np.float64)
    )


def db_distances(t: Terms, cand: Candidate) -> np.ndarray:
    """(nd, nd) image distances among the database photos (diagonal = inf), under cand's image parameters."""
    lam, gam = cand.params("image")
    E = class_terms(t, lam, gam).sum(1)
    d = t.db_terms["qn"][:, None] - 2.0 * t.db_terms["G"] + E[None]
    np.fill_diagonal(d, np.inf)
    return d


def photo_offsets(dd: np.ndarray, offset: tuple, entropy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per database photo (a, s) such that the ranking is by (D + a) / s, from the database's own image
    distances ``dd`` (nd, nd; diagonal inf) or the photo's own maps (``entropy``: summed per-pixel entropy):
    what the index would compute at indexing time."""
    how = offset[0]
    ones = np.ones(len(dd))
    if how == "entropy":  # the hypothesis: diffuse photos are hubs; penalize uncertainty
        return offset[1] * entropy, ones
    if how in ("csls", "ls"):
        k = offset[1]
        near = np.sort(dd, axis=1)[:, :k]
        if how == "csls":  # subtract beta x the mean distance to the photo's k nearest
            return -offset[2] * near.mean(1), ones
        # local scaling: divide by sigma_x ** a, sigma_x = the (squared) distance to its k-th nearest
        return np.zeros(len(dd)), np.maximum(near[:, -1], 1e-9) ** offset[2]
    if how == "zscore":  # the photo's distances to the database standardized (global mutual proximity)
        finite = np.where(np.isfinite(dd), dd, np.nan)
        return -np.nanmean(finite, 0), np.nanstd(finite, 0)
    if how == "balance":  # offsets that even out the k-occurrence of the database's own queries
        k, eta, iters = offset[1:]
        o = np.zeros(len(dd))
        scale = np.median(np.sort(dd, axis=1)[:, k - 1])
        for _ in range(iters):
            top = np.argpartition(dd + o[None], k - 1, axis=1)[:, :k]
            o += eta * scale * (np.bincount(top.ravel(), minlength=len(dd)) - k) / k
        return o, ones
    raise ValueError(offset)


def apply_offset(D: np.ndarray, cand: Candidate, t: Terms, kind: str, self_cols: np.ndarray | None) -> np.ndarray:
    """D with cand's per-photo offsets (image kinds only). ``self_cols``: with leave-one-out, each query's own
    column: the offsets are then fitted without the query photo (cross-fitted), so that nothing is fitted
    on the query it is scored on."""
    if not cand.offset or kind not in IMAGE_KINDS:
        return D
    dd, entropy = db_distances(t, cand), t.db_terms["entropy"]
    if self_cols is None:
        return _with_offsets(D, dd, cand.offset, entropy)
    out = np.full(D.shape, np.inf)
    for r, j in enumerate(self_cols):
        keep = np.delete(np.arange(D.shape[1]), j)
        out[r, keep] = _with_offsets(D[r : r + 1, keep], dd[np.ix_(keep, keep)], cand.offset, entropy[keep])[0]
    return out


def _with_offsets(D: np.ndarray, dd: np.ndarray, offset: tuple, entropy: np.ndarray) -> np.ndarray:
    if offset[0] == "mp":  # mutual proximity (Gaussian, independent): -log P(X > d) P(Y > d)
        import torch

        finite = np.where(np.isfinite(dd), dd, np.nan)
        mu, sd = np.nanmean(finite, 0), np.nanstd(finite, 0)
        mq, sq = D.mean(1, keepdims=True), D.std(1, keepdims=True)
        lq = torch.special.log_ndtr(torch.from_numpy(-(D - mq) / sq))
        lx = torch.special.log_ndtr(torch.from_numpy(-(D - mu[None]) / sd[None]))
        return -(lq + lx).numpy()
    a, s = photo_offsets(dd, offset, entropy)
    return (D + a[None]) / s[None]


# ---------------------------------------------------------------------------------------------- metrics
def skewness(v: np.ndarray) -> float:
    v = np.asarray(v, np.float64)
    s = v.std()
    return float(((v - v.mean()) ** 3).mean() / s**3) if s > 0 else 0.0


@dataclass
class FoldRanking:
    """Top-10 lists of one fold: database positions (local to the fold) and grades."""

    order: np.ndarray  # (nq, TOP)
    grades: np.ndarray  # (nq, nd)
    nd: int


def rank_fold(ds: Dataset, qi: np.ndarray, di: np.ndarray, D: np.ndarray) -> FoldRanking:
    D = np.array(D, np.float64)
    g = ds.grades[np.ix_(qi, di)].copy()
    if ds.loo:  # a query is not its own result
        rows, cols = np.arange(len(qi)), np.searchsorted(di, qi)
        D[rows, cols] = np.inf
        g[rows, cols] = 0
    order = np.argsort(D, axis=1, kind="stable")[:, :TOP]
    return FoldRanking(order, g, len(di))


def metrics(folds: list[FoldRanking], entropy: np.ndarray | None = None, dbpos: list | None = None) -> dict:
    nd10, hub, bad, skew, never, n_db, hub5 = [], [], [], [], 0, 0, []
    corr = []
    for j, f in enumerate(folds):
        nd10 += [ndcg(g[o], g, TOP) for o, g in zip(f.order, f.grades)]
        occ = np.bincount(f.order.ravel(), minlength=f.nd)
        irrelevant = np.take_along_axis(f.grades, f.order, 1) == 0
        bocc = np.bincount(f.order.ravel(), weights=irrelevant.ravel(), minlength=f.nd)
        nq = len(f.order)
        hub.append(occ.max() / nq)
        hub5.append(np.bincount(f.order[:, :5].ravel(), minlength=f.nd).max() / nq)
        bad.append(bocc.max() / nq)
        skew.append(skewness(occ))
        never += int((occ == 0).sum())
        n_db += f.nd
        if entropy is not None and dbpos is not None and occ.std() > 0:
            corr.append(float(np.corrcoef(occ, entropy[dbpos[j]])[0, 1]))
    s = Q.summarize(nd10)
    return {
        "ndcg10": s["mean"],
        "ci95": s["ci95"],
        "n_queries": s["n"],
        "hub": float(max(hub)),
        "hub_top5": float(max(hub5)),
        "bad_hub": float(max(bad)),
        "skew": float(np.mean(skew)),
        "never": never,
        "never_fraction": never / n_db,
        "corr_entropy": float(np.mean(corr)) if corr else None,
        "ndcg10_values": [None if not np.isfinite(x) else float(x) for x in nd10],
    }


def self_cols(ds: Dataset, qi: np.ndarray, di: np.ndarray) -> np.ndarray | None:
    """With leave-one-out, the database column of each query's own photo; else None."""
    return np.searchsorted(di, qi) if ds.loo else None


def query_rows(ds: Dataset, qi: np.ndarray, kind: str) -> np.ndarray:
    """Which of the queries ``qi`` take part in ``kind`` (sketch kinds need a non-empty sketch)."""
    return np.ones(len(qi), bool) if kind == "image" else ds.has_sketch[qi]


# ---------------------------------------------------------------------------------------------- runs
def mean_entropy(maps: np.ndarray) -> np.ndarray:
    return np.array([-(m * np.log(np.maximum(m, 1e-12))).sum(0).mean() for m in maps])


def evaluate_exact(ds: Dataset, cands: list[Candidate]) -> dict:
    """nDCG@10 and hubness of every candidate on the float maps."""
    entropy = mean_entropy(ds.maps)
    per = {c.name: {k: [] for k in KINDS} for c in cands}
    transforms = sorted({c.transform for c in cands}, key=str)
    for qi, di, fname in ds.folds:
        prior = ds.maps[di].mean((0, 2), dtype=np.float64).clip(1e-6)
        for tr in transforms:
            t0 = time.perf_counter()
            group = [c for c in cands if c.transform == tr]
            xd = transform_maps(ds.maps[di], tr, prior)
            xq = transform_maps(ds.maps[qi], query_transform(tr), prior)
            need_db = any(c.offset for c in group)
            terms = fold_terms(ds, qi, Database(xd), xq, xd if need_db else None)
            del xq
            for cand in group:
                for kind in KINDS:
                    D = apply_offset(distances(terms, cand, kind), cand, terms, kind, self_cols(ds, qi, di))
                    keep = query_rows(ds, qi, kind)
                    per[cand.name][kind].append(rank_fold(ds, qi[keep], di, D[keep]))
            del terms, xd
            log(f"{ds.name} {fname}: transform {tr} ({len(group)} candidates) {time.perf_counter() - t0:.1f} s")
    dbpos = [di for _, di, _ in ds.folds]
    return {name: {k: metrics(f, entropy, dbpos) for k, f in kinds.items()} for name, kinds in per.items()}


def references(ds: Dataset, seed: int = Q.SEED) -> dict:
    """Hubness and nDCG of a random order (mean over RANDOM_DRAWS) and of the ground-truth order."""
    rng = np.random.default_rng(seed)
    out = {}
    for ref in ("random", "ground truth"):
        rows = []
        for _ in range(RANDOM_DRAWS if ref == "random" else 1):
            folds = []
            for qi, di, _ in ds.folds:
                noise = rng.random((len(qi), len(di)))
                D = noise if ref == "random" else -ds.agreement[np.ix_(qi, di)] + 1e-6 * noise
                folds.append(rank_fold(ds, qi, di, D))
            rows.append(metrics(folds))
        out[ref] = {
            k: float(np.mean([r[k] for r in rows])) for k in ("ndcg10", "hub", "hub_top5", "bad_hub", "skew", "never")
        }
    return out


def default_k(n: int) -> int:
    from segsearch.library.build import default_centroids

    return default_centroids(n)


def pq_codebook(xd: np.ndarray, K: int, key: str, transform: tuple) -> np.ndarray:
    """(C, K, n, n) codebook of a fold's database maps (as the index stores them under ``transform``) and
    their mirror images: quality.py's fold_codebook (and its cache) for the plain maps, the same k-means
    (Index.train's) cached beside it for transformed ones."""
    maps4 = xd.reshape(len(xd), C, maps_cache.SIZE, maps_cache.SIZE)
    if transform == ("identity",):
        return Q.fold_codebook(maps4, K, key)
    tag = "confidence" if transform[0] == "confidence" else "-".join(str(v) for v in transform)  # same db maps
    path = maps_cache.CACHE / f"codebook-{key}-{tag}-K{K}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    from segsearch.engine.codebook import train_codebook

    codebook = train_codebook(np.concatenate([maps4, maps4[..., ::-1]]), K, seed=0)
    maps_cache.save_npy(path, codebook.reshape(C, K, maps_cache.SIZE, maps_cache.SIZE))
    return codebook.reshape(C, K, maps_cache.SIZE, maps_cache.SIZE)


def evaluate_pq(ds: Dataset, cands: list[Candidate], ks: tuple) -> dict:
    """The same with PQ codes (codebooks trained on each database and its mirror images by quality.py's
    fold_codebook, cached; candidates with a transform get their own codebook, trained on the transformed
    maps): the LUT sums the scan computes (eps = 0)."""
    from segsearch.engine.codebook import encode

    out = {}
    transforms = sorted({c.transform for c in cands}, key=str)
    for kname in ks:
        per = {c.name: {k: [] for k in KINDS} for c in cands}
        for qi, di, fname in ds.folds:
            K = default_k(len(di)) if kname == "default" else int(kname)
            prior = ds.maps[di].mean((0, 2), dtype=np.float64).clip(1e-6)
            for tr in transforms:
                group = [c for c in cands if c.transform == tr]
                xd = transform_maps(ds.maps[di], tr, prior)
                codebook = pq_codebook(xd, K, f"{ds.maps_key}-{fname}", tr)
                codes = encode(xd, codebook.reshape(C, K, P).transpose(0, 2, 1))
                db = Database(xd, codebook.reshape(C, K, P), codes)
                xq = transform_maps(ds.maps[qi], query_transform(tr), prior)
                terms = fold_terms(ds, qi, db, xq, xd if any(c.offset for c in group) else None)
                for cand in group:
                    for kind in KINDS:
                        D = apply_offset(distances(terms, cand, kind), cand, terms, kind, self_cols(ds, qi, di))
                        keep = query_rows(ds, qi, kind)
                        per[cand.name][kind].append(rank_fold(ds, qi[keep], di, D[keep]))
                if tr == ("identity",) and kname == "default" and fname == ds.folds[0][2]:
                    out.setdefault(str(kname), {})["engine_check"] = engine_check(ds, qi, di, codebook, terms)
                del terms, db, xd, xq
            out.setdefault(str(kname), {}).setdefault("K", {})[str(fname)] = K
        out[str(kname)]["results"] = {name: {k: metrics(f) for k, f in kinds.items()} for name, kinds in per.items()}
        log(f"{ds.name}: PQ K={kname} done")
    return out


def engine_check(ds: Dataset, qi, di, codebook, terms: Terms) -> dict:
    """The emulated PQ distances against Index.search (eps = 0) on the same codebook: top-10 agreement."""
    from segsearch import Index, Query

    index = Index.from_codebook(codebook, np.zeros((0, C), np.uint8)).add(
        ds.maps[di].reshape(len(di), C, maps_cache.SIZE, maps_cache.SIZE)
    )
    sub = qi[:20]
    same, n = 0, 0
    for kind, make in (
        ("image", lambda i: Query.image(ds.maps[i].reshape(C, 64, 64))),
        ("sketch", lambda i: Query.sketch(ds.sketch[i].reshape(64, 64))),
    ):
        D = distances(terms, L2, kind)
        for row, i in enumerate(sub):
            if kind == "sketch" and not ds.has_sketch[i]:
                continue
            d = D[row].copy()
            if ds.loo:
                d[np.searchsorted(di, i)] = np.inf
            ours = set(np.argsort(d, kind="stable")[:TOP].tolist())
            cand = np.setdiff1d(np.arange(len(di)), [np.searchsorted(di, i)]) if ds.loo else None
            res = index.search(make(i), k=TOP, eps=0.0, threads=1, subset=cand)
            same += len(ours & set(np.asarray(res.ids).tolist()))
            n += TOP
    return {"top10_agreement_with_Index_search": same / n, "queries": len(sub)}


# ---------------------------------------------------------------------------------------------- tuning
def family_score(res: dict) -> float:
    return float(np.mean([res[k]["ndcg10"] for k in KINDS]))


def tune(results: dict, cands: list[Candidate], on: str) -> dict:
    """Per family, the candidate with the best mean nDCG@10 over the kinds on data set ``on``; the per-kind
    grid is tuned as one composite (best sketch-kind lam and best image-kind (lam, gam))."""
    best = {}
    for fam in dict.fromkeys(c.family for c in cands):
        if fam.startswith("per-kind") or fam == "L2":
            continue
        members = [c for c in cands if c.family == fam]
        best[fam] = max(members, key=lambda c: family_score(results[on][c.name])).name
    sk = [c for c in cands if c.family == "per-kind: sketch"] + [L2]
    im = [c for c in cands if c.family == "per-kind: image"] + [L2]
    s = max(sk, key=lambda c: np.mean([results[on][c.name][k]["ndcg10"] for k in SKETCH_KINDS]))
    i = max(im, key=lambda c: np.mean([results[on][c.name][k]["ndcg10"] for k in IMAGE_KINDS]))
    best["per-kind"] = (s.name, i.name)
    return best


def composite(cands: list[Candidate], pair: tuple) -> Candidate:
    by = {c.name: c for c in cands}
    s, i = by[pair[0]], by[pair[1]]
    return Candidate(
        f"per-kind: sketch lam={s.lam_s:g}; image lam={i.lam_i:g} g={i.gam_i:g}",
        "per-kind",
        lam_s=s.lam_s,
        lam_i=i.lam_i,
        gam_i=i.gam_i,
    )


def combine(sketch_res: dict, image_res: dict) -> dict:
    return {k: (sketch_res if k in SKETCH_KINDS else image_res)[k] for k in KINDS}


def paired(a: dict, b: dict) -> dict:
    """Per kind, the mean per-query difference of nDCG@10 (a - b) and its 95% CI."""
    out = {}
    for k in KINDS:
        x = np.array([np.nan if v is None else v for v in a[k]["ndcg10_values"]], np.float64)
        y = np.array([np.nan if v is None else v for v in b[k]["ndcg10_values"]], np.float64)
        s = Q.summarize(x - y)
        out[k] = {"mean": s["mean"], "ci95": s["ci95"]}
    return out


# ---------------------------------------------------------------------------------------------- printing
def cell(r: dict) -> str:
    ci = f"±{r['ci95']:.2f}" if r.get("ci95") is not None else ""
    return f"{r['ndcg10']:.3f}{ci} {r['hub'] * 100:3.0f}%/{r['bad_hub'] * 100:2.0f}% s{r['skew']:.1f} n{r['never']}"


def print_table(title: str, rows: dict, names=None) -> None:
    print(f"\n### {title}\nnDCG@10±CI95  worst hub / worst irrelevant hub (share of top-10 lists)  skewness  never\n")
    print("| ranking | " + " | ".join(KINDS) + " |")
    print("| --- |" + " --- |" * len(KINDS))
    for name in names or rows:
        print(f"| {name} | " + " | ".join(cell(rows[name][k]) for k in KINDS) + " |")


def strip(res):
    if isinstance(res, dict):
        return {k: strip(v) for k, v in res.items() if k != "ndcg10_values"}
    return res


def run_part(ds: Dataset, cands: list[Candidate], pq: bool) -> dict:
    t0 = time.perf_counter()
    out = {"exact": evaluate_exact(ds, cands), "references": references(ds)}
    if pq:
        r = evaluate_pq(ds, cands, ("default",))["default"]
        out["pq"], out["pq_K"], out["engine_check"] = r["results"], r["K"], r.get("engine_check")
    out["data"] = {
        "n_photos": len(ds.maps),
        "folds": [(str(f), len(q), len(d)) for q, d, f in ds.folds],
        "entropy_median": float(np.median(mean_entropy(ds.maps))),
        "seconds": time.perf_counter() - t0,
    }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench-report/hubness", help="report folder (hubness.json goes there)")
    ap.add_argument("--part", choices=("all", "camvid", "coco"), default="all")
    ap.add_argument("--no-pq", action="store_true", help="float maps only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine may be shared)")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    cands = candidates()
    loaders = {"camvid": load_camvid, "coco-mini": load_coco}
    parts = list(loaders) if args.part == "all" else ["coco-mini" if args.part == "coco" else "camvid"]
    settings = ("exact",) if args.no_pq else ("exact", "pq")
    report = {
        "candidates": [asdict(c) for c in cands],
        "machine": {"before": machine_info()},
        "data": {},
        "settings": {"exact": "float maps", "pq": "PQ at the default K of each database"},
    }
    results = {s: {} for s in settings}
    refs, checks, pq_k = {}, {}, {}
    datasets = {}
    for part in parts:
        ds = datasets[part] = loaders[part](args.threads)
        r = run_part(ds, cands, not args.no_pq)
        for setting in settings:
            results[setting][part] = r[setting]
        refs[part], report["data"][part] = r["references"], r["data"]
        if not args.no_pq:
            checks[part], pq_k[part] = r["engine_check"], r["pq_K"]
    # Tuning both ways (only when both data sets ran), on the float maps and on PQ at the default K.
    selections = {}
    if len(parts) == 2:
        for setting in settings:
            for on in parts:
                sel = tune(results[setting], cands, on)
                comp = composite(cands, sel["per-kind"])
                s_name, i_name = sel["per-kind"]
                for every in settings:  # shown in every setting, whichever it was tuned in
                    for part in parts:
                        results[every][part][comp.name] = combine(
                            results[every][part][s_name], results[every][part][i_name]
                        )
                selections[f"{setting}, tuned on {on}"] = {
                    **{f: n for f, n in sel.items() if f != "per-kind"},
                    "per-kind": comp.name,
                    "_composite": asdict(comp),
                }
    kept = {"L2 (paper)"} | {n for sel in selections.values() for f, n in sel.items() if not f.startswith("_")}
    # PQ at a second K (CamVid: the paper's 256; COCO-MINI: 16, the default for the 159 photos) for L2
    # and every selected ranking.
    more = {}
    if not args.no_pq:
        by_name = {c.name: c for c in cands}
        by_name.update({s["per-kind"]: Candidate(**s["_composite"]) for s in selections.values()})
        subset = [
            by_name[n]
            for n in sorted(kept, key=lambda n: (n != "L2 (paper)", n))
            if by_name[n].transform[0] in ("identity", "prior")
        ]
        for part in parts:
            more[part] = evaluate_pq(datasets[part], subset, (256,) if part == "camvid" else (16,))
    del datasets

    def values(res):
        return {n: {k: v[k]["ndcg10_values"] for k in KINDS} for n, v in res.items() if n in kept}

    report.update(
        {
            "results": {
                s: {p: {n: strip(v) for n, v in r.items()} for p, r in per.items()} for s, per in results.items()
            },
            "ndcg10_values": {s: {p: values(r) for p, r in per.items()} for s, per in results.items()},
            "references": refs,
            "selections": selections,
            "pq_K": pq_k,
            "engine_check": checks,
            "pq_second_K": {
                p: {k: {"K": v["K"], "results": strip(v["results"])} for k, v in r.items()} for p, r in more.items()
            },
            "seconds": time.perf_counter() - t_start,
        }
    )
    report["machine"]["after"] = machine_info()

    # ------------------------------------------------------------------ tables
    labels = {"exact": "float maps", "pq": "PQ at the default K"}
    for part in parts:
        for setting in settings:
            extra = f" {pq_k[part]}" if setting == "pq" else ""
            print_table(f"{part}, {labels[setting]}{extra}: every candidate", results[setting][part])
        print(
            f"\nreferences ({part}): "
            + "; ".join(
                f"{ref}: nDCG@10 {r['ndcg10']:.3f}, hub {r['hub'] * 100:.0f}%, "
                f"irrelevant hub {r['bad_hub'] * 100:.0f}%, "
                f"skew {r['skew']:.1f}, never {r['never']:.0f}"
                for ref, r in refs[part].items()
            )
        )
        if part in checks:
            print(f"\nPQ emulation against Index.search ({part}): {checks[part]}")
    for key, sel in selections.items():
        setting, on = key.split(", tuned on ")
        names = ["L2 (paper)"] + [n for f, n in sel.items() if not f.startswith("_")]
        for part in parts:
            held = " (held out)" if part != on else ""
            print_table(f"{labels[setting]}, each family tuned on {on}: {part}{held}", results[setting][part], names)
    for setting in settings:
        print(f"\n### {labels[setting]}: paired nDCG@10 differences against L2 (mean ± 95% CI over the queries)\n")
        print("| ranking | data set | " + " | ".join(KINDS) + " |")
        print("| --- | --- |" + " --- |" * len(KINDS))
        for name in sorted(kept - {"L2 (paper)"}):
            for part in parts:
                d = paired(results[setting][part][name], results[setting][part]["L2 (paper)"])
                report.setdefault("paired_vs_L2", {}).setdefault(setting, {}).setdefault(name, {})[part] = d
                print(
                    f"| {name} | {part} | " + " | ".join(f"{v['mean']:+.3f}±{v['ci95']:.3f}" for v in d.values()) + " |"
                )
    for part, r in more.items():
        for kname, v in r.items():
            print_table(f"{part}, PQ K={kname}: L2 and the selected rankings", v["results"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hubness.json").write_text(json.dumps(report, indent=1))
    log(f"wrote {out / 'hubness.json'} in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
