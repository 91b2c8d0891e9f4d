"""What exact re-ranking buys on CamVid: nDCG@10 against exact search, ties in the top 10, each photo first for
its own query, for re-rank depths 0 (the codes alone) .. 256.

    python bench/rerank_quality.py [--k 16] [--ranking balanced]

The three folds of ``bench/quality.py`` (each video sequence in turn is the query set, the other two the
database): the codebook (K centroids, cached by quality.py) trained on the database, its exact maps kept. Query
kinds as in quality.py; "self": every database photo queries the database with its own maps (image query) and
should come first. Needs the network's maps of the photos (``bench/maps_cache.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maps_cache  # noqa: E402
import quality as Q  # noqa: E402
from segsearch import Index, Query  # noqa: E402
from segsearch.engine.index import empty_like  # noqa: E402
from segsearch.evaluation import grade, layout_agreement  # noqa: E402

DEPTHS = (0, 16, 32, 64, 128, 256)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=16, help="centroids per class (default 16: folders of 128-255 photos)")
    ap.add_argument("--ranking", default="balanced", choices=("balanced", "l2"))
    args = ap.parse_args(argv)
    paths, root, grids, sketches, seq = Q.camvid_data()
    maps16 = maps_cache.network_maps(paths, root, tag="camvid")
    key = Path(maps16.filename).stem
    kinds = [k for k in Q.QUERY_KINDS]
    methods = [*DEPTHS, "exact"]
    scores = {k: {m: [] for m in methods} for k in kinds}
    ties = {m: 0 for m in methods}
    lists = 0
    self_rank = {d: [] for d in DEPTHS}
    for s in sorted(set(seq)):
        qi, di = np.flatnonzero(seq == s), np.flatnonzero(seq != s)
        db = Q.as_probs(maps16[di])
        qmaps = {i: m for i, m in zip(qi, Q.as_probs(maps16[qi]))}
        grades = grade(layout_agreement(grids[qi][:, None], grids[di][None]), Q.THRESHOLDS)
        queries = Q.camvid_queries(qmaps, sketches, qi)
        codebook, prior = Q.fold_index(db, args.k, f"{key}-{s}", args.ranking)
        book = Index.from_codebook(codebook, np.zeros((0, Q.C), np.uint8), ranking=args.ranking, class_prior=prior)
        index = empty_like(book, keep_exact=True).add(db)
        for kind in kinds:
            for m in methods:
                res = (
                    index.search(queries[kind], k=10, exact=True)
                    if m == "exact"
                    else index.search(queries[kind], k=10, rerank=m)
                )
                scores[kind][m].extend(Q.ndcg_rows(np.stack([r.ids for r in res]), grades)[10].tolist())
                ties[m] += sum(int((np.diff(r.distances) == 0).any()) for r in res)
            lists += len(qi)
        own = [Query.image(m) for m in db]
        for d in DEPTHS:
            for i, r in enumerate(index.search(own, k=len(db), rerank=d)):
                self_rank[d].append(int(np.flatnonzero(r.ids == i)[0]) + 1)
        Q.log(f"fold {s}: {len(di)} photos in the database")
    print(f"CamVid, K={args.k}, {args.ranking}: nDCG@10 (and its ratio to exact search) per re-rank depth")
    for kind in kinds:
        exact = np.mean(scores[kind]["exact"])
        cells = "  ".join(
            f"R={d}: {np.mean(scores[kind][d]):.3f} ({np.mean(scores[kind][d]) / exact:.3f}x)" for d in DEPTHS
        )
        print(f"  {kind:26s} exact {exact:.3f}  {cells}")
    print(f"top-10 lists with ties, of {lists}: " + ", ".join(f"R={m}: {ties[m]}" for m in methods))
    for d in DEPTHS:
        r = np.array(self_rank[d])
        print(f"R={d}: each photo first for its own query {np.mean(r == 1):.1%} (worst rank {r.max()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
