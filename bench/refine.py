"""Query refinement on real photos (issue 22): emphasising a class (``weights=``) and more / fewer like these
(``like=`` / ``unlike=``).

    python bench/refine.py [--camvid-stride 1] [--weights 4] [--threads 2] [--out bench-report/refine.json]

One index, as ``segsearch index`` makes a folder's (balanced ranking, exact maps kept, K the folder default for its
size: 64 for the 548 photos), over the 80 COCO-MINI photos and every ``--camvid-stride``-th CamVid photo (street
scenes: the distractors of the issue's bus query), the network's maps cached by ``maps_cache.py``.

**Emphasis.** Queries: each COCO photo, for each object class it shows (ground truth, mapped to the network's
ADE20K class as ``bench/quality.py`` maps them, on >= 0.5% of the photo) that the network also finds on >= 0.5%
of it and that some other photo shows; relevant: the other photos whose ground truth shows the class on >= 0.5%
(CamVid's labels for its photos). Scores: nDCG@10 (binary) and hits@5 (a relevant photo in the top 5), for the
photo query alone and with the class emphasised at each weight, searched as a folder is (PQ then the default
re-rank), by the codes alone (``rerank=0``) and exactly; and the bus check of the issue: the rank of the other bus
photos (COCO-MINI has three) in each bus photo's query.

**Like.** Street photos: every CamVid photo and the COCO photos with at least two captions naming a street, road,
city, traffic, ... Each pair of street photos is liked (no other query); the score is how many of the top 10 are
street photos, with the two liked ones and without them (the top 10 of the other photos), and the share of pairs
with >= 8. Unlike: each COCO street photo's query, with two CamVid photos unliked: CamVid photos in its top 10
before and after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maps_cache  # noqa: E402
from quality import CAMVID_NAMES, CAMVID_TO_ADE, COCO_TO_ADE, ade_index, as_probs  # noqa: E402
from segsearch import Index, PhotoIndex  # noqa: E402
from segsearch.engine import feedback  # noqa: E402
from segsearch.evaluation import ndcg  # noqa: E402
from segsearch.library.build import default_centroids  # noqa: E402
from segsearch.library.captions import read_captions  # noqa: E402
from segsearch.network.segmenter import ADE20K_CLASSES  # noqa: E402

SHARE = 0.005
STREET = re.compile(r"\b(street|streets|road|roads|city|traffic|intersection|highway|sidewalk|downtown|crosswalk)\b")
C = len(ADE20K_CLASSES)


def log(msg: str) -> None:
    print(f"[refine] {msg}", file=sys.stderr, flush=True)


def data(stride: int):
    """(maps float32 (N, C, n, n), ids, ground-truth shares (N, C), street bool (N,), the COCO object classes)."""
    cp, croot = maps_cache.coco_photos()
    vp, vroot = maps_cache.camvid_photos()
    vp = vp[::stride]
    mc = maps_cache.network_maps(cp, croot, tag="coco-mini")
    mv = maps_cache.network_maps(*maps_cache.camvid_photos(), tag="camvid")[::stride]
    maps = np.concatenate([as_probs(mc), as_probs(mv)])
    names = [ln.split("\t")[1].strip() for ln in (croot / "classes.txt").read_text().splitlines() if ln.strip()]
    to_ade = {u: COCO_TO_ADE.get(nm, nm.split()[0]) for u, nm in enumerate(names[1:81], start=1)}
    to_ade = {u: ade_index(a) for u, a in to_ade.items() if a in ADE20K_CLASSES}
    gt = np.zeros((len(maps), C))
    for i, p in enumerate(cp):
        lab = np.asarray(Image.open(croot / "labels" / f"{p.stem}.png"))
        for u in np.unique(lab):
            if int(u) in to_ade:
                gt[i, to_ade[int(u)]] += (lab == u).mean()
    for j, p in enumerate(vp):
        lab = np.asarray(Image.open(p.parent.parent / "labels" / f"{p.stem}.png"))
        for u in np.unique(lab):
            if u < len(CAMVID_NAMES):
                gt[len(cp) + j, ade_index(CAMVID_TO_ADE[CAMVID_NAMES[u]])] += (lab == u).mean()
    caps = {p.name: [] for p in cp}
    for name, c in read_captions(croot / "captions_train2017.json", list(caps))[0]:
        caps[name].append(c.lower())
    street = np.array([sum(bool(STREET.search(c)) for c in caps[p.name]) >= 2 for p in cp] + [True] * len(vp))
    ids = [f"coco/{p.name}" for p in cp] + [f"camvid/{p.name}" for p in vp]
    return maps, ids, gt, street, sorted(set(to_ade.values()))


def build(maps, ids, stride: int) -> Index:
    """The index (cached in bench/.cache: delete it after changing how indexes are made)."""
    K = default_centroids(len(maps))
    path = maps_cache.CACHE / f"refine-camvid{stride}-N{len(maps)}-K{K}.segsearch"
    if path.exists():
        return Index.load(path)
    t0 = time.perf_counter()
    index = Index(C, maps.shape[-1], K, keep_exact=True).train(maps, seed=0).add(maps, ids=ids)
    log(f"index of {len(maps)} photos, K = {K}: {time.perf_counter() - t0:.0f} s")
    maps_cache.ensure_cache()
    index.save(path)
    return index


def emphasis_scores(pi: PhotoIndex, maps, gt, things, weights, net) -> dict:
    ids = pi.index.ids.tolist()
    rel = gt >= SHARE
    queries = [(i, c) for i in range(80) for c in things if rel[i, c] and net[i, c] >= SHARE and rel[:, c].sum() > 1]
    log(f"emphasis: {len(queries)} queries over {len({c for _, c in queries})} classes")
    out = {"n_queries": len(queries), "classes": sorted({ADE20K_CLASSES[c] for _, c in queries})}
    N = len(ids)
    for how, kw in (("folder", {}), ("codes", {"rerank": 0}), ("exact", {"rerank": N})):
        for w in (0.0, *weights):
            nd, hit = [], []
            for i, c in queries:
                hits = pi.search(maps=maps[i], k=11, weights={c: w} if w else None, **kw)
                order = [ids.index(h.id) for h in hits if h.id != ids[i]][:10]
                g = rel[:, c].astype(int)
                g[i] = 0
                nd.append(ndcg(g[order], g, 10))
                hit.append(bool(g[order[:5]].any()))
            out[f"{how} w={w:g}"] = {"ndcg10": float(np.mean(nd)), "hits5": float(np.mean(hit))}
            log(f"emphasis {how} w={w:g}: nDCG@10 {np.mean(nd):.3f}, hits@5 {np.mean(hit):.3f}")
    bus = ADE20K_CLASSES.index("bus")
    buses = [i for i in range(80) if rel[i, bus]]
    for w in (0.0, *weights):
        ranks = {}
        for i in buses:
            hits = [h.id for h in pi.search(maps=maps[i], k=N, weights={bus: w} if w else None) if h.id != ids[i]]
            ranks[ids[i]] = [hits.index(ids[j]) + 1 for j in buses if j != i]
        out[f"bus ranks w={w:g}"] = ranks
        log(f"bus w={w:g}: other bus photos at ranks {ranks}")
    return out


def like_scores(pi: PhotoIndex, maps, street) -> dict:
    ids = pi.index.ids.tolist()
    where = {i: n for n, i in enumerate(ids)}
    pairs = list(itertools.combinations(np.flatnonzero(street).tolist(), 2))
    camvid = np.array([i.startswith("camvid/") for i in ids])
    kind = np.array([int(camvid[a]) + int(camvid[b]) for a, b in pairs])  # 0: two COCO photos, 1: mixed, 2: CamVid
    with_liked, without = [], []
    for a, b in pairs:
        hits = [where[h.id] for h in pi.search(like=[ids[a], ids[b]], k=12)]
        with_liked.append(int(street[hits[:10]].sum()))
        without.append(int(street[[h for h in hits if h not in (a, b)][:10]].sum()))
    out = {
        "pairs": len(pairs),
        "street_share": float(street.mean()),
        "top10_street_mean": float(np.mean(with_liked)),
        "top10_street_min": int(np.min(with_liked)),
        "pairs_with_8_or_more": float(np.mean(np.array(with_liked) >= 8)),
        "top10_others_street_mean": float(np.mean(without)),
        "others_pairs_with_8_or_more": float(np.mean(np.array(without) >= 8)),
    }
    for k, name in enumerate(("coco+coco", "coco+camvid", "camvid+camvid")):
        sel = kind == k
        if sel.any():
            out[f"{name}: pairs, mean, min, share >= 8"] = [
                int(sel.sum()),
                float(np.mean(np.array(with_liked)[sel])),
                int(np.min(np.array(with_liked)[sel])),
                float(np.mean(np.array(with_liked)[sel] >= 8)),
            ]
    log(f"like: {out}")
    cam = np.flatnonzero(camvid)
    before, after = [], []
    rng = np.random.default_rng(0)
    for q in np.flatnonzero(street & ~camvid).tolist():
        plain = [where[h.id] for h in pi.search(maps=maps[q], k=10)]
        un = rng.choice(cam, 2, replace=False)
        moved = [where[h.id] for h in pi.search(maps=maps[q], k=10, unlike=[ids[u] for u in un])]
        before.append(int(camvid[plain].sum()))
        after.append(int(camvid[moved].sum()))
    out["unlike_camvid_in_top10_before"] = float(np.mean(before))
    out["unlike_camvid_in_top10_after"] = float(np.mean(after))
    log(f"unlike two CamVid photos: CamVid photos in the top 10 {np.mean(before):.2f} -> {np.mean(after):.2f}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--camvid-stride", type=int, default=1)
    ap.add_argument("--weights", default="1,2,4,8")
    ap.add_argument("--part", choices=("all", "emphasis", "like"), default="all")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--gamma", type=float, default=None, help="the unlike weight (default feedback.GAMMA)")
    args = ap.parse_args(argv)
    if args.gamma is not None:
        feedback.GAMMA = args.gamma
    maps, ids, gt, street, things = data(args.camvid_stride)
    index = build(maps, ids, args.camvid_stride)
    pi = PhotoIndex(index)
    net = np.stack([np.bincount(m.argmax(0).ravel(), minlength=C) for m in maps]) / maps[0, 0].size
    report = {"photos": len(ids), "K": index.n_centroids, "camvid_stride": args.camvid_stride}
    if args.part in ("all", "emphasis"):
        weights = [float(w) for w in args.weights.split(",")]
        report["emphasis"] = emphasis_scores(pi, maps, gt, things, weights, net)
    if args.part in ("all", "like"):
        report["like"] = like_scores(pi, maps, street)
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
