"""Hub photos on COCO-MINI under each ranking, with the package itself (bench/hubness.py is the research that
chose the "balanced" ranking; this checks what the shipped code does).

    python bench/ranking_hubs.py

Each of the 80 photos queries the other 79 (image query, top 10). For PQ at K = 8 (the default K for 64-127
photos) and 16, the codebook is trained by ``Index.train`` on the photos and their mirror images, searched by the
codes alone and, "re-ranked", with the exact maps kept and the default re-rank (what ``segsearch index`` makes);
exact search on the uint8 maps. Prints, per ranking, the share of the 80 top-10 lists holding the worst hub photo
and how many photos are never retrieved. Needs ../shared and the network's maps (cached by bench/maps_cache.py).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import maps_cache  # noqa: E402
from segsearch import Index, Query  # noqa: E402


def main() -> int:
    paths, root = maps_cache.coco_photos()
    maps = maps_cache.network_maps(paths, root, tag="coco-mini").astype(np.float32)
    maps /= maps.sum(1, keepdims=True)
    N, C = maps.shape[:2]
    for K, rerank in ((8, 0), (16, 0), (8, None), (16, None), ("exact", 0)):
        for ranking in ("l2", "balanced"):
            if K == "exact":
                index = Index(C, maps.shape[-1], 1, keep_exact=True, ranking=ranking).train(maps).add(maps)
            else:  # rerank None: the exact maps kept and the default re-rank, as a folder made by segsearch index
                index = (
                    Index(C, maps.shape[-1], K, ranking=ranking, keep_exact=rerank is None)
                    .train(np.concatenate([maps, maps[..., ::-1]]), seed=0)
                    .add(maps)
                )
            counts = np.zeros(N, np.int64)
            for q in range(N):
                others = np.array([i for i in range(N) if i != q])
                counts[index.search(Query.image(maps[q]), k=10, subset=others, exact=K == "exact").ids] += 1
            name = "exact" if K == "exact" else f"K={K}" + (" re-ranked" if rerank is None else "")
            print(
                f"{name:15s} {ranking:9s} worst hub in {counts.max()}/{N} "
                f"top-10 lists ({counts.max() / N:.0%}), never retrieved: {int((counts == 0).sum())}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
